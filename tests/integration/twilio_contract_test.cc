// The Twilio test doubles themselves: Prism (the official OpenAPI description served by the rig)
// must accept well-formed message creates and refuse broken ones, and FakeTwilio (Twilio's
// errors, scripts, delays, listing, signed callbacks) must relay to Prism and behave as Twilio
// documents. Tests of the gateway rely on both.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cctype>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <regex>
#include <thread>

#include "support/fake_twilio.h"
#include "support/gateway_process.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kAccount = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kToken = "test-auth-token";
constexpr const char* kApiKey = "SKfedcba9876543210fedcba9876543210";
constexpr const char* kService = "MG0123456789abcdef0123456789abcdef";
constexpr const char* kTemplate = "HX0123456789abcdef0123456789abcdef";

std::string messages_path(const std::string& account = kAccount) {
  return "/2010-04-01/Accounts/" + account + "/Messages.json";
}

// A form body in the given order (httplib's Params would sort it).
std::string encode_form(const FormFields& fields) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    for (const auto* part : {&name, &value}) {
      for (char ch : *part) {
        auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
          out += ch;
        } else {
          out += '%';
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        }
      }
      if (part == &name) out += '=';
    }
  }
  return out;
}

google::protobuf::Struct parse_json(const std::string& text) {
  google::protobuf::Struct value;
  auto status = google::protobuf::util::JsonStringToMessage(text, &value);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return value;
}

const google::protobuf::Value& member(const google::protobuf::Struct& object, const std::string& name) {
  static const google::protobuf::Value kMissing;
  auto it = object.fields().find(name);
  return it == object.fields().end() ? kMissing : it->second;
}

std::string str(const google::protobuf::Struct& object, const std::string& name) {
  return member(object, name).string_value();
}

double num(const google::protobuf::Struct& object, const std::string& name) {
  return member(object, name).number_value();
}

bool is_null(const google::protobuf::Struct& object, const std::string& name) {
  return member(object, name).kind_case() == google::protobuf::Value::kNullValue;
}

// YYYY-MM-DD and RFC 3339 forms of a UTC instant.
std::string utc(std::chrono::system_clock::time_point t, const char* format) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

class TwilioContract : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rig = read_env_file(fs::path(RELANCE_RIG_DIR) / "rig.env");
    prism_url_ = rig["PRISM_URL"];
  }

  // Everything but the signature vectors needs the rig's Prism.
  void require_prism() const {
    ASSERT_FALSE(prism_url_.empty()) << "the rig is not running or has no Prism (PRISM_URL missing from rig.env)";
  }

  static httplib::Result post(const std::string& base, const std::string& path, const std::string& body,
                              const std::string& user = kAccount, const std::string& password = kToken,
                              std::chrono::milliseconds timeout = 10s) {
    httplib::Client client(base);
    client.set_read_timeout(timeout);
    if (!user.empty()) client.set_basic_auth(user, password);
    return client.Post(path, body, "application/x-www-form-urlencoded");
  }

  static httplib::Result get(const std::string& base, const std::string& target) {
    httplib::Client client(base);
    client.set_basic_auth(kAccount, kToken);
    client.set_url_encode(false);
    return client.Get(target);
  }

  std::string prism_url_;
};

// --- Prism: the contract check can pass and can fail ----------------------------------------

TEST_F(TwilioContract, PrismAcceptsWellFormedCreates) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  auto sms = post(prism_url_, messages_path(),
                  encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}, {"Body", "Rappel : facture F-2026-001"},
                        {"StatusCallback", "https://relance.example.com/twilio/status"}, {"ValidityPeriod", "3600"}}));
  ASSERT_TRUE(sms) << httplib::to_string(sms.error());
  EXPECT_EQ(sms->status, 201) << sms->body;
  EXPECT_EQ(str(parse_json(sms->body), "direction"), "outbound-api");

  // A WhatsApp template through a Messaging Service, as the gateway sends reminders.
  auto whatsapp = post(prism_url_, messages_path(),
                       encode_form({{"To", "whatsapp:+33612345678"}, {"MessagingServiceSid", kService},
                             {"ContentSid", kTemplate}, {"ContentVariables", R"({"1":"Jeanne","2":"12/03"})"}}),
                       kApiKey, "api-key-secret");
  ASSERT_TRUE(whatsapp);
  EXPECT_EQ(whatsapp->status, 201) << whatsapp->body;
}

TEST_F(TwilioContract, PrismRefusesBrokenCreates) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  auto no_to = post(prism_url_, messages_path(), encode_form({{"From", "+33757000000"}, {"Body", "hello"}}));
  ASSERT_TRUE(no_to);
  EXPECT_EQ(no_to->status, 422) << no_to->body;
  EXPECT_NE(no_to->body.find("'To'"), std::string::npos) << no_to->body;

  auto bad_service = post(prism_url_, messages_path(),
                          encode_form({{"To", "+33612345678"}, {"MessagingServiceSid", "MG-not-a-sid"}, {"Body", "hello"}}));
  ASSERT_TRUE(bad_service);
  EXPECT_EQ(bad_service->status, 422) << bad_service->body;
  auto problem = parse_json(bad_service->body);
  ASSERT_GT(member(problem, "validation").list_value().values_size(), 0) << bad_service->body;
  EXPECT_NE(bad_service->body.find("MessagingServiceSid"), std::string::npos);

  auto bad_validity = post(prism_url_, messages_path(),
                           encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}, {"ValidityPeriod", "an hour"}}));
  ASSERT_TRUE(bad_validity);
  EXPECT_EQ(bad_validity->status, 422) << bad_validity->body;

  auto no_auth = post(prism_url_, messages_path(), encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}}), "");
  ASSERT_TRUE(no_auth);
  EXPECT_EQ(no_auth->status, 401);
}

// --- FakeTwilio ---------------------------------------------------------------------------------

TEST_F(TwilioContract, RelayedRequestsCarryPrismsVerdict) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  FakeTwilio fake(kAccount, kToken, prism_url_);
  auto good = post(fake.base_url(), messages_path(),
                   encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}, {"Body", "facture F-1 : 120,00 €"}}));
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 201) << good->body;
  // Prism accepts what Twilio would reject (a MessagingServiceSid must match its pattern at
  // Twilio too, but the fake does not check patterns): the relay is what catches it.
  auto off_contract = post(fake.base_url(), messages_path(),
                           encode_form({{"To", "+33612345678"}, {"MessagingServiceSid", "MG42"}, {"Body", "hello"}}));
  ASSERT_TRUE(off_contract);
  auto listed = get(fake.base_url(), messages_path() + "?To=%2B33612345678&PageSize=20");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200);

  auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, messages_path());
  EXPECT_EQ(requests[0].answered, 201);
  EXPECT_EQ(requests[0].prism_status, 201) << requests[0].prism_body;
  EXPECT_EQ(requests[0].authorization.rfind("Basic ", 0), 0u);
  ASSERT_EQ(requests[0].form.size(), 3u);
  EXPECT_EQ(requests[0].form[0], (std::pair<std::string, std::string>("To", "+33612345678")));
  EXPECT_EQ(requests[0].form[2].second, "facture F-1 : 120,00 €");
  EXPECT_EQ(requests[1].prism_status, 422) << requests[1].prism_body;
  EXPECT_NE(requests[1].prism_body.find("MessagingServiceSid"), std::string::npos);
  EXPECT_EQ(requests[2].method, "GET");
  EXPECT_EQ(requests[2].query, "To=%2B33612345678&PageSize=20");
  EXPECT_EQ(requests[2].prism_status, 200) << requests[2].prism_body;
}

TEST_F(TwilioContract, FakeAnswersLikeTwilioWithoutAScript) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  FakeTwilio fake(kAccount, kToken, prism_url_);
  auto created = post(fake.base_url(), messages_path(),
                      encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}, {"Body", "Échéance dépassée"},
                            {"StatusCallback", "http://127.0.0.1:1/cb"}}));
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201);
  auto message = parse_json(created->body);
  EXPECT_TRUE(std::regex_match(str(message, "sid"), std::regex("SM[0-9a-f]{32}"))) << created->body;
  EXPECT_EQ(str(message, "account_sid"), kAccount);
  EXPECT_EQ(str(message, "to"), "+33612345678");
  EXPECT_EQ(str(message, "from"), "+33757000000");
  EXPECT_EQ(str(message, "body"), "Échéance dépassée");
  EXPECT_EQ(str(message, "status"), "queued");
  EXPECT_EQ(str(message, "direction"), "outbound-api");
  EXPECT_EQ(str(message, "num_segments"), "1");
  EXPECT_TRUE(is_null(message, "error_code"));
  EXPECT_TRUE(is_null(message, "messaging_service_sid"));
  EXPECT_TRUE(std::regex_match(str(message, "date_created"),
                               std::regex(R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000)")))
      << str(message, "date_created");
  EXPECT_EQ(str(message, "uri"), "/2010-04-01/Accounts/" + std::string(kAccount) + "/Messages/" +
                                     str(message, "sid") + ".json");
  auto messages = fake.messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].sid, str(message, "sid"));
  EXPECT_EQ(messages[0].status_callback, "http://127.0.0.1:1/cb");

  // An API key authenticates with any secret; the account sid only with the auth token.
  auto with_key = post(fake.base_url(), messages_path(),
                       encode_form({{"To", "+33612345678"}, {"MessagingServiceSid", kService}, {"ContentSid", kTemplate}}),
                       kApiKey, "whatever");
  ASSERT_TRUE(with_key);
  EXPECT_EQ(with_key->status, 201);
  EXPECT_EQ(str(parse_json(with_key->body), "status"), "accepted");
  auto wrong_token = post(fake.base_url(), messages_path(), encode_form({{"To", "+33612345678"}, {"Body", "x"}}), kAccount,
                          "not-the-token");
  ASSERT_TRUE(wrong_token);
  EXPECT_EQ(wrong_token->status, 401);
  EXPECT_EQ(num(parse_json(wrong_token->body), "code"), 20003);
  auto anonymous = post(fake.base_url(), messages_path(), encode_form({{"To", "+33612345678"}, {"Body", "x"}}), "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);

  // Twilio's own validation, which Prism does not do.
  auto no_to = post(fake.base_url(), messages_path(), encode_form({{"From", "+33757000000"}, {"Body", "x"}}));
  ASSERT_TRUE(no_to);
  EXPECT_EQ(no_to->status, 400);
  auto error = parse_json(no_to->body);
  EXPECT_EQ(num(error, "code"), 21604);
  EXPECT_EQ(num(error, "status"), 400);
  EXPECT_EQ(str(error, "more_info"), "https://www.twilio.com/docs/errors/21604");
  EXPECT_FALSE(str(error, "message").empty());
  auto no_from = post(fake.base_url(), messages_path(), encode_form({{"To", "+33612345678"}, {"Body", "x"}}));
  ASSERT_TRUE(no_from);
  EXPECT_EQ(num(parse_json(no_from->body), "code"), 21603);
  EXPECT_EQ(fake.messages().size(), 2u);
}

TEST_F(TwilioContract, ScriptedAnswersComeBackInOrder) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  FakeTwilio fake(kAccount, kToken, prism_url_);
  fake.script({{.status = 429, .twilio_code = 20429, .headers = {{"Retry-After", "2"}}}, {.status = 503}});
  auto send = [&] {
    auto res = post(fake.base_url(), messages_path(),
                    encode_form({{"To", "+33612345678"}, {"From", "+33757000000"}, {"Body", "hello"}}));
    EXPECT_TRUE(res);
    return res;
  };

  auto first = send();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 429);
  EXPECT_EQ(first->get_header_value("Retry-After"), "2");
  auto too_many = parse_json(first->body);
  EXPECT_EQ(num(too_many, "code"), 20429);
  EXPECT_EQ(num(too_many, "status"), 429);
  EXPECT_EQ(str(too_many, "more_info"), "https://www.twilio.com/docs/errors/20429");

  auto second = send();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503);
  EXPECT_EQ(num(parse_json(second->body), "status"), 503);

  auto third = send();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 201);

  // Only the 201 created a message; every request was still on contract.
  ASSERT_EQ(fake.messages().size(), 1u);
  EXPECT_EQ(fake.messages()[0].sid, str(parse_json(third->body), "sid"));
  auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) EXPECT_EQ(r.prism_status, 201) << r.prism_body;
  EXPECT_EQ(requests[0].answered, 429);
  EXPECT_EQ(requests[1].answered, 503);
  EXPECT_EQ(requests[2].answered, 201);
  EXPECT_LE(requests[0].at, requests[1].at);
  EXPECT_LE(requests[1].at, requests[2].at);

  // A custom body and a changed default.
  fake.script({{.status = 400, .body = R"({"code":21610,"message":"unsubscribed","more_info":"x","status":400})"}});
  fake.set_default({.status = 400, .twilio_code = 21211});
  auto custom = send();
  ASSERT_TRUE(custom);
  EXPECT_EQ(num(parse_json(custom->body), "code"), 21610);
  auto fallback = send();
  ASSERT_TRUE(fallback);
  EXPECT_EQ(fallback->status, 400);
  EXPECT_EQ(num(parse_json(fallback->body), "code"), 21211);
}

TEST_F(TwilioContract, LateAnswerStillCreatesTheMessageForTheListFilter) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  FakeTwilio fake(kAccount, kToken, prism_url_);
  auto before = std::chrono::system_clock::now() - 1s;
  fake.script({{.status = 500, .delay = 3s, .create = true}});

  // The client gives up first: for it, the send timed out.
  auto timed_out = post(fake.base_url(), messages_path(),
                        encode_form({{"To", "+33611111111"}, {"From", "+33757000000"}, {"Body", "late"}}), kAccount, kToken,
                        300ms);
  EXPECT_FALSE(timed_out);
  // Another number, answered while the late answer is still pending: a delay blocks no one.
  auto other = post(fake.base_url(), messages_path(),
                    encode_form({{"To", "+33622222222"}, {"From", "+33757000000"}, {"Body", "other"}}));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 201);
  EXPECT_EQ(fake.requests().at(0).answered, 0);  // still delayed
  // The late one exists as soon as its handler has relayed it to Prism.
  ASSERT_TRUE(eventually(5s, [&] { return fake.messages().size() == 2; }));

  auto expect_listed = [&](const std::string& query, std::size_t count) {
    auto res = get(fake.base_url(), messages_path() + "?" + query);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    auto page = parse_json(res->body);
    const auto& listed = member(page, "messages").list_value();
    ASSERT_EQ(static_cast<std::size_t>(listed.values_size()), count) << query << "\n" << res->body;
    if (count > 0) {
      EXPECT_EQ(str(listed.values(0).struct_value(), "to"), "+33611111111");
      EXPECT_EQ(str(listed.values(0).struct_value(), "body"), "late");
    }
    EXPECT_EQ(num(page, "page"), 0);
    EXPECT_EQ(num(page, "page_size"), 50);
    EXPECT_TRUE(is_null(page, "next_page_uri"));
    EXPECT_FALSE(str(page, "first_page_uri").empty());
  };
  auto tomorrow = std::chrono::system_clock::now() + 24h;
  // DateSent> spelled raw and percent-encoded, as a day and as an instant.
  expect_listed("To=%2B33611111111&DateSent>=" + utc(before, "%Y-%m-%d"), 1);
  expect_listed("To=%2B33611111111&DateSent%3E=" + utc(before, "%Y-%m-%d"), 1);
  expect_listed("To=%2B33611111111&DateSent%3E=" + utc(before, "%Y-%m-%dT%H:%M:%SZ"), 1);
  expect_listed("To=%2B33611111111&DateSent>=" + utc(before, "%Y-%m-%dT%H:%M:%S%%2B00:00"), 1);
  expect_listed("To=%2B33611111111&DateSent%3E=" + utc(tomorrow, "%Y-%m-%d"), 0);
  expect_listed("To=%2B33611111111&DateSent%3E=" + utc(tomorrow, "%Y-%m-%dT%H:%M:%SZ"), 0);
  expect_listed("To=%2B33699999999", 0);

  // Both numbers, newest first.
  auto all = get(fake.base_url(), messages_path());
  ASSERT_TRUE(all);
  auto page = parse_json(all->body);
  const auto& listed = member(page, "messages").list_value();
  ASSERT_EQ(listed.values_size(), 2);
  EXPECT_EQ(str(listed.values(0).struct_value(), "to"), "+33622222222");

  ASSERT_TRUE(eventually(10s, [&] { return fake.requests()[0].answered == 500; }));
  for (const auto& r : fake.requests()) EXPECT_EQ(r.prism_status / 100, 2) << r.path << "?" << r.query << r.prism_body;
}

// --- signatures -----------------------------------------------------------------------------------

TEST_F(TwilioContract, SignatureMatchesTwiliosTestVectors) {
  // The published vectors: twilio/twilio-python tests/unit/test_request_validator.py.
  const FormFields params{{"CallSid", "CA1234567890ABCDE"},
                          {"Caller", "+14158675309"},
                          {"Digits", "1234"},
                          {"From", "+14158675309"},
                          {"To", "+18005551212"}};
  EXPECT_EQ(FakeTwilio::sign("https://mycompany.com/myapp.php?foo=1&bar=2", params, "12345"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  EXPECT_EQ(FakeTwilio::sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", params, "12345"),
            "kvajT1Ptam85bY51eRf/AJRuM3w=");
  EXPECT_EQ(FakeTwilio::sign("http://mycompany.com:80/myapp.php?foo=1&bar=2", params, "12345"),
            "0ZXoZLH/DfblKGATFgpif+LLRf4=");
  EXPECT_EQ(FakeTwilio::sign("http://mycompany.com:1234/myapp.php?foo=1&bar=2", params, "12345"),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
  // Parameter order does not matter; a repeated name sorts by value.
  FormFields shuffled(params.rbegin(), params.rend());
  EXPECT_EQ(FakeTwilio::sign("https://mycompany.com/myapp.php?foo=1&bar=2", shuffled, "12345"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  EXPECT_EQ(FakeTwilio::sign("https://mycompany.com/myapp.php?foo=1&bar=2",
                             {{"Sid", "CA123"}, {"SidAccount", "AC123"}, {"Digits", "5678"}, {"Digits", "1234"}},
                             "12345"),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
}

// A gateway stand-in that keeps what Twilio's webhooks deliver.
class WebhookReceiver {
 public:
  struct Received {
    std::string url, signature, idempotency_token, content_type;
    FormFields form;
  };

  WebhookReceiver() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Received r;
      r.url = base_url() + req.target;
      r.signature = req.get_header_value("X-Twilio-Signature");
      r.idempotency_token = req.get_header_value("I-Twilio-Idempotency-Token");
      r.content_type = req.get_header_value("Content-Type");
      httplib::Params params;
      httplib::detail::parse_query_text(req.body, params);
      // Params is a multimap: same-name values stay in arrival order, which is all sign() needs.
      r.form.assign(params.begin(), params.end());
      bool valid = !r.signature.empty() && r.signature == FakeTwilio::sign(r.url, r.form, kToken);
      {
        std::lock_guard lock(mutex_);
        received_.push_back(std::move(r));
      }
      res.status = valid ? 200 : 403;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) std::this_thread::sleep_for(1ms);
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<Received> received_;
};

std::string value(const FormFields& form, const std::string& name) {
  for (const auto& [key, v] : form) {
    if (key == name) return v;
  }
  return "<missing>";
}

TEST_F(TwilioContract, CallbacksAreSignedOverTheExactUrl) {
  ASSERT_NO_FATAL_FAILURE(require_prism());
  FakeTwilio fake(kAccount, kToken, prism_url_);
  WebhookReceiver gateway;
  auto created = post(fake.base_url(), messages_path(),
                      encode_form({{"To", "whatsapp:+33612345678"}, {"MessagingServiceSid", kService},
                            {"ContentSid", kTemplate}}));
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201);
  auto sid = fake.messages().at(0).sid;

  // A query string and characters that need encoding, both covered by the signature.
  auto url = gateway.base_url() + "/twilio/status?tenant=acme&note=a%20b";
  EXPECT_EQ(fake.post_status(url, sid, "undelivered", "63016", {{"ChannelStatusMessage", "Échec & retry"}}), 200);
  EXPECT_EQ(fake.post_inbound(gateway.base_url() + "/twilio/inbound", "+33612345678", "+33757000000", "STOP"), 200);
  EXPECT_EQ(fake.post_forged(url, {{"MessageSid", sid}, {"MessageStatus", "delivered"}}, true), 403);
  EXPECT_EQ(fake.post_forged(url, {{"MessageSid", sid}, {"MessageStatus", "delivered"}}, false), 403);

  auto got = gateway.received();
  ASSERT_EQ(got.size(), 4u);
  const auto& status = got[0];
  EXPECT_EQ(status.url, url);
  EXPECT_EQ(status.content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(status.signature, FakeTwilio::sign(url, status.form, kToken));
  EXPECT_FALSE(status.idempotency_token.empty());
  EXPECT_EQ(value(status.form, "MessageSid"), sid);
  EXPECT_EQ(value(status.form, "SmsSid"), sid);
  EXPECT_EQ(value(status.form, "MessageStatus"), "undelivered");
  EXPECT_EQ(value(status.form, "SmsStatus"), "undelivered");
  EXPECT_EQ(value(status.form, "ErrorCode"), "63016");
  EXPECT_EQ(value(status.form, "AccountSid"), kAccount);
  EXPECT_EQ(value(status.form, "To"), "whatsapp:+33612345678");
  EXPECT_EQ(value(status.form, "MessagingServiceSid"), kService);
  EXPECT_EQ(value(status.form, "ChannelPrefix"), "whatsapp");
  EXPECT_EQ(value(status.form, "ApiVersion"), "2010-04-01");
  EXPECT_EQ(value(status.form, "ChannelStatusMessage"), "Échec & retry");
  // The provider's view follows the callback.
  EXPECT_EQ(fake.messages().at(0).status, "undelivered");
  EXPECT_EQ(fake.messages().at(0).error_code, "63016");

  const auto& inbound = got[1];
  EXPECT_EQ(inbound.signature, FakeTwilio::sign(inbound.url, inbound.form, kToken));
  EXPECT_EQ(value(inbound.form, "Body"), "STOP");
  EXPECT_EQ(value(inbound.form, "From"), "+33612345678");
  EXPECT_EQ(value(inbound.form, "SmsStatus"), "received");

  EXPECT_FALSE(got[2].signature.empty());
  EXPECT_NE(got[2].signature, FakeTwilio::sign(url, got[2].form, kToken));
  EXPECT_TRUE(got[3].signature.empty());
}

}  // namespace
}  // namespace relance::testing
