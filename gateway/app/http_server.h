#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/http_routes.h"
#include "relance/v1/config.pb.h"

namespace relance::app {

class Gateway;

// The console page (gateway/app/console/index.html, built into the binary).
const char* console_html();

// Health, readiness, metrics, preview, one-click unsubscribe, provider callbacks, call-task
// outcomes, support and admin routes over HTTP/1.1 on the configuration's `http.listen`; over
// HTTPS when `http.tls_cert` and `http.tls_key` are set.
//
// Event-driven (Boost.Beast on Asio): a few network threads serve every connection, so an idle
// keep-alive connection costs a buffer, not a thread. Status callbacks are answered from the
// network thread when Kafka acknowledges their record, health, readiness and metrics at once
// from it; other routes run on a pool of workers, since they may wait (a preview, an outcome
// waiting for Kafka).
class HttpServer {
 public:
  // Larger preview bodies are refused with 413.
  static constexpr std::size_t kMaxPreviewBody = std::size_t{1} << 20;
  // Other routes take at most 64 KiB (callbacks, outcomes, the admin clock answer 413 beyond),
  // and must declare its length: a chunked body is refused with 411. A refused body is read and
  // dropped before the connection closes, so that the client reads the answer rather than a
  // reset connection.
  static constexpr std::size_t kMaxBody = std::size_t{64} << 10;
  // Requests with more header fields are refused with 431, a header line over 8 KiB with 400,
  // a request target over 8 KiB with 414, more than 64 KiB of header in all with 431.
  static constexpr std::size_t kMaxHeaderCount = 100;
  static constexpr std::size_t kMaxHeaderLine = std::size_t{8} << 10;
  static constexpr std::size_t kMaxHeaderBytes = std::size_t{64} << 10;
  // Requests per connection before it is closed, and how long an idle one stays open.
  static constexpr std::size_t kKeepAliveRequests = 10'000;
  static constexpr std::chrono::seconds kIdleTimeout{5};
  // A route that has not answered by then gets 503 (its work may still complete).
  static constexpr std::chrono::seconds kReplyTimeout{15};
  static constexpr int kNetworkThreads = 2;
  static constexpr int kWorkerThreads = 32;

  HttpServer(Gateway& gateway, relance::v1::Config config);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  int port() const { return port_; }

  struct Core;

 private:
  relance::v1::Config config_;
  std::shared_ptr<Core> core_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

}  // namespace relance::app
