#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace relance::bench {

// The fixed message resource the sink answers a create with.
extern const std::string_view kCreatedBody;

// A Twilio-shaped HTTP/1.1 sink on 127.0.0.1: POST /2010-04-01/Accounts/{sid}/Messages.json →
// 201 and kCreatedBody, anything else 404/405. An epoll server: one acceptor handing connections
// round-robin to worker threads, each running its own epoll, so that it answers far faster than
// any client on the same machine sends (the benchmarks set it beside wrk's figures against it).
class TwilioSink {
 public:
  // Called on a worker thread for every create, with its form body, before the answer is written.
  using OnCreate = std::function<void(std::string_view form)>;

  // Listens on `port` (0: any free port) and serves until destroyed.
  TwilioSink(int port, int threads, OnCreate on_create = {});
  ~TwilioSink();
  TwilioSink(const TwilioSink&) = delete;
  TwilioSink& operator=(const TwilioSink&) = delete;

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  class Worker;
  void accept_loop();

  OnCreate on_create_;
  int listener_ = -1;
  int wake_ = -1;  // eventfd: written once to stop every thread
  int port_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread acceptor_;
};

}  // namespace relance::bench
