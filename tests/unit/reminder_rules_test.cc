// The default policy (deploy/policy/default.yaml) rule by rule, with the simulated timeline.
#include "rules/reminder_rules.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/dates.h"
#include "config/config_loader.h"
#include "rules/timeline_simulator.h"
#include "support/sample_events.h"

namespace relance::rules {
namespace {

namespace v1 = relance::v1;
using relance::testing::InvoiceSpec;
using std::chrono::hours;

Instant at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }
std::string iso(Instant t) { return format_rfc3339(t); }

bool explains(const Decision& d, const std::string& fragment) {
  return std::any_of(d.explanation.begin(), d.explanation.end(),
                     [&](const std::string& line) { return line.find(fragment) != std::string::npos; });
}

std::string joined(const Decision& d) {
  std::string out;
  for (const auto& l : d.explanation) out += l + "\n";
  return out;
}

class PolicyTest : public ::testing::Test {
 protected:
  PolicyTest()
      : policy_(config::default_config().policy()),
        rules_(policy_, {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK}),
        sim_(rules_) {}

  static InvoiceSpec spec(const std::string& invoice, const std::string& due_on, int64_t amount) {
    InvoiceSpec s;
    s.event_id = "issued-" + invoice;
    s.customer_id = "cust";
    s.invoice_id = invoice;
    s.number = "F-" + invoice;
    s.due_on = due_on;
    s.amount_due = amount;
    s.locale = "fr-FR";
    s.time_zone = "Europe/Paris";
    return s;
  }

  void issue(const InvoiceSpec& s) {
    auto e = relance::testing::invoice_issued(s);
    e.mutable_invoice_issued()->mutable_customer()->set_country("FR");
    e.mutable_invoice_issued()->mutable_customer()->set_phone(phone_);
    for (auto [channel, granted] : consents_) {
      auto* c = e.mutable_invoice_issued()->mutable_customer()->add_consents();
      c->set_channel(channel);
      c->set_granted(granted);
    }
    for (auto c : preferred_) e.mutable_invoice_issued()->mutable_customer()->add_preferred_channels(c);
    apply(e);
  }

  void apply(const v1::InvoiceEvent& e) {
    ledger_.key = "cust";
    ledger::apply_event(ledger_, e);
  }

  void pay(const std::string& invoice, int64_t amount, const char* when = nullptr) {
    auto e = relance::testing::payment_received("pay-" + invoice + std::to_string(amount), invoice, amount);
    if (when != nullptr) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(at(when).time_since_epoch()).count();
      e.mutable_payment_received()->mutable_paid_at()->set_seconds(secs);
    }
    apply(e);
  }

  std::vector<SimulatedAction> run(const char* from, const char* until) {
    return sim_.run(ledger_, at(from), at(until));
  }

  static const SimulatedAction* find(const std::vector<SimulatedAction>& actions, const std::string& stage,
                                     v1::Channel channel = v1::CHANNEL_UNSPECIFIED) {
    for (const auto& a : actions) {
      if (a.decision.stage == stage && (channel == v1::CHANNEL_UNSPECIFIED || a.decision.channel == channel)) return &a;
    }
    return nullptr;
  }

  v1::PolicyConfig policy_;
  ReminderRules rules_;
  TimelineSimulator sim_;
  ledger::CustomerLedger ledger_;
  std::string phone_;
  std::vector<std::pair<v1::Channel, bool>> consents_;
  std::vector<v1::Channel> preferred_;
};

TEST_F(PolicyTest, AMinorUnpaidInvoiceWalksEveryStageInOrderByEmailThenEscalates) {
  issue(spec("A", "2026-11-20", 12'000));  // 120.00 EUR, due Friday 20 November
  auto actions = run("2026-11-01T00:00:00Z", "2027-02-01T00:00:00Z");

  struct Expected {
    const char* stage;
    v1::Channel channel;
    const char* when;  // 09:00 Paris on the stage's day, or the next slot the channel is open
    v1::Tone tone;
  };
  // First-time late: each overdue stage is one step softer than written.
  const Expected expected[] = {
      {"courtesy", v1::EMAIL, "2026-11-17T08:00:00Z", v1::FRIENDLY},        // Tuesday
      {"first_reminder", v1::EMAIL, "2026-11-23T08:00:00Z", v1::FRIENDLY},  // Monday
      {"second_reminder", v1::EMAIL, "2026-11-30T08:00:00Z", v1::COURTEOUS},
      {"final_notice", v1::EMAIL, "2026-12-10T08:00:00Z", v1::FIRM},
      {"escalation", v1::CALL_TASK, "2026-12-25T08:00:00Z", v1::FIRM},  // Christmas: see below
  };
  ASSERT_GE(actions.size(), 5u);
  for (std::size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(expected[i].stage);
    EXPECT_EQ(actions[i].decision.stage, expected[i].stage);
    EXPECT_EQ(actions[i].decision.channel, expected[i].channel) << joined(actions[i].decision);
    EXPECT_EQ(iso(actions[i].at), expected[i].when);
    EXPECT_EQ(actions[i].decision.tone, expected[i].tone) << joined(actions[i].decision);
  }
  // Escalation at due+35 = 25 December, a holiday: the call task waits for the 28th (Monday).
  const auto* esc = find(actions, "escalation");
  ASSERT_NE(esc, nullptr);
  EXPECT_EQ(esc->decision.kind, ActionKind::kEscalation);
  EXPECT_EQ(esc->decision.channel, v1::CALL_TASK);
  EXPECT_EQ(iso(esc->at), "2026-12-28T08:00:00Z");
  EXPECT_EQ(actions.back().decision.stage, "escalation");  // once, never repeated
  EXPECT_EQ(std::count_if(actions.begin(), actions.end(), [](const auto& a) { return a.decision.stage == "escalation"; }), 1);
}

struct TierCase {
  const char* name;
  int64_t amount;
  std::string phone;
  std::vector<std::pair<v1::Channel, bool>> consents;
  std::vector<v1::Channel> expected;  // channels of the first reminder, in order
  const char* explanation;
};

class TierTest : public PolicyTest, public ::testing::WithParamInterface<TierCase> {};

TEST_P(TierTest, FirstReminderChannels) {
  const auto& c = GetParam();
  phone_ = c.phone;
  consents_ = c.consents;
  issue(spec("A", "2026-11-20", c.amount));
  auto actions = run("2026-11-16T00:00:00Z", "2026-11-24T00:00:00Z");
  std::vector<v1::Channel> channels;
  for (const auto& a : actions) {
    if (a.decision.stage == "first_reminder") channels.push_back(a.decision.channel);
  }
  EXPECT_EQ(channels, c.expected);
  const auto* first = find(actions, "first_reminder");
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(explains(first->decision, c.explanation)) << joined(first->decision);
}

INSTANTIATE_TEST_SUITE_P(
    Tiers, TierTest,
    ::testing::Values(
        TierCase{"minor_email", 12'000, "", {}, {v1::EMAIL}, "tier=minor: 120.00 EUR < 200.00 EUR"},
        TierCase{"middle_sms_with_email", 50'000, "+33612345678", {{v1::SMS, true}}, {v1::SMS, v1::EMAIL},
                 "tier=middle: 500.00 EUR ≥ 200.00 EUR"},
        TierCase{"middle_without_consent_falls_back", 50'000, "+33612345678", {}, {v1::EMAIL}, "SMS skipped: no consent"},
        TierCase{"middle_landline_cannot_take_sms", 50'000, "+33142685300", {{v1::SMS, true}}, {v1::EMAIL},
                 "SMS skipped: no valid mobile number"},
        TierCase{"large_call_with_email", 720'000, "+33612345678", {}, {v1::CALL_TASK, v1::EMAIL},
                 "tier=large: 7200.00 EUR ≥ 5000.00 EUR"},
        TierCase{"large_without_phone", 720'000, "", {}, {v1::EMAIL}, "CALL_TASK skipped: no valid phone number"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(PolicyTest, PreferredChannelComesFirstAndWithdrawnConsentIsRespected) {
  phone_ = "+33612345678";
  consents_ = {{v1::WHATSAPP, true}, {v1::EMAIL, false}};
  preferred_ = {v1::WHATSAPP};
  issue(spec("A", "2026-11-20", 12'000));
  // Without an approved template WhatsApp cannot start a conversation: nothing else is allowed.
  auto without = run("2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(without.size(), 1u);
  EXPECT_TRUE(without[0].decision.suppressed);
  EXPECT_TRUE(explains(without[0].decision, "WHATSAPP skipped: no approved WhatsApp template (ContentSid)"));

  auto policy = policy_;
  auto* mapping = policy.mutable_messages()->add_whatsapp_templates();
  mapping->set_locale("fr");
  mapping->set_template_("first_reminder");
  mapping->set_content_sid("HX0123456789abcdef0123456789abcdef");
  ReminderRules rules(policy, {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK});
  ledger_.last_stage.erase("A");
  auto plan = rules.plan(ledger_, at("2026-11-23T08:00:00Z"));
  ASSERT_EQ(plan.now.size(), 1u);
  EXPECT_EQ(plan.now[0].channel, v1::WHATSAPP);
  EXPECT_TRUE(explains(plan.now[0], "WHATSAPP chosen (customer's preference)"));
}

TEST_F(PolicyTest, NoChannelLeftIsSuppressedWithTheReason) {
  consents_ = {{v1::EMAIL, false}};
  issue(spec("A", "2026-11-20", 12'000));
  auto actions = run("2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_TRUE(actions[0].decision.suppressed);
  EXPECT_EQ(actions[0].decision.suppression_reason, "no channel can reach the customer");
  EXPECT_TRUE(explains(actions[0].decision, "EMAIL skipped: consent withdrawn"));
}

TEST_F(PolicyTest, AChannelThatFailedPermanentlyIsSkipped) {
  phone_ = "+33612345678";
  consents_ = {{v1::SMS, true}};
  ledger_.failed_channels.insert(v1::EMAIL);
  issue(spec("A", "2026-11-20", 12'000));
  auto actions = run("2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  // The minor tier lists only email for the first reminder: nothing else may be used.
  EXPECT_TRUE(actions[0].decision.suppressed);
  EXPECT_TRUE(explains(actions[0].decision, "EMAIL skipped: failed permanently before"));
}

struct TimingCase {
  const char* name;
  const char* due_on;
  int64_t amount;
  const char* expected;  // when the first reminder goes out
};

class TimingTest : public PolicyTest, public ::testing::WithParamInterface<TimingCase> {};

TEST_P(TimingTest, FirstReminderLandsInAnOpenSlot) {
  const auto& c = GetParam();
  phone_ = "+33612345678";
  consents_ = {{v1::SMS, true}};
  issue(spec("A", c.due_on, c.amount));
  auto actions = run("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
  const auto* first = find(actions, "first_reminder");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(iso(first->at), c.expected) << joined(first->decision);
}

INSTANTIATE_TEST_SUITE_P(
    Calendar, TimingTest,
    ::testing::Values(
        // Winter: 09:00 Paris is 08:00Z; summer: 07:00Z.
        TimingCase{"winter", "2026-11-20", 12'000, "2026-11-23T08:00:00Z"},
        TimingCase{"summer", "2026-07-06", 12'000, "2026-07-09T07:00:00Z"},
        // Daylight saving starts on Sunday 29 March: Friday the 27th is still winter time,
        // Monday the 30th summer time.
        TimingCase{"before_dst", "2026-03-24", 12'000, "2026-03-27T08:00:00Z"},
        TimingCase{"after_dst", "2026-03-27", 50'000, "2026-03-30T07:00:00Z"},
        // SMS (middle tier) due Saturday 4 April: closed on the weekend and on Easter Monday
        // the 6th, so Tuesday the 7th at 09:00.
        TimingCase{"holiday_monday_after_weekend", "2026-04-01", 50'000, "2026-04-07T07:00:00Z"},
        // Email due on a Sunday waits for Monday, at the usual 09:00 rather than the 08:00 the
        // window opens.
        TimingCase{"email_sunday", "2026-11-19", 12'000, "2026-11-23T08:00:00Z"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(PolicyTest, TheContactCapDefersButNeverDrops) {
  // Two invoices whose stages fall on consecutive days, then on the same day.
  issue(spec("A", "2026-11-20", 12'000));
  auto b = spec("B", "2026-11-27", 12'000);
  b.event_id = "issued-B";
  issue(b);
  auto actions = run("2026-11-01T00:00:00Z", "2027-03-01T00:00:00Z");
  // Never more than one contact a day or three in seven days.
  std::vector<Instant> contacts;
  for (const auto& a : actions) {
    if (a.decision.suppressed || a.decision.kind != ActionKind::kReminder) continue;
    if (!contacts.empty() && contacts.back() == a.at) continue;  // one message, several channels
    contacts.push_back(a.at);
  }
  for (std::size_t i = 1; i < contacts.size(); ++i) EXPECT_GE(contacts[i] - contacts[i - 1], hours(24));
  for (std::size_t i = 3; i < contacts.size(); ++i) EXPECT_GE(contacts[i] - contacts[i - 3], hours(24 * 7));
  // Every stage of both invoices still happened.
  for (const auto& subject : {"A", "B"}) {
    EXPECT_EQ(ledger_.last_stage.at(subject), policy_.stages_size() - 1) << subject;
  }
}

TEST_F(PolicyTest, InvoicesDueTogetherGoInOneMessageAtTheMostAdvancedStage) {
  issue(spec("A", "2026-11-10", 12'000));
  auto b = spec("B", "2026-11-19", 8'000);
  b.event_id = "issued-B";
  issue(b);
  // On the 20th: A's second reminder (due+10) is due; B's first (due+3) is 2 days away.
  auto actions = run("2026-11-20T08:00:00Z", "2026-11-20T12:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  const auto& d = actions[0].decision;
  EXPECT_EQ(d.stage, "second_reminder");
  EXPECT_EQ(d.invoice_ids, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(d.total_due.minor_units(), 20'000);
  EXPECT_EQ(d.tier, AmountTierKind::kMiddle);  // 200.00 EUR together
  ASSERT_EQ(d.items.size(), 2u);
  EXPECT_EQ(d.items[0].stage_index, 2);  // A reached its second reminder
  EXPECT_EQ(d.items[1].stage_index, 1);  // B its first: its courtesy notice expired on its due date
}

TEST_F(PolicyTest, APaymentOneSecondBeforeTheSendWins) {
  issue(spec("A", "2026-11-20", 12'000));
  auto plan = rules_.plan(ledger_, at("2026-11-23T07:59:59Z"));
  ASSERT_TRUE(plan.now.empty());
  ASSERT_TRUE(plan.next_at);
  EXPECT_EQ(iso(*plan.next_at), "2026-11-23T08:00:00Z");
  pay("A", 12'000, "2026-11-23T07:59:59Z");
  EXPECT_TRUE(rules_.plan(ledger_, at("2026-11-23T08:00:00Z")).now.empty());
}

TEST_F(PolicyTest, FullPaymentAfterRemindersGetsOneThankYouOnTheLastChannel) {
  issue(spec("A", "2026-11-20", 12'000));
  auto before = run("2026-11-01T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(before.size(), 2u);  // courtesy and first reminder
  pay("A", 12'000, "2026-11-24T10:00:00Z");
  auto after = run("2026-11-24T10:00:00Z", "2027-03-01T00:00:00Z");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].decision.kind, ActionKind::kThankYou);
  EXPECT_EQ(after[0].decision.channel, v1::EMAIL);
  EXPECT_EQ(iso(after[0].at), "2026-11-24T10:00:00Z");
}

TEST_F(PolicyTest, APartialPaymentLowersTheAmountAndCanCrossATierBoundary) {
  phone_ = "+33612345678";
  consents_ = {{v1::SMS, true}};
  issue(spec("A", "2026-11-20", 60'000));  // 600.00: middle tier, SMS first
  pay("A", 45'000, "2026-11-21T10:00:00Z");  // 150.00 left: minor tier, email
  auto actions = run("2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.total_due.minor_units(), 15'000);
  EXPECT_EQ(actions[0].decision.tier, AmountTierKind::kMinor);
  EXPECT_EQ(actions[0].decision.channel, v1::EMAIL);
}

TEST_F(PolicyTest, APlanReplacesTheScheduleAndAMissedInstallmentRestartsReminders) {
  issue(spec("A", "2026-10-01", 90'000));
  v1::InvoiceEvent plan;
  plan.set_event_id("plan-1");
  auto* p = plan.mutable_payment_plan_agreed();
  p->set_plan_id("P1");
  p->add_invoice_ids("A");
  for (const char* due : {"2026-11-16", "2026-12-16", "2027-01-15"}) {
    auto* inst = p->add_installments();
    inst->set_due_on(due);
    inst->mutable_amount()->set_currency("EUR");
    inst->mutable_amount()->set_minor_units(30'000);
  }
  apply(plan);
  // The first installment is paid on time; the second is missed.
  auto early = run("2026-11-01T00:00:00Z", "2026-11-16T12:00:00Z");
  ASSERT_EQ(early.size(), 1u);
  EXPECT_EQ(early[0].decision.stage, "courtesy");
  EXPECT_EQ(early[0].decision.items[0].subject_id, "P1#0");
  pay("A", 30'000, "2026-11-16T10:00:00Z");
  auto later = run("2026-11-16T12:00:00Z", "2026-12-31T00:00:00Z");
  ASSERT_GE(later.size(), 2u);
  EXPECT_EQ(later[0].decision.stage, "courtesy");
  EXPECT_EQ(later[0].decision.items[0].subject_id, "P1#1");
  EXPECT_EQ(later[0].decision.items[0].amount_due.minor_units(), 30'000);
  EXPECT_EQ(later[1].decision.stage, "first_reminder");
  EXPECT_EQ(later[1].decision.items[0].subject_id, "P1#1");
  EXPECT_EQ(iso(later[1].at), "2026-12-19T08:00:00Z");  // 16 Dec + 3 days, a Saturday: email is open
}

TEST_F(PolicyTest, APromisePausesAndABrokenPromiseResumesAtTheNextStage) {
  issue(spec("A", "2026-11-10", 12'000));
  auto first = run("2026-11-13T00:00:00Z", "2026-11-14T00:00:00Z");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].decision.stage, "first_reminder");
  v1::InvoiceEvent promise;
  promise.set_event_id("promise-1");
  promise.mutable_promise_to_pay()->add_invoice_ids("A");
  promise.mutable_promise_to_pay()->set_promised_on("2026-11-25");
  apply(promise);
  // Paused until the 25th plus two days of grace: nothing before the 28th.
  auto paused = run("2026-11-14T00:00:00Z", "2026-11-28T00:00:00Z");
  EXPECT_TRUE(paused.empty());
  auto resumed = run("2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].decision.stage, "second_reminder");  // due+10 passed during the pause
  EXPECT_TRUE(resumed[0].decision.broken_promise);
  EXPECT_TRUE(explains(resumed[0].decision, "broken promise"));
}

TEST_F(PolicyTest, ADisputePausesUntilResolved) {
  issue(spec("A", "2026-11-10", 12'000));
  v1::InvoiceEvent opened;
  opened.set_event_id("d-open");
  opened.mutable_dispute_opened()->set_invoice_id("A");
  apply(opened);
  EXPECT_TRUE(run("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z").empty());
  v1::InvoiceEvent resolved;
  resolved.set_event_id("d-resolved");
  resolved.mutable_dispute_resolved()->set_invoice_id("A");
  resolved.mutable_dispute_resolved()->set_outcome(v1::DisputeResolved::REJECTED);
  apply(resolved);
  auto after = run("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].decision.stage, "final_notice");  // the latest stage due, never the stale ones
}

TEST_F(PolicyTest, SegmentsSoftenFirstTimersAndFirmUpRecurringLatePayers) {
  for (const char* id : {"old1", "old2", "old3"}) ledger_.late_invoices[id] = "2026-06-01";
  issue(spec("A", "2026-11-20", 12'000));
  auto actions = run("2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.tone, v1::FIRM);  // courteous, one step firmer
  EXPECT_TRUE(actions[0].decision.recurring_late_payer);
  EXPECT_TRUE(explains(actions[0].decision, "recurring late payer: ask for a deposit or upfront payment"));
}

TEST_F(PolicyTest, ToneNeverLeavesFriendlyToFinal) {
  for (const char* id : {"o1", "o2", "o3"}) ledger_.late_invoices[id] = "2026-06-01";
  issue(spec("A", "2026-10-01", 12'000));
  ledger_.last_stage["A"] = 2;  // second reminder sent
  auto actions = run("2026-10-21T07:00:00Z", "2026-10-23T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.stage, "final_notice");
  EXPECT_EQ(actions[0].decision.tone, v1::FINAL);
}

TEST_F(PolicyTest, AMovedReminderSaysWhy) {
  issue(spec("A", "2026-11-19", 12'000));  // first reminder due Sunday 22 November
  auto actions = run("2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z");
  const auto* first = find(actions, "first_reminder");
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(explains(first->decision,
                       "sent 2026-11-23 09:00 Europe/Paris instead of 2026-11-22 09:00: EMAIL closed then"))
      << joined(first->decision);
}

TEST_F(PolicyTest, EscalationsOfOneAccountGoTogether) {
  issue(spec("A", "2026-10-01", 12'000));
  auto b = spec("B", "2026-10-04", 3'000);
  b.event_id = "issued-B";
  issue(b);
  ledger_.last_stage["A"] = 3;
  ledger_.last_stage["B"] = 3;
  auto actions = run("2026-11-05T00:00:00Z", "2026-12-01T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.kind, ActionKind::kEscalation);
  EXPECT_EQ(actions[0].decision.invoice_ids, (std::vector<std::string>{"A", "B"}));
}

TEST_F(PolicyTest, NobodyIsToldTheyAreLateBeforeTheDueDate) {
  issue(spec("A", "2026-11-10", 12'000));
  auto b = spec("B", "2026-11-21", 8'000);  // due the day after A's second reminder
  b.event_id = "issued-B";
  issue(b);
  ledger_.last_stage["A"] = 1;
  ledger_.last_stage["B"] = 0;  // courtesy sent
  auto actions = run("2026-11-20T07:00:00Z", "2026-11-20T12:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.invoice_ids, std::vector<std::string>{"A"});
}

TEST_F(PolicyTest, ARejectedDisputeResumesTheNextMorning) {
  issue(spec("A", "2026-11-10", 12'000));
  ledger_.last_stage["A"] = 1;
  v1::InvoiceEvent opened;
  opened.set_event_id("d-open");
  opened.mutable_dispute_opened()->set_invoice_id("A");
  apply(opened);
  v1::InvoiceEvent resolved;
  resolved.set_event_id("d-resolved");
  resolved.mutable_dispute_resolved()->set_invoice_id("A");
  resolved.mutable_dispute_resolved()->set_outcome(v1::DisputeResolved::REJECTED);
  resolved.mutable_occurred_at()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(at("2026-11-24T10:15:00Z").time_since_epoch()).count());
  apply(resolved);
  auto actions = run("2026-11-24T10:15:00Z", "2026-11-26T00:00:00Z");
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].decision.stage, "second_reminder");
  EXPECT_EQ(iso(actions[0].at), "2026-11-25T08:00:00Z");
}

TEST_F(PolicyTest, ABrokenPromiseResumesOneStageAtATime) {
  issue(spec("A", "2026-11-10", 12'000));
  ledger_.last_stage["A"] = 1;
  v1::InvoiceEvent promise;
  promise.set_event_id("promise-1");
  promise.mutable_promise_to_pay()->add_invoice_ids("A");
  promise.mutable_promise_to_pay()->set_promised_on("2026-11-16");
  apply(promise);
  auto actions = run("2026-11-14T00:00:00Z", "2026-12-31T00:00:00Z");
  ASSERT_GE(actions.size(), 3u);
  EXPECT_EQ(actions[0].decision.stage, "second_reminder");
  EXPECT_TRUE(actions[0].decision.broken_promise);
  EXPECT_EQ(actions[1].decision.stage, "final_notice");
  EXPECT_EQ(iso(actions[1].at), "2026-11-30T08:00:00Z");  // its own date, not at once
  EXPECT_FALSE(actions[1].decision.broken_promise);
  EXPECT_EQ(actions[2].decision.stage, "escalation");
  EXPECT_EQ(iso(actions[2].at), "2026-12-15T08:00:00Z");
}

TEST_F(PolicyTest, ReminderIdsAreDeterministic) {
  EXPECT_EQ(make_stage_key("c", {"b", "a"}, "s"), make_stage_key("c", {"a", "b"}, "s"));
  EXPECT_NE(make_stage_key("c", {"a"}, "s"), make_stage_key("c", {"a"}, "t"));
  auto key = make_stage_key("c", {"a"}, "s");
  EXPECT_EQ(make_reminder_id(key, v1::EMAIL), make_reminder_id(key, v1::EMAIL));
  EXPECT_NE(make_reminder_id(key, v1::EMAIL), make_reminder_id(key, v1::SMS));
  EXPECT_EQ(make_reminder_id(key, v1::EMAIL).size(), 4u + 32u);
}

}  // namespace
}  // namespace relance::rules
