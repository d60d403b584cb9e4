#pragma once

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <functional>
#include <thread>

namespace relance::app {

// SIGINT and SIGTERM turned into one call of `on_signal` (with the signal's number) on a thread
// of their own, for as long as the object lives.
class StopSignals {
 public:
  explicit StopSignals(std::function<void(int)> on_signal);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  asio::io_context io_;
  asio::signal_set signals_;
  std::thread thread_;
};

}  // namespace relance::app
