#include "app/stop_signals.h"

namespace relance::app {

StopSignals::StopSignals(std::function<void(int)> on_signal) : signals_(io_, SIGINT, SIGTERM) {
  signals_.async_wait([on_signal = std::move(on_signal)](const std::error_code& ec, int signo) {
    if (!ec) on_signal(signo);
  });
  thread_ = std::thread([this] { io_.run(); });
}

StopSignals::~StopSignals() {
  io_.stop();
  thread_.join();
}

}  // namespace relance::app
