#include "rules/reminder_rules.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/dates.h"
#include "relance/v1/common.pb.h"

namespace relance::rules {

namespace v1 = relance::v1;
using std::chrono::sys_days;
using std::chrono::year_month_day;

namespace {

constexpr auto kDay = std::chrono::hours(24);

std::string hex_sha256(const std::string& input, std::size_t hex_chars) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(hex_chars);
  for (std::size_t i = 0; i < SHA256_DIGEST_LENGTH && out.size() < hex_chars; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

year_month_day add_days(year_month_day date, int days) { return year_month_day{sys_days{date} + std::chrono::days{days}}; }

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

std::optional<std::string> missing_contact(const ledger::ContactValidity& contacts, v1::Channel channel) {
  switch (channel) {
    case v1::EMAIL:
      return contacts.email ? std::nullopt : std::optional<std::string>("no valid email address");
    case v1::SMS:
      return contacts.mobile ? std::nullopt : std::optional<std::string>("no valid mobile number");
    case v1::WHATSAPP:
      return contacts.whatsapp ? std::nullopt : std::optional<std::string>("no valid WhatsApp number");
    case v1::CALL_TASK:
      return contacts.phone ? std::nullopt : std::optional<std::string>("no valid phone number");
    default:
      return "unknown channel";
  }
}

v1::Tone shift(v1::Tone tone, int steps) {
  int t = std::clamp(static_cast<int>(tone) + steps, static_cast<int>(v1::FRIENDLY), static_cast<int>(v1::FINAL));
  return static_cast<v1::Tone>(t);
}

std::string tone_name(v1::Tone tone) {
  auto name = v1::Tone_Name(tone);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

std::string channel_name(v1::Channel channel) { return v1::Channel_Name(channel); }

std::string local_hhmm(Instant at, const std::string& tz) {
  // Minutes since local midnight, derived from the local date's midnight instant.
  auto day = local_date(at, tz);
  auto midnight = local_time_to_instant(day, 0, tz);
  auto minutes = std::chrono::duration_cast<std::chrono::minutes>(at - midnight).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s %02ld:%02ld", format_iso_date(day).c_str(), static_cast<long>(minutes / 60),
                static_cast<long>(minutes % 60));
  return buf;
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

std::string plain_amount(const v1::Money& money) {
  auto units = money.minor_units();
  // Two decimals for the common currencies; exactness matters more than locale here.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%02lld %s", static_cast<long long>(units / 100),
                static_cast<long long>(std::llabs(units % 100)), money.currency().c_str());
  return buf;
}

std::string subject_token(const std::string& subject_id, int stage_index) {
  return subject_id + "@" + std::to_string(stage_index);
}

std::string make_stage_key(const std::string& timeline_key, std::vector<std::string> subjects, const std::string& stage) {
  std::sort(subjects.begin(), subjects.end());
  std::string input = timeline_key;
  for (const auto& id : subjects) input += '\0' + id;
  input += '\0';
  input += stage;
  return hex_sha256(input, 32);
}

std::string make_reminder_id(const std::string& stage_key, v1::Channel channel) {
  return "rem_" + hex_sha256(stage_key + '\0' + channel_name(channel), 32);
}

struct ReminderRules::Context {
  const ledger::CustomerLedger& ledger;
  Instant now;
  std::string tz;
  std::string country;
  year_month_day today;
};

struct ReminderRules::Pending {
  std::string subject_id;
  const ledger::InvoiceState* invoice = nullptr;
  std::vector<std::string> invoice_ids;
  year_month_day due{};
  v1::Money amount;
  int stage_index = -1;
  Instant nominal{};
  bool broken_promise = false;
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
}

AmountTierKind ReminderRules::tier_of(const v1::Money& amount) const {
  for (const auto& tier : policy_.amount_tiers()) {
    if (tier.currency() != amount.currency()) continue;
    if (amount.minor_units() >= tier.large_from()) return AmountTierKind::kLarge;
    if (amount.minor_units() >= tier.middle_from()) return AmountTierKind::kMiddle;
    return AmountTierKind::kMinor;
  }
  return AmountTierKind::kMinor;
}

v1::Tone ReminderRules::adjust_tone(v1::Tone tone, int late_count, std::vector<std::string>& why) const {
  const auto& seg = policy_.segments();
  if (late_count == 0) {
    auto softer = shift(tone, -1);
    why.push_back("segment=first-time late: tone " + tone_name(tone) + " → " + tone_name(softer));
    return softer;
  }
  if (seg.recurring_late_count() > 0 && late_count >= seg.recurring_late_count()) {
    auto firmer = shift(tone, +1);
    why.push_back("segment=recurring late payer (" + std::to_string(late_count) + " late invoices in " +
                  std::to_string(seg.lookback_days()) + " days): tone " + tone_name(tone) + " → " + tone_name(firmer));
    return firmer;
  }
  return tone;
}

Instant ReminderRules::open_slot(const Context& ctx, Instant at, v1::Channel channel, bool capped,
                                 std::vector<std::string>* why) const {
  const auto& cap = policy_.contact_cap();
  const auto& made = ctx.ledger.contacts_made;  // sorted, oldest first
  Instant t = at;
  // Each step only moves forward; a handful of rounds settles calendar and cap together.
  for (int round = 0; round < 16; ++round) {
    Instant before = t;
    auto open = calendar_.next_open(t, channel, ctx.tz, ctx.country);
    if (open > t) {
      if (why) why->push_back("moved to " + local_hhmm(open, ctx.tz) + " " + ctx.tz + ": " + channel_name(channel) +
                              " closed (quiet hours, weekend or holiday)");
      t = open;
    }
    if (capped) {
      auto check = [&](int limit, Duration window, const char* label) {
        if (limit <= 0) return;
        // Contacts in (t - window, t]: the cap allows one more only below the limit.
        auto first = std::upper_bound(made.begin(), made.end(), t - window);
        auto last = std::upper_bound(made.begin(), made.end(), t);
        auto count = static_cast<int>(last - first);
        if (count < limit) return;
        auto release = *(last - limit) + window;
        if (release > t) {
          if (why) why->push_back("moved to " + local_hhmm(release, ctx.tz) + " " + ctx.tz + ": contact cap " + label);
          t = release;
        }
      };
      check(cap.per_day(), kDay, "per day");
      check(cap.per_7_days(), 7 * kDay, "per 7 days");
    }
    if (t == before) break;
  }
  return t;
}

void ReminderRules::choose_channel(const Context& ctx, Decision& d) const {
  const auto& customer = ctx.ledger.customer;
  if (d.kind == ActionKind::kEscalation) {
    // A hand-off to the collections team: the team is told, whatever the customer's channels.
    if (available_.count(v1::CALL_TASK)) {
      d.channel = v1::CALL_TASK;
      d.explanation.push_back("escalation: call task for the collections team");
    } else {
      d.explanation.push_back("CALL_TASK skipped: no adapter configured");
    }
    return;
  }
  if (d.kind == ActionKind::kThankYou) return;  // decided by the caller: the channel last used

  const auto& stage_channels = tier_channels(policy_.stages(d.stage_index), d.tier, false);
  std::vector<v1::Channel> candidates;
  auto add = [&](int c) {
    auto ch = static_cast<v1::Channel>(c);
    if (std::find(candidates.begin(), candidates.end(), ch) == candidates.end()) candidates.push_back(ch);
  };
  for (auto c : customer.preferred_channels()) add(c);
  for (auto c : stage_channels) add(c);
  for (auto channel : candidates) {
    if (auto why = unusable(ctx, channel)) {
      d.explanation.push_back(channel_name(channel) + " skipped: " + *why);
      continue;
    }
    d.channel = channel;
    bool preferred = std::find(customer.preferred_channels().begin(), customer.preferred_channels().end(),
                               static_cast<int>(channel)) != customer.preferred_channels().end();
    d.explanation.push_back(channel_name(channel) + " chosen" + (preferred ? " (customer's preference)" : ""));
    return;
  }
}

std::optional<std::string> ReminderRules::unusable(const Context& ctx, v1::Channel channel) const {
  const auto& customer = ctx.ledger.customer;
  if (!available_.count(channel)) return "no adapter configured";
  if (consent_withdrawn(customer, channel)) return "consent withdrawn";
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

void ReminderRules::consider(const Context& ctx, Pending p, std::vector<Pending>& due, std::vector<Pending>& future,
                             Plan& plan) const {
  auto consider_next = [&](Instant at) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
  };
  auto last_it = ctx.ledger.last_stage.find(p.subject_id);
  int last = last_it == ctx.ledger.last_stage.end() ? -1 : last_it->second;
  int count = policy_.stages_size();
  if (last + 1 >= count) return;  // every stage done, escalation included

  // A promise on any invoice of the subject (an installment covers several) pauses it.
  for (const auto& id : p.invoice_ids) {
    const auto* inv = p.invoice;
    if (inv == nullptr) {
      auto it = ctx.ledger.invoices.find(id);
      if (it == ctx.ledger.invoices.end()) continue;
      inv = &it->second;
    }
    if (inv->promised_on.empty()) continue;
    if (auto promised = parse_iso_date(inv->promised_on)) {
      auto resume_day = add_days(*promised, policy_.promise_grace_days() + 1);
      if (sys_days{ctx.today} < sys_days{resume_day}) {
        consider_next(local_time_to_instant(resume_day, send_at_minutes_, ctx.tz));
        return;
      }
      p.broken_promise = true;
    }
  }
  // The latest stage whose time has come is acted on; earlier ones it overtook are not sent
  // late, so a customer never gets a burst of stale reminders.
  int due_index = -1;
  // A notice ahead of the due date makes no sense once the date is reached.
  bool due_date_reached = sys_days{ctx.today} >= sys_days{p.due};
  for (int i = last + 1; i < count; ++i) {
    if (due_date_reached && policy_.stages(i).offset_days() < 0) continue;
    auto at = local_time_to_instant(add_days(p.due, policy_.stages(i).offset_days()), send_at_minutes_, ctx.tz);
    if (at <= ctx.now) {
      due_index = i;
      p.nominal = at;
    } else {
      if (due_index < 0) {
        if (p.broken_promise) {
          // A broken promise resumes at the next stage at once.
          p.stage_index = i;
          p.nominal = ctx.now;
          due.push_back(std::move(p));
          return;
        }
        p.stage_index = i;
        p.nominal = at;
        future.push_back(p);
        consider_next(at);
      }
      break;
    }
  }
  if (due_index >= 0) {
    p.stage_index = due_index;
    due.push_back(std::move(p));
  }
}

Decision ReminderRules::decide(const Context& ctx, std::vector<Pending> items, ActionKind kind) const {
  Decision d;
  d.kind = kind;
  d.timeline_key = ctx.ledger.key;
  std::sort(items.begin(), items.end(), [](const Pending& a, const Pending& b) { return a.subject_id < b.subject_id; });
  std::vector<std::string> subjects;
  std::map<std::string, int64_t> totals;
  for (const auto& p : items) {
    d.stage_index = std::max(d.stage_index, p.stage_index);
    d.broken_promise = d.broken_promise || p.broken_promise;
    subjects.push_back(subject_token(p.subject_id, p.stage_index));
    totals[p.amount.currency()] += p.amount.minor_units();
    for (const auto& id : p.invoice_ids) {
      if (std::find(d.invoice_ids.begin(), d.invoice_ids.end(), id) == d.invoice_ids.end()) d.invoice_ids.push_back(id);
    }
    DecisionItem item;
    item.subject_id = p.subject_id;
    item.invoice_id = p.invoice_ids.empty() ? std::string() : p.invoice_ids.front();
    if (p.invoice != nullptr) {
      item.number = p.invoice->invoice.number();
      item.payment_link = p.invoice->invoice.payment_link();
    } else if (auto it = ctx.ledger.invoices.find(item.invoice_id); it != ctx.ledger.invoices.end()) {
      item.number = it->second.invoice.number();
      item.payment_link = it->second.invoice.payment_link();
    }
    item.amount_due = p.amount;
    item.due_on = format_iso_date(p.due);
    item.days_overdue = std::max(0, static_cast<int>((sys_days{ctx.today} - sys_days{p.due}).count()));
    item.stage_index = p.stage_index;
    d.overdue = d.overdue || item.days_overdue > 0;
    d.items.push_back(std::move(item));
  }
  const auto& stage = policy_.stages(d.stage_index);
  d.stage = stage.name();
  d.template_name = stage.template_().empty() ? stage.name() : stage.template_();
  d.stage_key = make_stage_key(ctx.ledger.key, subjects, stage.name());
  d.due_at = ctx.now;

  // The largest currency total decides the tier when invoices are in several currencies.
  for (const auto& [currency, units] : totals) {
    v1::Money m;
    m.set_currency(currency);
    m.set_minor_units(units);
    auto tier = tier_of(m);
    if (d.total_due.currency().empty() || tier > d.tier) {
      d.tier = tier;
      d.total_due = m;
    }
  }
  d.explanation.push_back("stage=" + stage.name() + " (due" + (stage.offset_days() >= 0 ? "+" : "") +
                          std::to_string(stage.offset_days()) + "d)" + (items.size() > 1 ? ", grouping " + std::to_string(items.size()) + " items" : ""));
  for (const auto& tier : policy_.amount_tiers()) {
    if (tier.currency() != d.total_due.currency()) continue;
    auto bound = [&](int64_t v) {
      v1::Money m;
      m.set_currency(tier.currency());
      m.set_minor_units(v);
      return plain_amount(m);
    };
    std::string line = "tier=" + std::string(tier_name(d.tier)) + ": " + plain_amount(d.total_due);
    if (d.tier == AmountTierKind::kLarge) line += " ≥ " + bound(tier.large_from());
    else if (d.tier == AmountTierKind::kMiddle) line += " ≥ " + bound(tier.middle_from());
    else line += " < " + bound(tier.middle_from());
    d.explanation.push_back(line);
    if (stage.offer_payment_plan() && tier.plan_offer_from() > 0 && d.total_due.minor_units() >= tier.plan_offer_from()) {
      d.offer_payment_plan = true;
      d.explanation.push_back("payment plan offered: " + plain_amount(d.total_due) + " ≥ " + bound(tier.plan_offer_from()));
    }
  }
  d.mention_late_terms = stage.mention_late_terms();
  if (d.broken_promise) d.explanation.push_back("broken promise: resumed at the next stage");

  // Lateness of other invoices within the look-back window sets the segment.
  int late = 0;
  auto lookback = add_days(ctx.today, -std::max(0, policy_.segments().lookback_days()));
  for (const auto& [id, day] : ctx.ledger.late_invoices) {
    if (std::find(d.invoice_ids.begin(), d.invoice_ids.end(), id) != d.invoice_ids.end()) continue;
    auto date = parse_iso_date(day);
    if (date && sys_days{*date} >= sys_days{lookback}) ++late;
  }
  d.tone = stage.tone();
  if (d.overdue) d.tone = adjust_tone(stage.tone(), late, d.explanation);
  d.recurring_late_payer = policy_.segments().recurring_late_count() > 0 && late >= policy_.segments().recurring_late_count();
  if (d.recurring_late_payer) d.explanation.push_back("recurring late payer: ask for a deposit or upfront payment");
  d.explanation.push_back("tone=" + tone_name(d.tone));

  choose_channel(ctx, d);
  if (d.channel == v1::CHANNEL_UNSPECIFIED) {
    d.suppressed = true;
    d.suppression_reason = "no channel can reach the customer";
    d.explanation.push_back("suppressed: " + d.suppression_reason);
  }
  d.reminder_id = make_reminder_id(d.stage_key, d.channel);
  return d;
}

Plan ReminderRules::plan(const ledger::CustomerLedger& ledger, Instant now) const {
  Plan plan;
  const auto& customer = ledger.customer;
  Context ctx{ledger, now, customer.time_zone().empty() ? policy_.default_time_zone() : customer.time_zone(),
              customer.country().empty() ? policy_.default_country() : customer.country(), {}};
  ctx.today = local_date(now, ctx.tz);
  auto consider_next = [&](Instant at) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
  };

  std::vector<Pending> due, future;
  for (const auto& [id, inv] : ledger.invoices) {
    if (policy_.thank_you() && inv.paid_after_reminders && !inv.thanked && inv.last_channel != v1::CHANNEL_UNSPECIFIED) {
      Decision d;
      d.kind = ActionKind::kThankYou;
      d.timeline_key = ledger.key;
      d.invoice_ids = {id};
      d.stage = "thank_you";
      d.template_name = "thank_you";
      d.tone = v1::FRIENDLY;
      d.channel = inv.last_channel;
      if (auto why = unusable(ctx, d.channel)) {
        // Consent or contact changed since the last reminder: the thanks go another way, or not at all.
        d.explanation.push_back(channel_name(d.channel) + " skipped: " + *why);
        d.channel = v1::CHANNEL_UNSPECIFIED;
        for (auto c : {v1::EMAIL, v1::SMS, v1::WHATSAPP}) {
          if (!unusable(ctx, c)) {
            d.channel = c;
            break;
          }
        }
        if (d.channel == v1::CHANNEL_UNSPECIFIED) {
          d.suppressed = true;
          d.suppression_reason = "no channel can reach the customer";
        }
      }
      d.total_due = inv.invoice.amount_total();
      d.stage_key = make_stage_key(ledger.key, {id}, "thank_you");
      d.reminder_id = make_reminder_id(d.stage_key, d.channel);
      d.explanation.push_back("paid in full after " + std::to_string(inv.reminders_sent) + " reminder(s): thank-you on " +
                              channel_name(d.channel) + ", the channel last used");
      auto at = d.suppressed ? now : open_slot(ctx, now, d.channel, false, &d.explanation);
      d.due_at = at;
      if (at <= now) {
        plan.now.push_back(std::move(d));
      } else {
        consider_next(at);
      }
    }
    if (!inv.open() || inv.disputed || !inv.plan_id.empty()) continue;
    auto due_on = parse_iso_date(inv.invoice.due_on());
    if (!due_on) continue;
    Pending p;
    p.subject_id = id;
    p.invoice = &inv;
    p.invoice_ids = {id};
    p.due = *due_on;
    p.amount = inv.invoice.amount_due();
    consider(ctx, std::move(p), due, future, plan);
  }
  for (const auto& [plan_id, pl] : ledger.plans) {
    // Reminders follow the first installment not yet paid; a missed one starts its own stages.
    for (std::size_t k = 0; k < pl.installments.size(); ++k) {
      const auto& inst = pl.installments[k];
      if (inst.settled()) continue;
      std::vector<std::string> open_ids;
      bool disputed = false;
      for (const auto& id : pl.invoice_ids) {
        auto it = ledger.invoices.find(id);
        if (it == ledger.invoices.end() || !it->second.open()) continue;
        disputed = disputed || it->second.disputed;
        open_ids.push_back(id);
      }
      auto inst_due = parse_iso_date(inst.due_on);
      if (open_ids.empty() || disputed || !inst_due) break;
      Pending p;
      p.subject_id = plan_id + "#" + std::to_string(k);
      p.invoice_ids = open_ids;
      p.due = *inst_due;
      p.amount.set_currency(pl.currency);
      p.amount.set_minor_units(inst.amount - inst.paid);
      consider(ctx, std::move(p), due, future, plan);
      break;
    }
  }
  if (due.empty()) return plan;

  // Reminders that are due go out together with those due within the grouping window;
  // escalations form a group of their own.
  std::vector<Pending> reminders, escalations;
  for (auto& p : due) {
    (policy_.stages(p.stage_index).action() == v1::ESCALATE ? escalations : reminders).push_back(std::move(p));
  }
  if (!reminders.empty() && policy_.grouping_window_days() > 0) {
    auto horizon = now + policy_.grouping_window_days() * kDay;
    for (const auto& f : future) {
      if (f.nominal <= horizon && policy_.stages(f.stage_index).action() != v1::ESCALATE) reminders.push_back(f);
    }
  }

  for (auto* group : {&reminders, &escalations}) {
    if (group->empty()) continue;
    auto kind = group == &escalations ? ActionKind::kEscalation : ActionKind::kReminder;
    auto d = decide(ctx, std::move(*group), kind);
    if (!d.suppressed) {
      auto at = open_slot(ctx, now, d.channel, kind == ActionKind::kReminder, &d.explanation);
      d.due_at = at;
      if (at > now) {
        consider_next(at);
        continue;
      }
    }
    std::vector<Decision> extra;
    if (!d.suppressed && kind == ActionKind::kReminder) {
      // The written copy that goes with the chosen channel, when it can reach the customer now.
      for (auto c : tier_channels(policy_.stages(d.stage_index), d.tier, true)) {
        auto channel = static_cast<v1::Channel>(c);
        if (channel == d.channel) continue;
        if (auto why = unusable(ctx, channel)) {
          d.explanation.push_back(channel_name(channel) + " alongside skipped: " + *why);
          continue;
        }
        if (calendar_.next_open(now, channel, ctx.tz, ctx.country) > now) {
          d.explanation.push_back(channel_name(channel) + " alongside skipped: closed now");
          continue;
        }
        Decision copy = d;
        copy.channel = channel;
        copy.reminder_id = make_reminder_id(d.stage_key, channel);
        copy.explanation.push_back(channel_name(channel) + " alongside " + channel_name(d.channel));
        extra.push_back(std::move(copy));
      }
    }
    plan.now.push_back(std::move(d));
    for (auto& e : extra) plan.now.push_back(std::move(e));
  }
  return plan;
}

}  // namespace relance::rules
