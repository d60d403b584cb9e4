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
// the configuration's `http.listen`.
class HttpServer {
 public:
  // Larger preview bodies are refused with 413 (read and dropped, never held in memory).
  static constexpr std::size_t kMaxPreviewBody = std::size_t{1} << 20;

  HttpServer(Gateway& gateway, relance::v1::Config config);
  ~HttpServer();
  int port() const { return port_; }

 private:
  relance::v1::Config config_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace relance::app
