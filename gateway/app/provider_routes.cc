#include "app/provider_routes.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "app/gateway.h"
#include "app/recent_callbacks.h"
#include "app/timeline_view.h"
#include "channels/twilio/form.h"
#include "channels/twilio/signature.h"
#include "common/dates.h"

namespace relance::app {

namespace v1 = relance::v1;
namespace twilio = relance::channels::twilio;

namespace {

// Provider callbacks are small forms; anything larger is not one.
constexpr std::size_t kMaxCallbackBody = 64 * 1024;

std::string param(const twilio::Params& params, const std::string& name) {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

std::string upper_ascii(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

void text(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body + "\n", "text/plain; charset=utf-8");
}

void json_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  google::protobuf::Struct error;
  (*error.mutable_fields())["error"].set_string_value(code);
  (*error.mutable_fields())["message"].set_string_value(message);
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(error, &out);
  res.status = status;
  res.set_content(out, "application/json");
}

google::protobuf::Timestamp now_timestamp() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  google::protobuf::Timestamp t;
  t.set_seconds(ms.count() / 1000);
  t.set_nanos(static_cast<int32_t>((ms.count() % 1000) * 1'000'000));
  return t;
}

// A verified webhook: its form and its query (where we put what identifies the reminder).
struct SignedRequest {
  twilio::Params form;
  twilio::Params query;
};

class WebhookVerifier {
 public:
  WebhookVerifier(Gateway& gateway, const v1::Config& config) : gateway_(gateway) {
    public_url_ = config.http().public_url();
    while (!public_url_.empty() && public_url_.back() == '/') public_url_.pop_back();
    const auto& t = config.channels().twilio();
    header_ = t.signature_header().empty() ? "X-Twilio-Signature" : t.signature_header();
    secret_ = config::secret(gateway.environment(), t.signing_secret_env(), t.signing_secret_file());
    if (secret_.empty()) secret_ = config::secret(gateway.environment(), t.auth_token_env(), t.auth_token_file());
  }

  // Answers the request itself (400/403/413) and returns nothing when it is not genuine.
  std::optional<SignedRequest> verify(const httplib::Request& req, httplib::Response& res) const {
    if (req.body.size() > kMaxCallbackBody) {
      reject(res, 413, "the body is too large for a provider callback");
      return std::nullopt;
    }
    SignedRequest signed_request;
    auto question = req.target.find('?');
    if (question != std::string::npos) {
      auto query = twilio::form_decode(std::string_view(req.target).substr(question + 1));
      if (!query) {
        reject(res, 400, "the query string is not valid");
        return std::nullopt;
      }
      signed_request.query = std::move(*query);
    }
    bool json = req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
    if (!json) {
      auto form = twilio::form_decode(req.body);
      if (!form) {
        reject(res, 400, "the body is not a valid form");
        return std::nullopt;
      }
      signed_request.form = std::move(*form);
    }
    auto signature = req.get_header_value(header_.c_str());
    if (signature.empty() && header_ != "X-Twilio-Signature") signature = req.get_header_value("X-Twilio-Signature");
    // The URL the provider signed is the public one, whatever proxy stands in between.
    auto url = public_url_ + req.target;
    if (secret_.empty() ||
        !twilio::validate_twilio_signature(url, signed_request.form, req.body, json, signature, secret_)) {
      reject(res, 403, "signature mismatch");
      return std::nullopt;
    }
    return signed_request;
  }

 private:
  void reject(httplib::Response& res, int status, const std::string& why) const {
    gateway_.count_rejected_callback();
    spdlog::warn("provider callback refused: {}", why);
    text(res, status, why);
  }

  Gateway& gateway_;
  std::string public_url_;
  std::string header_;
  std::string secret_;
};

std::optional<v1::DeliveryStatus> status_of(const std::string& status) {
  if (status == "delivered") return v1::DELIVERED;
  if (status == "undelivered") return v1::UNDELIVERED;
  if (status == "failed") return v1::FAILED;
  if (status == "read") return v1::READ;
  if (status == "sent") return v1::SENT;
  return std::nullopt;  // queued, sending, accepted, scheduled...: nothing new for the trail
}

}  // namespace

ReplyKeyword reply_keyword(const std::string& body) {
  auto start = body.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return ReplyKeyword::kNone;
  auto end = body.find_last_not_of(" \t\r\n.!");
  auto word = upper_ascii(body.substr(start, end - start + 1));
  // The keywords carriers and providers honour (CTIA, Twilio's defaults), and their French
  // counterparts; a whole-message match, so a sentence that merely contains "stop" is a reply.
  static const std::set<std::string> stop{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                                          "ARRET", "ARRÊT", "ARRETER", "DESABONNER", "DÉSABONNER", "STOP SMS"};
  static const std::set<std::string> start_words{"START", "UNSTOP", "YES", "SUBSCRIBE", "OUI"};
  if (stop.count(word)) return ReplyKeyword::kStop;
  if (start_words.count(word)) return ReplyKeyword::kStart;
  return ReplyKeyword::kNone;
}

void add_provider_routes(Routes& routes, Gateway& gateway, const v1::Config& config) {
  if (config.channels().twilio().account_sid().empty()) return;
  auto verifier = std::make_shared<WebhookVerifier>(gateway, config);
  auto provider = config.channels().twilio().provider_name().empty() ? std::string("twilio")
                                                                       : config.channels().twilio().provider_name();
  // Providers retry callbacks, and a captured one can be played again; neither publishes twice.
  auto recent = std::make_shared<RecentCallbacks>(65536);

  // Answered from the network thread once Kafka acknowledges the fact: a provider's burst of
  // callbacks waits on the broker, not on threads.
  routes.PostAsync("/v1/providers/twilio/status", [&gateway, verifier, provider, recent](const httplib::Request& req,
                                                                                          const Routes::Reply& reply) {
    httplib::Response res;
    auto request = verifier->verify(req, res);
    if (!request) return reply(std::move(res));
    auto ok = [&reply] {
      httplib::Response done;
      text(done, 200, "ok");
      reply(std::move(done));
    };
    auto reminder_id = param(request->query, "rid");
    auto key = param(request->query, "key");
    auto sid = param(request->form, "MessageSid");
    auto status_text = param(request->form, "MessageStatus");
    if (status_text.empty()) status_text = param(request->form, "SmsStatus");
    if (param(request->form, "EventType") == "READ") status_text = "read";
    auto status = status_of(status_text);
    if (reminder_id.empty() || key.empty() || !status) {
      // Genuine but nothing to record (an intermediate status, a message sent by someone else).
      return ok();
    }
    auto error_code = param(request->form, "ErrorCode");
    v1::InvoiceEvent event;
    // The same report always has the same id, made of what the signature covers: repeats are
    // applied once. (I-Twilio-Idempotency-Token is not signed: a replay could change it.)
    event.set_event_id("status:" + sid + ":" + status_text + ":" + error_code);
    if (!recent->claim(event.event_id())) return ok();
    event.set_source(provider + "-status-callback");
    *event.mutable_occurred_at() = now_timestamp();
    auto* report = event.mutable_delivery_status_reported();
    report->set_reminder_id(reminder_id);
    report->set_channel(param(request->query, "ch") == "whatsapp" ? v1::WHATSAPP : v1::SMS);
    report->set_provider(provider);
    report->set_provider_message_id(sid);
    report->set_status(*status);
    report->set_error_code(error_code);
    report->set_error_message(param(request->form, "ChannelStatusMessage"));
    gateway.submit_fact(key, event, [reply, recent, id = event.event_id()](bool acknowledged) {
      httplib::Response done;
      if (acknowledged) {
        text(done, 200, "ok");
      } else {
        // The provider's retry gets through.
        recent->forget(id);
        text(done, 503, "try again");
      }
      reply(std::move(done));
    });
  });

  routes.Post("/v1/providers/twilio/inbound", [&gateway, verifier, provider, recent](const httplib::Request& req,
                                                                                      httplib::Response& res) {
    auto request = verifier->verify(req, res);
    if (!request) return;
    // An empty TwiML answer: Relance replies to nobody by itself (the provider's own STOP
    // handling already confirms opt-outs to the sender).
    constexpr const char* kNoReply = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
    auto sid = param(request->form, "MessageSid");
    auto id = "inbound:" + sid;
    if (!sid.empty() && !recent->claim(id)) {
      res.set_content(kNoReply, "text/xml");
      return;
    }
    // Published or not, a failure below gives the id back so the provider's retry gets through.
    struct Release {
      RecentCallbacks& recent;
      std::string id;
      bool done = false;
      ~Release() {
        if (!done) recent.forget(id);
      }
    } release{*recent, id};
    gateway.count_inbound();
    auto from = param(request->form, "From");
    auto body = param(request->form, "Body");
    bool whatsapp = from.rfind("whatsapp:", 0) == 0;
    auto number = whatsapp ? from.substr(9) : from;
    auto channel = whatsapp ? v1::WHATSAPP : v1::SMS;
    auto key = gateway.key_for_phone(number);
    auto keyword = reply_keyword(body);
    if (keyword != ReplyKeyword::kNone && key) {
      v1::InvoiceEvent event;
      event.set_event_id(id);
      event.set_source(provider + "-inbound");
      *event.mutable_occurred_at() = now_timestamp();
      auto* consent = event.mutable_consent_changed();
      consent->set_customer_id(*key);
      consent->set_channel(channel);
      consent->set_granted(keyword == ReplyKeyword::kStart);
      consent->set_source(whatsapp ? "whatsapp-reply" : "sms-reply");
      if (!gateway.submit_fact(*key, event)) return text(res, 503, "try again");
      release.done = true;
      res.set_content(kNoReply, "text/xml");
      return;
    }
    v1::InboundReply reply;
    reply.set_event_id(id);
    if (key) reply.set_customer_id(*key);
    reply.set_channel(channel);
    reply.set_from(number);
    reply.set_to(param(request->form, "To"));
    reply.set_body(body);
    reply.set_provider(provider);
    reply.set_provider_message_id(sid);
    *reply.mutable_received_at() = now_timestamp();
    if (!gateway.publish_inbound(reply)) return text(res, 503, "try again");
    release.done = true;
    res.set_content(kNoReply, "text/xml");
  });
}

namespace {

std::string admin_token(const Gateway& gateway, const v1::Config& config) {
  return config::secret(gateway.environment(), config.http().admin_token_env(), config.http().admin_token_file());
}

// Admin and support routes take `Authorization: Bearer <token>`; false after answering 401/403.
bool authorized(const httplib::Request& req, httplib::Response& res, const std::string& token, const char* what) {
  if (token.empty()) {
    json_error(res, 403, "forbidden", std::string("set http.admin_token_env or http.admin_token_file to ") + what);
    return false;
  }
  auto auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.rfind(kBearer, 0) != 0 || !twilio::constant_time_equal(std::string_view(auth).substr(kBearer.size()), token)) {
    res.set_header("WWW-Authenticate", "Bearer");
    json_error(res, 401, "unauthorized", "a valid bearer token is required");
    return false;
  }
  return true;
}

}  // namespace

void add_admin_routes(Routes& routes, Gateway& gateway, const v1::Config& config) {
  auto token = admin_token(gateway, config);
  auto answer = [](httplib::Response& res, Instant now) {
    res.set_content(R"({"now":")" + format_rfc3339(now) + "\"}", "application/json");
  };
  routes.Get("/v1/admin/clock", [&gateway, token, answer](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, token, "read the clock")) return;
    answer(res, gateway.clock()->now());
  });
  // Tests and demos drive a simulated clock from outside: 90 days in minutes, or a jump over a
  // downtime.
  routes.Post("/v1/admin/clock", [&gateway, token, answer](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, token, "set the clock")) return;
    auto simulated = std::dynamic_pointer_cast<SimulatedClock>(gateway.clock());
    if (!simulated) return json_error(res, 409, "not_simulated", "the clock is the system clock (clock.mode: system)");
    if (req.body.size() > kMaxCallbackBody) return json_error(res, 413, "too_large", "the body is too large");
    google::protobuf::Struct body;
    if (!google::protobuf::util::JsonStringToMessage(req.body, &body).ok()) {
      return json_error(res, 400, "invalid_json", "the body must be a JSON object");
    }
    auto now = body.fields().find("now");
    std::optional<Instant> at;
    if (now != body.fields().end() && now->second.has_string_value()) at = parse_rfc3339(now->second.string_value());
    if (!at) return json_error(res, 400, "invalid_now", "now: an RFC 3339 instant is required");
    simulated->set(*at);
    answer(res, simulated->now());
  });
}

namespace {

void print_json(httplib::Response& res, const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return json_error(res, 500, "internal", "cannot print the answer");
  }
  out += '\n';
  res.set_content(out, "application/json");
}

void unavailable(httplib::Response& res) {
  res.set_header("Retry-After", "1");
  json_error(res, 503, "unavailable", "the gateway is not processing; try again in a moment");
}

// One file the capture channel wrote: "Name: value" lines, a blank line, the text, and for an
// email "--- html ---" and its HTML part (not returned).
std::optional<v1::CapturedMessage> read_captured(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  v1::CapturedMessage m;
  std::string line;
  while (std::getline(in, line) && !line.empty()) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    auto name = line.substr(0, colon);
    auto value = line.substr(colon + 2);
    if (name == "Reminder-Id") m.set_reminder_id(value);
    if (name == "Customer-Id") m.set_customer_id(value);
    if (name == "To") m.set_to(value);
    if (name == "Locale") m.set_locale(value);
    if (name == "Subject") m.set_subject(value);
    if (name == "Channel") {
      v1::Channel channel = v1::CHANNEL_UNSPECIFIED;
      if (v1::Channel_Parse(value, &channel)) m.set_channel(channel);
    }
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (auto html = text.find("\n--- html ---\n"); html != std::string::npos) text.resize(html);
  m.set_text(text);
  std::error_code ec;
  auto written = std::filesystem::last_write_time(file, ec);
  if (!ec) {
    auto at = std::chrono::file_clock::to_sys(written);
    m.set_captured_at(format_rfc3339(std::chrono::time_point_cast<Duration>(at)));
  }
  return m;
}

std::size_t limit_param(const httplib::Request& req, std::size_t fallback, std::size_t most) {
  if (!req.has_param("limit")) return fallback;
  try {
    auto n = std::stoul(req.get_param_value("limit"));
    return std::clamp<std::size_t>(n, 1, most);
  } catch (const std::exception&) {
    return fallback;
  }
}

}  // namespace

void add_support_routes(Routes& routes, Gateway& gateway, const v1::Config& config) {
  auto token = admin_token(gateway, config);
  // The embedded default (no brokers, no token configured) is a local sandbox: its console and
  // timelines are open to whoever reaches its loopback port.
  bool open = token.empty() && config.kafka().brokers().empty();
  auto allowed = [token, open](const httplib::Request& req, httplib::Response& res, const char* what) {
    return open || authorized(req, res, token, what);
  };
  routes.Get(R"(/v1/customers/([A-Za-z0-9_.:@\-]{1,200})/timeline)", [&gateway, allowed](const httplib::Request& req,
                                                                                   httplib::Response& res) {
    if (!allowed(req, res, "read timelines")) return;
    auto answer = gateway.timeline(req.matches[1].str(), std::chrono::seconds(5));
    switch (answer.lookup) {
      case Gateway::Lookup::kFound:
        res.set_content(timeline_json(answer.timeline), "application/json");
        return;
      case Gateway::Lookup::kUnknown:
        return json_error(res, 404, "unknown_timeline", "no timeline has this key");
      case Gateway::Lookup::kNotOwned:
        return json_error(res, 404, "not_owned_here",
                          "another instance owns this timeline's partition now; ask that instance");
      case Gateway::Lookup::kUnavailable:
        break;
    }
    unavailable(res);
  });
  routes.Get("/v1/customers", [&gateway, allowed](const httplib::Request& req, httplib::Response& res) {
    if (!allowed(req, res, "list customers")) return;
    auto prefix = req.has_param("prefix") ? req.get_param_value("prefix") : std::string();
    if (prefix.size() > 200) return json_error(res, 400, "invalid_prefix", "prefix: at most 200 characters");
    auto list = gateway.customers(prefix, limit_param(req, 50, 500), std::chrono::seconds(5));
    if (!list) return unavailable(res);
    print_json(res, *list);
  });
  routes.Get("/v1/call-tasks", [&gateway, allowed](const httplib::Request& req, httplib::Response& res) {
    if (!allowed(req, res, "list call tasks")) return;
    auto list = gateway.open_call_tasks(std::chrono::seconds(5));
    if (!list) return unavailable(res);
    print_json(res, *list);
  });
  auto capture_dir = std::filesystem::path(config.channels().capture().dir());
  routes.Get("/v1/outbox", [capture_dir, allowed](const httplib::Request& req, httplib::Response& res) {
    if (!allowed(req, res, "read the outbox")) return;
    std::error_code ec;
    if (capture_dir.empty() || !std::filesystem::is_directory(capture_dir, ec)) {
      return json_error(res, 404, "no_capture", "no message was captured here (providers are configured)");
    }
    std::vector<std::pair<std::filesystem::file_time_type, std::filesystem::path>> files;
    for (const auto& entry : std::filesystem::directory_iterator(capture_dir, ec)) {
      auto name = entry.path().filename().string();
      if (name.empty() || name.front() == '.' || entry.path().extension() != ".txt") continue;
      files.emplace_back(entry.last_write_time(ec), entry.path());
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    v1::CapturedMessageList list;
    auto limit = limit_param(req, 50, 500);
    for (const auto& [when, file] : files) {
      if (static_cast<std::size_t>(list.messages_size()) >= limit) break;
      if (auto m = read_captured(file)) *list.add_messages() = std::move(*m);
    }
    print_json(res, list);
  });
}

Result<CallOutcomeBody> parse_call_outcome_body(const std::string& text) {
  google::protobuf::Struct body;
  if (!google::protobuf::util::JsonStringToMessage(text, &body).ok()) {
    return Error{"invalid_json", "the body must be a JSON object"};
  }
  auto field = [&](const char* name) {
    auto it = body.fields().find(name);
    return it != body.fields().end() && it->second.has_string_value() ? it->second.string_value() : std::string();
  };
  static const std::map<std::string, v1::CallOutcomeRecorded::Outcome> outcomes{
      {"reached", v1::CallOutcomeRecorded::REACHED},
      {"promise_to_pay", v1::CallOutcomeRecorded::PROMISE_TO_PAY},
      {"dispute", v1::CallOutcomeRecorded::DISPUTE},
      {"wrong_number", v1::CallOutcomeRecorded::WRONG_NUMBER},
      {"no_answer", v1::CallOutcomeRecorded::NO_ANSWER}};
  auto outcome = outcomes.find(field("outcome"));
  if (outcome == outcomes.end()) {
    return Error{"invalid_outcome", "outcome: one of reached, promise_to_pay, dispute, wrong_number, no_answer"};
  }
  CallOutcomeBody parsed;
  parsed.outcome = outcome->second;
  parsed.outcome_name = outcome->first;
  parsed.promised_on = field("promised_on");
  if (parsed.outcome == v1::CallOutcomeRecorded::PROMISE_TO_PAY && !parse_iso_date(parsed.promised_on)) {
    return Error{"invalid_date", "promised_on: a YYYY-MM-DD date is required with promise_to_pay"};
  }
  parsed.note = field("note");
  parsed.recorded_by = field("recorded_by");
  parsed.customer_id = field("customer_id");
  return parsed;
}

void add_call_task_routes(Routes& routes, Gateway& gateway, const v1::Config& config) {
  auto token = admin_token(gateway, config);
  // As the support routes: open in the embedded default only (no brokers, no token configured).
  bool open = token.empty() && config.kafka().brokers().empty();
  routes.Post(R"(/v1/call-tasks/([A-Za-z0-9_.:\-]{1,200})/outcome)", [&gateway, token, open](const httplib::Request& req,
                                                                                             httplib::Response& res) {
    if (!open && !authorized(req, res, token, "record call outcomes")) return;
    if (req.body.size() > kMaxCallbackBody) return json_error(res, 413, "too_large", "the body is too large");
    auto body = parse_call_outcome_body(req.body);
    if (!body) return json_error(res, 400, body.error().code, body.error().message);
    auto task_id = req.matches[1].str();
    auto key = gateway.key_for_task(task_id);
    if (!key && !body->customer_id.empty()) key = body->customer_id;
    if (!key) {
      return json_error(res, 404, "unknown_task",
                        "this instance does not know the task; send customer_id (the task's customer.customer_id)");
    }
    v1::InvoiceEvent event;
    event.set_event_id("call-outcome:" + task_id + ":" + body->outcome_name + ":" + body->promised_on);
    event.set_source("relance-call-outcome");
    *event.mutable_occurred_at() = now_timestamp();
    auto* recorded = event.mutable_call_outcome_recorded();
    recorded->set_task_id(task_id);
    recorded->set_outcome(body->outcome);
    recorded->set_promised_on(body->promised_on);
    recorded->set_note(body->note);
    recorded->set_recorded_by(body->recorded_by);
    if (!gateway.submit_fact(*key, event)) return json_error(res, 503, "unavailable", "try again in a moment");
    res.status = 202;
    res.set_content(R"({"status":"recorded","task_id":")" + task_id + R"(","outcome":")" + body->outcome_name + "\"}",
                    "application/json");
  });
}

}  // namespace relance::app
