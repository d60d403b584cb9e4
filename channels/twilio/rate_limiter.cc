#include "channels/twilio/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace relance::channels::twilio {

namespace {

// Twilio (and the acceptance test) count requests where they arrive, and network jitter can
// bring two requests a few milliseconds closer than they were sent. Stretching every period
// by this much keeps floor(mps) + 1 dispatches from ever landing in one second, while
// costing only 1.5% of throughput.
constexpr std::chrono::milliseconds kJitterMargin{15};

// Keeps a misconfigured huge mps from overflowing the segment counts.
constexpr double kMaxBudget = 1'000'000;

SenderRateLimiter::Clock::duration to_duration(double seconds) {
  return std::chrono::ceil<SenderRateLimiter::Clock::duration>(std::chrono::duration<double>(seconds));
}

int clamp_segments(int segments) { return std::max(segments, 1); }

}  // namespace

// Two guards, because each alone falls short:
//  - Even spacing (GCRA with no burst allowance: one segment every (1 s + margin) / mps)
//    spreads dispatches out instead of sending a whole second's budget at once, which is
//    what Twilio's own queue drains at. But it charges a multi-segment message after it is
//    sent, so a long message following a short one could put more than the budget in one
//    second.
//  - The sliding window (at most the budget in any 1 s + margin) is the hard guarantee, and
//    covers that case; on its own it would allow bursts at the start of each window.
SenderRateLimiter::SenderRateLimiter(double mps) {
  if (!(mps > 0)) return;  // also catches NaN
  std::chrono::duration<double> margin = kJitterMargin;
  interval_ = to_duration((1.0 + margin.count()) / mps);
  if (mps >= 1) {
    window_ = std::chrono::seconds{1} + kJitterMargin;
    budget_ = static_cast<int>(std::floor(std::min(mps, kMaxBudget)));
  } else {
    window_ = to_duration(1.0 / mps) + kJitterMargin;
    budget_ = 1;
  }
}

SenderRateLimiter::time_point SenderRateLimiter::next_allowed(int segments, time_point now) const {
  if (unlimited()) return now;
  segments = clamp_segments(segments);
  auto earliest = std::max(now, window_allows(segments, now));
  if (next_slot_) earliest = std::max(earliest, *next_slot_);
  return earliest;
}

void SenderRateLimiter::consume(int segments, time_point now) {
  if (unlimited()) return;
  segments = clamp_segments(segments);
  // A dispatch that went out late (the event loop was busy, the machine loaded) keeps its slot
  // on the schedule, up to a whole interval, so delays do not add up to lost throughput: the
  // next one may follow sooner. The sliding window still caps every second.
  auto start = next_slot_ ? std::max(*next_slot_, now - interval_) : now;
  next_slot_ = start + segments * interval_;
  while (!recent_.empty() && recent_.front().at <= now - window_) recent_.pop_front();
  recent_.push_back({now, segments});
}

// Earliest instant at which the dispatches of the window ending then, plus this message,
// stay within the budget. Past dispatches only ever leave the window, so this walks them
// oldest first until enough have left; an oversized message waits for an empty window.
SenderRateLimiter::time_point SenderRateLimiter::window_allows(int segments, time_point now) const {
  const auto horizon = now - window_;
  int in_window = 0;
  for (const auto& dispatch : recent_) {
    if (dispatch.at > horizon) in_window += dispatch.segments;
  }
  auto earliest = now;
  for (const auto& dispatch : recent_) {
    if (in_window + segments <= budget_) break;
    if (dispatch.at <= horizon) continue;
    in_window -= dispatch.segments;
    earliest = dispatch.at + window_;
  }
  return earliest;
}

}  // namespace relance::channels::twilio
