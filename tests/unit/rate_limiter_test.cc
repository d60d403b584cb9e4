#include "channels/twilio/rate_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace relance::channels::twilio {
namespace {

using namespace std::chrono_literals;
using Clock = SenderRateLimiter::Clock;
using Duration = Clock::duration;

constexpr auto kRunLength = 20s;
constexpr auto kMaxJitter = 3ms;

struct Sent {
  Clock::time_point at;
  int segments;
};

// Arbitrary origin, away from the clock's epoch so nothing relies on starting at zero.
Clock::time_point origin() { return Clock::time_point{} + 1h; }

// A sender with an endless backlog that dispatches each message as soon as it is allowed.
std::vector<Sent> run_greedy(double mps, const std::function<int(int)>& segments_of) {
  SenderRateLimiter limiter(mps);
  const auto end = origin() + kRunLength;
  auto now = origin();
  std::vector<Sent> sent;
  for (int i = 0;; ++i) {
    int segments = segments_of(i);
    now = limiter.next_allowed(segments, now);
    if (now >= end) break;
    EXPECT_EQ(limiter.next_allowed(segments, now), now) << "an allowed instant must stay allowed";
    limiter.consume(segments, now);
    sent.push_back({now, segments});
  }
  return sent;
}

std::vector<Sent> run_greedy(double mps) {
  return run_greedy(mps, [](int) { return 1; });
}

// How the receiving end sees the dispatches: each one shifted by its network jitter.
using Jitter = std::function<Duration(std::size_t)>;

Duration no_jitter(std::size_t) { return 0ms; }

// The worst case for a sliding window: consecutive requests pulled 6 ms closer together.
Duration alternating_jitter(std::size_t i) { return i % 2 == 0 ? kMaxJitter : -kMaxJitter; }

Jitter random_jitter(unsigned seed) {
  auto engine = std::make_shared<std::mt19937>(seed);
  return [engine](std::size_t) {
    std::uniform_int_distribution<Duration::rep> microseconds(-3000, 3000);
    return Duration(std::chrono::microseconds(microseconds(*engine)));
  };
}

std::vector<Sent> received(const std::vector<Sent>& sent, const Jitter& jitter) {
  std::vector<Sent> out;
  for (std::size_t i = 0; i < sent.size(); ++i) out.push_back({sent[i].at + jitter(i), sent[i].segments});
  std::sort(out.begin(), out.end(), [](const Sent& a, const Sent& b) { return a.at < b.at; });
  return out;
}

// Most segments in any window [t, t + length) starting at a request; a busiest window can
// always be slid forward to start at one.
int busiest_window(const std::vector<Sent>& arrivals, Duration length) {
  int busiest = 0;
  for (std::size_t i = 0; i < arrivals.size(); ++i) {
    int total = 0;
    for (std::size_t j = i; j < arrivals.size() && arrivals[j].at < arrivals[i].at + length; ++j) {
      total += arrivals[j].segments;
    }
    busiest = std::max(busiest, total);
  }
  return busiest;
}

int total_segments(const std::vector<Sent>& sent) {
  int total = 0;
  for (const auto& s : sent) total += s.segments;
  return total;
}

// The acceptance budget: floor(mps) segments per second, or one message per 1/mps seconds.
void expect_within_budget(double mps, const std::vector<Sent>& sent) {
  const auto window =
      mps >= 1 ? Duration(1s) : std::chrono::duration_cast<Duration>(std::chrono::duration<double>(1 / mps));
  const int budget = mps >= 1 ? static_cast<int>(std::floor(mps)) : 1;
  const std::vector<std::pair<const char*, Jitter>> jitters{{"none", no_jitter},
                                                            {"alternating", alternating_jitter},
                                                            {"random", random_jitter(7)},
                                                            {"random", random_jitter(42)}};
  for (const auto& [name, jitter] : jitters) {
    EXPECT_LE(busiest_window(received(sent, jitter), window), budget) << "mps " << mps << ", jitter " << name;
  }
}

void expect_rate_at_least(double mps, const std::vector<Sent>& sent, double fraction) {
  double achieved = total_segments(sent) / std::chrono::duration<double>(kRunLength).count();
  EXPECT_GE(achieved, fraction * mps) << "mps " << mps;
}

class RateLimiterGreedy : public testing::TestWithParam<double> {};

TEST_P(RateLimiterGreedy, StaysWithinBudgetAndNearFullRate) {
  const double mps = GetParam();
  auto sent = run_greedy(mps);
  expect_within_budget(mps, sent);
  expect_rate_at_least(mps, sent, 0.97);
}

INSTANTIATE_TEST_SUITE_P(Rates, RateLimiterGreedy, testing::Values(1.0, 3.0, 10.0, 0.5),
                         [](const testing::TestParamInfo<double>& param_info) {
                           return "mps_" + std::to_string(static_cast<int>(param_info.param * 10)) + "_tenths";
                         });

TEST(RateLimiter, FirstMessageGoesAtOnce) {
  SenderRateLimiter limiter(3);
  EXPECT_EQ(limiter.next_allowed(1, origin()), origin());
  EXPECT_EQ(limiter.next_allowed(3, origin()), origin());
}

TEST(RateLimiter, SpacesMessagesEvenly) {
  SenderRateLimiter limiter(10);
  limiter.consume(1, origin());
  auto next = limiter.next_allowed(1, origin());
  // (1 s + margin) / 10: a little over 100 ms, never less.
  EXPECT_GT(next - origin(), 100ms);
  EXPECT_LT(next - origin(), 105ms);
  // Asking later than that changes nothing: the instant is not pushed back.
  EXPECT_EQ(limiter.next_allowed(1, origin() + 500ms), origin() + 500ms);
}

TEST(RateLimiter, MultiSegmentMessageTakesSeveralSlots) {
  SenderRateLimiter limiter(10);
  limiter.consume(3, origin());
  auto next = limiter.next_allowed(1, origin());
  EXPECT_GT(next - origin(), 300ms);
  EXPECT_LT(next - origin(), 310ms);
}

TEST(RateLimiter, LongMessageAfterShortOneWaitsForTheWindow) {
  // Even spacing alone would let 3 segments go 1/3 s after the first: 4 within one second.
  SenderRateLimiter limiter(3);
  limiter.consume(1, origin());
  EXPECT_GT(limiter.next_allowed(3, origin()) - origin(), 1s);
}

TEST(RateLimiter, TwoSegmentMessagesAtTenMps) {
  auto sent = run_greedy(10, [](int) { return 2; });
  expect_within_budget(10, sent);
  expect_rate_at_least(10, sent, 0.97);
}

TEST(RateLimiter, MixedSegmentCounts) {
  // At most 3 segments, so every message fits the smaller budget (see the oversized test).
  std::mt19937 engine(3);
  std::vector<int> counts;
  for (int i = 0; i < 1000; ++i) counts.push_back(std::uniform_int_distribution<int>(1, 3)(engine));
  for (double mps : {3.0, 10.0}) {
    auto sent = run_greedy(mps, [&](int i) { return counts[static_cast<std::size_t>(i)]; });
    expect_within_budget(mps, sent);
    // Whole messages cannot always fill a second exactly, so the bar is lower than 97%.
    expect_rate_at_least(mps, sent, 0.6);
  }
}

TEST(RateLimiter, OversizedMessageGoesAloneOnceTheWindowIsEmpty) {
  SenderRateLimiter limiter(2);
  limiter.consume(1, origin());
  auto at = limiter.next_allowed(5, origin());
  EXPECT_GT(at - origin(), 1s);
  limiter.consume(5, at);
  EXPECT_GT(limiter.next_allowed(1, at) - at, 1s);
}

TEST(RateLimiter, LateSenderIsNotPenalised) {
  // A sender idle for a while gets no burst credit, but no extra delay either.
  SenderRateLimiter limiter(1);
  limiter.consume(1, origin());
  auto later = origin() + 10s;
  EXPECT_EQ(limiter.next_allowed(1, later), later);
  limiter.consume(1, later);
  EXPECT_GT(limiter.next_allowed(1, later) - later, 1s);
}

TEST(RateLimiter, SenderPollingOnCoarseTicks) {
  // A dispatcher that only wakes every 7 ms, and dispatches when next_allowed says "now".
  SenderRateLimiter limiter(10);
  std::vector<Sent> sent;
  for (auto now = origin(); now < origin() + kRunLength; now += 7ms) {
    if (limiter.next_allowed(1, now) == now) {
      limiter.consume(1, now);
      sent.push_back({now, 1});
    }
  }
  expect_within_budget(10, sent);
  expect_rate_at_least(10, sent, 0.9);
}

TEST(RateLimiter, NonPositiveMpsIsUnlimited) {
  for (double mps : {0.0, -1.0}) {
    SenderRateLimiter limiter(mps);
    EXPECT_TRUE(limiter.unlimited());
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(limiter.next_allowed(5, origin()), origin());
      limiter.consume(5, origin());
    }
  }
  EXPECT_FALSE(SenderRateLimiter(1).unlimited());
}

}  // namespace
}  // namespace relance::channels::twilio
