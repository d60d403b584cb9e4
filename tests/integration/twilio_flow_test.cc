// SMS and WhatsApp end to end: the real gateway binary and a real Kafka broker, with the fake
// Twilio provider in front (scripted failures, signed callbacks, inbound messages) relaying every
// request to Prism serving Twilio's official OpenAPI description.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "relance/v1/call_task.pb.h"
#include "relance/v1/delivery.pb.h"
#include "support/fake_twilio.h"
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

constexpr const char* kTuesdayMorning = "2026-11-24T10:00:00Z";
constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kAuthToken = "twilio-test-auth-token-0123456789";
constexpr const char* kAdminToken = "admin-token-for-support-0123456789";
constexpr const char* kWebhookSecret = "call-task-webhook-secret-0123456789";
constexpr const char* kSmsFrom = "+15005550006";
constexpr const char* kWhatsAppFrom = "+15005550007";
constexpr const char* kContentSid = "HX0123456789abcdef0123456789abcdef";

std::string form_value(const FormFields& form, const std::string& name) {
  for (const auto& [k, v] : form) {
    if (k == name) return v;
  }
  return {};
}

std::string hmac_sha256_hex(const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// A mobile number libphonenumber accepts for France, unique per index.
std::string french_mobile(int index) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "+336%08d", 10'000'000 + index);
  return buffer;
}

struct Customer {
  InvoiceSpec spec;
  std::string phone;
  std::string whatsapp;
  std::vector<v1::Channel> consents{v1::SMS, v1::WHATSAPP};
};

std::string issued(const Customer& c) {
  auto event = invoice_issued(c.spec);
  auto* customer = event.mutable_invoice_issued()->mutable_customer();
  customer->set_phone(c.phone);
  customer->set_whatsapp(c.whatsapp);
  customer->set_country("FR");
  for (auto channel : c.consents) {
    auto* consent = customer->add_consents();
    consent->set_channel(channel);
    consent->set_granted(true);
  }
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

class TwilioFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_ = read_env_file(fs::path(RELANCE_RIG_DIR) / "rig.env");
    ASSERT_FALSE(rig_["KAFKA_BOOTSTRAP"].empty()) << "the rig is not running (rig.env missing)";
    ASSERT_FALSE(rig_["PRISM_URL"].empty()) << "the rig has no Prism";
    bootstrap_ = rig_["KAFKA_BOOTSTRAP"];
    maildir_ = rig_["MAILDIR"];
    topics_.create(bootstrap_);
    suffix_ = topics_.suffix;
    input_ = topics_.input;
    delivery_ = topics_.delivery;
    calls_ = topics_.calls;
    inbound_ = topics_.inbound;
    provider_ = std::make_unique<FakeTwilio>(kAccountSid, kAuthToken, rig_["PRISM_URL"]);
    work_ = fs::temp_directory_path() / ("relance-twilio-" + suffix_);
    fs::create_directories(work_);
    http_port_ = free_port();
  }

  void TearDown() override {
    gateway_.reset();
    // Every request the gateway made to the provider also satisfies Twilio's published contract.
    if (provider_ && relayed_to_prism_) {
      for (const auto& r : provider_->requests()) {
        if (r.path.find("/Messages.json") == std::string::npos) continue;
        EXPECT_EQ(r.prism_status, r.method == "POST" ? 201 : 200)
            << r.method << " " << r.path << "?" << r.query << " was refused by the contract: " << r.prism_body;
      }
    }
    if (!HasFailure()) fs::remove_all(work_);
  }

  std::string public_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }

  // `stages` is YAML for policy.stages; `extra` is appended to the file as it is.
  void write_config(const std::string& stages, const std::string& twilio_extra = "", const std::string& extra = "",
                    double clock_speed = 1) {
    std::ofstream(work_ / "relance.yaml")
        << topics_.kafka_yaml()
        << "channels:\n"
        << "  email:\n"
        << "    smtp_url: " << rig_["SMTP_URL"] << "\n"
        << "    from: billing@relance.test\n"
        << "  twilio:\n"
        << "    base_url: " << provider_->base_url() << "\n"
        << "    account_sid: " << kAccountSid << "\n"
        << "    auth_token_env: RELANCE_TEST_TWILIO_TOKEN\n"
        << twilio_extra << "policy:\n"
        << "  company_name: Example Ltd\n"
        << "  stages:\n"
        << stages << "  messages:\n"
        << "    whatsapp_templates:\n"
        << "      - {locale: en, template: first_reminder, content_sid: " << kContentSid
        << ", variables: [customer_name, invoice_number, payment_link]}\n"
        << "http:\n"
        << "  listen: 127.0.0.1:" << http_port_ << "\n"
        << "  public_url: " << public_url() << "\n"
        << "  admin_token_env: RELANCE_TEST_ADMIN_TOKEN\n"
        << extra << "clock:\n"
        << "  mode: simulated\n"
        << "  simulated_start: " << kTuesdayMorning << "\n"
        << "  speed: " << clock_speed << "\n";
  }

  void start_gateway() {
    std::map<std::string, std::string> env{{"RELANCE_KAFKA__BROKERS", bootstrap_},
                                           {"RELANCE_TEST_TWILIO_TOKEN", kAuthToken},
                                           {"RELANCE_TEST_ADMIN_TOKEN", kAdminToken},
                                           {"RELANCE_TEST_WEBHOOK_SECRET", kWebhookSecret}};
    gateway_ = std::make_unique<GatewayProcess>(
        std::vector<std::string>{RELANCE_BINARY, "run", "--config", (work_ / "relance.yaml").string()}, env, work_,
        work_ / "gateway.log");
    eventually(30s, [&] {
      httplib::Client client("127.0.0.1", http_port_);
      auto res = client.Get("/readyz");
      return res && res->status == 200;
    });
  }

  Customer customer(const std::string& who, int index, int64_t amount = 12'000) {
    Customer c;
    c.spec.event_id = "evt-" + who + "-" + suffix_;
    c.spec.customer_id = "cust-" + who + "-" + suffix_;
    c.spec.invoice_id = "inv-" + who;
    c.spec.number = "F-2026-" + who;
    c.spec.email = who + "-" + suffix_ + "@customers.test";
    c.spec.payment_link = "https://pay.example.com/" + who;
    c.spec.due_on = "2026-11-20";
    c.spec.amount_due = amount;
    c.phone = french_mobile(index);
    return c;
  }

  void issue(const Customer& c) { produce(bootstrap_, input_, c.spec.customer_id, issued(c)); }

  // Creates of messages at the provider, to this number (whatsapp: included for WhatsApp).
  std::vector<FakeRequest> creates_to(const std::string& to) const {
    std::vector<FakeRequest> out;
    for (auto& r : provider_->requests()) {
      if (r.method == "POST" && form_value(r.form, "To") == to) out.push_back(r);
    }
    return out;
  }

  std::vector<FakeMessage> messages_to(const std::string& to) const {
    std::vector<FakeMessage> out;
    for (auto& m : provider_->messages()) {
      if (m.to == to) out.push_back(m);
    }
    return out;
  }

  std::vector<FakeMessage> wait_for_messages(const std::string& to, std::size_t count, std::chrono::seconds timeout = 60s) {
    std::vector<FakeMessage> found;
    eventually(timeout, [&] {
      found = messages_to(to);
      return found.size() >= count;
    });
    return found;
  }

  std::vector<v1::DeliveryEvent> delivery_events(std::size_t at_least, std::chrono::milliseconds settle = 2s) {
    std::vector<v1::DeliveryEvent> events;
    for (const auto& r : read_topic(bootstrap_, delivery_, at_least, 60s, settle)) {
      v1::DeliveryEvent e;
      EXPECT_TRUE(e.ParseFromString(r.value));
      events.push_back(e);
    }
    return events;
  }

  static std::vector<v1::DeliveryEvent> of_status(const std::vector<v1::DeliveryEvent>& events, v1::DeliveryStatus s) {
    std::vector<v1::DeliveryEvent> out;
    for (const auto& e : events) {
      if (e.status() == s) out.push_back(e);
    }
    return out;
  }

  std::map<std::string, std::string> rig_;
  TestTopics topics_;
  std::string bootstrap_, suffix_, input_, delivery_, calls_, inbound_;
  fs::path maildir_, work_;
  int http_port_ = 0;
  std::unique_ptr<FakeTwilio> provider_;
  bool relayed_to_prism_ = true;
  std::unique_ptr<GatewayProcess> gateway_;
};

const std::string kSmsThenEmail =
    "    - {name: first_reminder, offset_days: 1, tone: courteous, channels: {minor: [sms, email], middle: [sms, email], "
    "large: [sms, email]}}\n";
const std::string kWhatsAppSmsEmail =
    "    - {name: first_reminder, offset_days: 1, tone: courteous, channels: {minor: [whatsapp, sms, email], "
    "middle: [whatsapp, sms, email], large: [whatsapp, sms, email]}}\n";

TEST_F(TwilioFlowTest, AnSmsReminderGoesThroughTheProviderAndItsDeliveryReportsAreRecordedOnce) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n");
  start_gateway();
  auto c = customer("sms", 1);
  issue(c);

  auto messages = wait_for_messages(c.phone, 1);
  ASSERT_EQ(messages.size(), 1u) << gateway_->log();
  const auto& m = messages[0];
  EXPECT_EQ(m.from, kSmsFrom);
  EXPECT_NE(m.body.find(c.spec.payment_link), std::string::npos) << m.body;
  EXPECT_EQ(m.status_callback.rfind(public_url() + "/v1/providers/twilio/status?", 0), 0u) << m.status_callback;
  auto sent = delivery_events(1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].status(), v1::SENT);
  EXPECT_EQ(sent[0].channel(), v1::SMS);
  EXPECT_EQ(sent[0].provider(), "twilio");
  EXPECT_EQ(sent[0].provider_message_id(), m.sid);
  EXPECT_EQ(sent[0].provider_response(), "201");

  // A forged report is refused and changes nothing; genuine ones are recorded once, in order,
  // and a late "sent" never moves a delivered message back.
  EXPECT_EQ(provider_->post_forged(m.status_callback, {{"MessageSid", m.sid}, {"MessageStatus", "undelivered"}}, true),
            403);
  EXPECT_EQ(provider_->post_forged(m.status_callback, {{"MessageSid", m.sid}, {"MessageStatus", "undelivered"}}, false),
            403);
  EXPECT_EQ(provider_->post_status(m.status_callback, m.sid, "delivered", "", {{"SomeNewParameter", "x"}}), 200);
  EXPECT_EQ(provider_->post_status(m.status_callback, m.sid, "delivered"), 200);
  EXPECT_EQ(provider_->post_status(m.status_callback, m.sid, "sent"), 200);
  auto events = delivery_events(2, 3s);
  ASSERT_EQ(events.size(), 2u) << gateway_->log();
  EXPECT_EQ(events[1].status(), v1::DELIVERED);
  EXPECT_EQ(events[1].reminder_id(), sent[0].reminder_id());
  EXPECT_EQ(events[1].provider_message_id(), m.sid);
  EXPECT_EQ(creates_to(c.phone).size(), 1u);
  EXPECT_TRUE(mails_to(maildir_, c.spec.email).empty());
  // One DELIVERED report moved the reminder forward (the repeat and the late "sent" did not), and
  // the provider's answer time was measured.
  AdminClient admin(http_port_, kAdminToken);
  EXPECT_EQ(admin.metric_sum(R"(relance_delivery_statuses_total{channel="SMS",status="DELIVERED"})"), 1);
  EXPECT_EQ(admin.metric_sum(R"(relance_sends_total{channel="SMS",provider="twilio",result="accepted"})"), 1);
  EXPECT_EQ(admin.metric_sum(R"(relance_provider_latency_seconds_count{channel="SMS",provider="twilio"})"), 1);
  EXPECT_GE(admin.metric_sum(R"(relance_callbacks_rejected_total)"), 2);
}

TEST_F(TwilioFlowTest, AnOutageOfThrottlingThenServerErrorsLosesNothingAndSendsNothingTwice) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n");
  FakeResponse throttled;
  throttled.status = 429;
  throttled.twilio_code = 20429;
  throttled.headers = {{"Retry-After", "1"}};
  FakeResponse unavailable;
  unavailable.status = 503;  // not created: the look-up finds nothing, so it is sent again
  provider_->script({throttled, unavailable});
  start_gateway();
  auto c = customer("outage", 2);
  issue(c);

  auto messages = wait_for_messages(c.phone, 1);
  std::this_thread::sleep_for(3s);  // anything extra would show up meanwhile
  ASSERT_EQ(messages_to(c.phone).size(), 1u) << gateway_->log();
  auto creates = creates_to(c.phone);
  ASSERT_EQ(creates.size(), 3u) << gateway_->log();
  EXPECT_EQ(creates[0].answered, 429);
  EXPECT_EQ(creates[1].answered, 503);
  EXPECT_EQ(creates[2].answered, 201);
  EXPECT_GE(creates[1].at - creates[0].at, 1s) << "Retry-After was not honoured";
  // After the 503 the gateway asked the provider whether the message existed before resending.
  bool looked_up = false;
  for (const auto& r : provider_->requests()) looked_up = looked_up || (r.method == "GET" && r.at > creates[1].at);
  EXPECT_TRUE(looked_up);
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].status(), v1::SENT);
  EXPECT_EQ(events[0].provider_message_id(), messages[0].sid);
  // The adapter retried twice itself (429, then 503 with an empty look-up); the gateway saw one
  // acceptance.
  AdminClient admin(http_port_, kAdminToken);
  EXPECT_EQ(admin.metric_sum(R"(relance_provider_retries_total{channel="SMS",provider="twilio"})"), 2);
  EXPECT_EQ(admin.metric_sum(R"(relance_sends_total{channel="SMS",provider="twilio",result="accepted"})"), 1);
}

TEST_F(TwilioFlowTest, ATimeoutAfterTheProviderCreatedTheMessageIsReconciledWithoutADuplicate) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n    timeout: 2s\n");
  FakeResponse late;
  late.status = 201;
  late.delay = 4s;  // past the gateway's 2 s timeout
  late.create = true;
  provider_->script({late});
  start_gateway();
  auto c = customer("timeout", 3);
  issue(c);

  auto events = delivery_events(1, 6s);
  ASSERT_EQ(events.size(), 1u) << gateway_->log();
  EXPECT_EQ(events[0].status(), v1::SENT);
  EXPECT_EQ(events[0].provider_response(), "reconciled");
  auto messages = messages_to(c.phone);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(events[0].provider_message_id(), messages[0].sid);
  EXPECT_EQ(creates_to(c.phone).size(), 1u);
}

TEST_F(TwilioFlowTest, UndeliveredWhatsAppFallsBackToSmsThenAFailedSmsFallsBackToEmail) {
  write_config(kWhatsAppSmsEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n    whatsapp_from: \"" +
                                      std::string(kWhatsAppFrom) + "\"\n");
  start_gateway();
  auto c = customer("fallback", 4);
  issue(c);

  auto whatsapp = wait_for_messages("whatsapp:" + c.phone, 1);
  ASSERT_EQ(whatsapp.size(), 1u) << gateway_->log();
  EXPECT_EQ(whatsapp[0].from, "whatsapp:" + std::string(kWhatsAppFrom));
  EXPECT_EQ(whatsapp[0].content_sid, kContentSid);
  EXPECT_NE(whatsapp[0].content_variables.find(c.spec.number), std::string::npos) << whatsapp[0].content_variables;
  EXPECT_TRUE(whatsapp[0].body.empty());
  EXPECT_EQ(provider_->post_status(whatsapp[0].status_callback, whatsapp[0].sid, "undelivered", "63024"), 200);

  auto sms = wait_for_messages(c.phone, 1);
  ASSERT_EQ(sms.size(), 1u) << gateway_->log();
  EXPECT_EQ(provider_->post_status(sms[0].status_callback, sms[0].sid, "failed", "30006"), 200);

  std::vector<ReceivedMail> mails;
  eventually(60s, [&] {
    mails = mails_to(maildir_, c.spec.email);
    return !mails.empty();
  });
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();

  auto events = delivery_events(5, 3s);
  ASSERT_EQ(events.size(), 5u) << gateway_->log();
  EXPECT_EQ(events[0].channel(), v1::WHATSAPP);
  EXPECT_EQ(events[0].status(), v1::SENT);
  EXPECT_EQ(events[1].channel(), v1::WHATSAPP);
  EXPECT_EQ(events[1].status(), v1::UNDELIVERED);
  EXPECT_EQ(events[1].error_code(), "63024");
  ASSERT_EQ(events[1].explanation_size(), 1);
  EXPECT_NE(events[1].explanation(0).find("fallback"), std::string::npos);
  EXPECT_EQ(events[2].channel(), v1::SMS);
  EXPECT_EQ(events[2].status(), v1::SENT);
  bool explained = false;
  for (const auto& line : events[2].explanation()) explained = explained || line.find("WHATSAPP skipped: did not deliver") != std::string::npos;
  EXPECT_TRUE(explained) << events[2].DebugString();
  EXPECT_EQ(events[3].channel(), v1::SMS);
  EXPECT_EQ(events[3].status(), v1::FAILED);
  EXPECT_EQ(events[4].channel(), v1::EMAIL);
  EXPECT_EQ(events[4].status(), v1::SENT);
  // Each channel was tried once.
  EXPECT_EQ(creates_to("whatsapp:" + c.phone).size(), 1u);
  EXPECT_EQ(creates_to(c.phone).size(), 1u);
}

TEST_F(TwilioFlowTest, NoDeliveryConfirmationInTimeFallsBackToTheNextChannel) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n");
  // Three seconds without a delivery report is enough here.
  auto text = [&] {
    std::ifstream in(work_ / "relance.yaml");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto at = text.find("  twilio:\n");
  text.insert(at, "  fallback:\n    confirm_within: 3s\n");
  std::ofstream(work_ / "relance.yaml") << text;
  start_gateway();
  auto c = customer("unconfirmed", 5);
  issue(c);

  auto sms = wait_for_messages(c.phone, 1);
  ASSERT_EQ(sms.size(), 1u) << gateway_->log();
  std::vector<ReceivedMail> mails;
  eventually(60s, [&] {
    mails = mails_to(maildir_, c.spec.email);
    return !mails.empty();
  });
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  auto events = delivery_events(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].status(), v1::UNDELIVERED);
  EXPECT_EQ(events[1].error_code(), "no_confirmation");
  EXPECT_EQ(events[2].channel(), v1::EMAIL);
  // A report that arrives after the fallback changes nothing.
  EXPECT_EQ(provider_->post_status(sms[0].status_callback, sms[0].sid, "delivered"), 200);
  EXPECT_EQ(delivery_events(4, 3s).size(), 4u);  // recorded for the trail
  EXPECT_EQ(mails_to(maildir_, c.spec.email).size(), 1u);
}

TEST_F(TwilioFlowTest, AStopReplyOptsTheCustomerOutOfSmsAndOtherRepliesGoToSupport) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n");
  start_gateway();
  // Known to the gateway, nothing due yet.
  auto c = customer("stop", 6);
  c.spec.due_on = "2026-12-30";
  issue(c);
  auto inbound_url = public_url() + "/v1/providers/twilio/inbound";
  eventually(30s, [&] {
    // Until the invoice is applied the number is unknown and a STOP only goes to support.
    httplib::Client client("127.0.0.1", http_port_);
    auto res = client.Get("/metrics");
    return res && res->body.find("relance_events_applied_total 1") != std::string::npos;
  });
  EXPECT_EQ(provider_->post_forged(inbound_url, {{"From", c.phone}, {"Body", "STOP"}}, true), 403);
  EXPECT_EQ(provider_->post_inbound(inbound_url, c.phone, kSmsFrom, "STOP"), 200);
  EXPECT_EQ(provider_->post_inbound(inbound_url, c.phone, kSmsFrom, "Can I pay next week?"), 200);

  auto replies = read_topic(bootstrap_, inbound_, 1, 30s, 1s);
  ASSERT_EQ(replies.size(), 1u);
  v1::InboundReply reply;
  ASSERT_TRUE(reply.ParseFromString(replies[0].value));
  EXPECT_EQ(reply.body(), "Can I pay next week?");
  EXPECT_EQ(reply.customer_id(), c.spec.customer_id);
  EXPECT_EQ(reply.channel(), v1::SMS);

  // A second invoice, overdue: the reminder goes by email, SMS being opted out.
  auto overdue = c;
  overdue.spec.event_id += "-2";
  overdue.spec.invoice_id += "-2";
  overdue.spec.number += "-2";
  overdue.spec.due_on = "2026-11-20";
  issue(overdue);
  std::vector<ReceivedMail> mails;
  eventually(60s, [&] {
    mails = mails_to(maildir_, c.spec.email);
    return !mails.empty();
  });
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  EXPECT_TRUE(creates_to(c.phone).empty());
  auto events = delivery_events(1);
  ASSERT_EQ(events.size(), 1u);
  bool explained = false;
  for (const auto& line : events[0].explanation()) explained = explained || line.find("SMS skipped: opted out") != std::string::npos;
  EXPECT_TRUE(explained) << events[0].DebugString();
}

TEST_F(TwilioFlowTest, TheProvidersOptOutErrorSuppressesSmsAndTheReminderGoesByEmail) {
  write_config(kSmsThenEmail, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n");
  FakeResponse unsubscribed;
  unsubscribed.status = 400;
  unsubscribed.twilio_code = 21610;
  provider_->script({unsubscribed});
  start_gateway();
  auto c = customer("optout", 7);
  issue(c);
  std::vector<ReceivedMail> mails;
  eventually(60s, [&] {
    mails = mails_to(maildir_, c.spec.email);
    return !mails.empty();
  });
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  auto events = delivery_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].status(), v1::FAILED);
  EXPECT_EQ(events[0].error_code(), "21610");
  EXPECT_EQ(events[1].channel(), v1::EMAIL);
  EXPECT_EQ(creates_to(c.phone).size(), 1u);
}

// A helpdesk receiving call tasks: checks each signature as the documentation tells it to.
class Helpdesk {
 public:
  Helpdesk() {
    server_.Post("/tasks", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      auto timestamp = req.get_header_value("X-Relance-Timestamp");
      auto expected = "v1=" + hmac_sha256_hex(kWebhookSecret, timestamp + "." + req.body);
      verified_.push_back(req.get_header_value("X-Relance-Signature") == expected && !timestamp.empty());
      bodies_.push_back(req.body);
      task_ids_.push_back(req.get_header_value("X-Relance-Task-Id"));
      // The first attempt fails: the gateway retries.
      res.status = bodies_.size() == 1 ? 503 : 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Helpdesk() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/tasks"; }
  std::vector<bool> verified() {
    std::lock_guard lock(mutex_);
    return verified_;
  }
  std::vector<std::string> task_ids() {
    std::lock_guard lock(mutex_);
    return task_ids_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<bool> verified_;
  std::vector<std::string> bodies_;
  std::vector<std::string> task_ids_;
};

TEST_F(TwilioFlowTest, CallTasksReachTheWebhookSignedAndTheirOutcomesBecomeLedgerFacts) {
  Helpdesk helpdesk;
  // Large amounts get a call; a day later a written reminder follows (SMS, else email). The
  // clock runs an hour a second, so that day passes in about 25 seconds.
  const std::string stages =
      "    - {name: first_reminder, offset_days: 1, tone: courteous, channels: {minor: [email], middle: [email], "
      "large: [call_task]}}\n"
      "    - {name: second_reminder, offset_days: 2, tone: firm, channels: {minor: [sms, email], middle: [sms, email], "
      "large: [sms, email]}}\n";
  write_config(stages, "    sms_from: \"" + std::string(kSmsFrom) + "\"\n",
               "", 3600);
  auto text = [&] {
    std::ifstream in(work_ / "relance.yaml");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  text.insert(text.find("  twilio:\n"), "  call_task:\n    webhook_url: " + helpdesk.url() +
                                            "\n    secret_env: RELANCE_TEST_WEBHOOK_SECRET\n");
  std::ofstream(work_ / "relance.yaml") << text;
  start_gateway();

  // Due yesterday: the call is due now; the second reminder tomorrow morning.
  auto promise = customer("promise", 8, 900'000);
  auto wrong = customer("wrong", 9, 900'000);
  auto control = customer("control", 10, 900'000);
  for (auto* c : {&promise, &wrong, &control}) {
    c->spec.due_on = "2026-11-23";
    issue(*c);
  }
  auto tasks = read_topic(bootstrap_, calls_, 3, 60s, 1s);
  ASSERT_EQ(tasks.size(), 3u) << gateway_->log();
  eventually(30s, [&] { return helpdesk.bodies().size() >= 4; });  // three tasks, one retried
  auto verified = helpdesk.verified();
  ASSERT_EQ(verified.size(), 4u);
  for (bool ok : verified) EXPECT_TRUE(ok);
  std::map<std::string, std::string> task_of;  // customer → task id
  for (const auto& r : tasks) {
    v1::CallTask task;
    ASSERT_TRUE(task.ParseFromString(r.value));
    task_of[task.customer().customer_id()] = task.task_id();
  }
  auto ids = helpdesk.task_ids();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u);

  httplib::Client client("127.0.0.1", http_port_);
  auto outcome = [&](const std::string& task, const std::string& body, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    auto res = client.Post(("/v1/call-tasks/" + task + "/outcome").c_str(), headers, body, "application/json");
    return res ? res->status : 0;
  };
  const auto& promise_task = task_of[promise.spec.customer_id];
  EXPECT_EQ(outcome(promise_task, R"({"outcome":"promise_to_pay","promised_on":"2026-12-15"})", ""), 401);
  EXPECT_EQ(outcome(promise_task, R"({"outcome":"promise_to_pay","promised_on":"2026-12-15"})", "wrong-token"), 401);
  EXPECT_EQ(outcome(promise_task, R"({"outcome":"promise_to_pay"})", kAdminToken), 400);
  EXPECT_EQ(outcome(promise_task, R"({"outcome":"maybe"})", kAdminToken), 400);
  EXPECT_EQ(outcome("no-such-task", R"({"outcome":"reached"})", kAdminToken), 404);
  EXPECT_EQ(outcome(promise_task, R"({"outcome":"promise_to_pay","promised_on":"2026-12-15","note":"payday"})",
                    kAdminToken),
            202);
  EXPECT_EQ(outcome(task_of[wrong.spec.customer_id], R"({"outcome":"wrong_number"})", kAdminToken), 202);

  // The control customer's second reminder goes by SMS; the wrong number's by email; the promise
  // holds the other one back.
  auto control_sms = wait_for_messages(control.phone, 1, 90s);
  ASSERT_EQ(control_sms.size(), 1u) << gateway_->log();
  std::vector<ReceivedMail> mails;
  eventually(60s, [&] {
    mails = mails_to(maildir_, wrong.spec.email);
    return !mails.empty();
  });
  ASSERT_EQ(mails.size(), 1u) << gateway_->log();
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(creates_to(wrong.phone).empty());
  EXPECT_TRUE(creates_to(promise.phone).empty());
  EXPECT_TRUE(mails_to(maildir_, promise.spec.email).empty());
}

// Customer ids spread over senders as the gateway does (FNV-1a of the timeline key, modulo the
// channel's senders in configuration order), so that each sender gets a queue of its own.
std::size_t sender_index(const std::string& key, std::size_t senders) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  return h % senders;
}

TEST_F(TwilioFlowTest, SendersNeverExceedTheirRateAndUseMostOfIt) {
  // The pacing is what is measured here: the provider answers at once instead of first relaying
  // each request to Prism, whose answers slow down on a loaded machine and would cap the rate
  // through max_in_flight. The other tests check every request against the contract.
  provider_ = std::make_unique<FakeTwilio>(kAccountSid, kAuthToken, "");
  relayed_to_prism_ = false;
  const std::vector<std::pair<std::string, double>> senders{
      {"+15005550101", 1}, {"+15005550102", 3}, {"+15005550103", 10}};
  std::string twilio = "    max_in_flight: 8\n    senders:\n";
  for (const auto& [from, mps] : senders) {
    twilio += "      - {channel: SMS, from: \"" + from + "\", mps: " + std::to_string(mps) + "}\n";
  }
  write_config(kSmsThenEmail, twilio);
  start_gateway();
  // More than 20 seconds' worth for each sender.
  const std::vector<int> wanted{24, 66, 215};
  std::vector<int> have(3, 0);
  int index = 100;
  // All at once, so that the senders' limits alone pace the requests (one producer per event
  // would pace them on a slow machine).
  std::vector<std::pair<std::string, std::string>> events;
  for (int n = 0; have != wanted; ++n) {
    auto c = customer("rate" + std::to_string(n), index++);
    auto s = sender_index(c.spec.customer_id, senders.size());
    if (have[s] >= wanted[s]) continue;
    ++have[s];
    events.emplace_back(c.spec.customer_id, issued(c));
  }
  produce_all(bootstrap_, input_, events);
  // The slowest sender needs its 24 seconds.
  eventually(120s, [&] { return provider_->messages().size() >= 24u + 66u + 215u; });
  ASSERT_EQ(provider_->messages().size(), 305u) << gateway_->log();

  for (std::size_t s = 0; s < senders.size(); ++s) {
    const auto& [from, mps] = senders[s];
    std::vector<std::chrono::steady_clock::time_point> at;
    for (const auto& r : provider_->requests()) {
      if (r.method == "POST" && form_value(r.form, "From") == from) at.push_back(r.at);
    }
    ASSERT_EQ(at.size(), static_cast<std::size_t>(wanted[s]));
    // The limiter keeps every one-second window within budget where requests leave (the unit
    // tests check that on a driven clock). Here they are timed where they arrive, after
    // loopback and the fake provider's threads, which a loaded machine delays by up to tens of
    // milliseconds. A delay of at most kArrivalJitter shortens a gap by at most that much, so
    // a schedule within budget where requests leave puts at most `mps` arrivals in any window
    // of 1 s − kArrivalJitter; the busiest full second is printed as well.
    constexpr auto kArrivalJitter = 150ms;
    auto busiest = [&at](std::chrono::steady_clock::duration window) {
      std::size_t worst = 0;
      for (std::size_t i = 0; i < at.size(); ++i) {
        std::size_t j = i;
        while (j < at.size() && at[j] - at[i] < window) ++j;
        worst = std::max(worst, j - i);
      }
      return worst;
    };
    EXPECT_LE(busiest(1s - kArrivalJitter), static_cast<std::size_t>(mps)) << from;
    auto worst = busiest(1s);
    // In the first 20 seconds it reached at least 95% of its budget.
    auto in_20s = std::count_if(at.begin(), at.end(), [&](auto t) { return t - at.front() < 20s; });
    EXPECT_GE(static_cast<double>(in_20s), 0.95 * mps * 20) << from << ": " << in_20s << " in 20 s";
    std::printf("[ rate     ] %s at %.0f MPS: %ld requests in the first 20 s (budget %.0f), busiest second %zu\n",
                from.c_str(), mps, static_cast<long>(in_20s), mps * 20, worst);
  }
  // Held by their senders' limits in the gateway, where a payment could still withdraw them.
  AdminClient admin(http_port_, kAdminToken);
  EXPECT_GE(admin.metric_sum(R"(relance_rate_limit_waits_total{channel="SMS",provider="twilio"})"), 100);
  EXPECT_GE(admin.metric_sum(R"(relance_send_wait_seconds_bucket{channel="SMS",provider="twilio",le="+Inf"})"), 305);
}

}  // namespace
}  // namespace relance::testing
