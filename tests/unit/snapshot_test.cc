// The timeline snapshot: what a restart or a partition takeover rebuilds must be the timeline
// that was written, every field of it, and the same timeline must always give the same bytes.
#include "ledger/snapshot.h"

#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "relance/v1/state.pb.h"

namespace relance::ledger {
namespace {

namespace v1 = relance::v1;

Instant at(int64_t seconds, int64_t nanos = 0) {
  return Instant{std::chrono::duration_cast<Duration>(std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos))};
}

v1::Invoice invoice(const std::string& id, const std::string& due_on, int64_t total, int64_t due) {
  v1::Invoice inv;
  inv.set_invoice_id(id);
  inv.set_number("F-2026-" + id);
  inv.set_customer_id("cust-42");
  inv.mutable_amount_total()->set_currency("EUR");
  inv.mutable_amount_total()->set_minor_units(total);
  inv.mutable_amount_due()->set_currency("EUR");
  inv.mutable_amount_due()->set_minor_units(due);
  inv.set_issued_on("2026-09-01");
  inv.set_due_on(due_on);
  inv.set_payment_link("https://pay.example.com/" + id);
  return inv;
}

// Every field set to something other than its default, somewhere.
CustomerLedger full_ledger() {
  CustomerLedger l;
  l.key = "cust-42";
  l.tenant_id = "acme";

  auto& c = l.customer;
  c.set_customer_id("cust-42");
  c.set_name("Jeanne Martin");
  c.set_email("jeanne.martin@example.com");
  c.set_phone("+33612345678");
  c.set_whatsapp("+33612345679");
  c.set_locale("fr-FR");
  c.set_time_zone("Europe/Paris");
  c.add_preferred_channels(v1::SMS);
  c.add_preferred_channels(v1::EMAIL);
  auto* consent = c.add_consents();
  consent->set_channel(v1::WHATSAPP);
  consent->set_granted(true);
  consent->mutable_updated_at()->set_seconds(1'790'000'000);
  consent->mutable_updated_at()->set_nanos(5);
  c.set_country("FR");
  // A field from a newer producer's schema, kept so that it is passed on unchanged.
  c.GetReflection()->MutableUnknownFields(&c)->AddVarint(99, 7);

  l.contacts = ContactValidity{true, true, true, true};

  auto& open = l.invoices["inv-1"];
  open.invoice = invoice("inv-1", "2026-10-01", 12'000, 7'000);
  open.promised_on = "2026-10-20";
  open.resume_on = "2026-10-21";
  open.plan_id = "plan-1";
  open.reminders_sent = 3;
  open.first_reminder_at = at(1'790'100'000, 1);
  open.last_reminder_at = at(1'790'300'000, 999'999'999);
  open.last_channel = v1::SMS;
  open.last_stage_name = "second_reminder";
  open.last_tone = v1::FIRM;
  open.last_template = "second_reminder.sms";
  open.last_variant = "short";

  auto& cancelled = l.invoices["inv-2"];
  cancelled.invoice = invoice("inv-2", "2026-09-15", 5'000, 5'000);
  cancelled.cancelled = true;
  cancelled.cancel_reason = v1::InvoiceCancelled::WRITTEN_OFF;

  auto& disputed = l.invoices["inv-3"];
  disputed.invoice = invoice("inv-3", "2026-09-20", 8'000, 8'000);
  disputed.disputed = true;
  disputed.plan_id = "plan-1";

  auto& paid = l.invoices["inv-4"];
  paid.invoice = invoice("inv-4", "2026-08-31", 3'000, 0);
  paid.reminders_sent = 1;
  paid.first_reminder_at = at(1'789'000'000);
  paid.last_reminder_at = at(1'789'000'000);
  paid.last_channel = v1::EMAIL;
  paid.thanked = true;
  paid.paid_after_reminders = true;

  auto& plan = l.plans["plan-1"];
  plan.plan_id = "plan-1";
  plan.currency = "EUR";
  plan.invoice_ids = {"inv-3", "inv-1"};
  plan.installments = {{"2026-11-01", 5'000, 5'000}, {"2026-12-01", 5'000, 1'200}, {"2027-01-01", 5'000, 0}};
  auto& old_plan = l.plans["plan-0"];
  old_plan.plan_id = "plan-0";
  old_plan.currency = "EUR";
  old_plan.invoice_ids = {"inv-0"};
  old_plan.installments = {{"2026-06-01", 1'000, 1'000}};

  l.last_stage = {{"inv-1", 2}, {"inv-3", 0}, {"plan-1#1", 1}};
  l.contacts_made = {at(1'790'100'000, 1), at(1'790'200'000, 2), at(1'790'300'000, 999'999'999)};
  l.failed_channels = {v1::WHATSAPP, v1::CALL_TASK};
  l.opted_out = {v1::SMS};
  l.late_invoices = {{"inv-1", "2026-10-02"}, {"inv-3", "2026-09-21"}};

  auto& sms = l.reminders["rem_a"];
  sms.stage_key = "stage_a";
  sms.channel = v1::SMS;
  sms.reached = {{"inv-1", 2}, {"inv-3", 1}};
  sms.before = {{"inv-1", 1}, {"inv-3", -1}};
  sms.invoice_ids = {"inv-1", "inv-3"};
  sms.stage = "second_reminder";
  sms.tone = v1::FIRM;
  sms.sent_at = at(1'790'300'000, 999'999'999);
  sms.status = v1::DELIVERED;
  sms.awaiting_confirmation = true;
  sms.fell_back = true;
  sms.provider_message_id = "SM123";
  sms.explanation = {"stage=second_reminder (due+10d)", "SMS chosen"};
  sms.subject = "";
  sms.text = "Relance : la facture F-1 de 120,00 € reste due. Réglez-la sur https://pay.example/1";
  auto& call = l.reminders["task_b"];
  call.stage_key = "stage_b";
  call.channel = v1::CALL_TASK;
  call.reached = {{"plan-1#1", 1}};
  call.before = {{"plan-1#1", 0}};
  call.invoice_ids = {"inv-1"};
  call.stage = "escalation";
  call.tone = v1::FINAL;
  call.sent_at = at(1'790'400'000);
  call.status = v1::OUTCOME_UNKNOWN;
  call.call_outcome = "promise_to_pay";
  call.subject = "Call Jeanne Martin";

  l.stage_failed_channels = {{"stage_a", {v1::EMAIL, v1::WHATSAPP}}, {"stage_b", {v1::SMS}}};
  l.partition = 7;
  l.applied_offset = 123'456'789'012;
  l.recent_event_ids = {"evt-1", "evt-3", "evt-2"};
  l.next_due = at(1'790'500'000, 123);
  return l;
}

// The names of the fields in which two timelines differ; empty when they are identical.
using Differences = std::vector<std::string>;

template <typename T>
void compare(const T& a, const T& b, const std::string& name, Differences& out) {
  if (!(a == b)) out.push_back(name);
}

void compare_message(const google::protobuf::Message& a, const google::protobuf::Message& b, const std::string& name,
                     Differences& out) {
  // Neither Customer nor Invoice has a map field, so equal contents serialize to equal bytes,
  // unknown fields included.
  if (a.SerializeAsString() != b.SerializeAsString()) out.push_back(name);
}

template <typename Map, typename CompareValue>
void compare_map(const Map& a, const Map& b, const std::string& name, Differences& out, CompareValue compare_value) {
  if (a.size() != b.size()) out.push_back(name + ".size");
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end() && ib != b.end(); ++ia, ++ib) {
    if (ia->first != ib->first) {
      out.push_back(name + ": key " + ia->first + " vs " + ib->first);
      continue;
    }
    compare_value(ia->second, ib->second, name + "[" + ia->first + "]", out);
  }
}

void compare_invoice(const InvoiceState& a, const InvoiceState& b, const std::string& n, Differences& out) {
  compare_message(a.invoice, b.invoice, n + ".invoice", out);
  compare(a.cancelled, b.cancelled, n + ".cancelled", out);
  compare(a.disputed, b.disputed, n + ".disputed", out);
  compare(a.promised_on, b.promised_on, n + ".promised_on", out);
  compare(a.resume_on, b.resume_on, n + ".resume_on", out);
  compare(a.plan_id, b.plan_id, n + ".plan_id", out);
  compare(a.reminders_sent, b.reminders_sent, n + ".reminders_sent", out);
  compare(a.first_reminder_at, b.first_reminder_at, n + ".first_reminder_at", out);
  compare(a.last_reminder_at, b.last_reminder_at, n + ".last_reminder_at", out);
  compare(a.last_channel, b.last_channel, n + ".last_channel", out);
  compare(a.thanked, b.thanked, n + ".thanked", out);
  compare(a.cancel_reason, b.cancel_reason, n + ".cancel_reason", out);
  compare(a.last_stage_name, b.last_stage_name, n + ".last_stage_name", out);
  compare(a.last_tone, b.last_tone, n + ".last_tone", out);
  compare(a.last_template, b.last_template, n + ".last_template", out);
  compare(a.last_variant, b.last_variant, n + ".last_variant", out);
  compare(a.paid_after_reminders, b.paid_after_reminders, n + ".paid_after_reminders", out);
}

void compare_plan(const PaymentPlanState& a, const PaymentPlanState& b, const std::string& n, Differences& out) {
  compare(a.plan_id, b.plan_id, n + ".plan_id", out);
  compare(a.currency, b.currency, n + ".currency", out);
  compare(a.invoice_ids, b.invoice_ids, n + ".invoice_ids", out);
  compare(a.installments.size(), b.installments.size(), n + ".installments.size", out);
  for (std::size_t i = 0; i < std::min(a.installments.size(), b.installments.size()); ++i) {
    const auto& x = a.installments[i];
    const auto& y = b.installments[i];
    auto name = n + ".installments[" + std::to_string(i) + "]";
    compare(x.due_on, y.due_on, name + ".due_on", out);
    compare(x.amount, y.amount, name + ".amount", out);
    compare(x.paid, y.paid, name + ".paid", out);
  }
}

void compare_reminder(const SentReminder& a, const SentReminder& b, const std::string& n, Differences& out) {
  compare(a.stage_key, b.stage_key, n + ".stage_key", out);
  compare(a.channel, b.channel, n + ".channel", out);
  compare(a.reached, b.reached, n + ".reached", out);
  compare(a.before, b.before, n + ".before", out);
  compare(a.invoice_ids, b.invoice_ids, n + ".invoice_ids", out);
  compare(a.stage, b.stage, n + ".stage", out);
  compare(a.tone, b.tone, n + ".tone", out);
  compare(a.sent_at, b.sent_at, n + ".sent_at", out);
  compare(a.status, b.status, n + ".status", out);
  compare(a.awaiting_confirmation, b.awaiting_confirmation, n + ".awaiting_confirmation", out);
  compare(a.fell_back, b.fell_back, n + ".fell_back", out);
  compare(a.provider_message_id, b.provider_message_id, n + ".provider_message_id", out);
  compare(a.call_outcome, b.call_outcome, n + ".call_outcome", out);
  compare(a.explanation, b.explanation, n + ".explanation", out);
  compare(a.subject, b.subject, n + ".subject", out);
  compare(a.text, b.text, n + ".text", out);
}

Differences differences(const CustomerLedger& a, const CustomerLedger& b) {
  Differences out;
  compare(a.key, b.key, "key", out);
  compare(a.tenant_id, b.tenant_id, "tenant_id", out);
  compare_message(a.customer, b.customer, "customer", out);
  compare(a.contacts.email, b.contacts.email, "contacts.email", out);
  compare(a.contacts.phone, b.contacts.phone, "contacts.phone", out);
  compare(a.contacts.mobile, b.contacts.mobile, "contacts.mobile", out);
  compare(a.contacts.whatsapp, b.contacts.whatsapp, "contacts.whatsapp", out);
  compare_map(a.invoices, b.invoices, "invoices", out, compare_invoice);
  compare_map(a.plans, b.plans, "plans", out, compare_plan);
  compare(a.last_stage, b.last_stage, "last_stage", out);
  compare(a.contacts_made, b.contacts_made, "contacts_made", out);
  compare(a.failed_channels, b.failed_channels, "failed_channels", out);
  compare(a.opted_out, b.opted_out, "opted_out", out);
  compare(a.late_invoices, b.late_invoices, "late_invoices", out);
  compare_map(a.reminders, b.reminders, "reminders", out, compare_reminder);
  compare(a.stage_failed_channels, b.stage_failed_channels, "stage_failed_channels", out);
  compare(a.partition, b.partition, "partition", out);
  compare(a.applied_offset, b.applied_offset, "applied_offset", out);
  compare(a.recent_event_ids, b.recent_event_ids, "recent_event_ids", out);
  compare(a.next_due, b.next_due, "next_due", out);
  return out;
}

// Decodes into a timeline that already holds other data, so a field the decoder forgets to
// overwrite shows up as a difference.
CustomerLedger round_trip(const CustomerLedger& ledger) {
  CustomerLedger decoded;
  decoded.key = "stale";
  decoded.customer.set_name("stale");
  decoded.contacts.phone = true;
  decoded.invoices["inv-stale"].cancelled = true;
  decoded.plans["plan-stale"].installments.push_back({"2020-01-01", 1, 0});
  decoded.last_stage["stale"] = 9;
  decoded.contacts_made.push_back(at(1));
  decoded.failed_channels.insert(v1::EMAIL);
  decoded.opted_out.insert(v1::WHATSAPP);
  decoded.late_invoices["stale"] = "2020-01-01";
  decoded.reminders["stale"].fell_back = true;
  decoded.stage_failed_channels["stale"].insert(v1::SMS);
  decoded.partition = 99;
  decoded.applied_offset = 99;
  decoded.recent_event_ids.push_back("stale");
  decoded.next_due = at(99);
  EXPECT_TRUE(decode_snapshot(encode_snapshot(ledger), decoded));
  return decoded;
}

TEST(Snapshot, RoundTripKeepsEveryField) {
  auto ledger = full_ledger();
  auto decoded = round_trip(ledger);
  EXPECT_EQ(differences(ledger, decoded), Differences{});

  // A few fields read directly, independently of the helper.
  EXPECT_EQ(decoded.invoices.size(), 4u);
  EXPECT_EQ(decoded.invoices.at("inv-2").cancel_reason, v1::InvoiceCancelled::WRITTEN_OFF);
  EXPECT_EQ(decoded.invoices.at("inv-1").invoice.amount_due().minor_units(), 7'000);
  EXPECT_EQ(decoded.invoices.at("inv-1").last_reminder_at, at(1'790'300'000, 999'999'999));
  EXPECT_EQ(decoded.plans.at("plan-1").installments.at(1).paid, 1'200);
  EXPECT_EQ(decoded.reminders.at("rem_a").before.at(1), (std::pair<std::string, int>("inv-3", -1)));
  EXPECT_EQ(decoded.reminders.at("task_b").status, v1::OUTCOME_UNKNOWN);
  EXPECT_EQ(decoded.customer.GetReflection()->GetUnknownFields(decoded.customer).field_count(), 1);
  EXPECT_EQ(decoded.partition, 7);
  EXPECT_EQ(decoded.applied_offset, 123'456'789'012);
  EXPECT_EQ(decoded.next_due, at(1'790'500'000, 123));
  EXPECT_TRUE(encode_snapshot(decoded) == encode_snapshot(ledger)) << "the decoded timeline encodes differently";
}

TEST(Snapshot, AnEmptyTimelineRoundTrips) {
  CustomerLedger ledger;
  auto decoded = round_trip(ledger);
  EXPECT_EQ(differences(ledger, decoded), Differences{});
  EXPECT_EQ(decoded.partition, -1);
  EXPECT_EQ(decoded.applied_offset, -1);
  EXPECT_FALSE(decoded.next_due);
}

TEST(Snapshot, NothingScheduledDiffersFromScheduledAtTheEpoch) {
  auto ledger = full_ledger();
  ledger.next_due.reset();
  auto unscheduled = round_trip(ledger);
  EXPECT_FALSE(unscheduled.next_due);
  EXPECT_EQ(differences(ledger, unscheduled), Differences{});

  ledger.next_due = Instant{};
  auto at_epoch = round_trip(ledger);
  ASSERT_TRUE(at_epoch.next_due);
  EXPECT_EQ(*at_epoch.next_due, Instant{});
  EXPECT_EQ(differences(ledger, at_epoch), Differences{});
}

TEST(Snapshot, TheScheduleIsReadWithoutDecodingTheWhole) {
  auto ledger = full_ledger();
  std::optional<Instant> next_due;
  ASSERT_TRUE(read_snapshot_schedule(encode_snapshot(ledger), next_due));
  EXPECT_EQ(next_due, ledger.next_due);

  ledger.next_due = Instant{} - std::chrono::seconds(5);  // before the epoch: a negative sint64
  ASSERT_TRUE(read_snapshot_schedule(encode_snapshot(ledger), next_due));
  EXPECT_EQ(next_due, ledger.next_due);

  ledger.next_due.reset();
  next_due = Instant{};
  ASSERT_TRUE(read_snapshot_schedule(encode_snapshot(ledger), next_due));
  EXPECT_FALSE(next_due);
  ASSERT_TRUE(read_snapshot_schedule(encode_snapshot(CustomerLedger{}), next_due));
  EXPECT_FALSE(next_due);
}

TEST(Snapshot, TheScheduleReaderRefusesWhatDecodingRefusesAtTheTopLevel) {
  auto ledger = full_ledger();
  auto bytes = encode_snapshot(ledger);
  std::optional<Instant> next_due;
  CustomerLedger decoded;
  for (std::size_t cut : {std::size_t{1}, std::size_t{3}, bytes.size() / 2}) {
    auto truncated = bytes.substr(0, bytes.size() - cut);
    EXPECT_FALSE(read_snapshot_schedule(truncated, next_due)) << "cut " << cut;
    EXPECT_FALSE(decode_snapshot(truncated, decoded)) << "cut " << cut;
  }
  EXPECT_FALSE(read_snapshot_schedule(std::string("\xff\xff\xff"), next_due));

  v1::TimelineSnapshot later_format;
  ASSERT_TRUE(later_format.ParseFromString(bytes));
  later_format.set_format(later_format.format() + 1);
  EXPECT_FALSE(read_snapshot_schedule(later_format.SerializeAsString(), next_due));
  EXPECT_FALSE(decode_snapshot(later_format.SerializeAsString(), decoded));
}

TEST(Snapshot, AKeyThatIsNotUtf8RoundTrips) {
  auto ledger = full_ledger();
  ledger.key = std::string("\xff\xfe\0k", 4);
  auto decoded = round_trip(ledger);
  EXPECT_EQ(decoded.key, ledger.key);
  EXPECT_EQ(differences(ledger, decoded), Differences{});
}

// Changing any one field must change the bytes and survive the round trip: the codec carries
// every field, and the comparison above really looks at each of them.
TEST(Snapshot, EveryFieldIsCarried) {
  using Mutation = std::pair<std::string, std::function<void(CustomerLedger&)>>;
  const std::vector<Mutation> mutations = {
      {"key", [](auto& l) { l.key = "cust-43"; }},
      {"tenant_id", [](auto& l) { l.tenant_id = "other"; }},
      {"customer", [](auto& l) { l.customer.set_country("BE"); }},
      {"customer unknown field",
       [](auto& l) { l.customer.GetReflection()->MutableUnknownFields(&l.customer)->AddVarint(98, 1); }},
      {"contacts.email", [](auto& l) { l.contacts.email = false; }},
      {"contacts.phone", [](auto& l) { l.contacts.phone = false; }},
      {"contacts.mobile", [](auto& l) { l.contacts.mobile = false; }},
      {"contacts.whatsapp", [](auto& l) { l.contacts.whatsapp = false; }},
      {"invoices key", [](auto& l) {
         auto node = l.invoices.extract("inv-4");
         node.key() = "inv-5";
         l.invoices.insert(std::move(node));
       }},
      {"invoices size", [](auto& l) { l.invoices.erase("inv-2"); }},
      {"invoice.invoice", [](auto& l) { l.invoices["inv-1"].invoice.mutable_amount_due()->set_minor_units(6'999); }},
      {"invoice.cancelled", [](auto& l) { l.invoices["inv-2"].cancelled = false; }},
      {"invoice.disputed", [](auto& l) { l.invoices["inv-3"].disputed = false; }},
      {"invoice.promised_on", [](auto& l) { l.invoices["inv-1"].promised_on.clear(); }},
      {"invoice.resume_on", [](auto& l) { l.invoices["inv-1"].resume_on = "2026-10-22"; }},
      {"invoice.plan_id", [](auto& l) { l.invoices["inv-3"].plan_id.clear(); }},
      {"invoice.reminders_sent", [](auto& l) { l.invoices["inv-1"].reminders_sent = 4; }},
      {"invoice.first_reminder_at", [](auto& l) { l.invoices["inv-1"].first_reminder_at += std::chrono::nanoseconds(1); }},
      {"invoice.last_reminder_at", [](auto& l) { l.invoices["inv-4"].last_reminder_at = Instant{}; }},
      {"invoice.last_channel", [](auto& l) { l.invoices["inv-1"].last_channel = v1::WHATSAPP; }},
      {"invoice.thanked", [](auto& l) { l.invoices["inv-4"].thanked = false; }},
      {"invoice.cancel_reason", [](auto& l) { l.invoices["inv-2"].cancel_reason = v1::InvoiceCancelled::CREDITED; }},
      {"invoice.last_stage_name", [](auto& l) { l.invoices["inv-1"].last_stage_name = "final_notice"; }},
      {"invoice.last_tone", [](auto& l) { l.invoices["inv-1"].last_tone = v1::FINAL; }},
      {"invoice.last_template", [](auto& l) { l.invoices["inv-1"].last_template = "final.sms"; }},
      {"invoice.last_variant", [](auto& l) { l.invoices["inv-1"].last_variant = "base"; }},
      {"invoice.paid_after_reminders", [](auto& l) { l.invoices["inv-4"].paid_after_reminders = false; }},
      {"plans key", [](auto& l) {
         auto node = l.plans.extract("plan-0");
         node.key() = "plan-9";
         l.plans.insert(std::move(node));
       }},
      {"plan.plan_id", [](auto& l) { l.plans["plan-1"].plan_id = "plan-2"; }},
      {"plan.currency", [](auto& l) { l.plans["plan-1"].currency = "USD"; }},
      {"plan.invoice_ids", [](auto& l) { std::swap(l.plans["plan-1"].invoice_ids[0], l.plans["plan-1"].invoice_ids[1]); }},
      {"plan.installments", [](auto& l) { l.plans["plan-1"].installments.pop_back(); }},
      {"installment.due_on", [](auto& l) { l.plans["plan-1"].installments[0].due_on = "2026-11-02"; }},
      {"installment.amount", [](auto& l) { l.plans["plan-1"].installments[1].amount = 5'001; }},
      {"installment.paid", [](auto& l) { l.plans["plan-1"].installments[2].paid = 1; }},
      {"last_stage value", [](auto& l) { l.last_stage["inv-3"] = -1; }},
      {"last_stage key", [](auto& l) { l.last_stage.erase("plan-1#1"); }},
      {"contacts_made", [](auto& l) { l.contacts_made[1] -= std::chrono::nanoseconds(1); }},
      {"contacts_made order", [](auto& l) { std::swap(l.contacts_made[0], l.contacts_made[2]); }},
      {"failed_channels", [](auto& l) { l.failed_channels.insert(v1::EMAIL); }},
      {"opted_out", [](auto& l) { l.opted_out.clear(); }},
      {"late_invoices", [](auto& l) { l.late_invoices["inv-1"] = "2026-10-03"; }},
      {"reminders key", [](auto& l) {
         auto node = l.reminders.extract("task_b");
         node.key() = "task_c";
         l.reminders.insert(std::move(node));
       }},
      {"reminder.stage_key", [](auto& l) { l.reminders["rem_a"].stage_key = "stage_z"; }},
      {"reminder.channel", [](auto& l) { l.reminders["rem_a"].channel = v1::EMAIL; }},
      {"reminder.reached", [](auto& l) { l.reminders["rem_a"].reached[1].second = 2; }},
      {"reminder.before", [](auto& l) { l.reminders["rem_a"].before[0].first = "inv-9"; }},
      {"reminder.invoice_ids", [](auto& l) { l.reminders["task_b"].invoice_ids.push_back("inv-3"); }},
      {"reminder.stage", [](auto& l) { l.reminders["task_b"].stage = "first_reminder"; }},
      {"reminder.tone", [](auto& l) { l.reminders["task_b"].tone = v1::COURTEOUS; }},
      {"reminder.sent_at", [](auto& l) { l.reminders["task_b"].sent_at += std::chrono::seconds(1); }},
      {"reminder.status", [](auto& l) { l.reminders["rem_a"].status = v1::READ; }},
      {"reminder.awaiting_confirmation", [](auto& l) { l.reminders["rem_a"].awaiting_confirmation = false; }},
      {"reminder.fell_back", [](auto& l) { l.reminders["rem_a"].fell_back = false; }},
      {"reminder.provider_message_id", [](auto& l) { l.reminders["rem_a"].provider_message_id = "SM124"; }},
      {"reminder.call_outcome", [](auto& l) { l.reminders["task_b"].call_outcome = "dispute"; }},
      {"reminder.explanation", [](auto& l) { l.reminders["rem_a"].explanation.push_back("moved by quiet hours"); }},
      {"reminder.subject", [](auto& l) { l.reminders["task_b"].subject = "Call back"; }},
      {"reminder.text", [](auto& l) { l.reminders["rem_a"].text += "."; }},
      {"stage_failed_channels", [](auto& l) { l.stage_failed_channels["stage_b"].insert(v1::CALL_TASK); }},
      {"partition", [](auto& l) { l.partition = 8; }},
      {"applied_offset", [](auto& l) { l.applied_offset = 123'456'789'013; }},
      {"recent_event_ids", [](auto& l) { l.recent_event_ids.erase(l.recent_event_ids.begin()); }},
      {"next_due", [](auto& l) { *l.next_due += std::chrono::nanoseconds(1); }},
      {"next_due unset", [](auto& l) { l.next_due.reset(); }},
  };
  const auto original = full_ledger();
  const auto original_bytes = encode_snapshot(original);
  for (const auto& [name, mutate] : mutations) {
    auto mutated = original;
    mutate(mutated);
    EXPECT_NE(differences(original, mutated), Differences{}) << name;
    EXPECT_TRUE(encode_snapshot(mutated) != original_bytes) << name;
    EXPECT_EQ(differences(mutated, round_trip(mutated)), Differences{}) << name;
  }
}

TEST(Snapshot, TheSameTimelineGivesTheSameBytes) {
  const auto ledger = full_ledger();
  const auto bytes = encode_snapshot(ledger);
  // Compared as booleans: a mismatch of two snapshots printed in full says nothing more.
  EXPECT_TRUE(encode_snapshot(ledger) == bytes);
  EXPECT_TRUE(encode_snapshot(round_trip(ledger)) == bytes);

  // The same contents built in the opposite order.
  CustomerLedger reversed = ledger;
  reversed.invoices.clear();
  for (auto it = ledger.invoices.rbegin(); it != ledger.invoices.rend(); ++it) reversed.invoices.insert(*it);
  reversed.plans.clear();
  for (auto it = ledger.plans.rbegin(); it != ledger.plans.rend(); ++it) reversed.plans.insert(*it);
  reversed.last_stage.clear();
  for (auto it = ledger.last_stage.rbegin(); it != ledger.last_stage.rend(); ++it) reversed.last_stage.insert(*it);
  reversed.failed_channels = {v1::CALL_TASK, v1::WHATSAPP};
  reversed.late_invoices.clear();
  for (auto it = ledger.late_invoices.rbegin(); it != ledger.late_invoices.rend(); ++it) {
    reversed.late_invoices.insert(*it);
  }
  reversed.reminders.clear();
  for (auto it = ledger.reminders.rbegin(); it != ledger.reminders.rend(); ++it) reversed.reminders.insert(*it);
  reversed.stage_failed_channels = {{"stage_b", {v1::SMS}}, {"stage_a", {v1::WHATSAPP, v1::EMAIL}}};
  EXPECT_TRUE(encode_snapshot(reversed) == bytes);
}

TEST(Snapshot, EntriesAreWrittenSortedByKey) {
  v1::TimelineSnapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromString(encode_snapshot(full_ledger())));
  EXPECT_EQ(snapshot.format(), 1u);
  ASSERT_EQ(snapshot.invoices_size(), 4);
  for (int i = 1; i < snapshot.invoices_size(); ++i) {
    EXPECT_LT(snapshot.invoices(i - 1).invoice_key(), snapshot.invoices(i).invoice_key());
  }
  ASSERT_EQ(snapshot.plans_size(), 2);
  EXPECT_EQ(snapshot.plans(0).plan_key(), "plan-0");
  ASSERT_EQ(snapshot.failed_channels_size(), 2);
  EXPECT_EQ(snapshot.failed_channels(0), v1::WHATSAPP);
  EXPECT_EQ(snapshot.failed_channels(1), v1::CALL_TASK);
  EXPECT_TRUE(snapshot.has_next_due());
}

TEST(Snapshot, BytesThatAreNotASnapshotAreRefused) {
  CustomerLedger out;
  EXPECT_FALSE(decode_snapshot("", out));
  EXPECT_FALSE(decode_snapshot("not a snapshot", out));
  EXPECT_FALSE(decode_snapshot(R"({"format": 1, "key": "cust-42"})", out));
  EXPECT_FALSE(decode_snapshot(std::string_view("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), out));
  EXPECT_FALSE(decode_snapshot(std::string_view("\x08\x01\x12\x05" "ab", 6), out));  // a key cut short

  auto bytes = encode_snapshot(full_ledger());
  EXPECT_FALSE(decode_snapshot(std::string_view(bytes).substr(0, bytes.size() - 1), out));
  // Every shorter prefix is either refused or read without harm.
  for (std::size_t size = 0; size < bytes.size(); ++size) decode_snapshot(std::string_view(bytes).substr(0, size), out);
  EXPECT_TRUE(decode_snapshot(bytes, out));
}

TEST(Snapshot, OtherFormatsAreRefused) {
  v1::TimelineSnapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromString(encode_snapshot(full_ledger())));
  CustomerLedger out;
  snapshot.set_format(2);
  EXPECT_FALSE(decode_snapshot(snapshot.SerializeAsString(), out));
  snapshot.clear_format();
  EXPECT_FALSE(decode_snapshot(snapshot.SerializeAsString(), out));
}

TEST(Snapshot, SnapshotsNoEncoderWritesAreRefused) {
  v1::TimelineSnapshot valid;
  ASSERT_TRUE(valid.ParseFromString(encode_snapshot(full_ledger())));
  CustomerLedger out;

  auto repeated_invoice = valid;
  *repeated_invoice.add_invoices() = valid.invoices(0);
  EXPECT_FALSE(decode_snapshot(repeated_invoice.SerializeAsString(), out));

  auto repeated_stage = valid;
  *repeated_stage.add_last_stage() = valid.last_stage(0);
  EXPECT_FALSE(decode_snapshot(repeated_stage.SerializeAsString(), out));

  auto unpaired = valid;
  unpaired.mutable_reminders(0)->mutable_before()->RemoveLast();
  EXPECT_FALSE(decode_snapshot(unpaired.SerializeAsString(), out));
}

}  // namespace
}  // namespace relance::ledger
