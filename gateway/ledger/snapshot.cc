#include "ledger/snapshot.h"

#include <chrono>
#include <climits>
#include <cstdint>
#include <ratio>
#include <stdexcept>
#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "relance/v1/state.pb.h"

namespace relance::ledger {

namespace {

using v1::TimelineSnapshot;

// The layout this code writes and the only one it reads.
constexpr std::uint32_t kFormat = 1;

// Nanoseconds hold every instant of a clock no finer than them, so the round trip is exact.
static_assert(std::ratio_less_equal_v<std::nano, Duration::period>, "Instant is finer than the snapshot's nanoseconds");

std::int64_t to_nanos(Instant at) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

Instant from_nanos(std::int64_t nanos) {
  return Instant(std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(nanos)));
}

// One message per thread, reused: clearing it keeps the entries and string buffers of the
// previous timeline, so snapshots of timelines of a similar shape (every state change writes
// one) allocate almost nothing.
TimelineSnapshot& scratch() {
  thread_local TimelineSnapshot snapshot;
  return snapshot;
}

// The customer and the invoices are lent to the snapshot rather than copied into it, the
// largest part of a timeline. Serializing only reads them (the cached sizes it writes are
// atomics), and they are taken back before the encoder returns or throws, so the snapshot
// never frees what the ledger owns.
class LentMessages {
 public:
  explicit LentMessages(TimelineSnapshot& snapshot) : snapshot_(snapshot) {}
  LentMessages(const LentMessages&) = delete;
  LentMessages& operator=(const LentMessages&) = delete;
  ~LentMessages() {
    snapshot_.unsafe_arena_release_customer();
    for (auto& invoice : *snapshot_.mutable_invoices()) invoice.unsafe_arena_release_invoice();
  }

 private:
  TimelineSnapshot& snapshot_;
};

void write_stages(const std::vector<std::pair<std::string, int>>& stages,
                  google::protobuf::RepeatedPtrField<TimelineSnapshot::SubjectStage>& out) {
  out.Reserve(static_cast<int>(stages.size()));
  for (const auto& [subject, stage] : stages) {
    auto* entry = out.Add();
    entry->set_subject(subject);
    entry->set_stage(stage);
  }
}

void write_channels(const std::set<v1::Channel>& channels, google::protobuf::RepeatedField<int>& out) {
  out.Reserve(static_cast<int>(channels.size()));
  for (auto channel : channels) out.AddAlreadyReserved(channel);
}

void write_strings(const std::vector<std::string>& strings, google::protobuf::RepeatedPtrField<std::string>& out) {
  out.Reserve(static_cast<int>(strings.size()));
  for (const auto& s : strings) *out.Add() = s;
}

void write_invoice(const std::string& key, const InvoiceState& from, TimelineSnapshot::InvoiceState& to) {
  to.set_invoice_key(key);
  to.unsafe_arena_set_allocated_invoice(const_cast<v1::Invoice*>(&from.invoice));
  to.set_cancelled(from.cancelled);
  to.set_disputed(from.disputed);
  to.set_promised_on(from.promised_on);
  to.set_resume_on(from.resume_on);
  to.set_plan_id(from.plan_id);
  to.set_reminders_sent(from.reminders_sent);
  to.set_first_reminder_at(to_nanos(from.first_reminder_at));
  to.set_last_reminder_at(to_nanos(from.last_reminder_at));
  to.set_last_channel(from.last_channel);
  to.set_thanked(from.thanked);
  to.set_cancel_reason(from.cancel_reason);
  to.set_last_stage_name(from.last_stage_name);
  to.set_last_tone(from.last_tone);
  to.set_last_template(from.last_template);
  to.set_last_variant(from.last_variant);
  to.set_paid_after_reminders(from.paid_after_reminders);
}

void write_plan(const std::string& key, const PaymentPlanState& from, TimelineSnapshot::PaymentPlanState& to) {
  to.set_plan_key(key);
  to.set_plan_id(from.plan_id);
  to.set_currency(from.currency);
  write_strings(from.invoice_ids, *to.mutable_invoice_ids());
  to.mutable_installments()->Reserve(static_cast<int>(from.installments.size()));
  for (const auto& installment : from.installments) {
    auto* entry = to.add_installments();
    entry->set_due_on(installment.due_on);
    entry->set_amount(installment.amount);
    entry->set_paid(installment.paid);
  }
}

void write_reminder(const std::string& key, const SentReminder& from, TimelineSnapshot::SentReminder& to) {
  to.set_reminder_id(key);
  to.set_stage_key(from.stage_key);
  to.set_channel(from.channel);
  write_stages(from.reached, *to.mutable_reached());
  write_stages(from.before, *to.mutable_before());
  write_strings(from.invoice_ids, *to.mutable_invoice_ids());
  to.set_stage(from.stage);
  to.set_tone(from.tone);
  to.set_sent_at(to_nanos(from.sent_at));
  to.set_status(from.status);
  to.set_awaiting_confirmation(from.awaiting_confirmation);
  to.set_fell_back(from.fell_back);
  to.set_provider_message_id(from.provider_message_id);
  to.set_call_outcome(from.call_outcome);
  for (const auto& line : from.explanation) to.add_explanation(line);
  to.set_subject(from.subject);
  to.set_text(from.text);
}

// Reading moves strings out of the parsed message: it is cleared by the next parse anyway.
std::string take(std::string* s) { return std::move(*s); }

void read_stages(google::protobuf::RepeatedPtrField<TimelineSnapshot::SubjectStage>& from,
                 std::vector<std::pair<std::string, int>>& to) {
  to.clear();
  to.reserve(from.size());
  for (auto& entry : from) to.emplace_back(take(entry.mutable_subject()), entry.stage());
}

void read_channels(const google::protobuf::RepeatedField<int>& from, std::set<v1::Channel>& to) {
  to.clear();
  // Values arrive ascending, so each insertion lands at the end; a repeated one changes nothing.
  for (int channel : from) to.insert(to.end(), static_cast<v1::Channel>(channel));
}

void read_strings(google::protobuf::RepeatedPtrField<std::string>& from, std::vector<std::string>& to) {
  to.clear();
  to.reserve(from.size());
  for (auto& s : from) to.push_back(std::move(s));
}

// Where the entry read under `key` goes; null when the key repeats, which the encoder never
// writes and which would leave two values for one key. Keys arrive sorted, so the hint makes
// each insertion constant time.
template <typename Map>
typename Map::mapped_type* add_entry(Map& map, std::string* key) {
  auto size = map.size();
  auto it = map.try_emplace(map.end(), take(key));
  return map.size() == size ? nullptr : &it->second;
}

void read_invoice(TimelineSnapshot::InvoiceState& from, InvoiceState& to) {
  to.invoice.Swap(from.mutable_invoice());
  to.cancelled = from.cancelled();
  to.disputed = from.disputed();
  to.promised_on = take(from.mutable_promised_on());
  to.resume_on = take(from.mutable_resume_on());
  to.plan_id = take(from.mutable_plan_id());
  to.reminders_sent = from.reminders_sent();
  to.first_reminder_at = from_nanos(from.first_reminder_at());
  to.last_reminder_at = from_nanos(from.last_reminder_at());
  to.last_channel = from.last_channel();
  to.thanked = from.thanked();
  to.cancel_reason = from.cancel_reason();
  to.last_stage_name = take(from.mutable_last_stage_name());
  to.last_tone = from.last_tone();
  to.last_template = take(from.mutable_last_template());
  to.last_variant = take(from.mutable_last_variant());
  to.paid_after_reminders = from.paid_after_reminders();
}

void read_plan(TimelineSnapshot::PaymentPlanState& from, PaymentPlanState& to) {
  to.plan_id = take(from.mutable_plan_id());
  to.currency = take(from.mutable_currency());
  read_strings(*from.mutable_invoice_ids(), to.invoice_ids);
  to.installments.clear();
  to.installments.reserve(from.installments_size());
  for (auto& entry : *from.mutable_installments()) {
    to.installments.push_back(Installment{take(entry.mutable_due_on()), entry.amount(), entry.paid()});
  }
}

// False when the stages reached and the stages before do not pair up, which the fallback of
// a reminder relies on.
bool read_reminder(TimelineSnapshot::SentReminder& from, SentReminder& to) {
  if (from.reached_size() != from.before_size()) return false;
  to.stage_key = take(from.mutable_stage_key());
  to.channel = from.channel();
  read_stages(*from.mutable_reached(), to.reached);
  read_stages(*from.mutable_before(), to.before);
  read_strings(*from.mutable_invoice_ids(), to.invoice_ids);
  to.stage = take(from.mutable_stage());
  to.tone = from.tone();
  to.sent_at = from_nanos(from.sent_at());
  to.status = from.status();
  to.awaiting_confirmation = from.awaiting_confirmation();
  to.fell_back = from.fell_back();
  to.provider_message_id = take(from.mutable_provider_message_id());
  to.call_outcome = take(from.mutable_call_outcome());
  to.explanation.reserve(static_cast<std::size_t>(from.explanation_size()));
  for (auto& line : *from.mutable_explanation()) to.explanation.push_back(std::move(line));
  to.subject = take(from.mutable_subject());
  to.text = take(from.mutable_text());
  return true;
}

}  // namespace

std::string encode_snapshot(const CustomerLedger& ledger) {
  auto& snapshot = scratch();
  snapshot.Clear();
  LentMessages lent(snapshot);

  snapshot.set_format(kFormat);
  snapshot.set_key(ledger.key);
  snapshot.set_tenant_id(ledger.tenant_id);
  snapshot.unsafe_arena_set_allocated_customer(const_cast<v1::Customer*>(&ledger.customer));

  auto* contacts = snapshot.mutable_contacts();
  contacts->set_email(ledger.contacts.email);
  contacts->set_phone(ledger.contacts.phone);
  contacts->set_mobile(ledger.contacts.mobile);
  contacts->set_whatsapp(ledger.contacts.whatsapp);

  // std::map iterates in key order, which makes the repeated entries sorted.
  snapshot.mutable_invoices()->Reserve(static_cast<int>(ledger.invoices.size()));
  for (const auto& [key, invoice] : ledger.invoices) write_invoice(key, invoice, *snapshot.add_invoices());

  snapshot.mutable_plans()->Reserve(static_cast<int>(ledger.plans.size()));
  for (const auto& [key, plan] : ledger.plans) write_plan(key, plan, *snapshot.add_plans());

  snapshot.mutable_last_stage()->Reserve(static_cast<int>(ledger.last_stage.size()));
  for (const auto& [subject, stage] : ledger.last_stage) {
    auto* entry = snapshot.add_last_stage();
    entry->set_subject(subject);
    entry->set_stage(stage);
  }

  auto& contacts_made = *snapshot.mutable_contacts_made();
  contacts_made.Reserve(static_cast<int>(ledger.contacts_made.size()));
  for (auto at : ledger.contacts_made) contacts_made.AddAlreadyReserved(to_nanos(at));

  write_channels(ledger.failed_channels, *snapshot.mutable_failed_channels());
  write_channels(ledger.opted_out, *snapshot.mutable_opted_out());

  snapshot.mutable_late_invoices()->Reserve(static_cast<int>(ledger.late_invoices.size()));
  for (const auto& [invoice_id, day] : ledger.late_invoices) {
    auto* entry = snapshot.add_late_invoices();
    entry->set_invoice_id(invoice_id);
    entry->set_late_since(day);
  }

  snapshot.mutable_reminders()->Reserve(static_cast<int>(ledger.reminders.size()));
  for (const auto& [key, reminder] : ledger.reminders) write_reminder(key, reminder, *snapshot.add_reminders());

  snapshot.mutable_stage_failed_channels()->Reserve(static_cast<int>(ledger.stage_failed_channels.size()));
  for (const auto& [stage_key, channels] : ledger.stage_failed_channels) {
    auto* entry = snapshot.add_stage_failed_channels();
    entry->set_stage_key(stage_key);
    write_channels(channels, *entry->mutable_channels());
  }

  snapshot.set_partition(ledger.partition);
  snapshot.set_applied_offset(ledger.applied_offset);
  write_strings(ledger.recent_event_ids, *snapshot.mutable_recent_event_ids());
  if (ledger.next_due) snapshot.set_next_due(to_nanos(*ledger.next_due));

  std::string bytes;
  // Protobuf refuses only messages over 2 GiB, a timeline no policy lets grow that far.
  if (!snapshot.SerializeToString(&bytes)) throw std::length_error("snapshot: the timeline is too large to encode");
  return bytes;
}

bool decode_snapshot(std::string_view bytes, CustomerLedger& out) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) return false;
  auto& snapshot = scratch();
  if (!snapshot.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  if (snapshot.format() != kFormat) return false;

  out.key = take(snapshot.mutable_key());
  out.tenant_id = take(snapshot.mutable_tenant_id());
  // Swapping hands over the parsed customer whole, unknown fields included, without a copy.
  out.customer.Swap(snapshot.mutable_customer());

  const auto& contacts = snapshot.contacts();
  out.contacts = ContactValidity{contacts.email(), contacts.phone(), contacts.mobile(), contacts.whatsapp()};

  out.invoices.clear();
  for (auto& entry : *snapshot.mutable_invoices()) {
    auto* invoice = add_entry(out.invoices, entry.mutable_invoice_key());
    if (!invoice) return false;
    read_invoice(entry, *invoice);
  }

  out.plans.clear();
  for (auto& entry : *snapshot.mutable_plans()) {
    auto* plan = add_entry(out.plans, entry.mutable_plan_key());
    if (!plan) return false;
    read_plan(entry, *plan);
  }

  out.last_stage.clear();
  for (auto& entry : *snapshot.mutable_last_stage()) {
    auto* stage = add_entry(out.last_stage, entry.mutable_subject());
    if (!stage) return false;
    *stage = entry.stage();
  }

  out.contacts_made.clear();
  out.contacts_made.reserve(snapshot.contacts_made_size());
  for (auto nanos : snapshot.contacts_made()) out.contacts_made.push_back(from_nanos(nanos));

  read_channels(snapshot.failed_channels(), out.failed_channels);
  read_channels(snapshot.opted_out(), out.opted_out);

  out.late_invoices.clear();
  for (auto& entry : *snapshot.mutable_late_invoices()) {
    auto* day = add_entry(out.late_invoices, entry.mutable_invoice_id());
    if (!day) return false;
    *day = take(entry.mutable_late_since());
  }

  out.reminders.clear();
  for (auto& entry : *snapshot.mutable_reminders()) {
    auto* reminder = add_entry(out.reminders, entry.mutable_reminder_id());
    if (!reminder || !read_reminder(entry, *reminder)) return false;
  }

  out.stage_failed_channels.clear();
  for (auto& entry : *snapshot.mutable_stage_failed_channels()) {
    auto* channels = add_entry(out.stage_failed_channels, entry.mutable_stage_key());
    if (!channels) return false;
    read_channels(entry.channels(), *channels);
  }

  out.partition = snapshot.partition();
  out.applied_offset = snapshot.applied_offset();
  read_strings(*snapshot.mutable_recent_event_ids(), out.recent_event_ids);
  if (snapshot.has_next_due()) {
    out.next_due = from_nanos(snapshot.next_due());
  } else {
    out.next_due.reset();
  }
  return true;
}

bool read_snapshot_schedule(std::string_view bytes, std::optional<Instant>& next_due) {
  using google::protobuf::internal::WireFormatLite;
  constexpr int kFormatField = relance::v1::TimelineSnapshot::kFormatFieldNumber;
  constexpr int kNextDueField = relance::v1::TimelineSnapshot::kNextDueFieldNumber;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::uint32_t format = 0;
  next_due.reset();
  while (auto tag = in.ReadTag()) {
    auto field = WireFormatLite::GetTagFieldNumber(tag);
    auto type = WireFormatLite::GetTagWireType(tag);
    if (field == kFormatField && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint32(&format)) return false;
    } else if (field == kNextDueField && type == WireFormatLite::WIRETYPE_VARINT) {
      std::uint64_t zigzag = 0;
      if (!in.ReadVarint64(&zigzag)) return false;
      next_due = from_nanos(WireFormatLite::ZigZagDecode64(zigzag));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  // ReadTag also gives 0 for a malformed tag; only the end of the bytes is a legitimate end.
  return in.ConsumedEntireMessage() && format == kFormat;
}

}  // namespace relance::ledger
