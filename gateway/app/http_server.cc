#include "app/http_server.h"

#include <sys/socket.h>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "app/gateway.h"
#include "app/preview.h"
#include "app/provider_routes.h"
#include "common/dates.h"
#include "common/link_token.h"

namespace relance::app {

namespace {

constexpr const char* kJson = "application/json";

void refuse(httplib::Response& res, int status, const Error& error, int line = 0) {
  res.status = status;
  res.set_content(preview_error_json(error, line), kJson);
}

// POST /v1/preview?from=RFC3339&days=N with the events as JSON lines in the body.
void serve_preview(const relance::v1::Config& config, const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& content_reader) {
  if (req.is_multipart_form_data()) {
    return refuse(res, 400, Error{"undecodable", "send the events as the body (JSON lines), not as a form", false});
  }
  std::string body;
  bool too_large = false;
  content_reader([&](const char* data, std::size_t length) {
    // Read to the end so the client gets its answer rather than a reset connection.
    if (too_large || body.size() + length > HttpServer::kMaxPreviewBody) {
      too_large = true;
      body.clear();
    } else {
      body.append(data, length);
    }
    return true;
  });
  if (too_large) {
    return refuse(res, 413, Error{"too_large", "the body exceeds 1 MiB; preview fewer events at a time", false});
  }

  std::optional<Instant> from;
  if (req.has_param("from")) {
    from = parse_rfc3339(req.get_param_value("from"));
    if (!from) return refuse(res, 400, Error{"invalid_date", "from: must be an RFC 3339 time", false});
  }
  int days = kDefaultPreviewDays;
  if (req.has_param("days")) {
    auto text = req.get_param_value("days");
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), days);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return refuse(res, 400, Error{"invalid_days", "days: must be a whole number of days", false});
    }
  }
  int line = 0;
  auto result = preview(config, body, from, days, &line);
  if (!result) return refuse(res, 400, result.error(), line);
  res.set_content(preview_json(result.value()), kJson);
}

std::unique_ptr<httplib::Server> make_server(const relance::v1::HttpConfig& http) {
  if (http.tls_cert().empty()) return std::make_unique<httplib::Server>();
  auto server = std::make_unique<httplib::SSLServer>(http.tls_cert().c_str(), http.tls_key().c_str());
  if (!server->is_valid()) {
    throw std::runtime_error("http.tls_cert, http.tls_key: cannot load the certificate and key from " + http.tls_cert() +
                             " and " + http.tls_key() + " (a PEM certificate chain and its matching private key)");
  }
  // TLS 1.0 and 1.1 are deprecated (RFC 8996).
  SSL_CTX_set_min_proto_version(server->ssl_context(), TLS1_2_VERSION);
  return server;
}

httplib::Server::HandlerResponse refuse_early(httplib::Response& res, int status, const std::string& code,
                                              const std::string& message) {
  res.status = status;
  // Whatever body follows is not read: it must not be taken for the next request.
  res.set_header("Connection", "close");
  res.set_content(R"({"error":")" + code + R"(","message":")" + message + "\"}", kJson);
  return httplib::Server::HandlerResponse::Handled;
}

// Limits checked once the headers are read and before any body is. cpp-httplib 0.11 bounds
// neither the number of header fields nor a chunked body (payload_max_length applies to a
// declared Content-Length only); only the preview streams its body and bounds it itself.
// A body with a declared length is left to the library and the routes, which read it to the end
// and answer 413, so that the client gets the answer rather than a reset connection.
httplib::Server::HandlerResponse check_limits(const httplib::Request& req, httplib::Response& res) {
  if (req.headers.size() > HttpServer::kMaxHeaderCount) {
    return refuse_early(res, 431, "too_many_headers",
                        "at most " + std::to_string(HttpServer::kMaxHeaderCount) + " header fields");
  }
  if (req.path != "/v1/preview" && req.has_header("Transfer-Encoding")) {
    return refuse_early(res, 411, "length_required", "send the body with a Content-Length");
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

}  // namespace

HttpServer::HttpServer(Gateway& gateway, relance::v1::Config config)
    : config_(std::move(config)), server_(make_server(config_.http())) {
  // Each keep-alive connection holds a worker for as long as it stays open, and a callback's
  // worker waits for Kafka's acknowledgement before answering: a provider's connection pool
  // (Twilio opens dozens) needs as many workers, and connections that live for more than the
  // library's default of 5 requests.
  server_->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server_->set_keep_alive_max_count(kKeepAliveRequests);
  server_->set_tcp_nodelay(true);
  // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): when a provider
  // opens more connections at once, their SYNs are dropped and retried a second later. The
  // socket is remembered as the library creates it and listens again, with the system's
  // maximum, once bound.
  server_->set_socket_options([this](int fd) {
    httplib::default_socket_options(fd);
    listening_fd_ = fd;
  });
  server_->set_pre_routing_handler(check_limits);
  // No body larger than the preview's is held in memory: the library reads it to the end,
  // drops it and answers 413.
  server_->set_payload_max_length(kMaxPreviewBody);
  // The console: one static page; the data it shows comes from the support routes, which take
  // the admin token (the page asks for it) except in the embedded default.
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
    res.set_content(console_html(), "text/html; charset=utf-8");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  server_->Get("/readyz", [&gateway](const httplib::Request&, httplib::Response& res) {
    auto reason = gateway.not_ready_reason();
    res.status = reason.empty() ? 200 : 503;
    res.set_content(reason.empty() ? "ready\n" : "not ready: " + reason + "\n", "text/plain");
  });
  server_->Get("/metrics", [&gateway](const httplib::Request&, httplib::Response& res) {
    res.set_content(gateway.metrics().prometheus_text(), "text/plain; version=0.0.4");
  });
  server_->Post("/v1/preview", [this](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& content_reader) {
    serve_preview(config_, req, res, content_reader);
  });
  // RFC 8058: the link in List-Unsubscribe. A GET (link scanners follow them) only shows a
  // button; the POST records the opt-out, answers without a redirect, and needs no cookie.
  static constexpr const char* kUnsubscribePath = R"(/v1/unsubscribe/([A-Za-z0-9_.\-]{1,512}))";
  server_->Get(kUnsubscribePath, [](const httplib::Request& req, httplib::Response& res) {
    if (!verify_link_token(req.matches[1].str())) {
      res.status = 404;
      res.set_content("This link is not valid.\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content("<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
                    "<form method=post><p>Stop receiving these messages by this channel?</p>"
                    "<button type=submit>Unsubscribe</button></form>",
                    "text/html; charset=utf-8");
  });
  server_->Post(kUnsubscribePath, [&gateway](const httplib::Request& req, httplib::Response& res) {
    auto token = verify_link_token(req.matches[1].str());
    if (!token) {
      res.status = 404;
      res.set_content("This link is not valid.\n", "text/plain; charset=utf-8");
      return;
    }
    const auto& [key, channel] = *token;
    relance::v1::InvoiceEvent event;
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    event.set_event_id("unsubscribe:" + req.matches[1].str() + ":" + std::to_string(ms));
    event.set_source("relance-unsubscribe");
    event.mutable_occurred_at()->set_seconds(ms / 1000);
    auto* consent = event.mutable_consent_changed();
    consent->set_customer_id(key);
    consent->set_channel(channel);
    consent->set_granted(false);
    consent->set_source("unsubscribe-link");
    if (!gateway.submit_fact(key, event)) {
      res.status = 503;
      res.set_content("Please try again in a moment.\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content("You will no longer receive these messages by this channel.\n", "text/plain; charset=utf-8");
  });
  add_provider_routes(*server_, gateway, config_);
  add_call_task_routes(*server_, gateway, config_);
  add_admin_routes(*server_, gateway, config_);
  add_support_routes(*server_, gateway, config_);
  const auto& listen = config_.http().listen();
  auto colon = listen.rfind(':');
  auto host = listen.substr(0, colon);
  auto port = std::stoi(listen.substr(colon + 1));
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ < 0) throw std::runtime_error("http.listen: cannot listen on " + listen);
  if (listening_fd_ >= 0) ::listen(listening_fd_, SOMAXCONN);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("{} on {}:{}", config_.http().tls_cert().empty() ? "HTTP" : "HTTPS", host, port_);
}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relance::app
