#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "ledger/ledger.h"
#include "relance/v1/config.pb.h"

namespace relance::rules {

enum class AmountTierKind { kMinor, kMiddle, kLarge };

// One reminder to send now (or to record as suppressed), with the reasons behind it.
struct Decision {
  std::string reminder_id;
  // Identifies the stage of these invoices regardless of channel: a stage is acted on once.
  std::string stage_key;
  std::string timeline_key;
  std::vector<std::string> invoice_ids;
  std::string stage;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  relance::v1::Tone tone = relance::v1::TONE_UNSPECIFIED;
  AmountTierKind tier = AmountTierKind::kMinor;
  bool suppressed = false;
  std::string suppression_reason;
  std::vector<std::string> explanation;
  Instant due_at;
};

struct Plan {
  std::vector<Decision> now;
  // When this timeline next needs a look, if ever.
  std::optional<Instant> next_at;
};

using StageDone = std::function<bool(const std::string& stage_key)>;

// Pure and deterministic: the same ledger, policy, channels and instant give the same plan.
class ReminderRules {
 public:
  ReminderRules(relance::v1::PolicyConfig policy, std::set<relance::v1::Channel> available_channels);

  Plan plan(const ledger::CustomerLedger& ledger, Instant now, const StageDone& stage_done) const;

  AmountTierKind tier_of(const relance::v1::Money& amount) const;

 private:
  Decision decide(const ledger::CustomerLedger& ledger, const ledger::InvoiceState& invoice,
                  const relance::v1::Stage& stage, Instant due_at) const;

  relance::v1::PolicyConfig policy_;
  std::set<relance::v1::Channel> available_;
  int send_at_minutes_;
};

// Deterministic ids: the same inputs give the same id on every instance and after restarts.
std::string make_stage_key(const std::string& timeline_key, std::vector<std::string> invoice_ids,
                           const std::string& stage);
std::string make_reminder_id(const std::string& stage_key, relance::v1::Channel channel);

std::string_view tier_name(AmountTierKind tier);

}  // namespace relance::rules
