#include "render/money_format.h"

#include <unicode/datefmt.h>
#include <unicode/numberformatter.h>
#include <unicode/timezone.h>
#include <unicode/ucurr.h>

#include <map>
#include <memory>
#include <utility>

#include "common/dates.h"

namespace relance::render {

namespace {

std::string decimal_string(int64_t minor_units, int digits) {
  bool negative = minor_units < 0;
  auto magnitude = negative ? -static_cast<uint64_t>(minor_units) : static_cast<uint64_t>(minor_units);
  uint64_t scale = 1;
  for (int i = 0; i < digits; ++i) scale *= 10;
  // Built by appending only: GCC 12 warns falsely (-Wrestrict) on std::string::insert at -O2.
  std::string out = negative ? "-" : "";
  out += std::to_string(magnitude / scale);
  if (digits > 0) {
    auto fraction = std::to_string(magnitude % scale);
    out += '.';
    out.append(static_cast<std::size_t>(digits) - fraction.size(), '0');
    out += fraction;
  }
  return out;
}

// Building an ICU formatter costs far more than using one: each thread keeps those it built,
// with the currency's number of decimals, and goes straight to the last one it used.
struct MoneyFormatter {
  std::string locale;
  std::string currency;
  int digits = 2;
  icu::number::LocalizedNumberFormatter formatter;
};

const MoneyFormatter& money_formatter(const std::string& locale, const std::string& currency) {
  thread_local std::map<std::pair<std::string, std::string>, MoneyFormatter> cache;
  thread_local const MoneyFormatter* last = nullptr;
  if (last != nullptr && last->locale == locale && last->currency == currency) return *last;
  auto key = std::make_pair(locale, currency);
  auto it = cache.find(key);
  if (it == cache.end()) {
    UErrorCode status = U_ZERO_ERROR;
    auto ucurrency = icu::UnicodeString::fromUTF8(currency);
    MoneyFormatter f;
    f.locale = locale;
    f.currency = currency;
    f.digits = ucurr_getDefaultFractionDigits(ucurrency.getTerminatedBuffer(), &status);
    if (U_FAILURE(status)) f.digits = 2;
    status = U_ZERO_ERROR;
    icu::CurrencyUnit unit(ucurrency.getTerminatedBuffer(), status);
    f.formatter = icu::number::NumberFormatter::withLocale(icu::Locale::forLanguageTag(locale, status)).unit(unit);
    it = cache.emplace(key, std::move(f)).first;
  }
  last = &it->second;
  return *last;
}

// The long date style of a locale, in UTC (see format_date), built once per thread and locale.
const icu::DateFormat* date_formatter(const std::string& locale) {
  thread_local std::map<std::string, std::unique_ptr<icu::DateFormat>> cache;
  thread_local std::pair<const std::string*, const icu::DateFormat*> last{nullptr, nullptr};
  if (last.first != nullptr && *last.first == locale) return last.second;
  auto it = cache.find(locale);
  if (it == cache.end()) {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::DateFormat> fmt(
        icu::DateFormat::createDateInstance(icu::DateFormat::kLong, icu::Locale::forLanguageTag(locale, status)));
    if (fmt) fmt->adoptTimeZone(icu::TimeZone::createTimeZone("UTC"));
    it = cache.emplace(locale, std::move(fmt)).first;
  }
  last = {&it->first, it->second.get()};
  return last.second;
}

}  // namespace

std::string format_money(const relance::v1::Money& money, const std::string& locale) {
  const auto& f = money_formatter(locale, money.currency());
  auto decimal = decimal_string(money.minor_units(), f.digits);
  UErrorCode status = U_ZERO_ERROR;
  auto formatted = f.formatter.formatDecimal(decimal.c_str(), status);
  std::string out;
  if (U_FAILURE(status)) return decimal + " " + money.currency();
  formatted.toString(status).toUTF8String(out);
  return out;
}

std::string format_date(const std::string& iso_date, const std::string& locale) {
  // Messages name few distinct dates (due dates cluster), and ICU's calendar arithmetic costs more
  // than the rest of an SMS: each thread remembers the dates it wrote, a bounded number of them.
  thread_local std::map<std::pair<std::string, std::string>, std::string> written;
  auto key = std::make_pair(locale, iso_date);
  if (auto it = written.find(key); it != written.end()) return it->second;
  auto text = format_date_uncached(iso_date, locale);
  if (written.size() >= 4096) written.clear();
  written.emplace(std::move(key), text);
  return text;
}

std::string format_date_uncached(const std::string& iso_date, const std::string& locale) {
  auto date = parse_iso_date(iso_date);
  if (!date) return iso_date;
  const auto* fmt = date_formatter(locale);
  if (fmt == nullptr) return iso_date;
  // Noon UTC names the same calendar day in every zone the formatter could apply.
  auto at = local_time_to_instant(*date, 12 * 60, "UTC");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  icu::UnicodeString text;
  fmt->format(static_cast<UDate>(ms), text);
  std::string out;
  text.toUTF8String(out);
  return out;
}

}  // namespace relance::render
