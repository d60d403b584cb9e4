#include "common/dates.h"

#include <google/protobuf/util/time_util.h>
#include <unicode/timezone.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <unordered_map>

#include "common/zone_offsets.h"

namespace relance {

namespace {

bool parse_int(std::string_view text, int& out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::int64_t kDayMs = 86'400'000;

}  // namespace

std::optional<std::chrono::year_month_day> parse_iso_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  // Fixed-width digits, read in place: every due date of every invoice goes through here.
  auto number = [&](std::size_t from, std::size_t count, int& out) {
    out = 0;
    for (std::size_t i = from; i < from + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  int y = 0, m = 0, d = 0;
  if (!number(0, 4, y) || !number(5, 2, m) || !number(8, 2, d)) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                                  std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || y < 1900) return std::nullopt;
  return ymd;
}

std::string format_iso_date(std::chrono::year_month_day date) {
  int y = static_cast<int>(date.year());
  unsigned m = static_cast<unsigned>(date.month()), d = static_cast<unsigned>(date.day());
  if (y >= 0 && y <= 9999 && m <= 99 && d <= 99) {
    // What the snprintf below prints, without its cost on the decision path.
    auto digit = [](unsigned v) { return static_cast<char>('0' + v % 10); };
    auto year = static_cast<unsigned>(y);
    std::string text(10, '-');
    text[0] = digit(year / 1000);
    text[1] = digit(year / 100);
    text[2] = digit(year / 10);
    text[3] = digit(year);
    text[5] = digit(m / 10);
    text[6] = digit(m);
    text[8] = digit(d / 10);
    text[9] = digit(d);
    return text;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return buf;
}

std::optional<int> parse_time_of_day(std::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  int h = 0, m = 0;
  if (!parse_int(text.substr(0, 2), h) || !parse_int(text.substr(3, 2), m)) return std::nullopt;
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

// Every invoice carries its customer's zone; asking ICU builds a zone object from its data
// each time (7% of the decision path). Customers share a few hundred zones at most, so each
// thread keeps its answers, emptied if a stream of made-up names ever fills the table.
bool is_known_time_zone(const std::string& time_zone) {
  constexpr size_t kMaxCachedZones = 4096;
  thread_local std::unordered_map<std::string, bool> known;
  if (auto it = known.find(time_zone); it != known.end()) return it->second;
  std::unique_ptr<icu::TimeZone> tz(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(time_zone)));
  const bool answer = *tz != icu::TimeZone::getUnknown();
  if (known.size() >= kMaxCachedZones) known.clear();
  known.emplace(time_zone, answer);
  return answer;
}

// Both conversions used to go through an icu::GregorianCalendar (proleptic, lenient), several
// microseconds a call; the zone's offset table gives the same answers in tens of nanoseconds.
Instant local_time_to_instant(std::chrono::year_month_day date, int minutes, const std::string& time_zone) {
  return local_time_to_instant(std::chrono::sys_days{date}, minutes, time_zone);
}

Instant local_time_to_instant(std::chrono::sys_days day, int minutes, const std::string& time_zone) {
  // Lenient like the calendar: minutes past 24:00 roll over into the next day.
  auto local = std::int64_t{day.time_since_epoch().count()} * kDayMs + std::int64_t{minutes} * kMinuteMs;
  auto utc = zone_offsets(time_zone).utc_of_local(local);
  return Instant{std::chrono::duration_cast<Duration>(std::chrono::milliseconds(utc))};
}

std::chrono::year_month_day local_date(Instant at, const std::string& time_zone) {
  // Truncated to the millisecond, as ICU was given it; system_clock cannot reach years before 1 AD.
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  auto local = ms + zone_offsets(time_zone).offset_at(ms);
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{floor_div(local, kDayMs)}}};
}

std::string format_rfc3339(Instant at) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
  return google::protobuf::util::TimeUtil::ToString(google::protobuf::util::TimeUtil::NanosecondsToTimestamp(ns));
}

std::optional<Instant> parse_rfc3339(std::string_view text) {
  google::protobuf::Timestamp ts;
  if (!google::protobuf::util::TimeUtil::FromString(std::string(text), &ts)) return std::nullopt;
  auto ns = google::protobuf::util::TimeUtil::TimestampToNanoseconds(ts);
  return Instant{std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(ns))};
}

}  // namespace relance
