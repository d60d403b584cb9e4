// The security review, point by point, against the real binary: bearer tokens on admin, support
// and outcome routes; forged and repeated provider callbacks; request size limits; HTTPS on the
// gateway's own port; the SASL_SSL example accepted with its password masked; SMTP that requires
// TLS never sending to a server without STARTTLS. The embedded cluster stands in for a broker.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>

#include "channels/email/smtp_channel.h"
#include "channels/twilio/form.h"
#include "channels/twilio/signature.h"
#include "relance/v1/events.pb.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace twilio = relance::channels::twilio;
using namespace std::chrono_literals;

const fs::path kSource = RELANCE_SOURCE_DIR;
constexpr const char* kAdminToken = "admin-token-0123456789abcdef";
constexpr const char* kAuthToken = "twilio-auth-token-0123456789";

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A refused request's connection may be closed while the client still writes.
    std::signal(SIGPIPE, SIG_IGN);
    work_ = fs::temp_directory_path() / ("relance-security-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_);
  }
  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->stop(), 0) << gateway_->log();
    }
    gateway_.reset();
    fs::remove_all(work_);
  }

  // The embedded gateway with an admin token and a Twilio account (whose API is never called).
  void start(std::map<std::string, std::string> env = {}, const fs::path& tls_ca = {}) {
    port_ = free_port();
    env.emplace("RELANCE_HTTP__LISTEN", "127.0.0.1:" + std::to_string(port_));
    env.emplace("RELANCE_HTTP__PUBLIC_URL", public_url());
    env.emplace("RELANCE_HTTP__ADMIN_TOKEN_ENV", "RELANCE_TEST_ADMIN_TOKEN");
    env.emplace("RELANCE_TEST_ADMIN_TOKEN", kAdminToken);
    env.emplace("RELANCE_CHANNELS__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000");
    env.emplace("RELANCE_CHANNELS__TWILIO__BASE_URL", "http://127.0.0.1:9");
    env.emplace("RELANCE_CHANNELS__TWILIO__SMS_FROM", "+33612345678");
    env.emplace("RELANCE_CHANNELS__TWILIO__AUTH_TOKEN_ENV", "RELANCE_TEST_TWILIO_TOKEN");
    env.emplace("RELANCE_TEST_TWILIO_TOKEN", kAuthToken);
    env.emplace("RELANCE_CLOCK__MODE", "simulated");
    gateway_.emplace(std::vector<std::string>{RELANCE_BINARY, "run"}, env, work_, work_ / "gateway.log");
    ASSERT_TRUE(eventually(30s, [&] {
      auto res = tls_ca.empty() ? client().Get("/readyz") : https_client(tls_ca)->Get("/readyz");
      return res && res->status == 200;
    })) << gateway_->log();
  }

  // Trusts only `ca` and checks that the certificate names 127.0.0.1.
  std::unique_ptr<httplib::SSLClient> https_client(const fs::path& ca) const {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port_);
    c->set_ca_cert_path(ca.c_str());
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(10, 0);
    return c;
  }

  std::string public_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    return c;
  }
  std::string bootstrap() const {
    auto text = read_file(work_ / "relance-data" / "kafka-bootstrap");
    return text.substr(0, text.find_last_not_of("\n") + 1);
  }

  // A callback signed as the provider signs it (X-Twilio-Signature over the public URL and form).
  httplib::Result post_callback(const std::string& target, const twilio::Params& form, const std::string& signature_secret,
                                httplib::Headers headers = {}) {
    headers.emplace("X-Twilio-Signature", twilio::twilio_signature(public_url() + target, form, signature_secret));
    return client().Post(target.c_str(), headers, twilio::form_encode(form), "application/x-www-form-urlencoded");
  }

  fs::path work_;
  int port_ = 0;
  std::optional<GatewayProcess> gateway_;
};

int status_of(const httplib::Result& res) { return res ? res->status : -1; }

TEST_F(SecurityTest, AdminSupportAndOutcomeRoutesRejectMissingOrWrongTokens) {
  start();
  std::string right = kAdminToken;
  std::string last_char_differs = right.substr(0, right.size() - 1) + (right.back() == 'f' ? 'e' : 'f');
  std::string longer = right + "0";
  std::string shorter = right.substr(0, right.size() - 1);
  auto c = client();
  auto with = [](const std::string& authorization) {
    return authorization.empty() ? httplib::Headers{} : httplib::Headers{{"Authorization", authorization}};
  };
  const std::string outcome = R"({"outcome":"reached","customer_id":"cust-security"})";
  for (const auto& auth : {std::string(), "Bearer " + last_char_differs, "Bearer " + longer, "Bearer " + shorter,
                           std::string("Bearer "), "Basic " + right, right}) {
    SCOPED_TRACE(auth);
    auto clock = c.Get("/v1/admin/clock", with(auth));
    EXPECT_EQ(status_of(clock), 401);
    EXPECT_EQ(clock->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(status_of(c.Post("/v1/admin/clock", with(auth), R"({"now":"2030-01-01T00:00:00Z"})", "application/json")), 401);
    EXPECT_EQ(status_of(c.Get("/v1/customers", with(auth))), 401);
    EXPECT_EQ(status_of(c.Get("/v1/customers/cust-security/timeline", with(auth))), 401);
    EXPECT_EQ(status_of(c.Get("/v1/call-tasks", with(auth))), 401);
    EXPECT_EQ(status_of(c.Get("/v1/outbox", with(auth))), 401);
    EXPECT_EQ(status_of(c.Post("/v1/call-tasks/task-1/outcome", with(auth), outcome, "application/json")), 401);
  }
  // The right token passes the check (whatever the route then answers).
  EXPECT_EQ(status_of(c.Get("/v1/admin/clock", with("Bearer " + right))), 200);
  EXPECT_EQ(status_of(c.Get("/v1/customers", with("Bearer " + right))), 200);
  EXPECT_EQ(status_of(c.Post("/v1/call-tasks/task-1/outcome", with("Bearer " + right), outcome, "application/json")), 202);
  // The clock was not moved by any refused request.
  auto now = c.Get("/v1/admin/clock", with("Bearer " + right));
  EXPECT_EQ(now->body.find("2030"), std::string::npos) << now->body;
}

// Facts the callbacks published on the input topic, by event id.
std::map<std::string, int> published_facts(const std::string& bootstrap, std::size_t expected) {
  std::map<std::string, int> ids;
  for (const auto& record : read_topic(bootstrap, "billing.invoice-events", expected, 10s, 2s)) {
    relance::v1::InvoiceEvent event;
    if (event.ParseFromString(record.value)) ++ids[event.event_id()];
  }
  return ids;
}

TEST_F(SecurityTest, ForgedCallbacksAreRefusedAndRepeatsArePublishedOnce) {
  start();
  const std::string target = "/v1/providers/twilio/status?rid=rem_security&key=cust-security";
  twilio::Params delivered{{"MessageSid", "SM0001"}, {"MessageStatus", "delivered"}, {"AccountSid", "AC0"}};
  twilio::Params failed{{"MessageSid", "SM0002"}, {"MessageStatus", "failed"}, {"ErrorCode", "30003"}};

  // Forged: signed with another key, signed for another form, or not signed at all.
  EXPECT_EQ(status_of(post_callback(target, failed, "not-the-auth-token")), 403);
  auto tampered = client().Post(
      target.c_str(), {{"X-Twilio-Signature", twilio::twilio_signature(public_url() + target, delivered, kAuthToken)}},
      twilio::form_encode(failed), "application/x-www-form-urlencoded");
  EXPECT_EQ(status_of(tampered), 403);
  EXPECT_EQ(status_of(client().Post(target.c_str(), twilio::form_encode(failed), "application/x-www-form-urlencoded")),
            403);

  // Genuine, then played again: as the provider retries it (same idempotency token), and as a
  // replay would (another token, which the signature does not cover).
  EXPECT_EQ(status_of(post_callback(target, delivered, kAuthToken, {{"I-Twilio-Idempotency-Token", "tok-1"}})), 200);
  EXPECT_EQ(status_of(post_callback(target, delivered, kAuthToken, {{"I-Twilio-Idempotency-Token", "tok-1"}})), 200);
  EXPECT_EQ(status_of(post_callback(target, delivered, kAuthToken, {{"I-Twilio-Idempotency-Token", "tok-2"}})), 200);
  EXPECT_EQ(status_of(post_callback(target, delivered, kAuthToken)), 200);

  // A customer's reply played again is published once too.
  twilio::Params reply{{"MessageSid", "SM0003"}, {"From", "+33699999999"}, {"To", "+33612345678"}, {"Body", "Hello"}};
  EXPECT_EQ(status_of(post_callback("/v1/providers/twilio/inbound", reply, kAuthToken)), 200);
  EXPECT_EQ(status_of(post_callback("/v1/providers/twilio/inbound", reply, kAuthToken)), 200);

  auto facts = published_facts(bootstrap(), 2);
  EXPECT_EQ(facts.size(), 1u);
  EXPECT_EQ(facts["status:SM0001:delivered:"], 1);
  EXPECT_EQ(facts.count("status:SM0002:failed:30003"), 0u);
  EXPECT_EQ(read_topic(bootstrap(), "relance.inbound-replies", 2, 5s, 1s).size(), 1u);
  auto metrics = client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("relance_callbacks_rejected_total 3"), std::string::npos) << metrics->body;
}

TEST_F(SecurityTest, OversizedBodiesHeadersAndUrisAreRefused) {
  start();
  httplib::Headers auth{{"Authorization", std::string("Bearer ") + kAdminToken}};
  auto c = client();

  // A body over 64 KiB on any route but the preview: 413, the body read and dropped.
  auto large = c.Post("/v1/admin/clock", auth, std::string(65 * 1024, ' '), "application/json");
  ASSERT_TRUE(large) << httplib::to_string(large.error());
  EXPECT_EQ(large->status, 413);
  auto callback = client().Post("/v1/providers/twilio/status", std::string(200 * 1024, 'a'),
                                "application/x-www-form-urlencoded");
  ASSERT_TRUE(callback) << httplib::to_string(callback.error());
  EXPECT_EQ(callback->status, 413);
  // Over the preview's 1 MiB, on any route: the library drops it and answers 413.
  auto huge = client().Post("/v1/admin/clock", auth, std::string(2 * 1024 * 1024, ' '), "application/json");
  ASSERT_TRUE(huge) << httplib::to_string(huge.error());
  EXPECT_EQ(huge->status, 413);
  // A body without a length (chunked) cannot be bounded before it is read: refused.
  auto chunked = client().Post("/v1/admin/clock", auth,
                               [](std::size_t, httplib::DataSink& sink) {
                                 sink.write("{\"now\":\"x\"}", 10);
                                 sink.done();
                                 return true;
                               },
                               "application/json");
  // (It is refused unread, and the connection closed: a client still writing may see that instead.)
  if (chunked) {
    EXPECT_EQ(chunked->status, 411);
  } else {
    EXPECT_EQ(chunked.error(), httplib::Error::Write);
  }
  // Within the limit, the route answers.
  EXPECT_EQ(status_of(client().Post("/v1/admin/clock", auth, R"({"now":"2026-01-01T00:00:00Z"})", "application/json")),
            200);

  // More than 100 header fields: 431.
  httplib::Headers many;
  for (int i = 0; i < 120; ++i) many.emplace("X-Filler-" + std::to_string(i), "x");
  EXPECT_EQ(status_of(client().Get("/healthz", many)), 431);
  // One header line over cpp-httplib's 8 KiB: the library answers 400 and closes.
  EXPECT_EQ(status_of(client().Get("/healthz", {{"X-Long", std::string(9 * 1024, 'x')}})), 400);
  // A request line over 8 KiB: 414.
  EXPECT_EQ(status_of(client().Get(("/healthz?pad=" + std::string(9 * 1024, 'x')).c_str())), 414);
  // The server is still there for everyone else.
  EXPECT_EQ(status_of(client().Get("/healthz")), 200);
}

TEST_F(SecurityTest, ServesHttpsWithTheConfiguredCertificateAndNoPlainHttp) {
  auto cert = work_ / "cert.pem";
  auto key = work_ / "key.pem";
  auto command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext "
                 "subjectAltName=IP:127.0.0.1 -keyout " +
                 key.string() + " -out " + cert.string() + " >" + (work_ / "openssl.log").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read_file(work_ / "openssl.log");
  ::chmod(key.c_str(), 0600);
  start({{"RELANCE_HTTP__TLS_CERT", cert.string()}, {"RELANCE_HTTP__TLS_KEY", key.string()}}, cert);
  auto health = https_client(cert)->Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(status_of(https_client(cert)->Get("/v1/admin/clock")), 401);  // the same routes, the same rules
  // Plain HTTP to the same port gets no HTTP answer.
  auto plain = client().Get("/healthz");
  EXPECT_FALSE(plain && plain->status == 200);
  EXPECT_NE(gateway_->log().find("HTTPS on 127.0.0.1"), std::string::npos);
}

TEST_F(SecurityTest, AnUnusableTlsKeyStopsTheStartNamingTheField) {
  auto cert = work_ / "cert.pem";
  auto key = work_ / "key.pem";
  std::ofstream(cert) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::ofstream(key) << "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
  ::chmod(key.c_str(), 0644);
  auto run_with = [&](const char* log) {
    return std::make_unique<GatewayProcess>(
        std::vector<std::string>{RELANCE_BINARY, "run"},
        std::map<std::string, std::string>{{"RELANCE_HTTP__LISTEN", "127.0.0.1:0"},
                                           {"RELANCE_HTTP__TLS_CERT", cert.string()},
                                           {"RELANCE_HTTP__TLS_KEY", key.string()}},
        work_, work_ / log);
  };
  auto open_key = run_with("open-key.log");
  EXPECT_TRUE(eventually(30s, [&] { return !open_key->running(); }));
  EXPECT_EQ(open_key->stop(10s), 2);
  EXPECT_NE(open_key->log().find("http.tls_key"), std::string::npos) << open_key->log();
  EXPECT_NE(open_key->log().find("chmod 600"), std::string::npos) << open_key->log();
  // A key the checks accept but OpenSSL cannot load: the start fails, naming both fields.
  ::chmod(key.c_str(), 0600);
  auto bad_key = run_with("bad-key.log");
  EXPECT_TRUE(eventually(30s, [&] { return !bad_key->running(); }));
  EXPECT_EQ(bad_key->stop(10s), 1);
  EXPECT_NE(bad_key->log().find("http.tls_cert, http.tls_key"), std::string::npos) << bad_key->log();
}

TEST_F(SecurityTest, CheckConfigAcceptsTheSaslSslExampleAndNeverShowsItsPassword) {
  const std::string password = "kafka-password-never-shown";
  auto example = kSource / "deploy/examples/kafka-sasl-ssl.yaml";
  GatewayProcess check({RELANCE_BINARY, "check-config", "-c", example.string()},
                       {{"RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD", password},
                        {"RELANCE_ADMIN_TOKEN", kAdminToken}},
                       work_, work_ / "check.log");
  EXPECT_TRUE(eventually(30s, [&] { return !check.running(); }));
  EXPECT_EQ(check.stop(30s), 0) << check.log();
  EXPECT_NE(check.log().find("configuration is valid"), std::string::npos) << check.log();
  EXPECT_EQ(check.log().find(password), std::string::npos) << check.log();

  // Written in the file instead, the password is refused, and not quoted in the refusal.
  auto inline_copy = work_ / "inline.yaml";
  std::ofstream(inline_copy) << read_file(example) << "\n# appended by the test\n";
  auto text = read_file(inline_copy);
  auto at = text.find("    sasl.username:");
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "    sasl.password: " + password + "\n");
  std::ofstream(inline_copy) << text;
  GatewayProcess refused({RELANCE_BINARY, "check-config", "-c", inline_copy.string()},
                         {{"RELANCE_ADMIN_TOKEN", kAdminToken}}, work_, work_ / "refused.log");
  EXPECT_TRUE(eventually(30s, [&] { return !refused.running(); }));
  EXPECT_EQ(refused.stop(30s), 2) << refused.log();
  EXPECT_NE(refused.log().find("kafka.properties.sasl.password"), std::string::npos) << refused.log();
  EXPECT_EQ(refused.log().find(password), std::string::npos) << refused.log();
}

// `relance run` logs the overrides it applied: the Kafka password among them is masked.
TEST_F(SecurityTest, TheStartLogMasksSecretOverrides) {
  const std::string password = "kafka-password-never-logged";
  start({{"RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD", password}});
  EXPECT_NE(gateway_->log().find("kafka.properties.sasl.password = ****"), std::string::npos) << gateway_->log();
  EXPECT_EQ(gateway_->log().find(password), std::string::npos);
  EXPECT_EQ(gateway_->log().find(kAdminToken), std::string::npos);
  EXPECT_EQ(gateway_->log().find(kAuthToken), std::string::npos);
}

// A tiny mail server that does not offer STARTTLS (aiosmtpd without a certificate).
class PlainSmtpServer {
 public:
  explicit PlainSmtpServer(const fs::path& dir) : port_(free_port()) {
    for (const char* sub : {"tmp", "new", "cur"}) fs::create_directories(dir / "mail" / sub);
    mail_ = dir / "mail";
    process_.emplace(std::vector<std::string>{"/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l",
                                              "127.0.0.1:" + std::to_string(port_), "-c", "aiosmtpd.handlers.Mailbox",
                                              mail_.string()},
                     std::map<std::string, std::string>{}, dir, dir / "aiosmtpd.log");
    ready_ = eventually(15s, [&] {
      httplib::Client probe("127.0.0.1", port_);  // any TCP answer: it is listening
      probe.set_connection_timeout(0, 200'000);
      auto res = probe.Get("/");
      return res || res.error() != httplib::Error::Connection;
    });
  }
  ~PlainSmtpServer() { process_->stop(5s); }
  bool ready() const { return ready_; }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  std::size_t delivered() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(mail_ / "new")) ++n;
    return n;
  }
  std::string log() const { return process_->log(); }

 private:
  int port_;
  fs::path mail_;
  std::optional<GatewayProcess> process_;
  bool ready_ = false;
};

std::optional<channels::SendResult> send_one(const std::string& url, bool require_tls, const std::string& username) {
  relance::v1::EmailChannelConfig config;
  config.set_smtp_url(url);
  config.set_from("billing@example.com");
  config.set_require_tls(require_tls);
  config.set_username(username);
  config.mutable_timeout()->set_seconds(10);
  channels::http::TransferLoop loop;
  channels::email::SmtpChannel channel(config, "smtp-password-never-sent", loop);
  relance::RenderedMessage m;
  m.reminder_id = "rem_tls_" + std::string(require_tls ? "required" : "optional");
  m.to = "alice@example.org";
  m.subject = "Reminder";
  m.text = "Your invoice is due.";
  std::optional<channels::SendResult> result;
  channel.send({m, [&](channels::SendResult r) { result = std::move(r); }, {}});
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!result && std::chrono::steady_clock::now() < deadline) loop.run_once(20ms);
  return result;
}

TEST_F(SecurityTest, SmtpRequiringTlsNeverSendsToAServerWithoutStartTls) {
  PlainSmtpServer server(work_);
  ASSERT_TRUE(server.ready()) << server.log();
  auto refused = send_one(server.url(), true, "relance");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, channels::SendResult::Kind::kPermanent) << refused->message;
  EXPECT_NE(refused->message.find("STARTTLS"), std::string::npos) << refused->message;
  EXPECT_EQ(server.delivered(), 0u);
  // The same server takes the message when TLS is not required: it was only TLS that was missing.
  auto sent = send_one(server.url(), false, "");
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->kind, channels::SendResult::Kind::kAccepted) << sent->message;
  EXPECT_TRUE(eventually(5s, [&] { return server.delivered() == 1; }));
  EXPECT_EQ(server.log().find("smtp-password-never-sent"), std::string::npos);
}

}  // namespace
}  // namespace relance::testing
