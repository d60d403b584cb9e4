#include "rules/reminder_rules.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>

#include "common/dates.h"
#include "relance/v1/common.pb.h"

namespace relance::rules {

namespace v1 = relance::v1;

namespace {

std::string hex_sha256(const std::string& input, std::size_t hex_chars) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  std::string out;
  char buf[3];
  for (std::size_t i = 0; i < SHA256_DIGEST_LENGTH && out.size() < hex_chars; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    out += buf;
  }
  return out.substr(0, hex_chars);
}

std::chrono::year_month_day add_days(std::chrono::year_month_day date, int days) {
  return std::chrono::year_month_day{std::chrono::sys_days{date} + std::chrono::days{days}};
}

bool consent_withdrawn(const v1::Customer& customer, v1::Channel channel) {
  for (const auto& c : customer.consents()) {
    if (c.channel() == channel && !c.granted()) return true;
  }
  return false;
}

std::optional<std::string> missing_contact(const v1::Customer& customer, v1::Channel channel) {
  switch (channel) {
    case v1::EMAIL:
      if (customer.email().find('@') == std::string::npos) return "no email address";
      return std::nullopt;
    case v1::SMS:
    case v1::CALL_TASK:
      if (customer.phone().empty()) return "no phone number";
      return std::nullopt;
    case v1::WHATSAPP:
      if (customer.whatsapp().empty() && customer.phone().empty()) return "no WhatsApp number";
      return std::nullopt;
    default:
      return "unknown channel";
  }
}

std::string channel_name(v1::Channel channel) { return v1::Channel_Name(channel); }

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

std::string make_stage_key(const std::string& timeline_key, std::vector<std::string> invoice_ids,
                           const std::string& stage) {
  std::sort(invoice_ids.begin(), invoice_ids.end());
  std::string input = timeline_key;
  for (const auto& id : invoice_ids) input += '\0' + id;
  input += '\0';
  input += stage;
  return hex_sha256(input, 32);
}

std::string make_reminder_id(const std::string& stage_key, v1::Channel channel) {
  return "rem_" + hex_sha256(stage_key + '\0' + channel_name(channel), 32);
}

ReminderRules::ReminderRules(v1::PolicyConfig policy, std::set<v1::Channel> available_channels)
    : policy_(std::move(policy)),
      available_(std::move(available_channels)),
      send_at_minutes_(parse_time_of_day(policy_.send_at()).value_or(9 * 60)) {}

AmountTierKind ReminderRules::tier_of(const v1::Money& amount) const {
  for (const auto& tier : policy_.amount_tiers()) {
    if (tier.currency() != amount.currency()) continue;
    if (amount.minor_units() >= tier.large_from()) return AmountTierKind::kLarge;
    if (amount.minor_units() >= tier.middle_from()) return AmountTierKind::kMiddle;
    return AmountTierKind::kMinor;
  }
  return AmountTierKind::kMinor;
}

Decision ReminderRules::decide(const ledger::CustomerLedger& ledger, const ledger::InvoiceState& state,
                               const v1::Stage& stage, Instant due_at) const {
  Decision d;
  d.timeline_key = ledger.key;
  d.invoice_ids = {state.invoice.invoice_id()};
  d.stage = stage.name();
  d.tone = stage.tone();
  d.due_at = due_at;
  d.stage_key = make_stage_key(ledger.key, d.invoice_ids, stage.name());
  const auto& amount = state.invoice.amount_due();
  d.tier = tier_of(amount);
  d.explanation.push_back("stage " + stage.name() + ": " + std::to_string(stage.offset_days()) +
                          " days from due date " + state.invoice.due_on());
  d.explanation.push_back("amount due " + std::to_string(amount.minor_units()) + " " + amount.currency() +
                          " (minor units) is in the " + std::string(tier_name(d.tier)) + " tier");

  const auto& tiers = stage.channels();
  const auto& stage_channels =
      d.tier == AmountTierKind::kLarge ? tiers.large() : d.tier == AmountTierKind::kMiddle ? tiers.middle() : tiers.minor();
  std::vector<v1::Channel> candidates;
  for (auto c : ledger.customer.preferred_channels()) {
    if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) candidates.push_back(static_cast<v1::Channel>(c));
  }
  for (auto c : stage_channels) {
    if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) candidates.push_back(static_cast<v1::Channel>(c));
  }
  for (auto channel : candidates) {
    auto name = channel_name(channel);
    if (!available_.count(channel)) {
      d.explanation.push_back(name + " skipped: no adapter configured");
      continue;
    }
    if (consent_withdrawn(ledger.customer, channel)) {
      d.explanation.push_back(name + " skipped: consent withdrawn");
      continue;
    }
    if (auto missing = missing_contact(ledger.customer, channel)) {
      d.explanation.push_back(name + " skipped: " + *missing);
      continue;
    }
    d.channel = channel;
    d.explanation.push_back(name + " chosen");
    break;
  }
  if (d.channel == v1::CHANNEL_UNSPECIFIED) {
    d.suppressed = true;
    d.suppression_reason = "no channel can reach the customer";
    d.explanation.push_back("suppressed: " + d.suppression_reason);
  }
  d.reminder_id = make_reminder_id(d.stage_key, d.channel);
  return d;
}

Plan ReminderRules::plan(const ledger::CustomerLedger& ledger, Instant now, const StageDone& stage_done) const {
  Plan plan;
  const auto& tz = ledger.customer.time_zone().empty() ? policy_.default_time_zone() : ledger.customer.time_zone();
  auto consider_next = [&](Instant at) {
    if (!plan.next_at || at < *plan.next_at) plan.next_at = at;
  };
  for (const auto& [id, state] : ledger.invoices) {
    if (!state.open() || state.disputed) continue;
    auto due_on = parse_iso_date(state.invoice.due_on());
    if (!due_on) continue;
    if (!state.promised_on.empty()) {
      auto promised = parse_iso_date(state.promised_on);
      // The promise holds until the end of the promised day; look again the morning after.
      if (promised) {
        auto resume = local_time_to_instant(add_days(*promised, 1), send_at_minutes_, tz);
        if (now < resume) {
          consider_next(resume);
          continue;
        }
      }
    }
    // The latest stage whose time has come is acted on; earlier ones it overtook are not sent
    // late, so a customer never gets a burst of stale reminders.
    const v1::Stage* latest_due = nullptr;
    Instant latest_at{};
    for (const auto& stage : policy_.stages()) {
      auto at = local_time_to_instant(add_days(*due_on, stage.offset_days()), send_at_minutes_, tz);
      if (at <= now) {
        if (latest_due == nullptr || at >= latest_at) {
          latest_due = &stage;
          latest_at = at;
        }
      } else {
        consider_next(at);
      }
    }
    if (latest_due == nullptr) continue;
    auto key = make_stage_key(ledger.key, {id}, latest_due->name());
    if (stage_done && stage_done(key)) continue;
    plan.now.push_back(decide(ledger, state, *latest_due, latest_at));
  }
  return plan;
}

}  // namespace relance::rules
