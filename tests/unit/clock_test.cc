#include "common/clock.h"

#include <gtest/gtest.h>

#include "common/dates.h"

namespace relance {
namespace {

TEST(SimulatedClock, OnlyMovesWhenToldTo) {
  auto start = *parse_rfc3339("2026-11-22T09:00:00Z");
  SimulatedClock clock(start);
  EXPECT_EQ(clock.now(), start);
  clock.advance(std::chrono::hours(24 * 90));
  EXPECT_EQ(format_rfc3339(clock.now()), "2027-02-20T09:00:00Z");
  clock.set(start);
  EXPECT_EQ(clock.now(), start);
}

TEST(SimulatedClock, FastClockWaitsLessRealTime) {
  auto start = *parse_rfc3339("2026-11-22T09:00:00Z");
  SimulatedClock clock(start, 3600.0);  // an hour per second
  auto wait = clock.real_time_until(start + std::chrono::hours(2));
  EXPECT_LE(wait, std::chrono::milliseconds(2000));
  EXPECT_GE(wait, std::chrono::milliseconds(1900));
  EXPECT_EQ(clock.real_time_until(start - std::chrono::hours(1)), std::chrono::milliseconds(0));
}

TEST(Dates, ParsesOnlyRealDates) {
  EXPECT_TRUE(parse_iso_date("2024-02-29"));
  EXPECT_FALSE(parse_iso_date("2026-02-29"));
  EXPECT_FALSE(parse_iso_date("2026-13-01"));
  EXPECT_FALSE(parse_iso_date("2026-1-01"));
  EXPECT_FALSE(parse_iso_date("20261101"));
  EXPECT_FALSE(parse_iso_date(""));
  EXPECT_EQ(format_iso_date(*parse_iso_date("2026-11-01")), "2026-11-01");
}

TEST(Dates, LocalTimeFollowsTheZoneAcrossDaylightSaving) {
  // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
  auto winter = local_time_to_instant(*parse_iso_date("2026-01-15"), 9 * 60, "Europe/Paris");
  auto summer = local_time_to_instant(*parse_iso_date("2026-07-15"), 9 * 60, "Europe/Paris");
  EXPECT_EQ(format_rfc3339(winter), "2026-01-15T08:00:00Z");
  EXPECT_EQ(format_rfc3339(summer), "2026-07-15T07:00:00Z");
  EXPECT_EQ(format_iso_date(local_date(*parse_rfc3339("2026-07-15T23:30:00Z"), "Europe/Paris")), "2026-07-16");
  EXPECT_TRUE(is_known_time_zone("America/New_York"));
  EXPECT_FALSE(is_known_time_zone("Mars/Olympus"));
}

TEST(Dates, KnownTimeZonesGiveTheSameAnswerFromTheCache) {
  // Asked twice: the second answer comes from the thread's table and must be ICU's again.
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_TRUE(is_known_time_zone("Europe/Paris")) << pass;
    EXPECT_TRUE(is_known_time_zone("US/Pacific")) << pass;  // an alias
    EXPECT_TRUE(is_known_time_zone("GMT+05:30")) << pass;   // a custom offset ICU accepts
    EXPECT_FALSE(is_known_time_zone("Europe/Atlantis")) << pass;
    EXPECT_FALSE(is_known_time_zone("")) << pass;
  }
}

}  // namespace
}  // namespace relance
