#include "rules/reminder_rules.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "common/dates.h"
#include "relance/v1/common.pb.h"

namespace relance::rules {

namespace v1 = relance::v1;
using std::chrono::sys_days;
using std::chrono::year_month_day;

namespace {

constexpr auto kDay = std::chrono::hours(24);

// Joins the parts with one allocation, where a chain of operator+ makes one per step.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  out.reserve((std::string_view(parts).size() + ...));
  (out.append(std::string_view(parts)), ...);
  return out;
}

struct EvpMdFree {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};
struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// `prefix` followed by the first `hex_chars` hex digits of the input's SHA-256.
std::string hex_sha256(const std::string& input, std::size_t hex_chars, std::string_view prefix = {}) {
  // OpenSSL 3's one-shot SHA256() looks the algorithm up in its providers on every call, which
  // costs more than hashing these few dozen bytes: fetch it once, and keep a context per thread.
  static const std::unique_ptr<EVP_MD, EvpMdFree> sha256(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  thread_local const std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!sha256 || !ctx || EVP_DigestInit_ex2(ctx.get(), sha256.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), input.data(), input.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    // No ids without it; an OpenSSL that cannot hash is not something to run on.
    std::fputs("relance: OpenSSL cannot compute SHA-256\n", stderr);
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  // Whole bytes: an odd count gets one digit more.
  auto bytes = std::min<std::size_t>(length, (hex_chars + 1) / 2);
  std::string out(prefix.size() + 2 * bytes, '0');
  auto hex = std::copy(prefix.begin(), prefix.end(), out.begin());
  for (std::size_t i = 0; i < bytes; ++i) {
    *hex++ = kHex[digest[i] >> 4];
    *hex++ = kHex[digest[i] & 15];
  }
  return out;
}

bool consent_withdrawn(const v1::Customer& customer, v1::Channel channel) {
  for (const auto& c : customer.consents()) {
    if (c.channel() == channel && !c.granted()) return true;
  }
  return false;
}

bool consent_granted(const v1::Customer& customer, v1::Channel channel) {
  bool granted = false;
  for (const auto& c : customer.consents()) {
    if (c.channel() == channel) granted = c.granted();
  }
  return granted;
}

const char* missing_contact(const ledger::ContactValidity& contacts, v1::Channel channel) {
  switch (channel) {
    case v1::EMAIL:
      return contacts.email ? nullptr : "no valid email address";
    case v1::SMS:
      return contacts.mobile ? nullptr : "no valid mobile number";
    case v1::WHATSAPP:
      return contacts.whatsapp ? nullptr : "no valid WhatsApp number";
    case v1::CALL_TASK:
      return contacts.phone ? nullptr : "no valid phone number";
    default:
      return "unknown channel";
  }
}

v1::Tone shift(v1::Tone tone, int steps) {
  int t = std::clamp(static_cast<int>(tone) + steps, static_cast<int>(v1::FRIENDLY), static_cast<int>(v1::FINAL));
  return static_cast<v1::Tone>(t);
}

std::string lower_case(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Enum names come from the descriptor pool, a lookup per call; explanations use several each.
std::string tone_name(v1::Tone tone) {
  static const auto kNames = [] {
    std::array<std::string, v1::Tone_ARRAYSIZE> names;
    for (int t = 0; t < v1::Tone_ARRAYSIZE; ++t) names[static_cast<std::size_t>(t)] = lower_case(v1::Tone_Name(t));
    return names;
  }();
  if (tone < 0 || tone >= v1::Tone_ARRAYSIZE) return lower_case(v1::Tone_Name(tone));
  return kNames[static_cast<std::size_t>(tone)];
}

// plain_amount without building a Money.
std::string amount_text(int64_t units, const std::string& currency) {
  // Two decimals for the common currencies; exactness matters more than locale here.
  char whole[24];
  auto end = std::to_chars(whole, whole + sizeof whole, units / 100).ptr;
  auto cents = std::llabs(units % 100);
  const char decimals[] = {'.', static_cast<char>('0' + cents / 10), static_cast<char>('0' + cents % 10), ' ', '\0'};
  // The currency as a C string, and at most 63 characters in all, as snprintf into 64 bytes gave.
  auto out = cat(std::string_view(whole, static_cast<std::size_t>(end - whole)), decimals, currency.c_str());
  if (out.size() > 63) out.resize(63);
  return out;
}

const std::string& channel_name(v1::Channel channel) {
  static const auto kNames = [] {
    std::array<std::string, v1::Channel_ARRAYSIZE> names;
    for (int c = 0; c < v1::Channel_ARRAYSIZE; ++c) names[static_cast<std::size_t>(c)] = v1::Channel_Name(c);
    return names;
  }();
  if (channel < 0 || channel >= v1::Channel_ARRAYSIZE) return v1::Channel_Name(channel);
  return kNames[static_cast<std::size_t>(channel)];
}

}  // namespace

std::string_view tier_name(AmountTierKind tier) {
  switch (tier) {
    case AmountTierKind::kMinor:
      return "minor";
    case AmountTierKind::kMiddle:
      return "middle";
    case AmountTierKind::kLarge:
      return "large";
  }
  return "minor";
}

std::string plain_amount(const v1::Money& money) { return amount_text(money.minor_units(), money.currency()); }

std::string subject_token(const std::string& subject_id, int stage_index) {
  return cat(subject_id, "@", std::to_string(stage_index));
}

std::string make_stage_key(const std::string& timeline_key, std::vector<std::string> subjects, const std::string& stage) {
  std::sort(subjects.begin(), subjects.end());
  std::size_t size = timeline_key.size() + 1 + stage.size();
  for (const auto& id : subjects) size += 1 + id.size();
  std::string input;
  input.reserve(size);
  input += timeline_key;
  for (const auto& id : subjects) {
    input += '\0';
    input += id;
  }
  input += '\0';
  input += stage;
  return hex_sha256(input, 32);
}

std::string make_reminder_id(const std::string& stage_key, v1::Channel channel) {
  return hex_sha256(cat(stage_key, std::string_view("\0", 1), channel_name(channel)), 32, "rem_");
}

struct ReminderRules::Context {
  const ledger::CustomerLedger& ledger;
  Instant now;
  const std::string& tz;
  const std::string& country;
  sys_days today;  // on the customer's wall clock
};

// One subject that may need a reminder: an open invoice, or the first unpaid installment of a
// payment plan. It points into the ledger, so that looking at a subject copies nothing; only a
// decision that goes out copies what it needs.
struct ReminderRules::Pending {
  const std::string* invoice_id = nullptr;  // an invoice: its key in the ledger
  const ledger::InvoiceState* invoice = nullptr;
  const ledger::PaymentPlanState* plan = nullptr;  // an installment: its plan
  std::string installment_id;                      // ... and "<plan id>#<installment>"
  year_month_day due{};
  const std::string* currency = nullptr;
  int64_t amount = 0;  // minor units
  int stage_index = -1;
  Instant nominal{};
  bool broken_promise = false;

  const std::string& subject_id() const { return invoice_id != nullptr ? *invoice_id : installment_id; }

  // Calls visit(id, state) for each invoice the subject covers (an installment: the plan's open
  // invoices, in the plan's order) until it returns false.
  template <typename Visit>
  void each_invoice(const ledger::CustomerLedger& ledger, Visit&& visit) const {
    if (invoice != nullptr) {
      visit(*invoice_id, *invoice);
      return;
    }
    for (const auto& id : plan->invoice_ids) {
      auto it = ledger.invoices.find(id);
      if (it == ledger.invoices.end() || !it->second.open()) continue;
      if (!visit(id, it->second)) return;
    }
  }
};

struct ReminderRules::Choice {
  int stage_index = -1;
  AmountTierKind tier = AmountTierKind::kMinor;
  // The currency total that set the tier.
  const std::string* currency = nullptr;
  int64_t total = 0;
  v1::Channel channel = v1::CHANNEL_UNSPECIFIED;
};

ReminderRules::ReminderRules(v1::PolicyConfig policy, std::set<v1::Channel> available_channels)
    : policy_(std::move(policy)),
      available_(std::move(available_channels)),
      calendar_(policy_.calendar()),
      send_at_minutes_(parse_time_of_day(policy_.send_at()).value_or(9 * 60)) {
  // Stages are acted on in offset order whatever order the file lists them in.
  std::stable_sort(policy_.mutable_stages()->begin(), policy_.mutable_stages()->end(),
                   [](const v1::Stage& a, const v1::Stage& b) { return a.offset_days() < b.offset_days(); });
  for (auto c : policy_.consent_required()) consent_required_.insert(static_cast<v1::Channel>(c));
  for (const auto& mapping : policy_.messages().whatsapp_templates()) whatsapp_templates_.insert(mapping.template_());
}

AmountTierKind ReminderRules::tier_of(const v1::Money& amount) const {
  return tier_of_total(amount.currency(), amount.minor_units());
}

AmountTierKind ReminderRules::tier_of_total(const std::string& currency, int64_t minor_units) const {
  for (const auto& tier : policy_.amount_tiers()) {
    if (tier.currency() != currency) continue;
    if (minor_units >= tier.large_from()) return AmountTierKind::kLarge;
    if (minor_units >= tier.middle_from()) return AmountTierKind::kMiddle;
    return AmountTierKind::kMinor;
  }
  return AmountTierKind::kMinor;
}

v1::Tone ReminderRules::adjust_tone(v1::Tone tone, int late_count, std::vector<std::string>& why) const {
  const auto& seg = policy_.segments();
  if (late_count == 0) {
    auto softer = shift(tone, -1);
    why.push_back(cat("segment=first-time late: tone ", tone_name(tone), " → ", tone_name(softer)));
    return softer;
  }
  if (seg.recurring_late_count() > 0 && late_count >= seg.recurring_late_count()) {
    auto firmer = shift(tone, +1);
    why.push_back(cat("segment=recurring late payer (", std::to_string(late_count), " late invoices in ",
                      std::to_string(seg.lookback_days()), " days): tone ", tone_name(tone), " → ", tone_name(firmer)));
    return firmer;
  }
  return tone;
}

// A decision goes out only when this returns `at` itself, so there is never a move to explain.
Instant ReminderRules::open_slot(const Context& ctx, Instant at, v1::Channel channel, bool capped) const {
  const auto& cap = policy_.contact_cap();
  const auto& made = ctx.ledger.contacts_made;  // sorted, oldest first
  Instant t = at;
  // Each step only moves forward; a handful of rounds settles calendar and cap together.
  for (int round = 0; round < 16; ++round) {
    Instant before = t;
    auto open = calendar_.next_open(t, channel, ctx.tz, ctx.country);
    if (open > t) {
      // Moved out of a closed window: at the policy's usual hour that day when the channel is
      // open then, rather than the minute the window opens.
      auto usual = local_time_to_instant(sys_days{local_date(open, ctx.tz)}, send_at_minutes_, ctx.tz);
      if (usual > open && calendar_.is_open(usual, channel, ctx.tz, ctx.country)) open = usual;
      t = open;
    }
    if (capped) {
      auto check = [&](int limit, Duration window) {
        if (limit <= 0) return;
        // Contacts in (t - window, t]: the cap allows one more only below the limit.
        auto first = std::upper_bound(made.begin(), made.end(), t - window);
        auto last = std::upper_bound(made.begin(), made.end(), t);
        auto count = static_cast<int>(last - first);
        if (count < limit) return;
        t = std::max(t, *(last - limit) + window);
      };
      check(cap.per_day(), kDay);
      check(cap.per_7_days(), 7 * kDay);
    }
    if (t == before) break;
  }
  return t;
}

const std::set<v1::Channel>* ReminderRules::failed_for(const Context& ctx, const std::string& stage_key) const {
  auto it = ctx.ledger.stage_failed_channels.find(stage_key);
  return it == ctx.ledger.stage_failed_channels.end() ? nullptr : &it->second;
}

std::string ReminderRules::stage_key_of(const Context& ctx, const std::vector<Pending>& items, int stage_index) const {
  std::vector<std::string> subjects;
  subjects.reserve(items.size());
  for (const auto& p : items) subjects.push_back(subject_token(p.subject_id(), p.stage_index));
  std::sort(subjects.begin(), subjects.end());
  return make_stage_key(ctx.ledger.key, std::move(subjects), policy_.stages(stage_index).name());
}

v1::Channel ReminderRules::pick_channel(const Context& ctx, ActionKind kind, int stage_index, AmountTierKind tier,
                                        std::vector<std::string>* why,
                                        const std::set<v1::Channel>* failed_here) const {
  if (kind == ActionKind::kEscalation) {
    // A hand-off to the collections team: the team is told, whatever the customer's channels.
    if (available_.count(v1::CALL_TASK)) {
      if (why) why->push_back("escalation: call task for the collections team");
      return v1::CALL_TASK;
    }
    if (why) why->push_back("CALL_TASK skipped: no adapter configured");
    return v1::CHANNEL_UNSPECIFIED;
  }
  // The customer's preferred channels first, then the stage's for the tier, each tried once.
  const auto& preferred = ctx.ledger.customer.preferred_channels();
  const auto& stage_channels = tier_channels(policy_.stages(stage_index), tier, false);
  auto listed = [](const google::protobuf::RepeatedField<int>& list, int end, int channel) {
    return std::find(list.begin(), list.begin() + end, channel) != list.begin() + end;
  };
  const auto& stage = policy_.stages(stage_index);
  const auto& template_name = stage.template_().empty() ? stage.name() : stage.template_();
  auto usable = [&](int c, bool is_preferred) {
    auto channel = static_cast<v1::Channel>(c);
    // A business-initiated WhatsApp message outside the customer's 24-hour window must be an
    // approved template (Meta's rule); without one, WhatsApp is not an option for this stage.
    if (channel == v1::WHATSAPP && !whatsapp_templates_.count(template_name) && available_.count(channel)) {
      if (why) why->push_back(cat(channel_name(channel), " skipped: no approved WhatsApp template (ContentSid)"));
      return false;
    }
    if (const char* reason = unusable(ctx, channel)) {
      if (why) why->push_back(cat(channel_name(channel), " skipped: ", reason));
      return false;
    }
    if (failed_here != nullptr && failed_here->count(channel)) {
      if (why) why->push_back(cat(channel_name(channel), " skipped: did not deliver this stage's message (fallback)"));
      return false;
    }
    if (why) why->push_back(cat(channel_name(channel), " chosen", is_preferred ? " (customer's preference)" : ""));
    return true;
  };
  for (int i = 0; i < preferred.size(); ++i) {
    int c = preferred.Get(i);
    if (!listed(preferred, i, c) && usable(c, true)) return static_cast<v1::Channel>(c);
  }
  for (int i = 0; i < stage_channels.size(); ++i) {
    int c = stage_channels.Get(i);
    if (!listed(stage_channels, i, c) && !listed(preferred, preferred.size(), c) && usable(c, false)) {
      return static_cast<v1::Channel>(c);
    }
  }
  return v1::CHANNEL_UNSPECIFIED;
}

const char* ReminderRules::unusable(const Context& ctx, v1::Channel channel) const {
  const auto& customer = ctx.ledger.customer;
  if (!available_.count(channel)) return "no adapter configured";
  if (consent_withdrawn(customer, channel)) return "consent withdrawn";
  if (ctx.ledger.opted_out.count(channel)) return "opted out by the customer";
  if (consent_required_.count(channel) && !consent_granted(customer, channel)) return "no consent";
  if (ctx.ledger.failed_channels.count(channel)) return "failed permanently before";
  return missing_contact(ctx.ledger.contacts, channel);
}

const google::protobuf::RepeatedField<int>& ReminderRules::tier_channels(const v1::Stage& stage, AmountTierKind tier,
                                                                         bool alongside) const {
  const auto& c = stage.channels();
  switch (tier) {
    case AmountTierKind::kLarge:
      return alongside ? c.large_alongside() : c.large();
    case AmountTierKind::kMiddle:
      return alongside ? c.middle_alongside() : c.middle();
    case AmountTierKind::kMinor:
      break;
  }
  return alongside ? c.minor_alongside() : c.minor();
}

template <typename Visit>
void ReminderRules::each_subject(const Context& ctx, Visit&& visit) const {
  for (const auto& [id, inv] : ctx.ledger.invoices) {
    if (!inv.open() || inv.disputed || !inv.plan_id.empty()) continue;
    auto due_on = parse_iso_date(inv.invoice.due_on());
    if (!due_on) continue;
    Pending p;
    p.invoice_id = &id;
    p.invoice = &inv;
    p.due = *due_on;
    p.currency = &inv.invoice.amount_due().currency();
    p.amount = inv.invoice.amount_due().minor_units();
    visit(p);
  }
  for (const auto& [plan_id, pl] : ctx.ledger.plans) {
    // Reminders follow the first installment not yet paid; a missed one starts its own stages.
    for (std::size_t k = 0; k < pl.installments.size(); ++k) {
      const auto& inst = pl.installments[k];
      if (inst.settled()) continue;
      bool any_open = false;
      bool disputed = false;
      for (const auto& id : pl.invoice_ids) {
        auto it = ctx.ledger.invoices.find(id);
        if (it == ctx.ledger.invoices.end() || !it->second.open()) continue;
        disputed = disputed || it->second.disputed;
        any_open = true;
      }
      auto inst_due = parse_iso_date(inst.due_on);
      if (!any_open || disputed || !inst_due) break;
      Pending p;
      p.plan = &pl;
      p.installment_id = plan_id + "#" + std::to_string(k);
      p.due = *inst_due;
      p.currency = &pl.currency;
      p.amount = inst.amount - inst.paid;
      visit(p);
      break;
    }
  }
}

ReminderRules::Standing ReminderRules::consider(const Context& ctx, Pending& p, Plan& plan) const {
  auto consider_next = [&](Instant at) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
  };
  auto last_it = ctx.ledger.last_stage.find(p.subject_id());
  int last = last_it == ctx.ledger.last_stage.end() ? -1 : last_it->second;
  int count = policy_.stages_size();
  if (last + 1 >= count) return Standing::kIdle;  // every stage done, escalation included

  // A promise on any invoice of the subject (an installment covers several) pauses it; after a
  // dispute ends, reminders wait for the next morning.
  bool paused = false;
  p.each_invoice(ctx.ledger, [&](const std::string&, const ledger::InvoiceState& inv) {
    if (!inv.resume_on.empty()) {
      if (auto resume = parse_iso_date(inv.resume_on); resume && ctx.today < sys_days{*resume}) {
        consider_next(local_time_to_instant(sys_days{*resume}, send_at_minutes_, ctx.tz));
        paused = true;
        return false;
      }
    }
    if (inv.promised_on.empty()) return true;
    if (auto promised = parse_iso_date(inv.promised_on)) {
      auto resume_day = sys_days{*promised} + std::chrono::days{policy_.promise_grace_days() + 1};
      if (ctx.today < resume_day) {
        consider_next(local_time_to_instant(resume_day, send_at_minutes_, ctx.tz));
        paused = true;
        return false;
      }
      p.broken_promise = true;
    }
    return true;
  });
  if (paused) return Standing::kIdle;

  // The latest stage whose time has come is acted on; earlier ones it overtook are not sent
  // late, so a customer never gets a burst of stale reminders.
  int due_index = -1;
  // A notice ahead of the due date makes no sense once the date is reached.
  const sys_days due_day{p.due};
  bool due_date_reached = ctx.today >= due_day;
  for (int i = last + 1; i < count; ++i) {
    auto offset = policy_.stages(i).offset_days();
    if (due_date_reached && offset < 0) continue;
    auto at = local_time_to_instant(due_day + std::chrono::days{offset}, send_at_minutes_, ctx.tz);
    if (at <= ctx.now) {
      due_index = i;
      p.nominal = at;
      continue;
    }
    if (due_index >= 0) break;
    p.stage_index = i;
    if (p.broken_promise) {
      // A broken promise resumes at the next stage at once.
      p.nominal = ctx.now;
      return Standing::kDue;
    }
    p.nominal = at;
    consider_next(at);
    return Standing::kUpcoming;
  }
  if (due_index < 0) return Standing::kIdle;
  p.stage_index = due_index;
  return Standing::kDue;
}

void ReminderRules::thank(const Context& ctx, const std::string& id, const ledger::InvoiceState& inv,
                          Plan& plan) const {
  // Consent or contact may have changed since the last reminder: the thanks then go another way,
  // or not at all.
  auto channel = inv.last_channel;
  const char* why = unusable(ctx, channel);
  if (why != nullptr) {
    channel = v1::CHANNEL_UNSPECIFIED;
    for (auto c : {v1::EMAIL, v1::SMS, v1::WHATSAPP}) {
      if (unusable(ctx, c) == nullptr) {
        channel = c;
        break;
      }
    }
  }
  bool suppressed = channel == v1::CHANNEL_UNSPECIFIED;
  auto at = suppressed ? ctx.now : open_slot(ctx, ctx.now, channel, false);
  if (at > ctx.now) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
    return;
  }
  Decision d;
  d.kind = ActionKind::kThankYou;
  d.timeline_key = ctx.ledger.key;
  d.invoice_ids = {id};
  d.stage = "thank_you";
  d.template_name = "thank_you";
  d.tone = v1::FRIENDLY;
  d.channel = channel;
  if (why != nullptr) d.explanation.push_back(cat(channel_name(inv.last_channel), " skipped: ", why));
  if (suppressed) {
    d.suppressed = true;
    d.suppression_reason = "no channel can reach the customer";
  }
  d.total_due = inv.invoice.amount_total();
  d.stage_key = make_stage_key(ctx.ledger.key, {id}, "thank_you");
  d.reminder_id = make_reminder_id(d.stage_key, d.channel);
  d.explanation.push_back(cat("paid in full after ", std::to_string(inv.reminders_sent), " reminder(s): thank-you on ",
                              channel_name(d.channel), ", the channel last used"));
  d.due_at = at;
  d.planned_at = at;
  plan.now.push_back(std::move(d));
}

ReminderRules::Choice ReminderRules::choose(const Context& ctx, const std::vector<Pending>& items,
                                            ActionKind kind) const {
  Choice c;
  bool one_currency = true;
  for (const auto& p : items) {
    c.stage_index = std::max(c.stage_index, p.stage_index);
    one_currency = one_currency && *p.currency == *items.front().currency;
  }
  if (one_currency) {
    c.currency = items.front().currency;
    for (const auto& p : items) c.total += p.amount;
    c.tier = tier_of_total(*c.currency, c.total);
  } else {
    // Totals per currency, in currency order: the largest decides the tier, the first in that
    // order on a tie.
    std::vector<std::pair<const std::string*, int64_t>> totals;
    for (const auto& p : items) {
      auto it = std::find_if(totals.begin(), totals.end(), [&](const auto& t) { return *t.first == *p.currency; });
      if (it == totals.end()) {
        totals.emplace_back(p.currency, p.amount);
      } else {
        it->second += p.amount;
      }
    }
    std::sort(totals.begin(), totals.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
    for (const auto& [currency, units] : totals) {
      auto tier = tier_of_total(*currency, units);
      if (c.currency == nullptr || c.currency->empty() || tier > c.tier) {
        c.tier = tier;
        c.currency = currency;
        c.total = units;
      }
    }
  }
  const std::set<v1::Channel>* failed_here = nullptr;
  if (!ctx.ledger.stage_failed_channels.empty()) failed_here = failed_for(ctx, stage_key_of(ctx, items, c.stage_index));
  c.channel = pick_channel(ctx, kind, c.stage_index, c.tier, nullptr, failed_here);
  return c;
}

Decision ReminderRules::decide(const Context& ctx, std::vector<Pending> items, ActionKind kind,
                               const Choice& choice) const {
  Decision d;
  d.kind = kind;
  d.timeline_key = ctx.ledger.key;
  d.stage_index = choice.stage_index;
  d.tier = choice.tier;
  d.total_due.set_currency(*choice.currency);
  d.total_due.set_minor_units(choice.total);
  std::sort(items.begin(), items.end(),
            [](const Pending& a, const Pending& b) { return a.subject_id() < b.subject_id(); });
  std::vector<std::string> subjects;
  subjects.reserve(items.size());
  d.items.reserve(items.size());
  for (const auto& p : items) {
    d.broken_promise = d.broken_promise || p.broken_promise;
    subjects.push_back(subject_token(p.subject_id(), p.stage_index));
    DecisionItem item;
    item.subject_id = p.subject_id();
    p.each_invoice(ctx.ledger, [&](const std::string& id, const ledger::InvoiceState&) {
      if (std::find(d.invoice_ids.begin(), d.invoice_ids.end(), id) == d.invoice_ids.end()) d.invoice_ids.push_back(id);
      return true;
    });
    if (p.invoice != nullptr) {
      item.invoice_id = *p.invoice_id;
      item.number = p.invoice->invoice.number();
      item.payment_link = p.invoice->invoice.payment_link();
      item.amount_due = p.invoice->invoice.amount_due();
    } else {
      // An installment is paid through its plan's first open invoice.
      const ledger::InvoiceState* first = nullptr;
      p.each_invoice(ctx.ledger, [&](const std::string& id, const ledger::InvoiceState& inv) {
        item.invoice_id = id;
        first = &inv;
        return false;
      });
      if (first != nullptr) {
        item.number = first->invoice.number();
        item.payment_link = first->invoice.payment_link();
      }
      item.amount_due.set_currency(*p.currency);
      item.amount_due.set_minor_units(p.amount);
    }
    item.due_on = format_iso_date(p.due);
    item.days_overdue = std::max(0, static_cast<int>((ctx.today - sys_days{p.due}).count()));
    item.stage_index = p.stage_index;
    d.overdue = d.overdue || item.days_overdue > 0;
    d.items.push_back(std::move(item));
  }
  const auto& stage = policy_.stages(d.stage_index);
  d.stage = stage.name();
  d.template_name = stage.template_().empty() ? stage.name() : stage.template_();
  d.stage_key = make_stage_key(ctx.ledger.key, std::move(subjects), stage.name());
  d.due_at = ctx.now;
  d.explanation.reserve(8);  // the usual count: one allocation instead of four

  auto grouping = items.size() > 1 ? cat(", grouping ", std::to_string(items.size()), " items") : std::string();
  d.explanation.push_back(cat("stage=", stage.name(), " (due", stage.offset_days() >= 0 ? "+" : "",
                              std::to_string(stage.offset_days()), "d)", grouping));
  for (const auto& tier : policy_.amount_tiers()) {
    if (tier.currency() != d.total_due.currency()) continue;
    auto bound = [&](int64_t v) { return amount_text(v, tier.currency()); };
    auto total = plain_amount(d.total_due);
    if (d.tier == AmountTierKind::kLarge) {
      d.explanation.push_back(cat("tier=", tier_name(d.tier), ": ", total, " ≥ ", bound(tier.large_from())));
    } else if (d.tier == AmountTierKind::kMiddle) {
      d.explanation.push_back(cat("tier=", tier_name(d.tier), ": ", total, " ≥ ", bound(tier.middle_from())));
    } else {
      d.explanation.push_back(cat("tier=", tier_name(d.tier), ": ", total, " < ", bound(tier.middle_from())));
    }
    if (stage.offer_payment_plan() && tier.plan_offer_from() > 0 && d.total_due.minor_units() >= tier.plan_offer_from()) {
      d.offer_payment_plan = true;
      d.explanation.push_back(cat("payment plan offered: ", total, " ≥ ", bound(tier.plan_offer_from())));
    }
  }
  d.mention_late_terms = stage.mention_late_terms();
  if (d.broken_promise) d.explanation.push_back("broken promise: resumed at the next stage");

  // Lateness of other invoices within the look-back window sets the segment.
  int late = 0;
  auto lookback = ctx.today - std::chrono::days{std::max(0, policy_.segments().lookback_days())};
  for (const auto& [id, day] : ctx.ledger.late_invoices) {
    if (std::find(d.invoice_ids.begin(), d.invoice_ids.end(), id) != d.invoice_ids.end()) continue;
    auto date = parse_iso_date(day);
    if (date && sys_days{*date} >= lookback) ++late;
  }
  d.tone = stage.tone();
  if (d.overdue) d.tone = adjust_tone(stage.tone(), late, d.explanation);
  d.recurring_late_payer = policy_.segments().recurring_late_count() > 0 && late >= policy_.segments().recurring_late_count();
  if (d.recurring_late_payer) d.explanation.push_back("recurring late payer: ask for a deposit or upfront payment");
  d.explanation.push_back(cat("tone=", tone_name(d.tone)));

  d.channel = pick_channel(ctx, kind, d.stage_index, d.tier, &d.explanation, failed_for(ctx, d.stage_key));
  if (d.channel == v1::CHANNEL_UNSPECIFIED) {
    d.suppressed = true;
    d.suppression_reason = "no channel can reach the customer";
    d.explanation.push_back(cat("suppressed: ", d.suppression_reason));
  }
  d.reminder_id = make_reminder_id(d.stage_key, d.channel);
  return d;
}

namespace {

std::string local_wall_time(Instant at, const std::string& tz) {
  auto day = sys_days{local_date(at, tz)};
  auto minutes = std::chrono::duration_cast<std::chrono::minutes>(at - local_time_to_instant(day, 0, tz)).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d", static_cast<int>(minutes / 60), static_cast<int>(minutes % 60));
  return cat(format_iso_date(year_month_day{day}), " ", buf);
}

}  // namespace

void ReminderRules::explain_delay(const Context& ctx, Instant planned, Decision& d) const {
  auto when = cat(local_wall_time(ctx.now, ctx.tz), " ", ctx.tz, " instead of ", local_wall_time(planned, ctx.tz));
  auto open = calendar_.next_open(planned, d.channel, ctx.tz, ctx.country);
  if (open > planned) {
    d.explanation.push_back(cat("sent ", when, ": ", channel_name(d.channel), " closed then (quiet hours, weekend or holiday)"));
    return;
  }
  const auto& made = ctx.ledger.contacts_made;
  auto within_day = std::upper_bound(made.begin(), made.end(), planned) -
                    std::upper_bound(made.begin(), made.end(), planned - kDay);
  if (d.kind == ActionKind::kReminder && policy_.contact_cap().per_day() > 0 && within_day >= policy_.contact_cap().per_day()) {
    d.explanation.push_back(cat("sent ", when, ": contact cap"));
    return;
  }
  d.explanation.push_back(cat("sent ", when, ": caught up after a pause or downtime"));
}

Plan ReminderRules::plan(const ledger::CustomerLedger& ledger, Instant now) const {
  Plan plan;
  const auto& customer = ledger.customer;
  const auto& tz = customer.time_zone().empty() ? policy_.default_time_zone() : customer.time_zone();
  const auto& country = customer.country().empty() ? policy_.default_country() : customer.country();
  const Context ctx{ledger, now, tz, country, sys_days{local_date(now, tz)}};
  auto consider_next = [&](Instant at) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
  };

  if (policy_.thank_you()) {
    for (const auto& [id, inv] : ledger.invoices) {
      if (inv.paid_after_reminders && !inv.thanked && inv.last_channel != v1::CHANNEL_UNSPECIFIED) {
        thank(ctx, id, inv, plan);
      }
    }
  }

  // The common case, a timer check with nothing due, ends here without having built anything.
  std::vector<Pending> due;
  each_subject(ctx, [&](Pending& p) {
    if (consider(ctx, p, plan) == Standing::kDue) due.push_back(std::move(p));
  });
  if (due.empty()) return plan;

  // Reminders that are due go out together with those due within the grouping window;
  // escalations form a group of their own.
  std::vector<Pending> escalations;
  auto& reminders = due;
  auto kept = reminders.begin();
  for (auto& p : reminders) {
    if (policy_.stages(p.stage_index).action() == v1::ESCALATE) {
      escalations.push_back(std::move(p));
    } else {
      if (&*kept != &p) *kept = std::move(p);
      ++kept;
    }
  }
  reminders.erase(kept, reminders.end());
  // The instant the earliest due item was meant for, to explain a later send.
  std::optional<Instant> planned_for;
  for (const auto* group : {&reminders, &escalations}) {
    for (const auto& p : *group) {
      if (!planned_for || p.nominal > *planned_for) planned_for = p.nominal;
    }
  }
  if (policy_.grouping_window_days() > 0) {
    // Looking again at every subject is cheaper than keeping the upcoming ones on every call.
    // An item joins a message early only if it is already overdue (or the message is a notice
    // ahead of its due date): nobody is told they are late before they are.
    auto horizon = now + policy_.grouping_window_days() * kDay;
    each_subject(ctx, [&](Pending& p) {
      if (consider(ctx, p, plan) != Standing::kUpcoming || p.nominal > horizon) return;
      bool escalation = policy_.stages(p.stage_index).action() == v1::ESCALATE;
      if (escalation && !escalations.empty()) {
        escalations.push_back(std::move(p));  // one hand-off for the account
      } else if (!escalation && !reminders.empty() &&
                 (policy_.stages(p.stage_index).offset_days() < 0 || ctx.today > sys_days{p.due})) {
        reminders.push_back(std::move(p));
      }
    });
  }

  for (auto* group : {&reminders, &escalations}) {
    if (group->empty()) continue;
    auto kind = group == &escalations ? ActionKind::kEscalation : ActionKind::kReminder;
    auto choice = choose(ctx, *group, kind);
    if (choice.channel != v1::CHANNEL_UNSPECIFIED) {
      // Closed now, or over the contact cap: the decision is made again when the slot opens.
      auto at = open_slot(ctx, now, choice.channel, kind == ActionKind::kReminder);
      if (at > now) {
        consider_next(at);
        continue;
      }
    }
    auto d = decide(ctx, std::move(*group), kind, choice);
    d.planned_at = planned_for.value_or(now);
    if (planned_for && now - *planned_for >= std::chrono::minutes(1) && !d.suppressed) {
      explain_delay(ctx, *planned_for, d);
    }
    std::vector<Decision> extra;
    if (!d.suppressed && kind == ActionKind::kReminder) {
      // The written copy that goes with the chosen channel, when it can reach the customer now.
      for (auto c : tier_channels(policy_.stages(d.stage_index), d.tier, true)) {
        auto channel = static_cast<v1::Channel>(c);
        if (channel == d.channel) continue;
        if (const char* why = unusable(ctx, channel)) {
          d.explanation.push_back(cat(channel_name(channel), " alongside skipped: ", why));
          continue;
        }
        if (calendar_.next_open(now, channel, ctx.tz, ctx.country) > now) {
          d.explanation.push_back(cat(channel_name(channel), " alongside skipped: closed now"));
          continue;
        }
        Decision copy = d;
        copy.channel = channel;
        copy.reminder_id = make_reminder_id(d.stage_key, channel);
        copy.explanation.push_back(cat(channel_name(channel), " alongside ", channel_name(d.channel)));
        extra.push_back(std::move(copy));
      }
    }
    plan.now.push_back(std::move(d));
    for (auto& e : extra) plan.now.push_back(std::move(e));
  }
  return plan;
}

}  // namespace relance::rules
