#include "common/clock.h"

#include <algorithm>

namespace relance {

namespace {
std::chrono::milliseconds ceil_ms(Duration d) {
  return std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(d));
}
}  // namespace

std::chrono::milliseconds SystemClock::real_time_until(Instant at) const { return ceil_ms(at - now()); }

SimulatedClock::SimulatedClock(Instant start, double speed)
    : base_(start), base_real_(Steady::now()), speed_(speed) {}

Instant SimulatedClock::now() const {
  std::lock_guard lock(mutex_);
  if (speed_ <= 0.0) return base_;
  auto real = std::chrono::duration<double>(Steady::now() - base_real_);
  return base_ + std::chrono::duration_cast<Duration>(real * speed_);
}

std::chrono::milliseconds SimulatedClock::real_time_until(Instant at) const {
  auto remaining = at - now();
  if (remaining <= Duration::zero()) return std::chrono::milliseconds(0);
  std::lock_guard lock(mutex_);
  // A clock that only moves when told to never reaches `at` by waiting: poll at a steady pace.
  if (speed_ <= 0.0) return std::chrono::milliseconds(100);
  return ceil_ms(std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(remaining) / speed_));
}

void SimulatedClock::advance(Duration by) {
  std::lock_guard lock(mutex_);
  base_ += by;
}

void SimulatedClock::set_speed(double speed) {
  auto at = now();
  std::lock_guard lock(mutex_);
  base_ = at;
  base_real_ = Steady::now();
  speed_ = speed;
}

void SimulatedClock::set(Instant to) {
  std::lock_guard lock(mutex_);
  base_ = to;
  base_real_ = Steady::now();
}

}  // namespace relance
