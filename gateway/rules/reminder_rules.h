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
  // When the stage was meant to go out (its nominal instant); earlier than due_at when quiet
  // hours, a contact cap or the gateway's downtime held it back.
  Instant planned_at;
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
  struct Context;
  struct Pending;
  struct Choice;
  // Where a subject stands at the instant planned for: a stage due, a stage to come, or
  // nothing to send (every stage done, or paused by a promise).
  enum class Standing { kDue, kUpcoming, kIdle };

  // Calls visit(Pending&) for each subject that may need a reminder: open invoices, then the
  // first unpaid installment of each payment plan.
  template <typename Visit>
  void each_subject(const Context& ctx, Visit&& visit) const;
  // Sets the subject's stage and nominal instant; an upcoming stage or a promise's end also
  // becomes a candidate for plan.next_at.
  Standing consider(const Context& ctx, Pending& p, Plan& plan) const;
  void thank(const Context& ctx, const std::string& invoice_id, const ledger::InvoiceState& invoice, Plan& plan) const;
  // What decides whether a group goes out now (stage, tier, channel), without the strings.
  Choice choose(const Context& ctx, const std::vector<Pending>& items, ActionKind kind) const;
  Decision decide(const Context& ctx, std::vector<Pending> items, ActionKind kind, const Choice& choice) const;
  // The first usable channel for the stage; with `why`, the reasons for each one passed over.
  // Channels in `failed_here` did not deliver this stage's message before (a fallback).
  relance::v1::Channel pick_channel(const Context& ctx, ActionKind kind, int stage_index, AmountTierKind tier,
                                    std::vector<std::string>* why,
                                    const std::set<relance::v1::Channel>* failed_here = nullptr) const;
  // The channels that did not deliver this group's stage message, or nullptr.
  const std::set<relance::v1::Channel>* failed_for(const Context& ctx, const std::string& stage_key) const;
  std::string stage_key_of(const Context& ctx, const std::vector<Pending>& items, int stage_index) const;
  // Why `channel` cannot be used for this customer now, or nullptr when it can.
  const char* unusable(const Context& ctx, relance::v1::Channel channel) const;
  AmountTierKind tier_of_total(const std::string& currency, int64_t minor_units) const;
  const google::protobuf::RepeatedField<int>& tier_channels(const relance::v1::Stage& stage, AmountTierKind tier,
                                                            bool alongside) const;
  // The earliest instant >= at at which the channel is open and (when capped) the contact cap
  // allows one more contact.
  // Adds why a decision goes out later than `planned` (quiet hours, cap, catching up).
  void explain_delay(const Context& ctx, Instant planned, Decision& d) const;
  Instant open_slot(const Context& ctx, Instant at, relance::v1::Channel channel, bool capped) const;
  relance::v1::Tone adjust_tone(relance::v1::Tone tone, int late_count, std::vector<std::string>& why) const;

  relance::v1::PolicyConfig policy_;
  std::set<relance::v1::Channel> available_;
  std::set<relance::v1::Channel> consent_required_;
  // Templates with an approved WhatsApp counterpart (ContentSid).
  std::set<std::string> whatsapp_templates_;
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
