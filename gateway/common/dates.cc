#include "common/dates.h"

#include <google/protobuf/util/time_util.h>
#include <unicode/calendar.h>
#include <unicode/gregocal.h>
#include <unicode/timezone.h>

#include <charconv>
#include <cstdio>
#include <map>
#include <memory>

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

// ICU time zones are costly to build; each thread keeps the ones it has used.
const icu::TimeZone& zone(const std::string& id) {
  thread_local std::map<std::string, std::unique_ptr<icu::TimeZone>> cache;
  auto it = cache.find(id);
  if (it == cache.end()) {
    std::unique_ptr<icu::TimeZone> tz(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(id)));
    if (*tz == icu::TimeZone::getUnknown()) tz.reset(icu::TimeZone::createTimeZone("UTC"));
    it = cache.emplace(id, std::move(tz)).first;
  }
  return *it->second;
}

std::unique_ptr<icu::Calendar> calendar_in(const std::string& time_zone) {
  UErrorCode status = U_ZERO_ERROR;
  auto cal = std::make_unique<icu::GregorianCalendar>(zone(time_zone), status);
  // Proleptic Gregorian: no Julian switch for historic dates.
  cal->setGregorianChange(-1e300, status);
  return cal;
}

}  // namespace

std::optional<std::chrono::year_month_day> parse_iso_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  if (!parse_int(text.substr(0, 4), y) || !parse_int(text.substr(5, 2), m) ||
      !parse_int(text.substr(8, 2), d)) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                                  std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || y < 1900) return std::nullopt;
  return ymd;
}

std::string format_iso_date(std::chrono::year_month_day date) {
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

bool is_known_time_zone(const std::string& time_zone) {
  std::unique_ptr<icu::TimeZone> tz(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(time_zone)));
  return *tz != icu::TimeZone::getUnknown();
}

Instant local_time_to_instant(std::chrono::year_month_day date, int minutes, const std::string& time_zone) {
  auto cal = calendar_in(time_zone);
  cal->clear();
  cal->set(static_cast<int>(date.year()), static_cast<int>(static_cast<unsigned>(date.month())) - 1,
           static_cast<int>(static_cast<unsigned>(date.day())), minutes / 60, minutes % 60, 0);
  UErrorCode status = U_ZERO_ERROR;
  UDate ms = cal->getTime(status);
  return Instant{std::chrono::duration_cast<Duration>(std::chrono::milliseconds(static_cast<int64_t>(ms)))};
}

std::chrono::year_month_day local_date(Instant at, const std::string& time_zone) {
  auto cal = calendar_in(time_zone);
  UErrorCode status = U_ZERO_ERROR;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  cal->setTime(static_cast<UDate>(ms), status);
  int y = cal->get(UCAL_YEAR, status);
  int m = cal->get(UCAL_MONTH, status) + 1;
  int d = cal->get(UCAL_DATE, status);
  return std::chrono::year_month_day{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                                     std::chrono::day{static_cast<unsigned>(d)}};
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
