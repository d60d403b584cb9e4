#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "ledger/ledger.h"
#include "relance/v1/config.pb.h"
#include "rules/business_calendar.h"

namespace relance::rules {

enum class AmountTierKind { kMinor, kMiddle, kLarge };
using ActionKind = ledger::ActionRecord::Kind;

// One invoice (or plan installment) covered by a decision.
struct DecisionItem {
  std::string subject_id;  // the invoice id, or "<plan id>#<installment>"
  std::string invoice_id;
  std::string number;
  std::string payment_link;
  relance::v1::Money amount_due;
  std::string due_on;
  int days_overdue = 0;
  int stage_index = -1;  // the stage this item reached with this decision
};

// One action to carry out now (or to record as suppressed), with the reasons behind it.
struct Decision {
  ActionKind kind = ActionKind::kReminder;
  std::string reminder_id;
  // Identifies what is being acted on regardless of channel: acted on once.
  std::string stage_key;
  std::string timeline_key;
  std::vector<std::string> invoice_ids;
  std::vector<DecisionItem> items;
  std::string stage;
  int stage_index = -1;
  std::string template_name;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  relance::v1::Tone tone = relance::v1::TONE_UNSPECIFIED;
  AmountTierKind tier = AmountTierKind::kMinor;
  relance::v1::Money total_due;
  bool offer_payment_plan = false;
  bool mention_late_terms = false;
  bool recurring_late_payer = false;
  bool broken_promise = false;
  bool overdue = false;
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

// The reminder policy as a pure, deterministic function: the same ledger, policy, channels and
// instant give the same plan. The scheduler calls it when a timer fires and the gateway acts on
// the result at once, so a payment applied before that moment always wins.
class ReminderRules {
 public:
  ReminderRules(relance::v1::PolicyConfig policy, std::set<relance::v1::Channel> available_channels);

  Plan plan(const ledger::CustomerLedger& ledger, Instant now) const;

  AmountTierKind tier_of(const relance::v1::Money& amount) const;
  const relance::v1::PolicyConfig& policy() const { return policy_; }

 private:
  struct Pending;
  struct Context;
  void consider(const Context& ctx, Pending pending, std::vector<Pending>& due, std::vector<Pending>& future,
                Plan& plan) const;
  Decision decide(const Context& ctx, std::vector<Pending> items, ActionKind kind) const;
  void choose_channel(const Context& ctx, Decision& d) const;
  // Why `channel` cannot be used for this customer now, or nullopt when it can.
  std::optional<std::string> unusable(const Context& ctx, relance::v1::Channel channel) const;
  const google::protobuf::RepeatedField<int>& tier_channels(const relance::v1::Stage& stage, AmountTierKind tier,
                                                            bool alongside) const;
  Instant open_slot(const Context& ctx, Instant at, relance::v1::Channel channel, bool capped,
                    std::vector<std::string>* why) const;
  relance::v1::Tone adjust_tone(relance::v1::Tone tone, int late_count, std::vector<std::string>& why) const;

  relance::v1::PolicyConfig policy_;
  std::set<relance::v1::Channel> available_;
  std::set<relance::v1::Channel> consent_required_;
  BusinessCalendar calendar_;
  int send_at_minutes_;
};

// Deterministic ids: the same inputs give the same id on every instance and after restarts.
// A stage key covers subjects as subject_token(subject, stage index).
std::string subject_token(const std::string& subject_id, int stage_index);
std::string make_stage_key(const std::string& timeline_key, std::vector<std::string> subjects, const std::string& stage);
std::string make_reminder_id(const std::string& stage_key, relance::v1::Channel channel);

std::string_view tier_name(AmountTierKind tier);
// "7200.00 EUR": exact and cheap, for explanations (messages use ICU's locale formatting).
std::string plain_amount(const relance::v1::Money& money);

}  // namespace relance::rules
