#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "relance/v1/config.pb.h"

namespace httplib {
class Server;
}

namespace relance::app {

class Gateway;

// The console page (gateway/app/console/index.html, built into the binary).
const char* console_html();

// Health, readiness, metrics, preview and one-click unsubscribe over HTTP, served on its own thread, on
// the configuration's `http.listen`; over HTTPS when `http.tls_cert` and `http.tls_key` are set.
class HttpServer {
 public:
  // Larger preview bodies are refused with 413 (read and dropped, never held in memory).
  static constexpr std::size_t kMaxPreviewBody = std::size_t{1} << 20;
  // Other routes take at most 64 KiB (callbacks, outcomes, the admin clock answer 413 beyond),
  // and must declare its length: a chunked body is refused with 411, since cpp-httplib 0.11
  // would hold it whole in memory. Bodies over kMaxPreviewBody are read and dropped by the
  // library, which answers 413.
  // Requests with more header fields are refused with 431. cpp-httplib has no such limit of
  // its own (it bounds each header line at 8 KiB and the request line at 8 KiB, answering 400
  // and 414), and this check runs once the headers are read.
  static constexpr std::size_t kMaxHeaderCount = 100;
  // Connections served at once (each holds a worker while open) and requests per connection.
  static constexpr std::size_t kWorkerThreads = 128;
  static constexpr std::size_t kKeepAliveRequests = 10'000;

  HttpServer(Gateway& gateway, relance::v1::Config config);
  ~HttpServer();
  int port() const { return port_; }

 private:
  relance::v1::Config config_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  int listening_fd_ = -1;
};

}  // namespace relance::app
