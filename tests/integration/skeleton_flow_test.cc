// The walking skeleton end to end: the real gateway binary, a real Kafka broker and a real SMTP
// server (started once by the rig fixture).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "relance/v1/call_task.pb.h"
#include "relance/v1/delivery.pb.h"
#include "rules/reminder_rules.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"
#include "support/maildir.h"
#include "common/dates.h"
#include "support/sample_events.h"
#include "support/test_topics.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;

constexpr const char* kTuesdayMorning = "2026-11-24T10:00:00Z";

std::string serialize(const v1::InvoiceEvent& event) {
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

std::string to_json(const v1::InvoiceEvent& event) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(event, &json);
  return json;
}

class SkeletonFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_ = read_env_file(fs::path(RELANCE_RIG_DIR) / "rig.env");
    ASSERT_FALSE(rig_["KAFKA_BOOTSTRAP"].empty()) << "the rig is not running (rig.env missing)";
    bootstrap_ = rig_["KAFKA_BOOTSTRAP"];
    maildir_ = rig_["MAILDIR"];

    const auto& topics = topics_;
    topics.create(bootstrap_);
    suffix_ = topics.suffix;
    input_ = topics.input;
    delivery_ = topics.delivery;
    dlq_ = topics.dlq;
    outcomes_ = topics.outcomes;
    calls_ = topics.calls;
    inbound_ = topics.inbound;

    work_ = fs::temp_directory_path() / ("relance-it-" + suffix_);
    fs::create_directories(work_);
    std::ofstream(work_ / "relance.yaml") << topics.kafka_yaml()
                                          << "channels:\n"
                                          << "  email:\n"
                                          << "    smtp_url: " << rig_["SMTP_URL"] << "\n"
                                          << "    from: billing@relance.test\n"
                                          << "    from_name: Relance Billing\n"
                                          << "policy:\n"
                                          << "  company_name: Example Ltd\n"
                                          << "tenant_policies:\n"
                                          << "  acme:\n"
                                          << "    company_name: ACME Corp\n"
                                          << "    stages:\n"
                                          << "      - {name: acme_reminder, template: first_reminder, offset_days: 1, tone: courteous, "
                                             "channels: {minor: [email]}}\n"
                                          << "http:\n"
                                          << "  listen: ''\n"
                                          // A Tuesday morning in Paris: open for email whenever the tests run.
                                          << "clock:\n"
                                          << "  mode: simulated\n"
                                          << "  simulated_start: " << kTuesdayMorning << "\n"
                                          << "  speed: 1\n";
  }

  void TearDown() override {
    gateway_.reset();
    if (!HasFailure()) fs::remove_all(work_);
  }

  void start_gateway(std::map<std::string, std::string> env = {}) {
    // The broker address comes from the environment, as in a container deployment.
    env["RELANCE_KAFKA__BROKERS"] = bootstrap_;
    gateway_ = std::make_unique<GatewayProcess>(
        std::vector<std::string>{RELANCE_BINARY, "run", "--config", (work_ / "relance.yaml").string()}, env, work_,
        work_ / "gateway.log");
  }

  // Offsets are committed only at a clean stop, so a crash leaves the input to be read again;
  // a short session makes the group give a crashed member's partition away quickly.
  void commit_only_at_stop() {
    auto text = read_file(work_ / "relance.yaml");
    text.replace(text.find("commit_interval: 200ms"), 22,
                 "commit_interval: 1h\n  properties:\n    session.timeout.ms: \"6000\"");
    std::ofstream(work_ / "relance.yaml") << text;
  }

  std::string address_for(const std::string& who) { return who + "-" + suffix_ + "@customers.test"; }

  InvoiceSpec overdue_invoice(const std::string& who) {
    InvoiceSpec spec;
    spec.event_id = "evt-" + who + "-" + suffix_;
    spec.customer_id = "cust-" + who + "-" + suffix_;
    spec.invoice_id = "inv-" + who;
    spec.number = "F-2026-" + who;
    spec.email = address_for(who);
    spec.payment_link = "https://pay.example.com/" + who;
    spec.due_on = "2026-11-20";  // the first reminder (due + 3 days) is due at once
    return spec;
  }

  std::vector<ReceivedMail> wait_for_mail(const std::string& address, std::size_t count = 1) {
    std::vector<ReceivedMail> mails;
    eventually(60s, [&] {
      mails = mails_to(maildir_, address);
      return mails.size() >= count;
    });
    return mails;
  }

  std::vector<v1::DeliveryEvent> delivery_events(std::size_t at_least, std::chrono::milliseconds settle = 1s) {
    std::vector<v1::DeliveryEvent> events;
    for (const auto& r : read_topic(bootstrap_, delivery_, at_least, 60s, settle)) {
      v1::DeliveryEvent e;
      EXPECT_TRUE(e.ParseFromString(r.value));
      EXPECT_EQ(r.key, e.customer_id());
      events.push_back(e);
    }
    return events;
  }

  static std::string expected_reminder_id(const InvoiceSpec& spec) {
    // The first reminder is the default policy's second stage (index 1, after the courtesy notice).
    auto stage_key =
        rules::make_stage_key(spec.customer_id, {rules::subject_token(spec.invoice_id, 1)}, "first_reminder");
    return rules::make_reminder_id(stage_key, v1::EMAIL);
  }

  void expect_reminder_email(const InvoiceSpec& spec) {
    auto mails = wait_for_mail(spec.email);
    ASSERT_EQ(mails.size(), 1u) << gateway_->log();
    const auto& mail = mails[0];
    EXPECT_NE(mail.headers.at("to").find(spec.email), std::string::npos);
    EXPECT_NE(mail.headers.at("subject").find(spec.number), std::string::npos);
    EXPECT_NE(mail.headers.at("from").find("billing@relance.test"), std::string::npos);
    EXPECT_EQ(mail.headers.at("message-id"), "<" + expected_reminder_id(spec) + "@relance.test>");
    EXPECT_FALSE(mail.headers.at("date").empty());
    EXPECT_NE(mail.headers.at("content-type").find("multipart/alternative"), std::string::npos);
    EXPECT_NE(mail.text.find("€120.00"), std::string::npos) << mail.text;  // en-IE formatting
    EXPECT_NE(mail.text.find(spec.payment_link), std::string::npos) << mail.text;
    EXPECT_NE(mail.html.find("href=\"" + spec.payment_link + "\""), std::string::npos) << mail.html;
  }

  void expect_sent_event(const v1::DeliveryEvent& e, const InvoiceSpec& spec) {
    EXPECT_EQ(e.status(), v1::SENT);
    EXPECT_EQ(e.channel(), v1::EMAIL);
    EXPECT_EQ(e.customer_id(), spec.customer_id);
    EXPECT_EQ(e.reminder_id(), expected_reminder_id(spec));
    ASSERT_EQ(e.invoice_ids_size(), 1);
    EXPECT_EQ(e.invoice_ids(0), spec.invoice_id);
    EXPECT_EQ(e.stage(), "first_reminder");
    EXPECT_EQ(e.provider(), "smtp");
    EXPECT_EQ(e.provider_response(), "250");
    EXPECT_EQ(e.provider_message_id(), "<" + expected_reminder_id(spec) + "@relance.test>");
    EXPECT_FALSE(e.explanation().empty());
  }

  std::map<std::string, std::string> rig_;
  TestTopics topics_;
  std::string bootstrap_, suffix_, input_, delivery_, dlq_, outcomes_, calls_, inbound_;
  fs::path maildir_, work_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(SkeletonFlowTest, BinaryInvoiceIssuedBecomesOneEmailAndOneSentEvent) {
  start_gateway();
  auto spec = overdue_invoice("bin");
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(spec)));

  expect_reminder_email(spec);
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  expect_sent_event(events[0], spec);
  EXPECT_EQ(gateway_->stop(), 0) << gateway_->log();
}

TEST_F(SkeletonFlowTest, ProtobufJsonInvoiceIssuedBecomesOneEmailAndOneSentEvent) {
  start_gateway();
  auto spec = overdue_invoice("json");
  produce(bootstrap_, input_, spec.customer_id, to_json(invoice_issued(spec)), {{"content-type", "application/json"}});

  expect_reminder_email(spec);
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  expect_sent_event(events[0], spec);
}

TEST_F(SkeletonFlowTest, MalformedEventsGoToTheDeadLetterTopicAndTheNextEventIsDelivered) {
  start_gateway();
  auto no_kind = invoice_issued(overdue_invoice("nokind"));
  no_kind.clear_invoice_issued();
  auto no_id = invoice_issued(overdue_invoice("noid"));
  no_id.clear_event_id();
  auto negative_spec = overdue_invoice("negative");
  negative_spec.amount_due = -500;
  auto bad_date_spec = overdue_invoice("baddate");
  bad_date_spec.due_on = "2026-02-30";

  struct Bad {
    std::string value;
    kafka::Headers headers;
    std::string code;
  };
  std::vector<Bad> bad{
      {"\x08\x96\x01 not a protobuf \xff", {}, "undecodable"},
      {"{\"eventId\": \"x\", ", {{"content-type", "application/json"}}, "undecodable"},
      {serialize(no_kind), {}, "missing_kind"},
      {serialize(no_id), {}, "missing_event_id"},
      {serialize(invoice_issued(negative_spec)), {}, "negative_amount"},
      {to_json(invoice_issued(bad_date_spec)), {{"content-type", "application/json"}}, "invalid_date"},
  };
  for (const auto& b : bad) produce(bootstrap_, input_, "bad-key", b.value, b.headers);
  auto good = overdue_invoice("after");
  produce(bootstrap_, input_, good.customer_id, serialize(invoice_issued(good)));

  expect_reminder_email(good);
  auto dead = read_topic(bootstrap_, dlq_, bad.size(), 60s, 1s);
  ASSERT_EQ(dead.size(), bad.size());
  for (std::size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(bad[i].code);
    EXPECT_EQ(dead[i].key, "bad-key");
    EXPECT_EQ(dead[i].value, bad[i].value);  // the original bytes, untouched
    EXPECT_EQ(dead[i].header("relance-error"), bad[i].code);
    EXPECT_FALSE(dead[i].header("relance-error-message").empty());
    EXPECT_EQ(dead[i].header("relance-source-topic"), input_);
    EXPECT_EQ(dead[i].header("relance-source-partition"), "0");
    EXPECT_EQ(dead[i].header("relance-source-offset"), std::to_string(i));
    for (const auto& [name, value] : bad[i].headers) EXPECT_EQ(dead[i].header(name), value);  // kept
  }
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  expect_sent_event(events[0], good);
}

TEST_F(SkeletonFlowTest, RestartingTheGatewayDoesNotSendTheEmailASecondTime) {
  start_gateway();
  auto first = overdue_invoice("first");
  produce(bootstrap_, input_, first.customer_id, serialize(invoice_issued(first)));
  expect_reminder_email(first);
  ASSERT_EQ(gateway_->stop(), 0) << "SIGTERM must drain, commit and exit 0\n" << gateway_->log();

  start_gateway();
  auto second = overdue_invoice("second");
  produce(bootstrap_, input_, second.customer_id, serialize(invoice_issued(second)));
  // The second event sits after the first on the only partition: once it is delivered, a
  // re-read of the first would have happened already.
  expect_reminder_email(second);
  EXPECT_EQ(mails_to(maildir_, first.email).size(), 1u);
  auto events = delivery_events(2);
  ASSERT_EQ(events.size(), 2u);
  expect_sent_event(events[0], first);
  expect_sent_event(events[1], second);
  EXPECT_EQ(gateway_->stop(), 0) << gateway_->log();
}

TEST_F(SkeletonFlowTest, ACrashAfterSendingBeforeTheCommitDoesNotSendTheEmailAgain) {
  // Offsets are committed only at a clean stop here, so the crash leaves the event to be read
  // again; the store's outbox remembers that its reminder already went out.
  commit_only_at_stop();
  start_gateway();
  auto spec = overdue_invoice("crash");
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(spec)));
  expect_reminder_email(spec);
  gateway_->crash();

  start_gateway();
  auto next = overdue_invoice("next");
  produce(bootstrap_, input_, next.customer_id, serialize(invoice_issued(next)));
  // Behind the first event on the only partition: once it is mailed, the re-read is done.
  expect_reminder_email(next);
  EXPECT_EQ(mails_to(maildir_, spec.email).size(), 1u) << gateway_->log();
  // The first event's delivery event may have died with the process; it is published again on
  // the re-read, with the same id. A crash after its acknowledgement and before the changelog's
  // of the settled state leaves the reminder marked "sending": it is also reported as
  // interrupted (README, Guarantees). Either way, one mail.
  std::set<std::string> sent_ids;
  for (const auto& e : delivery_events(2, 3s)) {
    if (e.status() == v1::SENT) {
      sent_ids.insert(e.event_id());
      continue;
    }
    EXPECT_EQ(e.status(), v1::OUTCOME_UNKNOWN);
    EXPECT_EQ(e.error_code(), "interrupted");
    EXPECT_EQ(e.reminder_id(), expected_reminder_id(spec));
  }
  EXPECT_EQ(sent_ids.size(), 2u);
  EXPECT_EQ(gateway_->stop(), 0) << gateway_->log();
}

TEST_F(SkeletonFlowTest, ACrashWhileTheDeliveryEventIsUnacknowledgedStillPublishesOneAfterTheRestart) {
  // The delivery topic stops taking records, so the mail goes out and its delivery event waits
  // in the producer. The changelog must not say the reminder was settled meanwhile: after the
  // crash the input is read again as already applied, and nothing would ever publish that
  // reminder's delivery event. A single real broker cannot refuse one topic alone (it caps
  // min.insync.replicas at the replication factor), so this runs on librdkafka's mock cluster,
  // whose partition without a leader is the fault.
  kafka::EmbeddedCluster cluster;
  for (const auto& topic : {topics_.input, topics_.delivery, topics_.dlq, topics_.outcomes, topics_.calls,
                            topics_.inbound, topics_.changelog}) {
    cluster.create_topic(topic, 1);
  }
  bootstrap_ = cluster.bootstrap_servers();
  commit_only_at_stop();
  cluster.set_leader(delivery_, 0, -1);
  start_gateway();
  auto spec = overdue_invoice("unacknowledged");
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(spec)));
  expect_reminder_email(spec);
  // Several loop turns: long enough for the settled state to reach the changelog were it not
  // held back behind its delivery event.
  std::this_thread::sleep_for(5s);
  gateway_->crash();

  cluster.set_leader(delivery_, 0, 1);
  start_gateway();
  auto events = delivery_events(1, 3s);
  ASSERT_EQ(events.size(), 1u) << gateway_->log();
  EXPECT_EQ(events[0].reminder_id(), expected_reminder_id(spec));
  // SMTP cannot be asked whether the mail left before the crash: reported, never sent again.
  EXPECT_EQ(events[0].status(), v1::OUTCOME_UNKNOWN);
  EXPECT_EQ(events[0].error_code(), "interrupted");
  EXPECT_EQ(mails_to(maildir_, spec.email).size(), 1u);
  EXPECT_EQ(gateway_->stop(), 0) << gateway_->log();
}

TEST_F(SkeletonFlowTest, PaymentAfterAReminderBringsAThankYouAndAnOutcomeForAnalytics) {
  start_gateway();
  auto spec = overdue_invoice("paid");
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(spec)));
  expect_reminder_email(spec);

  auto payment = payment_received("pay-" + suffix_, spec.invoice_id, spec.amount_due);
  payment.mutable_payment_received()->mutable_paid_at()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(parse_rfc3339(kTuesdayMorning)->time_since_epoch()).count() + 300);
  produce(bootstrap_, input_, spec.customer_id, serialize(payment));

  auto mails = wait_for_mail(spec.email, 2);
  ASSERT_EQ(mails.size(), 2u) << gateway_->log();
  auto thanks = std::find_if(mails.begin(), mails.end(),
                             [](const ReceivedMail& m) { return m.headers.at("subject").find("Thank you") == 0; });
  ASSERT_NE(thanks, mails.end());
  EXPECT_NE(thanks->text.find(spec.number), std::string::npos) << thanks->text;

  auto events = delivery_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].stage(), "thank_you");
  EXPECT_EQ(events[1].status(), v1::SENT);
  EXPECT_EQ(events[1].channel(), v1::EMAIL);

  auto records = read_topic(bootstrap_, outcomes_, 1, 60s, 1s);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].key, spec.customer_id);
  v1::ReminderOutcome outcome;
  ASSERT_TRUE(outcome.ParseFromString(records[0].value));
  EXPECT_EQ(outcome.resolution(), v1::ReminderOutcome::PAID);
  EXPECT_EQ(outcome.invoice_id(), spec.invoice_id);
  EXPECT_EQ(outcome.reminders_sent(), 1);
  EXPECT_EQ(outcome.last_stage(), "first_reminder");
  EXPECT_EQ(outcome.last_channel(), v1::EMAIL);
  EXPECT_EQ(outcome.last_template(), "first_reminder");
  EXPECT_EQ(outcome.days_from_first_reminder(), 0);
  EXPECT_EQ(outcome.event_id(), spec.invoice_id + "/paid");
}

TEST_F(SkeletonFlowTest, ATenantsEventsFollowThatTenantsPolicy) {
  start_gateway();
  auto spec = overdue_invoice("tenant");
  auto event = invoice_issued(spec);
  event.set_tenant_id("acme");
  produce(bootstrap_, input_, spec.customer_id, serialize(event));
  auto mails = wait_for_mail(spec.email);
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  EXPECT_NE(mails[0].text.find("ACME Corp"), std::string::npos) << mails[0].text;
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].stage(), "acme_reminder");
  EXPECT_EQ(events[0].tenant_id(), "acme");
}

TEST_F(SkeletonFlowTest, AFrenchEmailCarriesOneClickUnsubscribeAndThePostStopsEmail) {
  auto port = free_port();
  auto public_url = "http://127.0.0.1:" + std::to_string(port);
  start_gateway({{"RELANCE_HTTP__LISTEN", "127.0.0.1:" + std::to_string(port)},
                 {"RELANCE_HTTP__PUBLIC_URL", public_url},
                 {"RELANCE_HTTP__LINK_SECRET_ENV", "RELANCE_TEST_LINK_SECRET"},
                 {"RELANCE_TEST_LINK_SECRET", "a-test-secret-of-enough-length"},
                 // A second message the same day must not wait for the contact cap here.
                 {"RELANCE_POLICY__CONTACT_CAP__PER_DAY", "0"},
                 {"RELANCE_POLICY__CONTACT_CAP__PER_7_DAYS", "0"}});
  auto spec = overdue_invoice("fr");
  spec.locale = "fr-FR";
  spec.name = "Hélène Dupré";
  spec.due_on = "2026-11-27";  // the courtesy notice (due − 3 days) is due on the simulated Tuesday
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(spec)));

  auto mails = wait_for_mail(spec.email);
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  const auto& mail = mails[0];
  EXPECT_EQ(decode_header_words(mail.headers.at("subject")), "Échéance prochaine : facture " + spec.number);
  EXPECT_NE(decode_header_words(mail.headers.at("to")).find("Hélène Dupré"), std::string::npos);
  EXPECT_FALSE(mail.headers.at("message-id").empty());
  for (const auto* part : {&mail.text, &mail.html}) {
    EXPECT_NE(part->find("120,00"), std::string::npos) << *part;
    EXPECT_NE(part->find("€"), std::string::npos) << *part;
    EXPECT_NE(part->find("27 novembre 2026"), std::string::npos) << *part;
    EXPECT_NE(part->find(spec.payment_link), std::string::npos) << *part;
  }
  EXPECT_EQ(mail.headers.at("list-unsubscribe-post"), "List-Unsubscribe=One-Click");
  auto link = mail.headers.at("list-unsubscribe");
  ASSERT_EQ(link.rfind("<" + public_url + "/v1/unsubscribe/", 0), 0u) << link;
  auto path = link.substr(1 + public_url.size(), link.size() - 2 - public_url.size());

  httplib::Client http("127.0.0.1", port);
  // A GET (what link scanners do) shows a button and records nothing.
  auto page = http.Get(path.c_str());
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("method=post"), std::string::npos);
  auto forged = http.Post((path.substr(0, path.size() - 4) + "AAAA").c_str(), "List-Unsubscribe=One-Click",
                          "application/x-www-form-urlencoded");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 404);
  auto post = http.Post(path.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);  // no redirect

  // A later reminder for that customer skips email; the courtesy notice has no other channel.
  auto second = spec;
  second.event_id += "-2";
  second.invoice_id += "-2";
  second.number += "-2";
  produce(bootstrap_, input_, spec.customer_id, serialize(invoice_issued(second)));
  auto events = delivery_events(2);
  ASSERT_EQ(events.size(), 2u) << gateway_->log();
  EXPECT_EQ(events[0].status(), v1::SENT);
  EXPECT_EQ(events[1].status(), v1::SUPPRESSED);
  std::string why;
  for (const auto& line : events[1].explanation()) why += line + "\n";
  EXPECT_NE(why.find("EMAIL skipped: opted out by the customer"), std::string::npos) << why;
  EXPECT_EQ(mails_to(maildir_, spec.email).size(), 1u);
  // One opt-out fact on the input topic: the GET and the forged link added nothing.
  auto input = read_topic(bootstrap_, input_, 3, 30s, 1s);
  EXPECT_EQ(input.size(), 3u);
}

TEST_F(SkeletonFlowTest, ALargeAmountBecomesACallTaskWithTheEmailAlongside) {
  start_gateway();
  auto spec = overdue_invoice("large");
  spec.amount_due = 720'000;  // 7,200.00 EUR: the large tier
  auto event = invoice_issued(spec);
  event.mutable_invoice_issued()->mutable_customer()->set_phone("+33612345678");
  event.mutable_invoice_issued()->mutable_customer()->set_country("FR");
  produce(bootstrap_, input_, spec.customer_id, serialize(event));

  auto records = read_topic(bootstrap_, calls_, 1, 60s, 1s);
  ASSERT_EQ(records.size(), 1u) << gateway_->log();
  EXPECT_EQ(records[0].key, spec.customer_id);
  v1::CallTask task;
  ASSERT_TRUE(task.ParseFromString(records[0].value));
  EXPECT_EQ(task.customer().phone(), "+33612345678");
  EXPECT_EQ(task.stage(), "first_reminder");
  ASSERT_EQ(task.invoices_size(), 1);
  EXPECT_EQ(task.invoices(0).number(), spec.number);
  EXPECT_EQ(task.total_due().minor_units(), 720'000);
  EXPECT_EQ(task.priority(), v1::CallTask::HIGH);
  EXPECT_GT(task.talking_points_size(), 0);
  EXPECT_FALSE(task.history_summary().empty());

  auto mails = wait_for_mail(spec.email);
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  auto events = delivery_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].channel(), v1::CALL_TASK);
  EXPECT_EQ(events[0].provider(), "kafka");
  EXPECT_EQ(events[0].status(), v1::SENT);
  EXPECT_EQ(events[1].channel(), v1::EMAIL);
  EXPECT_EQ(events[1].status(), v1::SENT);
}

}  // namespace
}  // namespace relance::testing
