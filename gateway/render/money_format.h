#pragma once

#include <string>

#include "relance/v1/common.pb.h"

namespace relance::render {

// "1 234,56 €" in fr-FR, "€1,234.56" in en-IE, "¥1,235" in ja-JP: the currency's own number of
// decimals, the locale's grouping and symbol placement. Exact: no floating point.
std::string format_money(const relance::v1::Money& money, const std::string& locale);

// A calendar date (YYYY-MM-DD) written out in the locale's long style ("15 November 2026").
// Remembers (per thread, a bounded number) the dates it has written.
std::string format_date(const std::string& iso_date, const std::string& locale);
// The same, always through ICU.
std::string format_date_uncached(const std::string& iso_date, const std::string& locale);

}  // namespace relance::render
