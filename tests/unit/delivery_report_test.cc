// Delivery reports and call outcomes in the ledger: out of order, repeated, falling back.
#include <gtest/gtest.h>

#include "ledger/ledger.h"
#include "support/sample_events.h"

namespace relance::ledger {
namespace {

namespace v1 = relance::v1;
using relance::testing::InvoiceSpec;

class DeliveryReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ledger_.key = "cust-1";
    InvoiceSpec spec;
    apply_event(ledger_, relance::testing::invoice_issued(spec));
    // Stage 1 reached on SMS; the subject had stage 0 before.
    ledger_.last_stage["inv-1"] = 0;
    ActionRecord sms;
    sms.subjects = {{"inv-1", 1}};
    sms.invoice_ids = {"inv-1"};
    sms.channel = v1::SMS;
    sms.stage = "first_reminder";
    sms.at = Instant{std::chrono::seconds(1'795'514'400)};
    sms.contacted = true;
    sms.reminder_id = "rem-sms";
    sms.stage_key = "stage-1";
    sms.awaiting_confirmation = true;
    apply_action(ledger_, sms);
  }

  EventEffects report(v1::DeliveryStatus status, const std::string& reminder = "rem-sms") {
    v1::InvoiceEvent event;
    event.set_event_id("status");
    auto* r = event.mutable_delivery_status_reported();
    r->set_reminder_id(reminder);
    r->set_status(status);
    EventEffects effects;
    apply_event(ledger_, event, &effects);
    return effects;
  }

  CustomerLedger ledger_;
};

TEST_F(DeliveryReportTest, ASentReminderIsRememberedWithWhatItReached) {
  const auto& r = ledger_.reminders.at("rem-sms");
  EXPECT_EQ(r.channel, v1::SMS);
  EXPECT_EQ(r.status, v1::SENT);
  EXPECT_TRUE(r.awaiting_confirmation);
  EXPECT_EQ(ledger_.last_stage.at("inv-1"), 1);
  EXPECT_EQ(ledger_.contacts_made.size(), 1u);
}

TEST_F(DeliveryReportTest, StatusesOnlyMoveForwardAndRepeatsChangeNothing) {
  EXPECT_TRUE(report(v1::DELIVERED).status_changed);
  EXPECT_FALSE(report(v1::DELIVERED).status_changed);
  EXPECT_FALSE(report(v1::SENT).status_changed);
  // Delivered, then a late "undelivered": the customer has it; no fallback.
  auto late = report(v1::UNDELIVERED);
  EXPECT_FALSE(late.status_changed);
  EXPECT_FALSE(late.fell_back);
  EXPECT_TRUE(report(v1::READ).status_changed);
  EXPECT_EQ(ledger_.reminders.at("rem-sms").status, v1::READ);
  EXPECT_FALSE(ledger_.reminders.at("rem-sms").awaiting_confirmation);
}

TEST_F(DeliveryReportTest, UndeliveredReopensTheStageForTheNextChannel) {
  auto effects = report(v1::UNDELIVERED);
  EXPECT_TRUE(effects.status_changed);
  EXPECT_TRUE(effects.fell_back);
  EXPECT_EQ(ledger_.last_stage.at("inv-1"), 0);
  EXPECT_TRUE(ledger_.contacts_made.empty());
  EXPECT_EQ(ledger_.stage_failed_channels.at("stage-1"), std::set<v1::Channel>{v1::SMS});
  // A second failure report falls back no further.
  EXPECT_FALSE(report(v1::FAILED).fell_back);
}

TEST_F(DeliveryReportTest, AReportForAnUnknownReminderIsIgnored) {
  auto effects = report(v1::DELIVERED, "rem-unknown");
  EXPECT_FALSE(effects.status_changed);
}

TEST_F(DeliveryReportTest, ALaterStageIsNotUndoneByAnOldReminderFailing) {
  ledger_.last_stage["inv-1"] = 2;  // the next stage already went out meanwhile
  EXPECT_TRUE(report(v1::UNDELIVERED).fell_back);
  EXPECT_EQ(ledger_.last_stage.at("inv-1"), 2);
}

TEST_F(DeliveryReportTest, CallOutcomesBecomeTheFactsBillingWouldSend) {
  ActionRecord call;
  call.subjects = {{"inv-1", 2}};
  call.invoice_ids = {"inv-1"};
  call.channel = v1::CALL_TASK;
  call.at = Instant{std::chrono::seconds(1'795'600'000)};
  call.contacted = true;
  call.reminder_id = "task-1";
  apply_action(ledger_, call);

  auto outcome = [&](v1::CallOutcomeRecorded::Outcome o, const std::string& promised_on = "") {
    v1::InvoiceEvent event;
    event.set_event_id("outcome");
    auto* k = event.mutable_call_outcome_recorded();
    k->set_task_id("task-1");
    k->set_outcome(o);
    k->set_promised_on(promised_on);
    apply_event(ledger_, event);
  };
  outcome(v1::CallOutcomeRecorded::REACHED);
  EXPECT_TRUE(ledger_.invoices.at("inv-1").promised_on.empty());
  outcome(v1::CallOutcomeRecorded::PROMISE_TO_PAY, "2026-12-15");
  EXPECT_EQ(ledger_.invoices.at("inv-1").promised_on, "2026-12-15");
  outcome(v1::CallOutcomeRecorded::DISPUTE);
  EXPECT_TRUE(ledger_.invoices.at("inv-1").disputed);
  outcome(v1::CallOutcomeRecorded::WRONG_NUMBER);
  EXPECT_EQ(ledger_.failed_channels, (std::set<v1::Channel>{v1::SMS, v1::WHATSAPP, v1::CALL_TASK}));
}

}  // namespace
}  // namespace relance::ledger
