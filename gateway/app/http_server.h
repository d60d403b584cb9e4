#pragma once

#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace relance::app {

class Gateway;

// Health, readiness and metrics over HTTP, served on its own thread.
class HttpServer {
 public:
  HttpServer(const Gateway& gateway, const std::string& listen);
  ~HttpServer();
  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace relance::app
