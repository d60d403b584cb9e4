#include "channels/email/smtp_channel.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <vector>

#include "channels/http/curl_handles.h"
#include "channels/email/mime_headers.h"

namespace relance::channels::email {

namespace {

using http::Slist;
using http::Easy;
using http::append;
using http::Mime;

// Everything libcurl reads while one message is on the wire: it keeps pointers to the lists,
// the MIME tree and the error buffer, not copies, so they live until the transfer completes.
struct Transfer {
  Outgoing outgoing;
  std::string message_id;
  Slist recipients;
  Slist headers;
  Mime mime;
  char error[CURL_ERROR_SIZE] = {};
};

// Resets a flag when a scope ends, even through an exception.
class FlagGuard {
 public:
  explicit FlagGuard(bool& flag) : flag_(flag) { flag_ = true; }
  ~FlagGuard() { flag_ = false; }
  FlagGuard(const FlagGuard&) = delete;
  FlagGuard& operator=(const FlagGuard&) = delete;

 private:
  bool& flag_;
};

}  // namespace

// Shared with the completions handed to the loop, so a transfer that is still on the wire when
// the adapter goes away finds its handle, its data and its `done` intact.
struct SmtpChannel::Core : std::enable_shared_from_this<SmtpChannel::Core> {
  Core(relance::v1::EmailChannelConfig config_in, std::string password_in, http::TransferLoop& loop_in)
      : config(std::move(config_in)), password(std::move(password_in)), loop(loop_in) {
    message_id_domain = config.message_id_domain().empty() ? domain_of(config.from()) : config.message_id_domain();
    from = "<" + config.from() + ">";
    timeout_ms = google::protobuf::util::TimeUtil::DurationToMilliseconds(config.timeout());
  }

  ~Core() {
    // Only reached with transfers left when the loop itself is being destroyed: free their
    // MIME trees while the easy handles they were bound to still exist.
    in_flight.clear();
  }

  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  void pump();
  void start(Outgoing outgoing);
  void finish(CURL* easy, CURLcode code);
  CURL* acquire();
  void configure(CURL* easy, Transfer& transfer);

  relance::v1::EmailChannelConfig config;
  std::string password;
  std::string message_id_domain;
  std::string from;
  std::int64_t timeout_ms = 0;
  http::TransferLoop& loop;

  std::vector<Easy> handles;  // every easy handle created, at most kMaxInFlight
  std::vector<CURL*> idle;    // those not on the wire
  std::deque<Outgoing> queue;
  std::map<CURL*, std::unique_ptr<Transfer>> in_flight;
  bool pumping = false;
};

SmtpChannel::SmtpChannel(relance::v1::EmailChannelConfig config, std::string password, http::TransferLoop& loop)
    : core_(std::make_shared<Core>(std::move(config), std::move(password), loop)) {}

SmtpChannel::~SmtpChannel() {
  // Messages still waiting for a slot are abandoned; those on the wire keep the core alive
  // through their completions and finish normally.
  core_->queue.clear();
}

std::size_t SmtpChannel::in_flight() const { return core_->in_flight.size(); }
std::size_t SmtpChannel::queued() const { return core_->queue.size(); }

SendResult SmtpChannel::classify(CURLcode code, long smtp_reply, const std::string& detail, bool data_started) {
  using Kind = SendResult::Kind;
  SendResult r;
  r.provider_code = smtp_reply > 0 ? std::to_string(smtp_reply) : std::string();
  r.provider_response = r.provider_code;
  r.message = detail.empty() ? curl_easy_strerror(code) : detail;
  if (code == CURLE_OK) {
    r.kind = Kind::kAccepted;
    return r;
  }
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      r.kind = Kind::kRetriable;
      r.retry_after = std::chrono::seconds(30);
      return r;
    case CURLE_LOGIN_DENIED:
    case CURLE_USE_SSL_FAILED:
      r.kind = Kind::kPermanent;
      return r;
    default:
      break;
  }
  // The server's verdict, when it gave one, is the surest guide: 4xx is "try later" and the
  // message was not taken; 5xx is final.
  if (smtp_reply >= 400 && smtp_reply < 500) {
    r.kind = Kind::kRetriable;
    r.retry_after = std::chrono::minutes(1);
  } else if (smtp_reply >= 500) {
    r.kind = Kind::kPermanent;
  } else {
    // Cut off with no verdict: once DATA was under way the message may have been accepted.
    r.kind = data_started ? Kind::kUnknown : Kind::kRetriable;
    r.retry_after = std::chrono::seconds(30);
  }
  return r;
}

void SmtpChannel::send(Outgoing outgoing) {
  // Always through the queue, so a message never overtakes one that was waiting for a slot.
  core_->queue.push_back(std::move(outgoing));
  core_->pump();
}

void SmtpChannel::Core::pump() {
  // A `done` or `still_wanted` called from here may call send() again: the outer loop picks the
  // new message up. The reference keeps the core alive should a callback drop the adapter.
  if (pumping) return;
  auto self = shared_from_this();
  FlagGuard guard(pumping);
  while (!queue.empty() && in_flight.size() < kMaxInFlight) {
    Outgoing next = std::move(queue.front());
    queue.pop_front();
    if (next.still_wanted && !next.still_wanted()) {
      SendResult cancelled;
      cancelled.kind = SendResult::Kind::kCancelled;
      cancelled.message = "withdrawn before it was sent";
      if (next.done) next.done(std::move(cancelled));
      continue;
    }
    start(std::move(next));
  }
}

CURL* SmtpChannel::Core::acquire() {
  if (!idle.empty()) {
    CURL* easy = idle.back();
    idle.pop_back();
    return easy;
  }
  Easy easy(curl_easy_init());
  if (!easy) return nullptr;
  handles.push_back(std::move(easy));
  return handles.back().get();
}

void SmtpChannel::Core::configure(CURL* easy, Transfer& t) {
  const RenderedMessage& message = t.outgoing.message;
  t.message_id = "<" + message.reminder_id + "@" + message_id_domain + ">";

  append(t.recipients, "<" + message.to + ">");
  append(t.headers, "Date: " + format_rfc5322_date(std::chrono::system_clock::now()));
  append(t.headers, "From: " + format_address(config.from_name(), config.from()));
  append(t.headers, "To: " + format_address(message.to_name, message.to));
  append(t.headers, "Subject: " + encode_header_text(message.subject));
  append(t.headers, "Message-ID: " + t.message_id);
  append(t.headers, "X-Relance-Reminder-Id: " + message.reminder_id);
  if (!message.unsubscribe_url.empty()) {
    // RFC 8058 one-click: the mailbox provider POSTs to the link; a GET never unsubscribes.
    append(t.headers, "List-Unsubscribe: <" + message.unsubscribe_url + ">");
    append(t.headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
  }
  // Makes the root part itself multipart/alternative; curl adds the boundary.
  append(t.headers, "Content-Type: multipart/alternative");

  // curl_mime_data copies the text, so the message may be moved or freed afterwards.
  t.mime.reset(curl_mime_init(easy));
  if (!t.mime) throw std::bad_alloc();
  curl_mimepart* text = curl_mime_addpart(t.mime.get());
  curl_mime_data(text, message.text.c_str(), CURL_ZERO_TERMINATED);
  curl_mime_type(text, "text/plain; charset=UTF-8");
  curl_mime_encoder(text, "quoted-printable");
  if (!message.html.empty()) {
    curl_mimepart* html = curl_mime_addpart(t.mime.get());
    curl_mime_data(html, message.html.c_str(), CURL_ZERO_TERMINATED);
    curl_mime_type(html, "text/html; charset=UTF-8");
    curl_mime_encoder(html, "quoted-printable");
  }

  // String options are copied by libcurl; the lists, the MIME tree and the error buffer are not.
  curl_easy_setopt(easy, CURLOPT_URL, config.smtp_url().c_str());
  curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, t.recipients.get());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.headers.get());
  curl_easy_setopt(easy, CURLOPT_MIMEPOST, t.mime.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USE_SSL, static_cast<long>(config.require_tls() ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<std::int64_t>(timeout_ms, 10'000)));
  if (!config.username().empty()) {
    curl_easy_setopt(easy, CURLOPT_USERNAME, config.username().c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, password.c_str());
  }
}

void SmtpChannel::Core::start(Outgoing outgoing) {
  CURL* easy = acquire();
  if (easy == nullptr) {
    // Refused locally before anything left the process.
    SendResult failed;
    failed.kind = SendResult::Kind::kRetriable;
    failed.message = "libcurl: cannot create an easy handle";
    failed.retry_after = std::chrono::seconds(30);
    if (outgoing.done) outgoing.done(std::move(failed));
    return;
  }
  auto transfer = std::make_unique<Transfer>();
  transfer->outgoing = std::move(outgoing);
  try {
    configure(easy, *transfer);
  } catch (...) {
    transfer.reset();
    curl_easy_reset(easy);
    idle.push_back(easy);
    throw;
  }
  in_flight.emplace(easy, std::move(transfer));
  // The loop may complete the transfer at once (CURLE_FAILED_INIT) from inside start().
  loop.start(easy, [self = shared_from_this(), easy](CURLcode code) { self->finish(easy, code); });
}

void SmtpChannel::Core::finish(CURL* easy, CURLcode code) {
  auto node = in_flight.extract(easy);
  if (node.empty()) return;
  Transfer& t = *node.mapped();
  long reply = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply);
  curl_off_t uploaded = 0;
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  auto result = SmtpChannel::classify(code, reply, t.error, uploaded > 0);
  curl_off_t total_us = 0;
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
  result.provider_latency = std::chrono::microseconds(total_us);
  if (result.kind == SendResult::Kind::kAccepted) {
    result.provider_message_id = t.message_id;
  } else {
    spdlog::debug("smtp: reminder {} not accepted: curl {} smtp {}", t.outgoing.message.reminder_id,
                  static_cast<int>(code), reply);
  }
  SendCallback done = std::move(t.outgoing.done);
  // The MIME tree is freed while its easy handle exists; the handle then goes back to the
  // pool, its connection to the multi handle's cache for the next message.
  node.mapped().reset();
  curl_easy_reset(easy);
  idle.push_back(easy);
  auto self = shared_from_this();
  if (done) done(std::move(result));
  pump();
}

}  // namespace relance::channels::email
