#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

namespace relance {

using Instant = std::chrono::system_clock::time_point;
using Duration = std::chrono::system_clock::duration;

// Every timer and every decision reads time from a Clock, so tests and the demo can drive time
// instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant now() const = 0;
  // How long to wait, in real time, until `at` is reached on this clock (zero if already there).
  virtual std::chrono::milliseconds real_time_until(Instant at) const = 0;
};
using ClockPtr = std::shared_ptr<Clock>;

class SystemClock final : public Clock {
 public:
  Instant now() const override { return std::chrono::system_clock::now(); }
  std::chrono::milliseconds real_time_until(Instant at) const override;
};

// Starts at a given instant and advances either when told to (speed 0) or at `speed` simulated
// seconds per real second. Thread-safe.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(Instant start, double speed = 0.0);

  Instant now() const override;
  std::chrono::milliseconds real_time_until(Instant at) const override;

  void advance(Duration by);
  void set(Instant to);
  // From now on, `speed` simulated seconds per real second (0: frozen).
  void set_speed(double speed);

 private:
  using Steady = std::chrono::steady_clock;
  mutable std::mutex mutex_;
  Instant base_;
  Steady::time_point base_real_;
  double speed_;
};

}  // namespace relance
