#include "channels/call_task/call_task_webhook.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <new>
#include <random>

#include "channels/twilio/signature.h"
#include "channels/http/curl_handles.h"

namespace relance::channels::call_task {

namespace {

using Clock = std::chrono::steady_clock;

using http::Slist;
using http::Easy;
using http::append;

std::size_t discard(char* /*data*/, std::size_t size, std::size_t count, void* /*user*/) { return size * count; }

// A header value never carries a line break or another control character.
std::string header_safe(std::string value) {
  std::erase_if(value, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == '\x7f'; });
  return value;
}

// Failures no retry can mend: the configuration is wrong.
bool hopeless(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
      return true;
    default:
      return false;
  }
}

struct Delivery {
  std::string task_id;
  std::string body;
  std::int64_t first_unix_time = 0;
  Clock::time_point first_at;
  int attempt = 0;  // attempts started
  Easy easy;
  Slist headers;
  char error[CURL_ERROR_SIZE] = {};
  http::TransferLoop::TimerId retry_timer = 0;  // non-zero while waiting to retry
};

}  // namespace

struct CallTaskWebhook::Core : std::enable_shared_from_this<CallTaskWebhook::Core> {
  Core(std::string url_in, std::string secret_in, std::chrono::milliseconds timeout_in, int max_attempts_in,
       http::TransferLoop& loop_in, std::chrono::milliseconds initial_backoff_in)
      : url(std::move(url_in)),
        secret(std::move(secret_in)),
        timeout(timeout_in.count() > 0 ? timeout_in : std::chrono::seconds(10)),
        max_attempts(std::max(1, max_attempts_in)),
        initial_backoff(std::max(initial_backoff_in, std::chrono::milliseconds(1))),
        loop(loop_in),
        random(std::random_device{}()) {}

  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  void attempt(std::uint64_t id);
  void finish(std::uint64_t id, CURLcode code);
  void retry_later(std::uint64_t id, Delivery& d, std::chrono::milliseconds retry_after, const std::string& why);
  void give_up(std::uint64_t id, const Delivery& d, const std::string& why);
  std::chrono::milliseconds backoff(int failures);

  std::string url;
  std::string secret;
  std::chrono::milliseconds timeout;
  int max_attempts;
  std::chrono::milliseconds initial_backoff;
  http::TransferLoop& loop;
  std::mt19937_64 random;

  std::map<std::uint64_t, std::unique_ptr<Delivery>> deliveries;
  std::uint64_t next_id = 1;
  bool closed = false;
  std::uint64_t delivered = 0;
  std::uint64_t given_up = 0;
  std::uint64_t attempts = 0;
};

CallTaskWebhook::CallTaskWebhook(std::string url, std::string secret, std::chrono::milliseconds timeout,
                                 int max_attempts, http::TransferLoop& loop,
                                 std::chrono::milliseconds initial_backoff)
    : core_(std::make_shared<Core>(std::move(url), std::move(secret), timeout, max_attempts, loop, initial_backoff)) {}

CallTaskWebhook::~CallTaskWebhook() {
  // Retries not started yet are dropped; requests on the wire keep the core alive through their
  // completions and end without a retry.
  core_->closed = true;
  for (auto it = core_->deliveries.begin(); it != core_->deliveries.end();) {
    if (it->second->retry_timer != 0) {
      core_->loop.cancel(it->second->retry_timer);
      it = core_->deliveries.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t CallTaskWebhook::pending() const { return core_->deliveries.size(); }
std::uint64_t CallTaskWebhook::delivered() const { return core_->delivered; }
std::uint64_t CallTaskWebhook::given_up() const { return core_->given_up; }
std::uint64_t CallTaskWebhook::attempts() const { return core_->attempts; }

void CallTaskWebhook::post(std::string task_id, std::string json_body, std::int64_t unix_time_now) {
  auto d = std::make_unique<Delivery>();
  d->task_id = header_safe(std::move(task_id));
  d->body = std::move(json_body);
  d->first_unix_time = unix_time_now;
  d->first_at = Clock::now();
  auto id = core_->next_id++;
  core_->deliveries.emplace(id, std::move(d));
  core_->attempt(id);
}

void CallTaskWebhook::Core::attempt(std::uint64_t id) {
  auto it = deliveries.find(id);
  if (it == deliveries.end()) return;
  Delivery& d = *it->second;
  d.retry_timer = 0;
  if (!d.easy) {
    d.easy.reset(curl_easy_init());
    if (!d.easy) {
      // Nothing left the process; try again later like any other local failure.
      ++d.attempt;
      ++attempts;
      retry_later(id, d, std::chrono::milliseconds(0), "libcurl: cannot create an easy handle");
      return;
    }
  }
  ++d.attempt;
  ++attempts;

  // A fresh timestamp on every attempt: the receiver's replay window starts again.
  auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - d.first_at).count();
  auto timestamp = std::to_string(d.first_unix_time + elapsed);
  auto signature = twilio::hmac_sha256_hex(secret, timestamp + "." + d.body);

  d.headers.reset();
  append(d.headers, "Content-Type: application/json");
  append(d.headers, "X-Relance-Task-Id: " + d.task_id);
  append(d.headers, "X-Relance-Timestamp: " + timestamp);
  append(d.headers, "X-Relance-Signature: v1=" + signature);
  append(d.headers, "Expect:");  // no 100-continue round trip for larger bodies
  d.error[0] = '\0';

  CURL* easy = d.easy.get();
  curl_easy_reset(easy);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  // Not copied: the body lives in the delivery until it ends.
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d.body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(d.body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d.headers.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, d.error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(10)).count()));
  loop.start(easy, [self = shared_from_this(), id](CURLcode code) { self->finish(id, code); });
}

void CallTaskWebhook::Core::finish(std::uint64_t id, CURLcode code) {
  auto it = deliveries.find(id);
  if (it == deliveries.end()) return;
  Delivery& d = *it->second;
  long status = 0;
  curl_easy_getinfo(d.easy.get(), CURLINFO_RESPONSE_CODE, &status);

  if (code == CURLE_OK && status >= 200 && status < 300) {
    ++delivered;
    spdlog::debug("call-task webhook: task {} delivered (HTTP {}, attempt {})", d.task_id, status, d.attempt);
    deliveries.erase(it);
    return;
  }
  if (closed) {
    deliveries.erase(it);
    return;
  }
  if (code != CURLE_OK) {
    std::string why = d.error[0] != '\0' ? std::string(d.error) : std::string(curl_easy_strerror(code));
    if (hopeless(code)) {
      give_up(id, d, why);
    } else {
      retry_later(id, d, std::chrono::milliseconds(0), why);
    }
    return;
  }
  auto why = "HTTP " + std::to_string(status);
  if (status == 408 || status == 429 || status >= 500) {
    std::chrono::milliseconds retry_after{0};
    if (status == 429 || status == 503) {
      curl_off_t seconds = 0;
      if (curl_easy_getinfo(d.easy.get(), CURLINFO_RETRY_AFTER, &seconds) == CURLE_OK && seconds > 0) {
        retry_after = std::chrono::seconds(std::min<curl_off_t>(seconds, 24 * 3600));
      }
    }
    retry_later(id, d, retry_after, why);
    return;
  }
  give_up(id, d, why);
}

std::chrono::milliseconds CallTaskWebhook::Core::backoff(int failures) {
  // initial, 2x, 4x ... capped; then minus up to a quarter at random, so that tasks failed
  // together do not all come back at the same instant.
  std::chrono::milliseconds base = initial_backoff;
  for (int i = 1; i < failures && base < kMaxBackoff; ++i) base *= 2;
  base = std::min<std::chrono::milliseconds>(base, kMaxBackoff);
  std::uniform_int_distribution<std::int64_t> jitter(0, base.count() / 4);
  return base - std::chrono::milliseconds(jitter(random));
}

void CallTaskWebhook::Core::retry_later(std::uint64_t id, Delivery& d, std::chrono::milliseconds retry_after,
                                        const std::string& why) {
  if (d.attempt >= max_attempts) {
    give_up(id, d, why + " after " + std::to_string(d.attempt) + " attempts");
    return;
  }
  auto delay = backoff(d.attempt);
  if (retry_after > delay) delay = std::min<std::chrono::milliseconds>(retry_after, kMaxBackoff);
  spdlog::warn("call-task webhook: task {} attempt {} failed ({}); retrying in {} ms", d.task_id, d.attempt, why,
               delay.count());
  std::weak_ptr<Core> weak = weak_from_this();
  d.retry_timer = loop.at(Clock::now() + delay, [weak, id] {
    if (auto self = weak.lock()) self->attempt(id);
  });
}

void CallTaskWebhook::Core::give_up(std::uint64_t id, const Delivery& d, const std::string& why) {
  ++given_up;
  spdlog::error("call-task webhook: gave up on task {} ({}); it stays on the call-task topic", d.task_id, why);
  deliveries.erase(id);
}

}  // namespace relance::channels::call_task
