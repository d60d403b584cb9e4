// What support reads over HTTP on the real broker: a customer's timeline (GET
// /v1/customers/{id}/timeline) and the instance's readiness (GET /readyz).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <fstream>
#include <optional>

#include "relance/v1/timeline.pb.h"
#include "support/admin_client.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"
#include "support/maildir.h"
#include "support/sample_events.h"
#include "support/test_topics.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "timeline-admin-token";

std::string serialize(const v1::InvoiceEvent& event) {
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

class TimelineApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_ = read_env_file(fs::path(RELANCE_RIG_DIR) / "rig.env");
    ASSERT_FALSE(rig_["KAFKA_BOOTSTRAP"].empty()) << "the rig is not running (rig.env missing)";
    bootstrap_ = rig_["KAFKA_BOOTSTRAP"];
    topics_.create(bootstrap_);
    http_port_ = free_port();
    work_ = fs::temp_directory_path() / ("relance-timeline-" + topics_.suffix);
    fs::create_directories(work_);
    std::ofstream(work_ / "relance.yaml") << topics_.kafka_yaml() << "channels:\n"
                                          << "  email:\n"
                                          << "    smtp_url: " << rig_["SMTP_URL"] << "\n"
                                          << "    from: billing@relance.test\n"
                                          << "http:\n"
                                          << "  listen: 127.0.0.1:" << http_port_ << "\n"
                                          << "  admin_token_env: RELANCE_TEST_ADMIN_TOKEN\n"
                                          // A Tuesday morning in Paris: email goes out at once.
                                          << "clock:\n"
                                          << "  mode: simulated\n"
                                          << "  simulated_start: 2026-11-24T10:00:00Z\n"
                                          << "  speed: 1\n";
  }

  void TearDown() override {
    gateway_.reset();
    if (!HasFailure()) fs::remove_all(work_);
  }

  void start_gateway() {
    gateway_ = std::make_unique<GatewayProcess>(
        std::vector<std::string>{RELANCE_BINARY, "run", "--config", (work_ / "relance.yaml").string()},
        std::map<std::string, std::string>{{"RELANCE_KAFKA__BROKERS", bootstrap_},
                                           {"RELANCE_TEST_ADMIN_TOKEN", kAdminToken}},
        work_, work_ / "gateway.log");
  }

  InvoiceSpec overdue_invoice(const std::string& who) {
    InvoiceSpec spec;
    spec.event_id = "evt-" + who + "-" + topics_.suffix;
    spec.customer_id = "cust-" + who + "-" + topics_.suffix;
    spec.invoice_id = "inv-" + who;
    spec.number = "F-2026-" + who;
    spec.email = who + "-" + topics_.suffix + "@customers.test";
    spec.due_on = "2026-11-20";  // the first reminder (due + 3 days) is due at once
    return spec;
  }

  HttpAnswer get_timeline(const std::string& key, const std::string& authorization) const {
    httplib::Client client("127.0.0.1", http_port_);
    client.set_read_timeout(10, 0);
    httplib::Headers headers;
    if (!authorization.empty()) headers.emplace("Authorization", authorization);
    auto res = client.Get(("/v1/customers/" + key + "/timeline").c_str(), headers);
    if (!res) return {};
    return {res->status, res->body};
  }

  v1::CustomerTimeline timeline(const std::string& key) const {
    auto answer = get_timeline(key, std::string("Bearer ") + kAdminToken);
    EXPECT_EQ(answer.status, 200) << answer.body;
    v1::CustomerTimeline out;
    auto status = google::protobuf::util::JsonStringToMessage(answer.body, &out);
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << answer.body;
    return out;
  }

  std::string log_tail() const { return gateway_ ? read_file(work_ / "gateway.log") : std::string(); }

  std::map<std::string, std::string> rig_;
  std::string bootstrap_;
  TestTopics topics_;
  int http_port_ = 0;
  fs::path work_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(TimelineApiTest, ShowsInvoicesMessagesStatusesAndTheNextActionWithItsReasons) {
  start_gateway();
  AdminClient admin(http_port_, kAdminToken);
  ASSERT_TRUE(admin.wait_ready(60s)) << log_tail();

  auto spec = overdue_invoice("tl");
  produce(bootstrap_, topics_.input, spec.customer_id, serialize(invoice_issued(spec)));
  ASSERT_TRUE(eventually(60s, [&] { return !mails_to(rig_["MAILDIR"], spec.email).empty(); })) << log_tail();

  // Staff only: no token, a wrong token.
  EXPECT_EQ(get_timeline(spec.customer_id, "").status, 401);
  EXPECT_EQ(get_timeline(spec.customer_id, "Bearer not-the-token").status, 401);
  auto unknown = get_timeline("cust-nobody-" + topics_.suffix, std::string("Bearer ") + kAdminToken);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("unknown_timeline"), std::string::npos) << unknown.body;

  v1::CustomerTimeline t;
  // The send settles on the gateway's thread after the mail is in the server's hands.
  ASSERT_TRUE(eventually(30s, [&] {
    t = timeline(spec.customer_id);
    return t.messages_size() == 1;
  })) << t.DebugString();
  EXPECT_EQ(t.key(), spec.customer_id);
  EXPECT_EQ(t.customer().email(), spec.email);
  ASSERT_EQ(t.invoices_size(), 1);
  EXPECT_EQ(t.invoices(0).invoice_id(), spec.invoice_id);
  EXPECT_EQ(t.invoices(0).status(), v1::TimelineInvoice::OPEN);
  EXPECT_EQ(t.invoices(0).reminders_sent(), 1);
  EXPECT_EQ(t.invoices(0).last_channel(), v1::EMAIL);
  EXPECT_EQ(t.invoices(0).late_since(), "2026-11-20");
  const auto& message = t.messages(0);
  EXPECT_EQ(message.channel(), v1::EMAIL);
  EXPECT_EQ(message.stage(), "first_reminder");
  EXPECT_EQ(message.status(), v1::SENT);
  EXPECT_FALSE(message.reminder_id().empty());
  // The written trail: why, and what the customer received.
  EXPECT_FALSE(message.explanation().empty());
  EXPECT_FALSE(message.subject().empty());
  EXPECT_NE(message.text().find(spec.number), std::string::npos) << message.text();
  EXPECT_FALSE(t.next_action_at().empty());
  // What comes next if nothing happens: the later stages, each with its reasons.
  ASSERT_GE(t.upcoming_size(), 1) << t.DebugString();
  EXPECT_EQ(t.upcoming(0).stage(), "second_reminder");
  EXPECT_EQ(t.upcoming(0).kind(), v1::PlannedAction::REMINDER);
  EXPECT_FALSE(t.upcoming(0).explanation().empty());
  EXPECT_LT(t.as_of(), t.upcoming(0).at());

  // A payment stops every reminder at once: the timeline shows it paid and nothing to chase.
  produce(bootstrap_, topics_.input, spec.customer_id,
          serialize(payment_received("pay-tl-" + topics_.suffix, spec.invoice_id, spec.amount_due)));
  ASSERT_TRUE(eventually(30s, [&] {
    t = timeline(spec.customer_id);
    return t.invoices_size() == 1 && t.invoices(0).status() == v1::TimelineInvoice::PAID;
  })) << t.DebugString();
  for (const auto& action : t.upcoming()) EXPECT_NE(action.kind(), v1::PlannedAction::REMINDER) << action.DebugString();
}

// Every labelled metric of the email path moves on a real flow: a rejected record, a decision, a
// send and its latency, the outbox's writes, the lag gauge.
TEST_F(TimelineApiTest, MetricsMoveOnARealFlow) {
  start_gateway();
  AdminClient admin(http_port_, kAdminToken);
  ASSERT_TRUE(admin.wait_ready(60s)) << log_tail();
  produce(bootstrap_, topics_.input, "cust-broken-" + topics_.suffix, "not an event");
  auto spec = overdue_invoice("metrics");
  produce(bootstrap_, topics_.input, spec.customer_id, serialize(invoice_issued(spec)));
  ASSERT_TRUE(eventually(60s, [&] { return !mails_to(rig_["MAILDIR"], spec.email).empty(); })) << log_tail();

  auto moved = [&](const std::string& prefix) { return eventually(10s, [&] { return admin.metric_sum(prefix) >= 1; }); };
  EXPECT_TRUE(moved("relance_events_rejected_total{reason=\""));
  EXPECT_TRUE(moved(R"(relance_decisions_total{kind="reminder",stage="first_reminder",channel="EMAIL",tone=")"));
  EXPECT_TRUE(moved(R"(relance_sends_total{channel="EMAIL",provider="smtp",result="accepted"})"));
  EXPECT_TRUE(moved(R"(relance_provider_latency_seconds_count{channel="EMAIL",provider="smtp"})"));
  EXPECT_TRUE(moved(R"(relance_provider_latency_seconds_bucket{channel="EMAIL",provider="smtp",le="+Inf"})"));
  EXPECT_TRUE(moved(R"(relance_send_wait_seconds_count{channel="EMAIL",provider="smtp"})"));
  EXPECT_TRUE(moved(R"(relance_outbox_records_total{state="accepted"})"));
  EXPECT_TRUE(moved("relance_records_consumed_total"));
  // Two records read, none left: the gauge exists for the owned partition and reads 0.
  EXPECT_TRUE(eventually(10s, [&] { return admin.metric(R"(relance_consumer_lag{partition="0"})").has_value(); }));
  EXPECT_EQ(admin.metric(R"(relance_consumer_lag{partition="0"})").value_or(-1), 0);
}

// Timelines that fell due while the partition caught up wait in the schedule and leave at the
// catch-up pace: the scheduler's backlog gauge rises, then drains to zero as the mails go out.
TEST_F(TimelineApiTest, TheSchedulerBacklogGaugeRisesAndDrains) {
  std::ofstream(work_ / "relance.yaml", std::ios::app) << "scheduler:\n  catch_up:\n    max_per_second: 2\n";
  std::vector<InvoiceSpec> specs;
  for (int i = 0; i < 10; ++i) {
    specs.push_back(overdue_invoice("backlog" + std::to_string(i)));
    produce(bootstrap_, topics_.input, specs.back().customer_id, serialize(invoice_issued(specs.back())));
  }
  start_gateway();
  AdminClient admin(http_port_, kAdminToken);
  double highest = 0;
  EXPECT_TRUE(eventually(60s, [&] {
    highest = std::max(highest, admin.metric("relance_scheduled_timelines").value_or(0));
    return highest >= 3;
  })) << "highest backlog seen: " << highest << "\n" << log_tail();
  for (const auto& spec : specs) {
    EXPECT_TRUE(eventually(60s, [&] { return !mails_to(rig_["MAILDIR"], spec.email).empty(); })) << spec.email;
  }
  EXPECT_TRUE(eventually(10s, [&] { return admin.metric("relance_scheduled_timelines") == 0.0; }));
  EXPECT_GT(admin.metric("relance_store_bytes").value_or(0), 0);
}

// The lag gauge's source on the real broker: log end offset from the last fetch minus the
// consumer's position.
TEST_F(TimelineApiTest, ConsumerLagCountsTheRecordsNotReadYet) {
  for (int i = 0; i < 50; ++i) produce(bootstrap_, topics_.input, "k", "v" + std::to_string(i));
  kafka::Consumer consumer({{"bootstrap.servers", bootstrap_}, {"group.id", "lag-" + topics_.suffix}}, {});
  consumer.subscribe({topics_.input});
  std::optional<kafka::Record> first;
  ASSERT_TRUE(eventually(30s, [&] {
    first = consumer.poll(100ms);
    return first.has_value();
  }));
  std::optional<int64_t> lag;
  ASSERT_TRUE(eventually(10s, [&] {
    lag = consumer.lag(topics_.input, first->partition());
    return lag.has_value();
  }));
  EXPECT_EQ(*lag, 49);
  int read = 1;
  ASSERT_TRUE(eventually(30s, [&] {
    while (consumer.poll(50ms)) ++read;
    return read == 50;
  })) << read << " of 50 read";
  EXPECT_EQ(consumer.lag(topics_.input, first->partition()), 0);
}

// Readiness waits for the group's assignment and the catch-up of the input; every refusal says
// what it waits for, and once ready the events published before the start are acted on.
TEST_F(TimelineApiTest, ReadyOnlyOnceAssignedAndCaughtUp) {
  auto spec = overdue_invoice("ready");
  for (int i = 0; i < 50; ++i) {
    auto other = overdue_invoice("ready-" + std::to_string(i));
    produce(bootstrap_, topics_.input, other.customer_id, serialize(invoice_issued(other)));
  }
  produce(bootstrap_, topics_.input, spec.customer_id, serialize(invoice_issued(spec)));

  start_gateway();
  AdminClient admin(http_port_, kAdminToken);
  std::vector<HttpAnswer> answers;
  bool ready = eventually(60s, [&] {
    auto answer = admin.readiness();
    if (answer.status != 0) answers.push_back(answer);
    return answer.status == 200;
  });
  ASSERT_TRUE(ready) << (answers.empty() ? std::string("no answer") : answers.back().body) << "\n" << log_tail();
  for (const auto& answer : answers) {
    if (answer.status == 200) continue;
    EXPECT_EQ(answer.status, 503);
    EXPECT_EQ(answer.body.rfind("not ready: ", 0), 0U) << answer.body;
  }
  EXPECT_EQ(answers.back().body, "ready\n");
  EXPECT_TRUE(eventually(60s, [&] { return !mails_to(rig_["MAILDIR"], spec.email).empty(); })) << log_tail();
}

}  // namespace
}  // namespace relance::testing
