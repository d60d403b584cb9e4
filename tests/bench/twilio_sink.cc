#include "twilio_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_set>

namespace relance::bench {

const std::string_view kCreatedBody =
    R"({"sid":"SM0123456789abcdef0123456789abcdef","account_sid":"AC0123456789abcdef0123456789abcdef",)"
    R"("status":"queued","num_segments":"1","direction":"outbound-api","price":null,)"
    R"("error_code":null,"error_message":null,"api_version":"2010-04-01"})";

namespace {

constexpr std::string_view kMessagesPrefix = "/2010-04-01/Accounts/";
constexpr std::string_view kMessagesSuffix = "/Messages.json";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_messages_path(std::string_view target) {
  if (target.size() <= kMessagesPrefix.size() + kMessagesSuffix.size()) return false;
  if (target.substr(0, kMessagesPrefix.size()) != kMessagesPrefix) return false;
  if (target.substr(target.size() - kMessagesSuffix.size()) != kMessagesSuffix) return false;
  auto sid = target.substr(kMessagesPrefix.size(), target.size() - kMessagesPrefix.size() - kMessagesSuffix.size());
  return !sid.empty() && sid.find('/') == std::string_view::npos;
}

std::string response(int status, std::string_view reason, std::string_view body, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  bool continued = false;    // "100 Continue" sent for the request being read
  bool closing = false;      // close once `out` is written
  bool polling_out = false;  // registered for EPOLLOUT (a short write left output behind)
};

// Answers every complete request buffered in `c.in` (pipelining allowed). HTTP/1.1 with
// Content-Length bodies only: a chunked request gets 411 and the connection is closed.
void serve_buffered(Connection& c, const TwilioSink::OnCreate& on_create) {
  static const std::string created = response(201, "Created", kCreatedBody, false);
  std::size_t pos = 0;
  while (!c.closing) {
    auto head_end = c.in.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) {
      if (c.in.size() - pos > 64 * 1024) {
        c.out += response(431, "Request Header Fields Too Large", "{}", true);
        c.closing = true;
      }
      break;
    }
    std::string_view head(c.in.data() + pos, head_end - pos);
    auto line_end = head.find("\r\n");
    auto request_line = head.substr(0, line_end);
    auto sp1 = request_line.find(' ');
    auto sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) {
      c.out += response(400, "Bad Request", "{}", true);
      c.closing = true;
      break;
    }
    auto method = request_line.substr(0, sp1);
    auto target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto version = request_line.substr(sp2 + 1);
    std::size_t length = 0;
    bool chunked = false, expect_continue = false;
    bool keep_alive = version == "HTTP/1.1";
    while (line_end != std::string_view::npos) {
      auto start = line_end + 2;
      line_end = head.find("\r\n", start);
      auto line = head.substr(start, line_end == std::string_view::npos ? std::string_view::npos : line_end - start);
      auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      auto name = line.substr(0, colon);
      auto value = trim(line.substr(colon + 1));
      if (iequals(name, "content-length")) {
        length = std::strtoul(std::string(value).c_str(), nullptr, 10);
      } else if (iequals(name, "transfer-encoding")) {
        chunked = !iequals(value, "identity");
      } else if (iequals(name, "connection")) {
        if (iequals(value, "close")) keep_alive = false;
        if (iequals(value, "keep-alive")) keep_alive = true;
      } else if (iequals(name, "expect")) {
        expect_continue = iequals(value, "100-continue");
      }
    }
    if (chunked) {
      c.out += response(411, "Length Required", "{}", true);
      c.closing = true;
      break;
    }
    auto body_start = head_end + 4;
    if (c.in.size() - body_start < length) {
      if (expect_continue && !c.continued) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continued = true;
      }
      break;
    }
    c.continued = false;
    if (!is_messages_path(target)) {
      c.out += response(404, "Not Found", R"({"code":20404,"message":"not found","status":404})", !keep_alive);
    } else if (method != "POST") {
      c.out += response(405, "Method Not Allowed", R"({"code":20004,"message":"method not allowed","status":405})",
                        !keep_alive);
    } else {
      if (on_create) on_create(std::string_view(c.in.data() + body_start, length));
      c.out += created;
      if (!keep_alive) c.out.insert(c.out.size() - kCreatedBody.size() - 2, "Connection: close\r\n");
    }
    pos = body_start + length;
    if (!keep_alive) c.closing = true;
  }
  c.in.erase(0, pos);
}

}  // namespace

class TwilioSink::Worker {
 public:
  Worker(const OnCreate& on_create, int wake) : on_create_(on_create), epoll_(epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the stop signal
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake, &ev);
    thread_ = std::thread([this] { run(); });
  }
  ~Worker() {
    thread_.join();
    for (auto* c : connections_) {
      ::close(c->fd);
      delete c;
    }
    ::close(epoll_);
  }
  // Takes a connected, non-blocking socket; from here on only this worker's thread touches it.
  void adopt(int fd) {
    auto* c = new Connection{fd, {}, {}, false, false, false};
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    std::lock_guard lock(mutex_);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      delete c;
      return;
    }
    connections_.insert(c);
  }

 private:
  void run() {
    std::vector<epoll_event> events(256);
    char buffer[16 * 1024];
    for (;;) {
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (c == nullptr) return;
        bool open = true;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          ssize_t got = ::recv(c->fd, buffer, sizeof buffer, 0);
          if (got > 0) {
            c->in.append(buffer, static_cast<std::size_t>(got));
            serve_buffered(*c, on_create_);
          } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            open = false;
          }
        }
        if (open) open = flush(*c);
        if (!open) {
          epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr);
          ::close(c->fd);
          {
            std::lock_guard lock(mutex_);
            connections_.erase(c);
          }
          delete c;
        }
      }
    }
  }
  // Writes what can be written; false when the connection is to be closed.
  bool flush(Connection& c) {
    while (!c.out.empty()) {
      ssize_t sent = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return false;
        break;
      }
      c.out.erase(0, static_cast<std::size_t>(sent));
    }
    if (c.out.empty() && c.closing) return false;
    bool want_output = !c.out.empty();
    if (want_output != c.polling_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | (want_output ? EPOLLOUT : 0U);
      ev.data.ptr = &c;
      epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
      c.polling_out = want_output;
    }
    return true;
  }

  const OnCreate& on_create_;
  int epoll_;
  std::mutex mutex_;
  std::unordered_set<Connection*> connections_;  // open ones, closed on stop
  std::thread thread_;
};

TwilioSink::TwilioSink(int port, int threads, OnCreate on_create) : on_create_(std::move(on_create)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, SOMAXCONN) != 0) {
    auto error = std::string(std::strerror(errno));
    ::close(listener_);
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + error);
  }
  socklen_t size = sizeof addr;
  getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &size);
  port_ = ntohs(addr.sin_port);
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  for (int i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(on_create_, wake_));
  acceptor_ = std::thread([this] { accept_loop(); });
}

TwilioSink::~TwilioSink() {
  std::uint64_t one = 1;
  if (::write(wake_, &one, sizeof one) < 0) std::perror("eventfd write");
  acceptor_.join();
  workers_.clear();
  ::close(wake_);
  ::close(listener_);
}

void TwilioSink::accept_loop() {
  std::size_t next = 0;
  for (;;) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {wake_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("poll");
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      std::perror("accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    workers_[next++ % workers_.size()]->adopt(fd);
  }
}

}  // namespace relance::bench
