#include "rules/reminder_rules.h"

#include <gtest/gtest.h>

#include <set>

#include "common/dates.h"
#include "config/config_loader.h"
#include "support/sample_events.h"

namespace relance::rules {
namespace {

namespace v1 = relance::v1;
using relance::testing::InvoiceSpec;

class ReminderRulesTest : public ::testing::Test {
 protected:
  ReminderRulesTest() : policy_(config::default_config().policy()) {}

  ledger::CustomerLedger ledger_for(const InvoiceSpec& spec) {
    auto ledger = ledger::make_in_memory_ledger();
    ledger->apply(spec.customer_id, relance::testing::invoice_issued(spec));
    return *ledger->find(spec.customer_id);
  }

  v1::PolicyConfig policy_;
  std::set<std::string> done_;
  StageDone stage_done_ = [this](const std::string& key) { return done_.count(key) > 0; };
};

TEST_F(ReminderRulesTest, NothingBeforeTheStageThenOneEmailForAMinorAmount) {
  ReminderRules rules(policy_, {v1::EMAIL});
  InvoiceSpec spec;
  spec.due_on = "2026-11-10";  // first reminder: 2026-11-13 09:00 Paris = 08:00 UTC
  auto ledger = ledger_for(spec);

  auto before = rules.plan(ledger, *parse_rfc3339("2026-11-13T07:59:00Z"), stage_done_);
  EXPECT_TRUE(before.now.empty());
  ASSERT_TRUE(before.next_at);
  EXPECT_EQ(format_rfc3339(*before.next_at), "2026-11-13T08:00:00Z");

  auto at = rules.plan(ledger, *before.next_at, stage_done_);
  ASSERT_EQ(at.now.size(), 1u);
  const auto& d = at.now[0];
  EXPECT_EQ(d.channel, v1::EMAIL);
  EXPECT_EQ(d.stage, "first_reminder");
  EXPECT_EQ(d.tier, AmountTierKind::kMinor);
  EXPECT_FALSE(d.suppressed);
  EXPECT_EQ(d.invoice_ids, std::vector<std::string>{"inv-1"});
  EXPECT_EQ(d.reminder_id, make_reminder_id(d.stage_key, v1::EMAIL));
  EXPECT_FALSE(d.explanation.empty());
  EXPECT_FALSE(at.next_at);

  done_.insert(d.stage_key);
  EXPECT_TRUE(rules.plan(ledger, *before.next_at, stage_done_).now.empty());
}

TEST_F(ReminderRulesTest, ReminderIdsAreDeterministic) {
  EXPECT_EQ(make_stage_key("c", {"b", "a"}, "s"), make_stage_key("c", {"a", "b"}, "s"));
  EXPECT_NE(make_stage_key("c", {"a"}, "s"), make_stage_key("c", {"a"}, "t"));
  auto key = make_stage_key("c", {"a"}, "s");
  EXPECT_EQ(make_reminder_id(key, v1::EMAIL), make_reminder_id(key, v1::EMAIL));
  EXPECT_NE(make_reminder_id(key, v1::EMAIL), make_reminder_id(key, v1::SMS));
  EXPECT_EQ(make_reminder_id(key, v1::EMAIL).size(), 4u + 32u);
}

TEST_F(ReminderRulesTest, PaidCancelledOrDisputedInvoicesAreNotReminded) {
  ReminderRules rules(policy_, {v1::EMAIL});
  auto now = *parse_rfc3339("2026-12-01T12:00:00Z");
  auto ledger = ledger::make_in_memory_ledger();
  InvoiceSpec spec;
  ledger->apply("cust-1", relance::testing::invoice_issued(spec));
  EXPECT_EQ(rules.plan(*ledger->find("cust-1"), now, stage_done_).now.size(), 1u);
  ledger->apply("cust-1", relance::testing::payment_received("pay-1", "inv-1", 12'000));
  EXPECT_TRUE(rules.plan(*ledger->find("cust-1"), now, stage_done_).now.empty());

  spec.invoice_id = "inv-2";
  spec.event_id = "evt-2";
  ledger->apply("cust-1", relance::testing::invoice_issued(spec));
  v1::InvoiceEvent dispute;
  dispute.set_event_id("d1");
  dispute.mutable_dispute_opened()->set_invoice_id("inv-2");
  ledger->apply("cust-1", dispute);
  EXPECT_TRUE(rules.plan(*ledger->find("cust-1"), now, stage_done_).now.empty());
}

TEST_F(ReminderRulesTest, ChannelFallsBackWhenAnAdapterOrContactIsMissing) {
  InvoiceSpec spec;
  spec.amount_due = 100'000;  // 1,000.00 EUR: the middle tier prefers SMS
  auto ledger = ledger_for(spec);
  auto now = *parse_rfc3339("2026-12-01T12:00:00Z");

  ReminderRules email_only(policy_, {v1::EMAIL});
  auto plan = email_only.plan(ledger, now, stage_done_);
  ASSERT_EQ(plan.now.size(), 1u);
  EXPECT_EQ(plan.now[0].tier, AmountTierKind::kMiddle);
  EXPECT_EQ(plan.now[0].channel, v1::EMAIL);

  ReminderRules all(policy_, {v1::EMAIL, v1::SMS});
  auto no_phone = all.plan(ledger, now, stage_done_);
  EXPECT_EQ(no_phone.now[0].channel, v1::EMAIL);  // no phone number: SMS skipped

  ledger.customer.set_email("");
  auto nothing = all.plan(ledger, now, stage_done_);
  ASSERT_EQ(nothing.now.size(), 1u);
  EXPECT_TRUE(nothing.now[0].suppressed);
  EXPECT_EQ(nothing.now[0].channel, v1::CHANNEL_UNSPECIFIED);
}

TEST_F(ReminderRulesTest, WithdrawnConsentSkipsTheChannel) {
  InvoiceSpec spec;
  auto ledger = ledger_for(spec);
  auto* consent = ledger.customer.add_consents();
  consent->set_channel(v1::EMAIL);
  consent->set_granted(false);
  ReminderRules rules(policy_, {v1::EMAIL});
  auto plan = rules.plan(ledger, *parse_rfc3339("2026-12-01T12:00:00Z"), stage_done_);
  ASSERT_EQ(plan.now.size(), 1u);
  EXPECT_TRUE(plan.now[0].suppressed);
}

}  // namespace
}  // namespace relance::rules
