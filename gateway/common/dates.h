#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace relance {

// Parses a strict ISO calendar date (YYYY-MM-DD); nullopt for anything else, including
// impossible dates such as 2026-02-30.
std::optional<std::chrono::year_month_day> parse_iso_date(std::string_view text);

std::string format_iso_date(std::chrono::year_month_day date);

// Parses "HH:MM" (24 h) into minutes after midnight.
std::optional<int> parse_time_of_day(std::string_view text);

// The instant at which the wall clock in `time_zone` (IANA) shows `date` at `minutes` after
// midnight. Unknown zones fall back to UTC. Read as ICU's lenient calendar reads it: a wall time
// that never occurs is read with the offset before the jump (02:30 in Paris on 2026-03-29 is
// 03:30 CEST), one that occurs twice is its later occurrence.
Instant local_time_to_instant(std::chrono::year_month_day date, int minutes, const std::string& time_zone);
// The same with the date as a day count, which spares the decision path calendar arithmetic.
Instant local_time_to_instant(std::chrono::sys_days day, int minutes, const std::string& time_zone);

// The calendar date that the wall clock in `time_zone` shows at `at`.
std::chrono::year_month_day local_date(Instant at, const std::string& time_zone);

bool is_known_time_zone(const std::string& time_zone);

// RFC 3339 timestamp in UTC with a Z suffix.
std::string format_rfc3339(Instant at);
std::optional<Instant> parse_rfc3339(std::string_view text);

}  // namespace relance
