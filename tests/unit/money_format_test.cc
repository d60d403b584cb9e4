#include "render/money_format.h"

#include <gtest/gtest.h>

namespace relance::render {
namespace {

relance::v1::Money money(const char* currency, int64_t minor) {
  relance::v1::Money m;
  m.set_currency(currency);
  m.set_minor_units(minor);
  return m;
}

TEST(MoneyFormat, FollowsLocaleAndCurrency) {
  // ICU writes a narrow no-break space (U+202F) as the French group separator and a no-break
  // space (U+00A0) before the symbol.
  EXPECT_EQ(format_money(money("EUR", 123456), "fr-FR"), "1\u202f234,56\u00a0€");
  EXPECT_EQ(format_money(money("EUR", 123456), "en-IE"), "€1,234.56");
  EXPECT_EQ(format_money(money("USD", 123456), "en-US"), "$1,234.56");
  EXPECT_EQ(format_money(money("JPY", 1235), "ja-JP"), "￥1,235");
  EXPECT_EQ(format_money(money("EUR", 5), "en-IE"), "€0.05");
}

TEST(MoneyFormat, EuropeanAndAmericanLocales) {
  EXPECT_EQ(format_money(money("GBP", 123456), "en-GB"), "£1,234.56");
  EXPECT_EQ(format_money(money("EUR", 123456), "en-GB"), "€1,234.56");
  EXPECT_EQ(format_money(money("EUR", 123456), "de-DE"), "1.234,56\u00a0€");
  EXPECT_EQ(format_money(money("USD", 99), "en-US"), "$0.99");
  EXPECT_EQ(format_money(money("USD", -123456), "en-US"), "-$1,234.56");
  EXPECT_EQ(format_money(money("EUR", 99999999), "fr-FR"), "999\u202f999,99\u00a0€");
}

TEST(MoneyFormat, ZeroDecimalCurrencies) {
  // Minor units of JPY are yen: no fraction, whatever the locale.
  EXPECT_EQ(format_money(money("JPY", 123456), "ja-JP"), "￥123,456");
  EXPECT_EQ(format_money(money("JPY", 123456), "en-US"), "¥123,456");
  EXPECT_EQ(format_money(money("JPY", 123456), "fr-FR"), "123\u202f456\u00a0JPY");
}

TEST(MoneyFormat, DatesInTheCustomersLanguage) {
  EXPECT_EQ(format_date("2026-11-15", "en-GB"), "15 November 2026");
  EXPECT_EQ(format_date("2026-11-15", "de-DE"), "15. November 2026");
  EXPECT_EQ(format_date("2026-11-15", "fr-FR"), "15 novembre 2026");
  EXPECT_EQ(format_date("2026-11-15", "en-US"), "November 15, 2026");
}

}  // namespace
}  // namespace relance::render
