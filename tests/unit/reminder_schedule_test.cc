#include "scheduler/reminder_schedule.h"

#include <gtest/gtest.h>

#include "common/dates.h"

namespace relance::scheduler {
namespace {

TEST(ReminderSchedule, FiresInTimeOrderAsTheClockAdvances) {
  SimulatedClock clock(*parse_rfc3339("2026-11-01T00:00:00Z"));
  ReminderSchedule schedule;
  schedule.schedule("b", clock.now() + std::chrono::hours(48));
  schedule.schedule("a", clock.now() + std::chrono::hours(24));
  schedule.schedule("c", clock.now() + std::chrono::hours(72));

  EXPECT_TRUE(schedule.take_due(clock.now()).empty());
  EXPECT_EQ(schedule.next_due(), clock.now() + std::chrono::hours(24));

  clock.advance(std::chrono::hours(50));
  EXPECT_EQ(schedule.take_due(clock.now()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(schedule.size(), 1u);
  clock.advance(std::chrono::hours(50));
  EXPECT_EQ(schedule.take_due(clock.now()), (std::vector<std::string>{"c"}));
  EXPECT_FALSE(schedule.next_due());
}

TEST(ReminderSchedule, ReschedulingMovesTheTimelineAndCancelRemovesIt) {
  SimulatedClock clock(*parse_rfc3339("2026-11-01T00:00:00Z"));
  ReminderSchedule schedule;
  schedule.schedule("a", clock.now() + std::chrono::hours(1));
  schedule.schedule("a", clock.now() + std::chrono::hours(5));
  EXPECT_EQ(schedule.size(), 1u);
  clock.advance(std::chrono::hours(2));
  EXPECT_TRUE(schedule.take_due(clock.now()).empty());
  schedule.schedule("b", clock.now());
  schedule.cancel("b");
  clock.advance(std::chrono::hours(4));
  EXPECT_EQ(schedule.take_due(clock.now()), (std::vector<std::string>{"a"}));
}

}  // namespace
}  // namespace relance::scheduler
