#pragma once

#include <chrono>
#include <deque>
#include <optional>

namespace relance::channels::twilio {

// Paces one sender (a From number or Messaging Service) to its Twilio throughput so that
// nothing queues at Twilio, where queued messages can expire (ValidityPeriod).
//
// The budget is counted in segments over any sliding one-second window: at most floor(mps)
// segments (a message of N segments counts N), and for mps < 1 at most one message per 1/mps
// seconds. A message longer than the budget is let through alone, once the window is empty.
//
// Time is passed in rather than read, so callers and tests decide what "now" is. Not
// thread-safe: one owner per sender.
class SenderRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using time_point = Clock::time_point;

  // `mps`: segments per second; <= 0 means unlimited.
  explicit SenderRateLimiter(double mps);

  // Earliest instant at or after `now` at which a message of `segments` segments may be
  // dispatched (`now` itself when it may go at once). Counts below 1 are taken as 1.
  time_point next_allowed(int segments, time_point now) const;

  // Records that a message of `segments` segments was dispatched at `now`.
  void consume(int segments, time_point now);

  bool unlimited() const { return budget_ == 0; }

 private:
  struct Dispatch {
    time_point at;
    int segments;
  };

  time_point window_allows(int segments, time_point now) const;

  Clock::duration interval_{};  // between consecutive segments
  Clock::duration window_{};    // sliding window, margin included
  int budget_ = 0;              // segments per window; 0 when unlimited
  std::optional<time_point> next_slot_;
  std::deque<Dispatch> recent_;  // dispatches still inside the window, oldest first
};

}  // namespace relance::channels::twilio
