#include "app/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "app/gateway.h"

namespace relance::app {

HttpServer::HttpServer(const Gateway& gateway, const std::string& listen) : server_(std::make_unique<httplib::Server>()) {
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  server_->Get("/readyz", [&gateway](const httplib::Request&, httplib::Response& res) {
    res.status = gateway.ready() ? 200 : 503;
    res.set_content(gateway.ready() ? "ready\n" : "not ready\n", "text/plain");
  });
  server_->Get("/metrics", [&gateway](const httplib::Request&, httplib::Response& res) {
    res.set_content(gateway.metrics().prometheus_text(), "text/plain; version=0.0.4");
  });
  auto colon = listen.rfind(':');
  auto host = listen.substr(0, colon);
  auto port = std::stoi(listen.substr(colon + 1));
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ < 0) throw std::runtime_error("http.listen: cannot listen on " + listen);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("HTTP on {}:{}", host, port_);
}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relance::app
