#include "channels/email/smtp_channel.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "channels/email/mime_headers.h"

namespace relance::channels::email {

namespace {

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct MimeDeleter {
  void operator()(curl_mime* mime) const { curl_mime_free(mime); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

void append(Slist& list, const std::string& line) { list.reset(curl_slist_append(list.release(), line.c_str())); }

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

SmtpChannel::SmtpChannel(relance::v1::EmailChannelConfig config, std::string password)
    : config_(std::move(config)), password_(std::move(password)) {
  static GlobalInit init;
  message_id_domain_ = config_.message_id_domain().empty() ? domain_of(config_.from()) : config_.message_id_domain();
  curl_.reset(curl_easy_init());
}

SmtpChannel::~SmtpChannel() = default;

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

void SmtpChannel::send(const RenderedMessage& message, SendCallback done) {
  CURL* curl = curl_.get();
  curl_easy_reset(curl);
  char error[CURL_ERROR_SIZE] = {0};
  auto message_id = "<" + message.reminder_id + "@" + message_id_domain_ + ">";

  Slist recipients;
  append(recipients, "<" + message.to + ">");
  Slist headers;
  append(headers, "Date: " + format_rfc5322_date(std::chrono::system_clock::now()));
  append(headers, "From: " + format_address(config_.from_name(), config_.from()));
  append(headers, "To: " + format_address(message.to_name, message.to));
  append(headers, "Subject: " + encode_header_text(message.subject));
  append(headers, "Message-ID: " + message_id);
  append(headers, "X-Relance-Reminder-Id: " + message.reminder_id);
  if (!message.unsubscribe_url.empty()) {
    // RFC 8058 one-click: the mailbox provider POSTs to the link; a GET never unsubscribes.
    append(headers, "List-Unsubscribe: <" + message.unsubscribe_url + ">");
    append(headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
  }
  // Makes the root part itself multipart/alternative; curl adds the boundary.
  append(headers, "Content-Type: multipart/alternative");

  std::unique_ptr<curl_mime, MimeDeleter> mime(curl_mime_init(curl));
  curl_mimepart* text = curl_mime_addpart(mime.get());
  curl_mime_data(text, message.text.c_str(), CURL_ZERO_TERMINATED);
  curl_mime_type(text, "text/plain; charset=UTF-8");
  curl_mime_encoder(text, "quoted-printable");
  if (!message.html.empty()) {
    curl_mimepart* html = curl_mime_addpart(mime.get());
    curl_mime_data(html, message.html.c_str(), CURL_ZERO_TERMINATED);
    curl_mime_type(html, "text/html; charset=UTF-8");
    curl_mime_encoder(html, "quoted-printable");
  }

  auto from = "<" + config_.from() + ">";
  curl_easy_setopt(curl, CURLOPT_URL, config_.smtp_url().c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime.get());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(config_.require_tls() ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  auto timeout_ms = google::protobuf::util::TimeUtil::DurationToMilliseconds(config_.timeout());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout_ms, 10'000)));
  if (!config_.username().empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, config_.username().c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password_.c_str());
  }

  CURLcode code = curl_easy_perform(curl);
  long reply = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
  curl_off_t uploaded = 0;
  curl_easy_getinfo(curl, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  auto result = classify(code, reply, error, uploaded > 0);
  if (result.kind == SendResult::Kind::kAccepted) result.provider_message_id = message_id;
  done(std::move(result));
}

}  // namespace relance::channels::email
