#include "channels/twilio/twilio_channel.h"

#include <google/protobuf/util/time_util.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <cstdint>

#include "channels/twilio/form.h"
#include "channels/twilio/signature.h"
#include "render/sms_segments.h"

namespace relance::channels::twilio {

namespace v1 = relance::v1;
namespace pb = google::protobuf;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Throttled or refused sends are retried here, in the gateway, before the reminder is handed
// back as retriable; lookups after an unknown outcome likewise.
constexpr int kMaxSendAttempts = 8;
constexpr int kMaxLookups = 5;
// A message the provider is still creating when the request timed out may not be listed yet.
constexpr milliseconds kLookupDelay{1000};
// Messages created up to this long before the first attempt still count (clocks differ).
constexpr auto kClockSlack = std::chrono::minutes(2);

// A member of a JSON object as text: a string as it is, a number as an integer, else empty (also
// for a number no integer holds, such as 3e20, which a cast would make undefined).
std::string member_text(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd()) return {};
  const auto& v = it->value;
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsNumber()) {
    double d = v.GetDouble();
    // ±2^63 are exact as doubles; whatever lies in [-2^63, 2^63) truncates to a long long.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return {};
    return std::to_string(static_cast<long long>(d));
  }
  return {};
}

// RapidJSON rather than protobuf's Struct: parsing every answer into a Struct cost 23 µs on a
// 240-byte answer (53 µs on Twilio's 900-byte one) and capped the adapter near 18,000 sends/s.
bool parse_object(const std::string& body, rapidjson::Document& doc) {
  doc.Parse(body.data(), body.size());
  return !doc.HasParseError() && doc.IsObject();
}

// Twilio's dates are RFC 2822: "Tue, 24 Nov 2026 10:00:00 +0000". Nothing for a date the
// clock cannot hold: system_clock counts nanoseconds, so years before 1678 or after 2261 would
// overflow it (a provider's answer is outside input).
std::optional<std::chrono::system_clock::time_point> parse_rfc2822(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  std::int64_t offset = 0;
  while (*end == ' ') ++end;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if ((*end == '+' || *end == '-') && digit(end[1]) && digit(end[2]) && digit(end[3]) && digit(end[4])) {
    offset = ((end[1] - '0') * 10 + (end[2] - '0')) * 3600L + ((end[3] - '0') * 10 + (end[4] - '0')) * 60L;
    if (*end == '-') offset = -offset;
  }
  std::int64_t seconds = static_cast<std::int64_t>(timegm(&tm)) - offset;
  constexpr std::int64_t kLimit =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max()).count();
  if (seconds <= -kLimit || seconds >= kLimit) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

std::string address(v1::Channel channel, const std::string& number) {
  if (channel != v1::WHATSAPP || number.rfind("whatsapp:", 0) == 0) return number;
  return "whatsapp:" + number;
}

bool is_messaging_service(const std::string& from) { return from.rfind("MG", 0) == 0; }

// A stable spread of customers over a channel's senders, so a customer always hears from the
// same number (FNV-1a: std::hash may differ between builds).
std::uint64_t stable_hash(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::size_t read_header(char* data, std::size_t size, std::size_t count, void* user) {
  std::string_view line(data, size * count);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == kName) {
      auto value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
      *static_cast<std::string*>(user) = std::string(value);
    }
  }
  return size * count;
}


}  // namespace

ApiAnswer read_create_answer(long http_status, const std::string& body, const std::string& retry_after_header,
                             const std::vector<int>& success) {
  ApiAnswer answer;
  answer.http_status = static_cast<int>(http_status);
  rapidjson::Document doc;
  if (parse_object(body, doc)) {
    answer.sid = member_text(doc, "sid");
    auto code = member_text(doc, "code");
    if (!code.empty()) std::from_chars(code.data(), code.data() + code.size(), answer.code);
    answer.message = member_text(doc, "message");
  }
  int seconds = 0;
  if (!retry_after_header.empty()) {
    std::from_chars(retry_after_header.data(), retry_after_header.data() + retry_after_header.size(), seconds);
  }
  answer.retry_after = std::chrono::seconds(std::max(0, seconds));
  if (std::find(success.begin(), success.end(), static_cast<int>(http_status)) != success.end()) {
    // Created, but an answer we cannot read gives no sid: the message exists all the same.
    answer.kind = ApiAnswer::Kind::kCreated;
    return answer;
  }
  if (http_status == 429 || answer.code == 20429) {
    answer.kind = ApiAnswer::Kind::kThrottled;
  } else if (http_status >= 500 || (http_status >= 200 && http_status < 300)) {
    // A server error after the request arrived, or an unexpected success status: the message
    // may exist.
    answer.kind = ApiAnswer::Kind::kMaybeCreated;
  } else {
    answer.kind = ApiAnswer::Kind::kRejected;
  }
  if (answer.message.empty()) answer.message = "HTTP " + std::to_string(http_status);
  return answer;
}

std::string find_listed_message(const std::string& list_body, const std::string& to, const std::string& from,
                                const std::string& body, std::chrono::system_clock::time_point since) {
  rapidjson::Document doc;
  if (!parse_object(list_body, doc)) return {};
  // Through a const view: comparing RapidJSON's mutable member iterators is ambiguous in C++20.
  const rapidjson::Value& root = doc;
  auto messages = root.FindMember("messages");
  if (messages == root.MemberEnd() || !messages->value.IsArray()) return {};
  for (const auto& m : messages->value.GetArray()) {
    if (!m.IsObject()) continue;
    if (member_text(m, "to") != to) continue;
    if (!from.empty() && member_text(m, "from") != from) continue;
    if (!body.empty() && member_text(m, "body") != body) continue;
    auto created = parse_rfc2822(member_text(m, "date_created"));
    if (!created || *created < since) continue;
    return member_text(m, "sid");
  }
  return {};
}

struct TwilioAccount::Sender {
  v1::Channel channel;
  std::string from;
  SenderRateLimiter limiter;
  std::deque<std::shared_ptr<Job>> queue;
  bool listed = false;  // in ready_
  bool armed = false;   // a timer will list it
};

struct TwilioAccount::Job {
  Outgoing out;
  Sender* sender = nullptr;
  int segments = 1;
  int attempts = 0;
  int lookups = 0;
  // Look-ups that must come back empty before a resend: two when the request got no answer at
  // all (the provider may still be creating the message), one after an answered 5xx.
  int empty_lookups_needed = 1;
  int empty_lookups = 0;
  bool as_template = false;
  std::string to;
  std::string from;
  std::string body;  // the Body sent, empty for a template
  std::optional<std::chrono::system_clock::time_point> first_try;
  // For the gateway's metrics: whether a sender's rate limit held the message, and the
  // provider's answer time for the last request.
  bool rate_limited = false;
  std::chrono::microseconds latency{0};
};

struct TwilioAccount::Request {
  CURL* easy = nullptr;
  std::string url;
  std::string post;
  std::string response;
  std::string retry_after;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {0};
  ~Request() {
    curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

TwilioAccount::TwilioAccount(v1::TwilioChannelConfig config, std::string secret, std::string public_url,
                             http::TransferLoop& loop)
    : config_(std::move(config)), secret_(std::move(secret)), public_url_(std::move(public_url)), loop_(loop) {
  provider_ = config_.provider_name().empty() ? "twilio" : config_.provider_name();
  success_.assign(config_.success_codes().begin(), config_.success_codes().end());
  if (success_.empty()) success_ = {201};
  while (!public_url_.empty() && public_url_.back() == '/') public_url_.pop_back();
  auto base = config_.base_url();
  while (!base.empty() && base.back() == '/') base.pop_back();
  messages_url_ = base + "/2010-04-01/Accounts/" + config_.account_sid() + "/Messages.json";
  user_ = config_.api_key_sid().empty() ? config_.account_sid() : config_.api_key_sid();
  max_in_flight_ = config_.max_in_flight() > 0 ? static_cast<std::size_t>(config_.max_in_flight()) : 16;
  for (const auto& s : config_.senders()) {
    senders_.push_back(std::make_unique<Sender>(Sender{s.channel(), s.from(), SenderRateLimiter(s.mps()), {}}));
  }
  for (auto [channel, from] : {std::pair{v1::SMS, config_.sms_from()}, std::pair{v1::WHATSAPP, config_.whatsapp_from()}}) {
    // Captured by an init-capture: clang before 16 cannot capture a structured binding.
    bool listed =
        std::any_of(senders_.begin(), senders_.end(), [wanted = channel](const auto& s) { return s->channel == wanted; });
    if (!listed && !from.empty()) {
      senders_.push_back(std::make_unique<Sender>(Sender{channel, from, SenderRateLimiter(config_.default_mps()), {}}));
    }
  }
  // Looked up for every message: an account may have thousands of senders.
  for (const auto& s : senders_) {
    if (s->channel == v1::SMS) sms_senders_.push_back(s.get());
    if (s->channel == v1::WHATSAPP) whatsapp_senders_.push_back(s.get());
  }
}

TwilioAccount::~TwilioAccount() = default;

std::size_t TwilioAccount::queued() const {
  std::size_t n = lookups_.size();
  for (const auto& s : senders_) n += s->queue.size();
  return n;
}

const std::vector<TwilioAccount::Sender*>& TwilioAccount::senders_of(v1::Channel channel) const {
  static const std::vector<Sender*> none;
  if (channel == v1::SMS) return sms_senders_;
  if (channel == v1::WHATSAPP) return whatsapp_senders_;
  return none;
}

TwilioAccount::Sender& TwilioAccount::sender_for(v1::Channel channel, const std::string& customer) {
  const auto& candidates = senders_of(channel);
  return *candidates[stable_hash(customer) % candidates.size()];
}

void TwilioAccount::send(v1::Channel channel, Outgoing outgoing) {
  if (senders_of(channel).empty()) {
    SendResult r;
    r.kind = SendResult::Kind::kPermanent;
    r.provider_code = "no_sender";
    r.message = "no sender configured for " + v1::Channel_Name(channel);
    outgoing.done(std::move(r));
    return;
  }
  auto job = std::make_shared<Job>();
  job->sender = &sender_for(channel, outgoing.message.timeline_key.empty() ? outgoing.message.customer_id
                                                                           : outgoing.message.timeline_key);
  job->to = address(channel, outgoing.message.to);
  job->from = is_messaging_service(job->sender->from) ? std::string() : address(channel, job->sender->from);
  job->as_template = channel == v1::WHATSAPP && !outgoing.message.content_sid.empty();
  // Segments only matter to a sender's rate limit: counting them costs about 2 µs a message.
  job->segments = channel == v1::SMS && !job->sender->limiter.unlimited()
                      ? std::max(1, render::count_sms_segments(outgoing.message.text).segments)
                      : 1;
  job->out = std::move(outgoing);
  if (job->out.interrupted) {
    // Sent, perhaps, by the process before a restart: only a look-up that finds nothing (from
    // this sender to this number with this text, within a day) lets it go out.
    job->first_try = std::chrono::system_clock::now() - std::chrono::hours(24);
    if (!job->as_template) job->body = job->out.message.text;
    job->empty_lookups_needed = 1;
    job->empty_lookups = 0;
    return reconcile_later(std::move(job), milliseconds(0));
  }
  job->sender->queue.push_back(job);
  if (!job->sender->listed && !job->sender->armed) {
    job->sender->listed = true;
    ready_.push_back(job->sender);
  }
  pump();
}

void TwilioAccount::pump() {
  if (pumping_) return;  // a completion inside pump() started another round
  pumping_ = true;
  auto now = SteadyClock::now();
  while (in_flight_ < max_in_flight_ && !lookups_.empty()) {
    auto job = lookups_.front();
    lookups_.pop_front();
    start_lookup(std::move(job));
  }
  while (in_flight_ < max_in_flight_ && !ready_.empty()) {
    Sender* s = ready_.front();
    ready_.pop_front();
    s->listed = false;
    if (s->queue.empty()) continue;
    auto& next = s->queue.front();
    auto at = s->limiter.next_allowed(next->segments, now);
    if (at > now) {
      next->rate_limited = true;
      arm(*s, at);
      continue;
    }
    auto job = next;
    s->queue.pop_front();
    if (!s->queue.empty()) {
      s->listed = true;
      ready_.push_back(s);
    }
    if (job->out.still_wanted && !job->out.still_wanted()) {
      SendResult r;
      r.kind = SendResult::Kind::kCancelled;
      r.message = "withdrawn while waiting to be sent";
      finish(std::move(job), std::move(r));
      continue;
    }
    s->limiter.consume(job->segments, now);
    start_create(std::move(job));
  }
  pumping_ = false;
}

void TwilioAccount::arm(Sender& sender, SteadyClock::time_point at) {
  sender.armed = true;
  loop_.at(at, [this, s = &sender] {
    s->armed = false;
    if (!s->listed && !s->queue.empty()) {
      s->listed = true;
      ready_.push_back(s);
    }
    pump();
  });
}

TwilioAccount::Request& TwilioAccount::new_request() {
  Request* r;
  if (!idle_.empty()) {
    r = idle_.back();
    idle_.pop_back();
  } else {
    // A handle is configured once, when created; a request then only sets its URL and method
    // (CURLOPT_POSTFIELDS makes it a POST, CURLOPT_HTTPGET a GET). curl_easy_reset() and the
    // options set again for every message cost about 2 µs a send.
    pool_.push_back(std::make_unique<Request>());
    r = pool_.back().get();
    r->easy = curl_easy_init();
    r->headers = curl_slist_append(nullptr, "Accept: application/json");
    // Basic credentials as a header built once: curl would base64 them again for every request.
    r->headers = curl_slist_append(r->headers, ("Authorization: Basic " + base64_encode(user_ + ":" + secret_)).c_str());
    CURL* e = r->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->response);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r->retry_after);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    auto timeout = request_timeout().count();
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout, 5'000)));
  }
  r->response.clear();
  r->retry_after.clear();
  r->error[0] = 0;
  ++in_flight_;
  return *r;
}

void TwilioAccount::release(Request& request) {
  --in_flight_;
  idle_.push_back(&request);
}

void TwilioAccount::start_create(std::shared_ptr<Job> job) {
  const auto& m = job->out.message;
  if (!job->first_try) job->first_try = std::chrono::system_clock::now();
  ++job->attempts;
  Params form{{"To", job->to}};
  if (job->from.empty()) {
    form.emplace_back("MessagingServiceSid", job->sender->from);
  } else {
    form.emplace_back("From", job->from);
  }
  job->body.clear();
  if (job->as_template) {
    form.emplace_back("ContentSid", m.content_sid);
    if (!m.content_variables.empty()) form.emplace_back("ContentVariables", m.content_variables);
  } else {
    job->body = m.text;
    form.emplace_back("Body", m.text);
  }
  if (!public_url_.empty()) {
    form.emplace_back("StatusCallback", public_url_ + "/v1/providers/twilio/status?rid=" + url_encode(m.reminder_id) +
                                            "&key=" + url_encode(m.timeline_key) + "&ch=" +
                                            (job->sender->channel == v1::WHATSAPP ? "whatsapp" : "sms"));
  }
  if (config_.validity_period() > 0) form.emplace_back("ValidityPeriod", std::to_string(config_.validity_period()));

  auto& r = new_request();
  r.url = messages_url_;
  r.post = form_encode(form);
  curl_easy_setopt(r.easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, r.post.c_str());
  curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.post.size()));
  loop_.start(r.easy, [this, job, req = &r](CURLcode code) { on_created(job, *req, code); });
}

void TwilioAccount::on_created(std::shared_ptr<Job> job, Request& request, CURLcode code) {
  long status = 0;
  curl_easy_getinfo(request.easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t connect_us = 0;
  curl_easy_getinfo(request.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
  // A reused keep-alive connection reports no connect time although the request went out on
  // it: only a request of which nothing was written proves that nothing reached the provider.
  long request_bytes = 0;
  curl_easy_getinfo(request.easy, CURLINFO_REQUEST_SIZE, &request_bytes);
  curl_off_t total_us = 0;
  curl_easy_getinfo(request.easy, CURLINFO_TOTAL_TIME_T, &total_us);
  job->latency = std::chrono::microseconds(total_us);
  std::string detail = request.error[0] != 0 ? request.error : curl_easy_strerror(code);
  auto answer = read_create_answer(status, request.response, request.retry_after, success_);
  release(request);

  if (code != CURLE_OK) {
    // Refused or unresolved: the request never reached the provider.
    bool not_sent = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                    code == CURLE_COULDNT_RESOLVE_PROXY ||
                    (code == CURLE_OPERATION_TIMEDOUT && connect_us == 0 && request_bytes == 0);
    if (not_sent) {
      if (job->attempts < kMaxSendAttempts) return requeue(std::move(job), backoff(job->attempts));
      SendResult r;
      r.kind = SendResult::Kind::kRetriable;
      r.provider_code = "connect";
      r.message = detail;
      r.retry_after = std::chrono::seconds(30);
      return finish(std::move(job), std::move(r));
    }
    spdlog::warn("{}: no answer to a send ({}); looking it up before any resend", provider_, detail);
    job->empty_lookups_needed = 2;
    job->empty_lookups = 0;
    return reconcile_later(std::move(job), kLookupDelay);
  }

  switch (answer.kind) {
    case ApiAnswer::Kind::kCreated: {
      SendResult r;
      r.kind = SendResult::Kind::kAccepted;
      r.provider_message_id = answer.sid;
      r.provider_response = std::to_string(status);
      return finish(std::move(job), std::move(r));
    }
    case ApiAnswer::Kind::kThrottled:
      if (job->attempts < kMaxSendAttempts) {
        return requeue(std::move(job), std::max(answer.retry_after, backoff(job->attempts)));
      } else {
        SendResult r;
        r.kind = SendResult::Kind::kRetriable;
        r.provider_code = answer.code != 0 ? std::to_string(answer.code) : std::to_string(status);
        r.message = answer.message;
        r.provider_response = std::to_string(status);
        r.retry_after = std::max<milliseconds>(answer.retry_after, std::chrono::seconds(30));
        return finish(std::move(job), std::move(r));
      }
    case ApiAnswer::Kind::kMaybeCreated:
      spdlog::warn("{}: HTTP {} to a send; looking it up before any resend", provider_, status);
      job->empty_lookups_needed = 1;
      job->empty_lookups = 0;
      return reconcile_later(std::move(job), kLookupDelay);
    case ApiAnswer::Kind::kRejected:
      break;
  }
  // Outside the 24-hour window a free-form WhatsApp message is refused: send the approved
  // template instead.
  if (answer.code == 63016 && job->sender->channel == v1::WHATSAPP && !job->as_template &&
      !job->out.message.content_sid.empty()) {
    job->as_template = true;
    return requeue(std::move(job), milliseconds(0));
  }
  SendResult r;
  r.kind = SendResult::Kind::kPermanent;
  r.provider_code = answer.code != 0 ? std::to_string(answer.code) : std::to_string(status);
  r.message = answer.message;
  r.provider_response = std::to_string(status);
  r.recipient_opted_out = answer.code == 21610;
  finish(std::move(job), std::move(r));
}

void TwilioAccount::reconcile_later(std::shared_ptr<Job> job, milliseconds delay) {
  loop_.at(SteadyClock::now() + delay, [this, job] {
    lookups_.push_back(job);
    pump();
  });
}

void TwilioAccount::start_lookup(std::shared_ptr<Job> job) {
  ++job->lookups;
  auto& r = new_request();
  // Newest first, to this recipient from this sender; the creation time is checked here rather
  // than with DateSent>=, because a message still queued at the provider has no date_sent yet
  // and would be missed, then sent a second time.
  r.url = messages_url_ + "?To=" + url_encode(job->to) + (job->from.empty() ? "" : "&From=" + url_encode(job->from)) +
          "&PageSize=50";
  curl_easy_setopt(r.easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(r.easy, CURLOPT_HTTPGET, 1L);
  loop_.start(r.easy, [this, job, req = &r](CURLcode code) { on_listed(job, *req, code); });
}

void TwilioAccount::on_listed(std::shared_ptr<Job> job, Request& request, CURLcode code) {
  long status = 0;
  curl_easy_getinfo(request.easy, CURLINFO_RESPONSE_CODE, &status);
  std::string body = std::move(request.response);
  std::string detail = request.error[0] != 0 ? request.error : curl_easy_strerror(code);
  release(request);
  if (code != CURLE_OK || status != 200) {
    if (job->lookups < kMaxLookups) return reconcile_later(std::move(job), backoff(job->lookups) + kLookupDelay);
    SendResult r;
    r.kind = SendResult::Kind::kUnknown;
    r.provider_code = "unknown";
    r.message = "the provider did not answer a send and could not be asked whether the message exists (" +
                (code != CURLE_OK ? detail : "HTTP " + std::to_string(status)) + ")";
    return finish(std::move(job), std::move(r));
  }
  auto since = *job->first_try - kClockSlack;
  auto sid = find_listed_message(body, job->to, job->from, job->body, since);
  if (!sid.empty()) {
    SendResult r;
    r.kind = SendResult::Kind::kAccepted;
    r.provider_message_id = sid;
    r.provider_response = "reconciled";
    return finish(std::move(job), std::move(r));
  }
  if (++job->empty_lookups < job->empty_lookups_needed) {
    // A request that got no answer may still be in the provider's hands: look once more, after
    // it would have timed out there too.
    return reconcile_later(std::move(job), request_timeout() + kLookupDelay);
  }
  // Provably not there: sending it now cannot make a second copy.
  spdlog::info("{}: the unanswered send was not created; sending it again", provider_);
  if (job->attempts < kMaxSendAttempts) return requeue(std::move(job), milliseconds(0));
  SendResult r;
  r.kind = SendResult::Kind::kRetriable;
  r.provider_code = "unavailable";
  r.message = "the provider kept failing";
  r.retry_after = std::chrono::minutes(1);
  finish(std::move(job), std::move(r));
}

void TwilioAccount::requeue(std::shared_ptr<Job> job, milliseconds delay) {
  auto put_back = [this, job] {
    Sender* s = job->sender;
    s->queue.push_front(job);
    if (!s->listed && !s->armed) {
      s->listed = true;
      ready_.push_back(s);
    }
    pump();
  };
  if (delay.count() <= 0) {
    put_back();
  } else {
    loop_.at(SteadyClock::now() + delay, std::move(put_back));
  }
}

void TwilioAccount::finish(std::shared_ptr<Job> job, SendResult result) {
  result.waited_for_rate_limit = job->rate_limited;
  result.attempts = std::max(1, job->attempts);
  result.provider_latency = job->latency;
  auto done = std::move(job->out.done);
  done(std::move(result));
  pump();
}

milliseconds TwilioAccount::request_timeout() const {
  auto timeout = pb::util::TimeUtil::DurationToMilliseconds(config_.timeout());
  return milliseconds(timeout > 0 ? timeout : 10'000);
}

milliseconds TwilioAccount::backoff(int attempt) {
  // About 100 ms × 2^n with full jitter, as the official helper libraries do, capped at 30 s.
  auto ceiling = std::min<long long>(30'000, 100LL << std::min(attempt, 12));
  std::uniform_int_distribution<long long> jitter(ceiling / 2, ceiling);
  return milliseconds(jitter(random_));
}

}  // namespace relance::channels::twilio
