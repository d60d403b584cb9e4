#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "relance/v1/common.pb.h"
#include "relance/v1/config.pb.h"

namespace relance::rules {

// When each channel may reach a customer, read on the customer's own wall clock.
//
// A window is the set of instants at which the customer's clock shows a time in [open, close)
// on one of its days (and, with closed_on_holidays, a day that is not a holiday of the
// customer's country). Deciding on the wall clock itself, not on instants computed once per
// day, is what contact rules mean ("not before 08:00 local time") and settles daylight-saving
// days without special cases:
//  - A wall time that never occurs (spring forward, Paris 2026-03-29 02:00-03:00): a window
//    opening at 02:30 opens at the jump, 03:00 CEST, the first instant the clock shows a time
//    at or after 02:30. This is deliberately not ICU's lenient reading of 02:30 (03:30 CEST).
//  - A wall time that occurs twice (fall back, Paris 2026-10-25 02:00-03:00): both occurrences
//    are inside or outside the window alike; next_open returns the first one. A window opening
//    at 02:30 that day is open at 02:30 CEST, closed again while the repeated 02:00-02:30 CET
//    is on the clock, and open from 02:30 CET.
//
// Built once from the configuration; queries do not allocate (apart from the first use of a
// time zone on a thread) and are safe to call from several threads.
class BusinessCalendar {
 public:
  explicit BusinessCalendar(const relance::v1::BusinessCalendarConfig& config);

  // True when `channel` may contact a customer in `time_zone` (IANA; unknown zones read as UTC)
  // and `country` (ISO 3166-1 alpha-2, may be empty for no holidays) at `at`.
  bool is_open(Instant at, relance::v1::Channel channel, const std::string& time_zone,
               const std::string& country) const;

  // The earliest instant >= at at which is_open holds (`at` itself when open). When the
  // configuration never opens the channel (no valid window with a day), returns `at` unchanged:
  // validate_calendar reports such configurations.
  Instant next_open(Instant at, relance::v1::Channel channel, const std::string& time_zone,
                    const std::string& country) const;

  bool is_holiday(std::chrono::year_month_day local_day, const std::string& country) const;

 private:
  struct Window {
    std::int64_t open_ms = 0;   // after local midnight
    std::int64_t close_ms = 0;  // after local midnight, exclusive; open_ms >= close_ms never opens
    std::uint8_t days = 0;      // bit n set for ISO weekday n (1 = Monday ... 7 = Sunday)
    bool closed_on_holidays = false;
  };
  struct ChannelWindows {
    std::vector<Window> windows;  // empty: the channel is always open
    bool can_open = false;        // some window has a day and a non-empty time range
  };
  struct CountryHolidays {
    std::uint16_t country = 0;        // two upper-case letters packed
    std::vector<std::int32_t> days;   // days since 1970-01-01, sorted, unique
  };

  const ChannelWindows* windows_for(relance::v1::Channel channel) const;
  const std::vector<std::int32_t>* holidays_for(const std::string& country) const;
  // The earliest local time >= `local` and < `local_end` (milliseconds since 1970-01-01 on the
  // wall clock) inside a window.
  std::optional<std::int64_t> first_open_local(const ChannelWindows& channel, const std::vector<std::int32_t>* holidays,
                                std::int64_t local, std::int64_t local_end) const;

  std::vector<ChannelWindows> channels_;  // indexed by Channel value
  std::vector<CountryHolidays> holidays_;
  // How far next_open searches before giving up: enough to get past every listed holiday.
  std::int64_t search_limit_ms_ = 0;
};

// Problems in a calendar configuration as (field path, message) pairs, e.g.
// ("policy.calendar.windows[0].close", "must be after open"). Empty when the calendar is valid.
std::vector<std::pair<std::string, std::string>> validate_calendar(const relance::v1::BusinessCalendarConfig& config,
                                                                   const std::string& path_prefix);

}  // namespace relance::rules
