#include "rules/business_calendar.h"

#include <gtest/gtest.h>
#include <unicode/gregocal.h>
#include <unicode/timezone.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <random>

#include "common/dates.h"

namespace relance::rules {
namespace {

namespace v1 = relance::v1;

constexpr std::initializer_list<v1::Weekday> kMondayToFriday = {v1::MONDAY, v1::TUESDAY, v1::WEDNESDAY, v1::THURSDAY,
                                                               v1::FRIDAY};
constexpr std::initializer_list<v1::Weekday> kMondayToSaturday = {v1::MONDAY,   v1::TUESDAY, v1::WEDNESDAY,
                                                                 v1::THURSDAY, v1::FRIDAY,  v1::SATURDAY};
constexpr std::initializer_list<v1::Weekday> kEveryDay = {v1::MONDAY, v1::TUESDAY,  v1::WEDNESDAY, v1::THURSDAY,
                                                         v1::FRIDAY, v1::SATURDAY, v1::SUNDAY};

Instant utc(const std::string& rfc3339) { return *parse_rfc3339(rfc3339); }

void add_window(v1::BusinessCalendarConfig& config, v1::Channel channel, const std::string& open,
                const std::string& close, std::initializer_list<v1::Weekday> days, bool closed_on_holidays) {
  auto* w = config.add_windows();
  w->set_channel(channel);
  w->set_open(open);
  w->set_close(close);
  for (auto day : days) w->add_days(day);
  w->set_closed_on_holidays(closed_on_holidays);
}

void add_holidays(v1::BusinessCalendarConfig& config, const std::string& country,
                  std::initializer_list<const char*> dates) {
  auto* list = config.add_holidays();
  list->set_country(country);
  for (const char* date : dates) list->add_dates(date);
}

// Email on weekdays, SMS six days a week but never on a public holiday, WhatsApp at any time.
v1::BusinessCalendarConfig office_hours() {
  v1::BusinessCalendarConfig config;
  add_window(config, v1::EMAIL, "08:00", "20:00", kMondayToFriday, false);
  add_window(config, v1::SMS, "09:00", "19:00", kMondayToSaturday, true);
  add_holidays(config, "FR", {"2026-01-01", "2026-04-06", "2026-05-01", "2026-12-25"});
  add_holidays(config, "US", {"2026-07-03", "2026-11-26"});
  return config;
}

// Windows in the small hours, where daylight-saving changes happen.
v1::BusinessCalendarConfig night_hours() {
  v1::BusinessCalendarConfig config;
  add_window(config, v1::CALL_TASK, "02:30", "04:00", kEveryDay, false);
  add_window(config, v1::SMS, "01:30", "04:00", kEveryDay, false);
  return config;
}

struct Case {
  const char* name;
  v1::Channel channel;
  const char* time_zone;
  const char* country;
  const char* at;
  const char* next_open;  // equal to `at` when open at `at`
};

void check_cases(const BusinessCalendar& calendar, const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto at = utc(c.at);
    auto next = calendar.next_open(at, c.channel, c.time_zone, c.country);
    EXPECT_EQ(format_rfc3339(next), c.next_open);
    EXPECT_EQ(calendar.is_open(at, c.channel, c.time_zone, c.country), std::string(c.at) == c.next_open);
    EXPECT_TRUE(calendar.is_open(next, c.channel, c.time_zone, c.country));
    if (next != at) {
      EXPECT_FALSE(calendar.is_open(next - std::chrono::minutes(1), c.channel, c.time_zone, c.country));
    }
  }
}

TEST(BusinessCalendar, OfficeHoursAcrossWeekendsHolidaysAndZones) {
  BusinessCalendar calendar(office_hours());
  // Paris is UTC+1 until 2026-03-29 and from 2026-10-25, UTC+2 in between. New York is UTC-5
  // until 2026-03-08 and from 2026-11-01, UTC-4 in between.
  check_cases(calendar, {
    {"Friday 19:30 email is open", v1::EMAIL, "Europe/Paris", "FR", "2026-03-27T18:30:00Z", "2026-03-27T18:30:00Z"},
    {"Friday 20:00 email waits for Monday 08:00, now CEST", v1::EMAIL, "Europe/Paris", "FR",
     "2026-03-27T19:00:00Z", "2026-03-30T06:00:00Z"},
    {"Saturday email waits for Monday", v1::EMAIL, "Europe/Paris", "FR", "2026-03-28T09:00:00Z",
     "2026-03-30T06:00:00Z"},
    {"Saturday SMS is open", v1::SMS, "Europe/Paris", "FR", "2026-03-28T09:00:00Z", "2026-03-28T09:00:00Z"},
    {"early Friday SMS opens at 09:00 CET", v1::SMS, "Europe/Paris", "FR", "2026-03-27T05:00:00Z",
     "2026-03-27T08:00:00Z"},
    {"Sunday SMS across spring forward opens Monday 09:00 CEST", v1::SMS, "Europe/Paris", "FR",
     "2026-03-29T12:00:00Z", "2026-03-30T07:00:00Z"},
    {"Saturday evening SMS skips Sunday and Easter Monday", v1::SMS, "Europe/Paris", "FR", "2026-04-04T17:30:00Z",
     "2026-04-07T07:00:00Z"},
    {"email is not closed on holidays", v1::EMAIL, "Europe/Paris", "FR", "2026-04-04T17:30:00Z",
     "2026-04-06T06:00:00Z"},
    {"country without a holiday list", v1::SMS, "Europe/Paris", "DE", "2026-04-06T05:00:00Z",
     "2026-04-06T07:00:00Z"},
    {"no country", v1::SMS, "Europe/Paris", "", "2026-04-06T05:00:00Z", "2026-04-06T07:00:00Z"},
    {"country in lower case", v1::SMS, "Europe/Paris", "fr", "2026-04-06T05:00:00Z", "2026-04-07T07:00:00Z"},
    {"Saturday SMS across fall back opens Monday 09:00 CET", v1::SMS, "Europe/Paris", "FR", "2026-10-24T17:00:00Z",
     "2026-10-26T08:00:00Z"},
    {"last open minute on Friday, CEST", v1::EMAIL, "Europe/Paris", "FR", "2026-10-23T17:59:00Z",
     "2026-10-23T17:59:00Z"},
    {"Friday close, CEST, reopens Monday CET", v1::EMAIL, "Europe/Paris", "FR", "2026-10-23T18:00:00Z",
     "2026-10-26T07:00:00Z"},
    {"a channel without a window is always open", v1::WHATSAPP, "Europe/Paris", "FR", "2026-03-29T01:30:00Z",
     "2026-03-29T01:30:00Z"},
    {"same instant: Paris open", v1::EMAIL, "Europe/Paris", "FR", "2026-03-27T11:00:00Z", "2026-03-27T11:00:00Z"},
    {"same instant: New York at 07:00 EDT", v1::EMAIL, "America/New_York", "US", "2026-03-27T11:00:00Z",
     "2026-03-27T12:00:00Z"},
    {"evening: Paris closed", v1::EMAIL, "Europe/Paris", "FR", "2026-03-27T20:30:00Z", "2026-03-30T06:00:00Z"},
    {"evening: New York open", v1::EMAIL, "America/New_York", "US", "2026-03-27T20:30:00Z",
     "2026-03-27T20:30:00Z"},
    {"New York before spring forward opens 09:00 EST", v1::SMS, "America/New_York", "US", "2026-03-06T12:00:00Z",
     "2026-03-06T14:00:00Z"},
    {"New York across spring forward opens Monday 09:00 EDT", v1::SMS, "America/New_York", "US",
     "2026-03-08T00:30:00Z", "2026-03-09T13:00:00Z"},
    {"New York across fall back opens Monday 09:00 EST", v1::SMS, "America/New_York", "US", "2026-11-01T00:00:00Z",
     "2026-11-02T14:00:00Z"},
    {"Thanksgiving closes SMS in the US", v1::SMS, "America/New_York", "US", "2026-11-26T15:00:00Z",
     "2026-11-27T14:00:00Z"},
    {"unknown zone reads as UTC", v1::EMAIL, "Mars/Olympus_Mons", "FR", "2026-03-27T07:30:00Z",
     "2026-03-27T08:00:00Z"},
    {"empty zone reads as UTC", v1::EMAIL, "", "FR", "2026-03-27T20:00:00Z", "2026-03-30T08:00:00Z"},
    {"far future, past the offset table", v1::EMAIL, "Europe/Paris", "FR", "2150-06-05T05:00:00Z",
     "2150-06-05T06:00:00Z"},
    {"before 1970, France without summer time", v1::EMAIL, "Europe/Paris", "FR", "1965-06-04T19:00:00Z",
     "1965-06-07T07:00:00Z"},
  });
}

TEST(BusinessCalendar, DaylightSavingNightsFollowTheWallClock) {
  BusinessCalendar calendar(night_hours());
  // Paris 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST. 2026-10-25: 03:00 CEST (01:00Z)
  // goes back to 02:00 CET. New York 2026-03-08: 02:00 EST (07:00Z) jumps to 03:00 EDT.
  // 2026-11-01: 02:00 EDT (06:00Z) goes back to 01:00 EST.
  check_cases(calendar, {
    {"02:30 does not exist: open at the jump to 03:00 CEST", v1::CALL_TASK, "Europe/Paris", "",
     "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"},
    {"01:59 CET is still before 02:30", v1::CALL_TASK, "Europe/Paris", "", "2026-03-29T00:59:00Z",
     "2026-03-29T01:00:00Z"},
    {"first 02:30, CEST", v1::CALL_TASK, "Europe/Paris", "", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"},
    {"open during the first 02:45", v1::CALL_TASK, "Europe/Paris", "", "2026-10-25T00:45:00Z",
     "2026-10-25T00:45:00Z"},
    {"the repeated 02:00 CET is before 02:30 again", v1::CALL_TASK, "Europe/Paris", "", "2026-10-25T01:00:00Z",
     "2026-10-25T01:30:00Z"},
    {"New York 02:30 does not exist: open at 03:00 EDT", v1::CALL_TASK, "America/New_York", "",
     "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
    {"New York first 01:30, EDT", v1::SMS, "America/New_York", "", "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"},
    {"New York open during the first 01:45", v1::SMS, "America/New_York", "", "2026-11-01T05:45:00Z",
     "2026-11-01T05:45:00Z"},
    {"New York repeated 01:00 EST is before 01:30 again", v1::SMS, "America/New_York", "", "2026-11-01T06:00:00Z",
     "2026-11-01T06:30:00Z"},
  });
}

TEST(BusinessCalendar, SpringForwardOpeningIsEarlierThanIcuLenientReading) {
  BusinessCalendar calendar(night_hours());
  auto opening = calendar.next_open(utc("2026-03-29T00:00:00Z"), v1::CALL_TASK, "Europe/Paris", "");
  // ICU reads the nonexistent 02:30 with the offset in force before the jump: 03:30 CEST.
  auto lenient = local_time_to_instant({std::chrono::year{2026}, std::chrono::March, std::chrono::day{29}}, 150,
                                       "Europe/Paris");
  EXPECT_EQ(format_rfc3339(opening), "2026-03-29T01:00:00Z");
  EXPECT_LT(opening, lenient);
  EXPECT_TRUE(calendar.is_open(lenient - std::chrono::minutes(1), v1::CALL_TASK, "Europe/Paris", ""));
}

TEST(BusinessCalendar, OpenInstantIsReturnedUnchangedToTheNanosecond) {
  BusinessCalendar calendar(office_hours());
  auto at = utc("2026-03-27T18:30:00Z") + std::chrono::nanoseconds(123'456'789);
  EXPECT_EQ(calendar.next_open(at, v1::EMAIL, "Europe/Paris", "FR"), at);
  auto last = utc("2026-03-27T18:59:59Z") + std::chrono::nanoseconds(999'999'999);
  EXPECT_EQ(calendar.next_open(last, v1::EMAIL, "Europe/Paris", "FR"), last);
  auto just_closed = utc("2026-03-27T19:00:00Z") + std::chrono::nanoseconds(1);
  EXPECT_EQ(format_rfc3339(calendar.next_open(just_closed, v1::EMAIL, "Europe/Paris", "FR")), "2026-03-30T06:00:00Z");
  auto not_yet = utc("2026-03-27T06:59:59Z") + std::chrono::nanoseconds(999'999'999);
  EXPECT_EQ(format_rfc3339(calendar.next_open(not_yet, v1::EMAIL, "Europe/Paris", "FR")), "2026-03-27T07:00:00Z");
}

TEST(BusinessCalendar, SeveralWindowsForOneChannelAreUnited) {
  v1::BusinessCalendarConfig config;
  add_window(config, v1::EMAIL, "08:00", "12:00", kMondayToFriday, false);
  add_window(config, v1::EMAIL, "14:00", "18:00", kMondayToFriday, false);
  add_window(config, v1::EMAIL, "10:00", "24:00", {v1::SATURDAY}, false);
  BusinessCalendar calendar(config);
  check_cases(calendar, {
    {"morning", v1::EMAIL, "UTC", "", "2026-03-27T11:59:00Z", "2026-03-27T11:59:00Z"},
    {"lunch break", v1::EMAIL, "UTC", "", "2026-03-27T12:00:00Z", "2026-03-27T14:00:00Z"},
    {"Friday evening to Saturday", v1::EMAIL, "UTC", "", "2026-03-27T18:00:00Z", "2026-03-28T10:00:00Z"},
    {"Saturday until midnight", v1::EMAIL, "UTC", "", "2026-03-28T23:59:00Z", "2026-03-28T23:59:00Z"},
    {"Sunday to Monday", v1::EMAIL, "UTC", "", "2026-03-29T00:00:00Z", "2026-03-30T08:00:00Z"},
  });
}

TEST(BusinessCalendar, ChannelThatNeverOpensLeavesTheInstantUnchanged) {
  v1::BusinessCalendarConfig config;
  add_window(config, v1::EMAIL, "08:00", "20:00", {}, false);
  add_window(config, v1::SMS, "20:00", "08:00", kEveryDay, false);
  BusinessCalendar calendar(config);
  auto at = utc("2026-03-27T10:00:00Z");
  for (auto channel : {v1::EMAIL, v1::SMS}) {
    EXPECT_FALSE(calendar.is_open(at, channel, "Europe/Paris", "FR"));
    EXPECT_EQ(calendar.next_open(at, channel, "Europe/Paris", "FR"), at);
  }
}

TEST(BusinessCalendar, HolidayEveryDayOfAWindowStillTerminates) {
  v1::BusinessCalendarConfig config;
  add_window(config, v1::SMS, "09:00", "19:00", {v1::MONDAY}, true);
  add_holidays(config, "FR", {"2026-03-30", "2026-04-06", "2026-04-13"});
  BusinessCalendar calendar(config);
  EXPECT_EQ(format_rfc3339(calendar.next_open(utc("2026-03-27T10:00:00Z"), v1::SMS, "Europe/Paris", "FR")),
            "2026-04-20T07:00:00Z");
}

TEST(BusinessCalendar, HolidaysAreLookedUpByCountry) {
  BusinessCalendar calendar(office_hours());
  std::chrono::year_month_day easter_monday{std::chrono::year{2026}, std::chrono::April, std::chrono::day{6}};
  EXPECT_TRUE(calendar.is_holiday(easter_monday, "FR"));
  EXPECT_TRUE(calendar.is_holiday(easter_monday, "fr"));
  EXPECT_FALSE(calendar.is_holiday(easter_monday, "US"));
  EXPECT_FALSE(calendar.is_holiday(easter_monday, "DE"));
  EXPECT_FALSE(calendar.is_holiday(easter_monday, ""));
  EXPECT_FALSE(calendar.is_holiday(easter_monday, "FRA"));
  EXPECT_FALSE(calendar.is_holiday({std::chrono::year{2026}, std::chrono::April, std::chrono::day{7}}, "FR"));
}

TEST(BusinessCalendarValidation, AcceptsAValidCalendar) {
  EXPECT_TRUE(validate_calendar(office_hours(), "policy.calendar").empty());
  EXPECT_TRUE(validate_calendar(night_hours(), "policy.calendar").empty());
}

TEST(BusinessCalendarValidation, NamesEachProblemByItsFieldPath) {
  using Errors = std::vector<std::pair<std::string, std::string>>;
  v1::BusinessCalendarConfig config;
  add_window(config, v1::EMAIL, "08:00", "08:00", kMondayToFriday, false);
  add_window(config, v1::CHANNEL_UNSPECIFIED, "8:00", "25:00", {}, false);
  add_window(config, static_cast<v1::Channel>(42), "00:00", "24:00", {v1::MONDAY, v1::WEEKDAY_UNSPECIFIED}, false);
  add_holidays(config, "France", {"2026-04-06", "2026-02-30", "06/04/2026"});
  add_holidays(config, "fr", {});
  EXPECT_EQ(validate_calendar(config, "policy.calendar"),
            (Errors{
                {"policy.calendar.windows[0].close", "must be after open"},
                {"policy.calendar.windows[1].channel", "must be set"},
                {"policy.calendar.windows[1].open", "must be a time of day HH:MM"},
                {"policy.calendar.windows[1].close", "must be a time of day HH:MM (24:00 for the end of the day)"},
                {"policy.calendar.windows[1].days", "needs at least one day"},
                {"policy.calendar.windows[2].channel", "is not a known channel"},
                {"policy.calendar.windows[2].days[1]", "must be a day from MONDAY to SUNDAY"},
                {"policy.calendar.holidays[0].country", "must be an ISO 3166-1 alpha-2 code such as FR"},
                {"policy.calendar.holidays[0].dates[1]", "must be a date YYYY-MM-DD"},
                {"policy.calendar.holidays[0].dates[2]", "must be a date YYYY-MM-DD"},
                {"policy.calendar.holidays[1].country", "must be an ISO 3166-1 alpha-2 code such as FR"},
            }));
  EXPECT_EQ(validate_calendar(config, "").front().first, "windows[0].close");
}

// An independent reading of the configuration through an ICU Calendar, to check the offset
// arithmetic of BusinessCalendar against.
bool reference_is_open(const v1::BusinessCalendarConfig& config, const BusinessCalendar& calendar, Instant at,
                       v1::Channel channel, const std::string& time_zone, const std::string& country) {
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::TimeZone> zone(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(time_zone)));
  icu::GregorianCalendar cal(*zone, status);
  cal.setTime(static_cast<UDate>(std::chrono::floor<std::chrono::milliseconds>(at.time_since_epoch()).count()),
              status);
  int minutes = cal.get(UCAL_HOUR_OF_DAY, status) * 60 + cal.get(UCAL_MINUTE, status);
  int day_of_week = cal.get(UCAL_DAY_OF_WEEK, status);  // 1 = Sunday
  int iso_weekday = day_of_week == UCAL_SUNDAY ? 7 : day_of_week - 1;
  std::chrono::year_month_day date{std::chrono::year{cal.get(UCAL_YEAR, status)},
                                   std::chrono::month{static_cast<unsigned>(cal.get(UCAL_MONTH, status) + 1)},
                                   std::chrono::day{static_cast<unsigned>(cal.get(UCAL_DATE, status))}};
  EXPECT_TRUE(U_SUCCESS(status));
  bool has_window = false;
  for (const auto& w : config.windows()) {
    if (w.channel() != channel) continue;
    has_window = true;
    bool on_day = std::find(w.days().begin(), w.days().end(), iso_weekday) != w.days().end();
    int open = *parse_time_of_day(w.open());
    int close = w.close() == "24:00" ? 24 * 60 : *parse_time_of_day(w.close());
    if (!on_day || minutes < open || minutes >= close) continue;
    if (w.closed_on_holidays() && calendar.is_holiday(date, country)) continue;
    return true;
  }
  return !has_window;
}

TEST(BusinessCalendarProperty, NextOpenIsTheFirstOpenInstantAtOrAfter) {
  auto config = office_hours();
  add_window(config, v1::CALL_TASK, "02:30", "04:00", kEveryDay, false);
  add_window(config, v1::CALL_TASK, "23:30", "24:00", {v1::SUNDAY}, true);
  BusinessCalendar calendar(config);
  const std::vector<std::string> zones = {"Europe/Paris",        "America/New_York", "Australia/Lord_Howe",
                                          "America/Santiago",    "Asia/Kolkata",     "Pacific/Chatham",
                                          "America/St_Johns",    "UTC"};
  const std::vector<std::string> countries = {"FR", "US", ""};
  const std::vector<v1::Channel> channels = {v1::EMAIL, v1::SMS, v1::CALL_TASK, v1::WHATSAPP};
  const auto year_start = utc("2026-01-01T00:00:00Z").time_since_epoch().count();
  const auto year_end = utc("2027-01-01T00:00:00Z").time_since_epoch().count();

  std::mt19937_64 random(20260329);
  std::uniform_int_distribution<Duration::rep> instants(year_start, year_end - 1);
  for (int i = 0; i < 10'000; ++i) {
    Instant at{Duration{instants(random)}};
    const auto& zone = zones[random() % zones.size()];
    const auto& country = countries[random() % countries.size()];
    auto channel = channels[random() % channels.size()];
    SCOPED_TRACE(format_rfc3339(at) + " " + zone + " " + country + " " + v1::Channel_Name(channel));

    auto next = calendar.next_open(at, channel, zone, country);
    ASSERT_GE(next, at);
    ASSERT_TRUE(calendar.is_open(next, channel, zone, country));
    ASSERT_EQ(calendar.is_open(at, channel, zone, country), next == at);
    ASSERT_EQ(calendar.is_open(at, channel, zone, country), reference_is_open(config, calendar, at, channel, zone,
                                                                              country));
    ASSERT_TRUE(reference_is_open(config, calendar, next, channel, zone, country));
    if (next == at) continue;
    ASSERT_FALSE(calendar.is_open(next - std::chrono::minutes(1), channel, zone, country));
    // For a sample, every minute in between is closed too.
    if (i % 25 == 0) {
      for (auto t = std::chrono::ceil<std::chrono::minutes>(at); t < next; t += std::chrono::minutes(1)) {
        ASSERT_FALSE(calendar.is_open(t, channel, zone, country)) << format_rfc3339(t);
      }
    }
  }
}

}  // namespace
}  // namespace relance::rules
