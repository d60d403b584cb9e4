#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace relance::channels::http {

// The one place where network transfers of every adapter make progress: a libcurl multi handle
// (connections kept alive and reused across requests) plus timers, driven by the gateway's
// thread through run_once(). No thread per request, no callback ever runs on another thread.
class TransferLoop {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  // Called once when a transfer ends, with libcurl's result for the easy handle.
  using Completion = std::function<void(CURLcode)>;
  using TimerId = std::uint64_t;

  TransferLoop();
  ~TransferLoop();
  TransferLoop(const TransferLoop&) = delete;
  TransferLoop& operator=(const TransferLoop&) = delete;

  // Starts a transfer on an easy handle the caller keeps alive until `done` has run.
  void start(CURL* easy, Completion done);
  // Runs `fire` on this loop's thread at or after `at`.
  TimerId at(SteadyTime at, std::function<void()> fire);
  void cancel(TimerId id);

  // Makes progress: waits at most `max_wait` for network activity or the next timer, then
  // completes finished transfers and fires due timers.
  void run_once(std::chrono::milliseconds max_wait);
  // Transfers in flight plus timers pending.
  bool busy() const { return !transfers_.empty() || !timers_.empty(); }
  std::size_t transfers_in_flight() const { return transfers_.size(); }
  std::optional<SteadyTime> next_timer() const {
    if (timers_.empty()) return std::nullopt;
    return timers_.begin()->first;
  }
  // Runs until no transfer is in flight or `deadline` passes; true when drained.
  bool drain(SteadyTime deadline);

 private:
  void complete_finished();
  void fire_timers();

  CURLM* multi_ = nullptr;
  std::map<CURL*, Completion> transfers_;
  std::multimap<SteadyTime, std::pair<TimerId, std::function<void()>>> timers_;
  TimerId next_timer_ = 1;
};

}  // namespace relance::channels::http
