#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "channels/http/transfer_loop.h"

namespace relance::channels::call_task {

// POSTs call tasks as JSON to a webhook (a helpdesk or chat tool), signed, with retries, on the
// gateway's TransferLoop (no thread, nothing blocks; every callback runs on the loop's thread).
//
// Each request carries:
//   Content-Type: application/json
//   X-Relance-Task-Id: <task id>          the same on every attempt: deduplicate on it
//   X-Relance-Timestamp: <unix seconds>   when this attempt was signed
//   X-Relance-Signature: v1=<hex>
// where <hex> is the lower-case hexadecimal HMAC-SHA256, keyed with the shared secret, of the
// bytes "<timestamp>.<body>": the decimal X-Relance-Timestamp value exactly as sent, one ".",
// then the raw request body exactly as received (before any JSON parsing).
//
// A receiver verifies a request by:
//   1. recomputing HMAC-SHA256(secret, X-Relance-Timestamp + "." + raw body), hex-encoding it
//      in lower case, and comparing "v1=" + that with X-Relance-Signature in constant time;
//   2. rejecting the request when the timestamp is further than a tolerance (5 minutes, say)
//      from its own clock, so that a captured request cannot be replayed later;
//   3. ignoring a task id it has already processed (a retry after a lost response delivers
//      the same task again, with a fresh timestamp and signature).
// Later schemes would use another "vN=" prefix; a receiver ignores prefixes it does not know.
//
// Outcome of an attempt:
//   2xx                                         delivered
//   408, 429, 5xx, connection errors, timeouts  retried after 1 s, 2 s, 4 s ... (initial_backoff
//                                               doubled, capped at 5 minutes, minus up to a
//                                               quarter of random jitter); on 429 and 503 a
//                                               longer Retry-After is honoured (up to the cap).
//                                               Each attempt is signed with a fresh timestamp.
//   any other status, a malformed URL           given up at once (an error is logged)
// After max_attempts attempts the task is given up with an error log. The task itself stays on
// the call-task topic either way; the webhook is a convenience copy.
//
// The timestamp of the first attempt is `unix_time_now` given to post(); a retry adds the real
// time elapsed since then. Destroying the webhook abandons retries not yet started; requests on
// the wire finish without being retried.
class CallTaskWebhook {
 public:
  CallTaskWebhook(std::string url, std::string secret, std::chrono::milliseconds timeout, int max_attempts,
                  http::TransferLoop& loop, std::chrono::milliseconds initial_backoff = std::chrono::seconds(1));
  ~CallTaskWebhook();
  CallTaskWebhook(const CallTaskWebhook&) = delete;
  CallTaskWebhook& operator=(const CallTaskWebhook&) = delete;

  void post(std::string task_id, std::string json_body, std::int64_t unix_time_now);

  // Tasks neither delivered nor given up yet (on the wire or waiting to retry).
  std::size_t pending() const;

  // Metrics, counted since construction.
  std::uint64_t delivered() const;
  std::uint64_t given_up() const;
  std::uint64_t attempts() const;  // requests started, first attempts and retries

  static constexpr std::chrono::minutes kMaxBackoff{5};

 private:
  struct Core;
  std::shared_ptr<Core> core_;
};

}  // namespace relance::channels::call_task
