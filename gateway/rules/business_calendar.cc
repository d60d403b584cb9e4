#include "rules/business_calendar.h"

#include <algorithm>
#include <optional>

#include "common/dates.h"
#include "common/zone_offsets.h"

namespace relance::rules {

namespace v1 = relance::v1;

namespace {

constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::int64_t kDayMs = 86'400'000;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

// ISO weekday (1 = Monday ... 7 = Sunday) of a day counted from 1970-01-01, a Thursday.
unsigned iso_weekday(std::int64_t day) { return static_cast<unsigned>(day + 3 - floor_div(day + 3, 7) * 7) + 1; }

std::int64_t to_ms(Instant at) { return std::chrono::floor<std::chrono::milliseconds>(at.time_since_epoch()).count(); }

Instant from_ms(std::int64_t ms) {
  return Instant{std::chrono::duration_cast<Duration>(std::chrono::milliseconds(ms))};
}

// "HH:MM" as for opening, plus "24:00" so that a window can run to the end of the day.
std::optional<int> parse_close_time(const std::string& text) {
  if (text == "24:00") return 24 * 60;
  return parse_time_of_day(text);
}

// Two ASCII letters, either case, packed; 0 for anything else.
std::uint16_t pack_country(const std::string& country) {
  if (country.size() != 2) return 0;
  std::uint16_t packed = 0;
  for (char c : country) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') return 0;
    packed = static_cast<std::uint16_t>((packed << 8) | static_cast<unsigned char>(c));
  }
  return packed;
}

bool is_country_code(const std::string& code) {
  return code.size() == 2 && std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool holiday_on(const std::vector<std::int32_t>* holidays, std::int64_t day) {
  return holidays != nullptr && std::binary_search(holidays->begin(), holidays->end(), day);
}

}  // namespace

BusinessCalendar::BusinessCalendar(const v1::BusinessCalendarConfig& config) {
  for (const auto& w : config.windows()) {
    // Negative values are not channels; validate_calendar reports them.
    if (w.channel() < 0) continue;
    auto index = static_cast<std::size_t>(w.channel());
    if (channels_.size() <= index) channels_.resize(index + 1);
    Window window;
    auto open = parse_time_of_day(w.open());
    auto close = parse_close_time(w.close());
    // An invalid range leaves open_ms == close_ms: the window never opens (fail closed).
    if (open && close && *open < *close) {
      window.open_ms = *open * kMinuteMs;
      window.close_ms = *close * kMinuteMs;
    }
    for (int day : w.days()) {
      if (day >= v1::MONDAY && day <= v1::SUNDAY) window.days = static_cast<std::uint8_t>(window.days | (1u << day));
    }
    window.closed_on_holidays = w.closed_on_holidays();
    auto& channel = channels_[index];
    channel.windows.push_back(window);
    if (window.days != 0 && window.open_ms < window.close_ms) channel.can_open = true;
  }

  for (const auto& list : config.holidays()) {
    auto code = pack_country(list.country());
    if (code == 0) continue;
    auto it = std::find_if(holidays_.begin(), holidays_.end(), [code](const auto& h) { return h.country == code; });
    if (it == holidays_.end()) it = holidays_.insert(holidays_.end(), CountryHolidays{code, {}});
    for (const auto& text : list.dates()) {
      if (auto date = parse_iso_date(text)) {
        it->days.push_back(static_cast<std::int32_t>(std::chrono::sys_days{*date}.time_since_epoch().count()));
      }
    }
  }
  std::size_t most_holidays = 0;
  for (auto& h : holidays_) {
    std::sort(h.days.begin(), h.days.end());
    h.days.erase(std::unique(h.days.begin(), h.days.end()), h.days.end());
    most_holidays = std::max(most_holidays, h.days.size());
  }
  // A window recurs at least weekly and each holiday closes at most one of its days, so an
  // open instant lies within (holidays + 1) weeks; one more week covers daylight-saving shifts.
  search_limit_ms_ = (7 * (static_cast<std::int64_t>(most_holidays) + 2) + 1) * kDayMs;
}

const BusinessCalendar::ChannelWindows* BusinessCalendar::windows_for(v1::Channel channel) const {
  if (channel < 0 || static_cast<std::size_t>(channel) >= channels_.size()) return nullptr;
  const auto& windows = channels_[static_cast<std::size_t>(channel)];
  return windows.windows.empty() ? nullptr : &windows;
}

const std::vector<std::int32_t>* BusinessCalendar::holidays_for(const std::string& country) const {
  auto code = pack_country(country);
  if (code == 0) return nullptr;
  for (const auto& h : holidays_) {
    if (h.country == code) return &h.days;
  }
  return nullptr;
}

bool BusinessCalendar::is_holiday(std::chrono::year_month_day local_day, const std::string& country) const {
  return holiday_on(holidays_for(country), std::chrono::sys_days{local_day}.time_since_epoch().count());
}

bool BusinessCalendar::is_open(Instant at, v1::Channel channel, const std::string& time_zone,
                               const std::string& country) const {
  const auto* windows = windows_for(channel);
  if (windows == nullptr) return true;
  if (!windows->can_open) return false;
  auto utc = to_ms(at);
  auto local = utc + zone_offsets(time_zone).offset_at(utc);
  auto day = floor_div(local, kDayMs);
  auto time_of_day = local - day * kDayMs;
  auto weekday_bit = 1u << iso_weekday(day);
  const std::vector<std::int32_t>* holidays = nullptr;
  int holiday = -1;  // not looked up yet
  for (const auto& w : windows->windows) {
    if ((w.days & weekday_bit) == 0 || time_of_day < w.open_ms || time_of_day >= w.close_ms) continue;
    if (w.closed_on_holidays) {
      if (holiday < 0) {
        holidays = holidays_for(country);
        holiday = holiday_on(holidays, day) ? 1 : 0;
      }
      if (holiday == 1) continue;
    }
    return true;
  }
  return false;
}

// Works on the wall clock alone, as if the zone's offset never changed; next_open calls it once
// per stretch of constant offset.
std::optional<std::int64_t> BusinessCalendar::first_open_local(const ChannelWindows& channel,
                                                               const std::vector<std::int32_t>* holidays,
                                                               std::int64_t local, std::int64_t local_end) const {
  auto day = floor_div(local, kDayMs);
  for (auto day_start = day * kDayMs; day_start < local_end; day_start += kDayMs, ++day) {
    auto weekday_bit = 1u << iso_weekday(day);
    int holiday = -1;
    std::optional<std::int64_t> best;
    for (const auto& w : channel.windows) {
      if ((w.days & weekday_bit) == 0 || w.open_ms >= w.close_ms || day_start + w.close_ms <= local) continue;
      if (w.closed_on_holidays) {
        if (holiday < 0) holiday = holiday_on(holidays, day) ? 1 : 0;
        if (holiday == 1) continue;
      }
      auto candidate = std::max(local, day_start + w.open_ms);
      if (!best || candidate < *best) best = candidate;
    }
    // Any later day only offers later times.
    if (best) return *best < local_end ? best : std::nullopt;
  }
  return std::nullopt;
}

Instant BusinessCalendar::next_open(Instant at, v1::Channel channel, const std::string& time_zone,
                                    const std::string& country) const {
  const auto* windows = windows_for(channel);
  if (windows == nullptr || !windows->can_open) return at;
  const auto& zone = zone_offsets(time_zone);
  const auto* holidays = holidays_for(country);
  const auto start = to_ms(at);
  const auto limit = start + search_limit_ms_;
  // Between two offset changes the wall clock is UTC plus a constant, so the earliest open
  // instant of a stretch is the earliest open wall time mapped back with that offset. A stretch
  // with none moves the search to the next change, where the wall clock may jump either way.
  for (auto t = start; t < limit;) {
    auto segment = zone.segment_at(t);
    auto end = std::min(segment.end_ms, limit);
    if (auto local = first_open_local(*windows, holidays, t + segment.offset_ms, end + segment.offset_ms)) {
      auto open = *local - segment.offset_ms;
      return open == start ? at : from_ms(open);
    }
    t = end;
  }
  return at;
}

std::vector<std::pair<std::string, std::string>> validate_calendar(const v1::BusinessCalendarConfig& config,
                                                                   const std::string& path_prefix) {
  std::vector<std::pair<std::string, std::string>> errors;
  auto prefix = path_prefix.empty() ? std::string() : path_prefix + ".";
  for (int i = 0; i < config.windows_size(); ++i) {
    const auto& w = config.windows(i);
    auto path = prefix + "windows[" + std::to_string(i) + "]";
    if (w.channel() == v1::CHANNEL_UNSPECIFIED) {
      errors.emplace_back(path + ".channel", "must be set");
    } else if (!v1::Channel_IsValid(w.channel())) {
      errors.emplace_back(path + ".channel", "is not a known channel");
    }
    auto open = parse_time_of_day(w.open());
    auto close = parse_close_time(w.close());
    if (!open) errors.emplace_back(path + ".open", "must be a time of day HH:MM");
    if (!close) errors.emplace_back(path + ".close", "must be a time of day HH:MM (24:00 for the end of the day)");
    if (open && close && *close <= *open) errors.emplace_back(path + ".close", "must be after open");
    if (w.days().empty()) errors.emplace_back(path + ".days", "needs at least one day");
    for (int j = 0; j < w.days_size(); ++j) {
      if (w.days(j) < v1::MONDAY || w.days(j) > v1::SUNDAY) {
        errors.emplace_back(path + ".days[" + std::to_string(j) + "]", "must be a day from MONDAY to SUNDAY");
      }
    }
  }
  for (int i = 0; i < config.holidays_size(); ++i) {
    const auto& list = config.holidays(i);
    auto path = prefix + "holidays[" + std::to_string(i) + "]";
    if (!is_country_code(list.country())) {
      errors.emplace_back(path + ".country", "must be an ISO 3166-1 alpha-2 code such as FR");
    }
    for (int j = 0; j < list.dates_size(); ++j) {
      if (!parse_iso_date(list.dates(j))) {
        errors.emplace_back(path + ".dates[" + std::to_string(j) + "]", "must be a date YYYY-MM-DD");
      }
    }
  }
  return errors;
}

}  // namespace relance::rules
