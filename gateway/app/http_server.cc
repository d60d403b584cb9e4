#include "app/http_server.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <array>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "app/gateway.h"
#include "app/preview.h"
#include "app/provider_routes.h"
#include "common/dates.h"
#include "common/link_token.h"

namespace relance::app {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// What the network threads, the connections and the replies still in flight share. Replies may
// come after the server is gone (a Kafka acknowledgement for a request whose connection was
// closed at stop): they keep the Core, and with it the io_context their connection belongs to,
// alive, and send nothing once `running` is false.
struct HttpServer::Core {
  static std::vector<std::unique_ptr<net::io_context>> make_contexts() {
    std::vector<std::unique_ptr<net::io_context>> out;
    for (int i = 0; i < kNetworkThreads; ++i) out.push_back(std::make_unique<net::io_context>(1));
    return out;
  }
  // One io_context per network thread: a connection lives on one of them, its handlers never
  // run at the same time, and nothing needs a strand.
  std::vector<std::unique_ptr<net::io_context>> contexts = make_contexts();
  // Each network thread runs until the server stops, with or without connections.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> running_guards = [this] {
    std::vector<net::executor_work_guard<net::io_context::executor_type>> out;
    for (auto& context : contexts) out.push_back(net::make_work_guard(*context));
    return out;
  }();
  std::size_t next_context = 0;
  tcp::acceptor acceptor{*contexts.front()};
  std::optional<net::ssl::context> tls;
  net::thread_pool workers{kWorkerThreads};
  Routes routes;
  std::mutex mutex;
  bool running = true;
  // Open connections, closed at stop.
  struct Connection {
    virtual ~Connection() = default;
    virtual void close() = 0;
  };
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> connections;
  std::uint64_t next_connection = 0;
};

namespace {

constexpr const char* kJson = "application/json";

void refuse(httplib::Response& res, int status, const Error& error, int line = 0) {
  res.status = status;
  res.set_content(preview_error_json(error, line), kJson);
}

// POST /v1/preview?from=RFC3339&days=N with the events as JSON lines in the body.
void serve_preview(const relance::v1::Config& config, const httplib::Request& req, httplib::Response& res) {
  if (req.is_multipart_form_data()) {
    return refuse(res, 400, Error{"undecodable", "send the events as the body (JSON lines), not as a form", false});
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
  auto result = preview(config, req.body, from, days, &line);
  if (!result) return refuse(res, 400, result.error(), line);
  res.set_content(preview_json(result.value()), kJson);
}

bool is_preview(std::string_view target) {
  constexpr std::string_view kPreview = "/v1/preview";
  return target.substr(0, kPreview.size()) == kPreview && (target.size() == kPreview.size() || target[kPreview.size()] == '?');
}

template <class Stream>
constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

// One client connection: requests read one after the other; each answered (in order) before the
// next is read.
template <class Stream>
class Session : public HttpServer::Core::Connection, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(std::shared_ptr<HttpServer::Core> core, Stream stream)
      : core_(std::move(core)), stream_(std::move(stream)), timer_(stream_.get_executor()) {}

  ~Session() override {
    std::lock_guard lock(core_->mutex);
    core_->connections.erase(id_);
  }

  void start() {
    {
      std::lock_guard lock(core_->mutex);
      id_ = core_->next_connection++;
      core_->connections.emplace(id_, this->weak_from_this());
    }
    if constexpr (kTls<Stream>) {
      lowest().expires_after(10s);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->shut();
        self->read_request();
      });
    } else {
      read_request();
    }
  }

  void close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->shut(); });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(HttpServer::kMaxHeaderBytes));
    // The route's limit is set once the header is read (on_header answers a larger length).
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(HttpServer::kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return refuse(431, "header_too_large", "at most 64 KiB of header fields");
    }
    if (ec) {
      // A parse error gets its answer; a closed, reset or idle connection just ends.
      if (ec.category() == http::make_error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
          ec != http::error::partial_message) {
        return refuse(400, "bad_request", ec.message());
      }
      return shut();
    }
    const auto& header = parser_->get();
    if (header.target().size() > HttpServer::kMaxHeaderLine) {
      return refuse(414, "uri_too_long", "the request target exceeds 8 KiB");
    }
    std::size_t fields = 0;
    for (const auto& field : header) {
      ++fields;
      if (field.name_string().size() + field.value().size() + 2 > HttpServer::kMaxHeaderLine) {
        return refuse(400, "header_line_too_long", "a header line exceeds 8 KiB");
      }
    }
    if (fields > HttpServer::kMaxHeaderCount) {
      return refuse(431, "too_many_headers", "at most " + std::to_string(HttpServer::kMaxHeaderCount) + " header fields");
    }
    const bool preview = is_preview({header.target().data(), header.target().size()});
    if (parser_->chunked() && !preview) {
      return refuse(411, "length_required", "send the body with a Content-Length");
    }
    const auto limit = preview ? HttpServer::kMaxPreviewBody : HttpServer::kMaxBody;
    if (auto length = parser_->content_length(); length && *length > limit) {
      return refuse(413, "too_large", "the body exceeds " + std::string(preview ? "1 MiB" : "64 KiB"));
    }
    parser_->body_limit(limit);
    lowest().expires_after(30s);
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, 11};
      return http::async_write(stream_, continue_, [self = this->shared_from_this()](beast::error_code write_ec, std::size_t) {
        if (write_ec) return self->shut();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec == http::error::body_limit) return self->refuse(413, "too_large", "the body exceeds the route's limit");
      if (ec) return self->shut();
      self->dispatch();
    });
  }

  void dispatch() {
    auto& message = parser_->get();
    auto request = std::make_shared<httplib::Request>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    request->version = message.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    auto question = request->target.find('?');
    request->path = httplib::detail::decode_url(request->target.substr(0, question), false);
    if (question != std::string::npos) {
      httplib::detail::parse_query_text(request->target.substr(question + 1), request->params);
    }
    for (const auto& field : message) {
      request->headers.emplace(std::string(field.name_string()), std::string(field.value()));
    }
    request->body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    head_ = message.method() == http::verb::head;
    const auto serial = ++serial_;
    answered_ = false;

    const auto* route = core_->routes.find(request->method, *request);
    if (route == nullptr) {
      httplib::Response none;
      none.status = 404;
      return answer(serial, std::move(none));
    }
    timer_.expires_after(HttpServer::kReplyTimeout);
    timer_.async_wait([self = this->shared_from_this(), serial](beast::error_code ec) {
      if (ec) return;
      spdlog::warn("HTTP: no answer within {} s; answering 503", HttpServer::kReplyTimeout.count());
      httplib::Response late;
      late.status = 503;
      late.set_content("try again\n", "text/plain; charset=utf-8");
      self->answer(serial, std::move(late));
    });
    Routes::Reply reply = [self = this->shared_from_this(), serial](httplib::Response res) {
      self->deliver(serial, std::move(res));
    };
    if (route->async_handler) {
      try {
        route->async_handler(*request, reply);
      } catch (const std::exception& e) {
        spdlog::error("HTTP {} {}: {}", request->method, request->path, e.what());
        httplib::Response failed;
        failed.status = 500;
        answer(serial, std::move(failed));
      }
      return;
    }
    net::post(core_->workers, [request, route, reply = std::move(reply)] {
      httplib::Response res;
      try {
        route->handler(*request, res);
      } catch (const std::exception& e) {
        spdlog::error("HTTP {} {}: {}", request->method, request->path, e.what());
        res = httplib::Response{};
        res.status = 500;
      }
      reply(std::move(res));
    });
  }

  // From any thread: hands the answer to the connection's own network thread.
  void deliver(std::uint64_t serial, httplib::Response res) {
    std::lock_guard lock(core_->mutex);
    if (!core_->running) return;
    net::post(stream_.get_executor(), [self = this->shared_from_this(), serial, res = std::move(res)]() mutable {
      self->answer(serial, std::move(res));
    });
  }

  void answer(std::uint64_t serial, httplib::Response res) {
    if (serial != serial_ || answered_) return;  // answered already (503 after the timeout)
    answered_ = true;
    timer_.cancel();
    bool close = !keep_alive_ || ++served_ >= HttpServer::kKeepAliveRequests;
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(res.status < 0 ? 200 : res.status));
    for (const auto& [name, value] : res.headers) {
      if (beast::iequals(name, "Connection")) {
        close = close || beast::iequals(value, "close");
        continue;
      }
      if (beast::iequals(name, "Content-Length")) continue;
      response_.insert(name, value);
    }
    response_.body() = std::move(res.body);
    response_.keep_alive(!close);
    response_.prepare_payload();
    if (head_) {
      auto length = response_.body().size();
      response_.body().clear();
      response_.content_length(length);
    }
    lowest().expires_after(30s);
    http::async_write(stream_, response_, [self = this->shared_from_this(), close](beast::error_code ec, std::size_t) {
      if (ec || close) return self->shut();
      self->read_request();
    });
  }

  // Answers before the body is read and closes; the body that may follow is read and dropped
  // for a while first, so that the client sees the answer rather than a reset connection.
  void refuse(int status, const std::string& code, const std::string& message) {
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(status));
    response_.set(http::field::content_type, kJson);
    response_.body() = R"({"error":")" + code + R"(","message":")" + message + "\"}";
    response_.keep_alive(false);
    response_.prepare_payload();
    lowest().expires_after(10s);
    http::async_write(stream_, response_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->shut();
      beast::error_code ignored;
      self->lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->lowest().expires_after(5s);
      self->drain();
    });
  }

  void drain() {
    lowest().async_read_some(net::buffer(drained_), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->shut();
      self->drain();
    });
  }

  void shut() {
    timer_.cancel();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().close();
  }

  std::shared_ptr<HttpServer::Core> core_;  // first: outlives the stream, whose io_context it holds
  Stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> continue_;
  http::response<http::string_body> response_;
  std::array<char, 16384> drained_{};
  std::uint64_t id_ = 0;
  std::uint64_t serial_ = 0;
  std::size_t served_ = 0;
  bool answered_ = false;
  bool keep_alive_ = false;
  bool head_ = false;
};

void accept(const std::shared_ptr<HttpServer::Core>& core) {
  auto& context = *core->contexts[core->next_context++ % core->contexts.size()];
  core->acceptor.async_accept(context, [core](beast::error_code ec, tcp::socket socket) {
    if (!core->acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors, most likely: the connections that are open go on, and the
      // next attempt waits for some of them to close rather than spinning.
      spdlog::warn("HTTP: cannot accept a connection: {}", ec.message());
      auto pause = std::make_shared<net::steady_timer>(core->acceptor.get_executor(), 100ms);
      return pause->async_wait([core, pause](beast::error_code) { accept(core); });
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (core->tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            core, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *core->tls))
            ->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(core, beast::tcp_stream(std::move(socket)))->start();
      }
    }
    accept(core);
  });
}

void load_tls(HttpServer::Core& core, const relance::v1::HttpConfig& http) {
  if (http.tls_cert().empty()) return;
  auto& tls = core.tls.emplace(net::ssl::context::tls_server);
  // TLS 1.0 and 1.1 are deprecated (RFC 8996).
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  tls.set_options(net::ssl::context::default_workarounds | net::ssl::context::single_dh_use);
  beast::error_code ec;
  tls.use_certificate_chain_file(http.tls_cert(), ec);
  if (!ec) tls.use_private_key_file(http.tls_key(), net::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(tls.native_handle()) != 1) {
    throw std::runtime_error("http.tls_cert, http.tls_key: cannot load the certificate and key from " + http.tls_cert() +
                             " and " + http.tls_key() + " (a PEM certificate chain and its matching private key)");
  }
}

}  // namespace

HttpServer::HttpServer(Gateway& gateway, relance::v1::Config config)
    : config_(std::move(config)), core_(std::make_shared<Core>()) {
  load_tls(*core_, config_.http());
  auto& routes = core_->routes;
  // The console: one static page; the data it shows comes from the support routes, which take
  // the admin token (the page asks for it) except in the embedded default.
  routes.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
    res.set_content(console_html(), "text/html; charset=utf-8");
  });
  routes.GetAsync("/healthz", Routes::immediate([](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  }));
  routes.GetAsync("/readyz", Routes::immediate([&gateway](const httplib::Request&, httplib::Response& res) {
    auto reason = gateway.not_ready_reason();
    res.status = reason.empty() ? 200 : 503;
    res.set_content(reason.empty() ? "ready\n" : "not ready: " + reason + "\n", "text/plain");
  }));
  routes.GetAsync("/metrics", Routes::immediate([&gateway](const httplib::Request&, httplib::Response& res) {
    res.set_content(gateway.metrics().prometheus_text(), "text/plain; version=0.0.4");
  }));
  routes.Post("/v1/preview", [this](const httplib::Request& req, httplib::Response& res) { serve_preview(config_, req, res); });
  // RFC 8058: the link in List-Unsubscribe. A GET (link scanners follow them) only shows a
  // button; the POST records the opt-out, answers without a redirect, and needs no cookie.
  static constexpr const char* kUnsubscribePath = R"(/v1/unsubscribe/([A-Za-z0-9_.\-]{1,512}))";
  routes.Get(kUnsubscribePath, [](const httplib::Request& req, httplib::Response& res) {
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
  routes.Post(kUnsubscribePath, [&gateway](const httplib::Request& req, httplib::Response& res) {
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
  add_provider_routes(routes, gateway, config_);
  add_call_task_routes(routes, gateway, config_);
  add_admin_routes(routes, gateway, config_);
  add_support_routes(routes, gateway, config_);
  const auto& listen = config_.http().listen();
  auto colon = listen.rfind(':');
  auto host = listen.substr(0, colon);
  auto service = listen.substr(colon + 1);
  try {
    tcp::resolver resolver(*core_->contexts.front());
    auto endpoint = resolver.resolve(host, service, tcp::resolver::passive | tcp::resolver::numeric_service)->endpoint();
    core_->acceptor.open(endpoint.protocol());
    core_->acceptor.set_option(net::socket_base::reuse_address(true));
    core_->acceptor.bind(endpoint);
    // The system's maximum backlog: a provider opening dozens of connections at once.
    core_->acceptor.listen(net::socket_base::max_listen_connections);
    port_ = core_->acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("http.listen: cannot listen on " + listen + ": " + e.code().message());
  }
  accept(core_);
  for (auto& context : core_->contexts) threads_.emplace_back([core = core_, &context = *context] { context.run(); });
  spdlog::info("{} on {}:{}", core_->tls ? "HTTPS" : "HTTP", host, port_);
}

HttpServer::~HttpServer() {
  {
    std::lock_guard lock(core_->mutex);
    core_->running = false;
  }
  net::post(*core_->contexts.front(), [core = core_] {
    beast::error_code ignored;
    core->acceptor.close(ignored);
    std::vector<std::shared_ptr<Core::Connection>> open;
    {
      std::lock_guard lock(core->mutex);
      for (auto& [id, connection] : core->connections) {
        if (auto alive = connection.lock()) open.push_back(std::move(alive));
      }
    }
    for (auto& connection : open) connection->close();
  });
  for (auto& guard : core_->running_guards) guard.reset();
  // The network threads return once every connection is closed; the workers once their routes
  // have answered (to nobody).
  for (auto& thread : threads_) thread.join();
  core_->workers.join();
}

}  // namespace relance::app
