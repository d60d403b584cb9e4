#include "ledger/phone_check.h"

#include <phonenumbers/phonenumberutil.h>

#include <optional>
#include <unordered_map>

namespace relance::ledger {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace {

PhoneCheck classify(const PhoneNumber& parsed) {
  // GetNumberType answers UNKNOWN exactly when IsValidNumber is false (both match the number
  // against its region's patterns), so one pass over the patterns does for both questions.
  auto type = PhoneNumberUtil::GetInstance()->GetNumberType(parsed);
  if (type == PhoneNumberUtil::UNKNOWN) return {};
  return {true, type == PhoneNumberUtil::MOBILE || type == PhoneNumberUtil::FIXED_LINE_OR_MOBILE};
}

// "+" and 7 to 15 digits, the form billing systems are asked to send: split into country code
// and national number the way libphonenumber's parser would, without its regular expressions.
// Country calling codes are prefix-free, so the first 1-, 2- or 3-digit prefix that names a
// region is the code.
std::optional<PhoneNumber> split_e164(const std::string& number) {
  if (number.size() < 8 || number.size() > 16 || number[0] != '+' || number[1] == '0') return std::nullopt;
  for (size_t i = 1; i < number.size(); ++i) {
    if (number[i] < '0' || number[i] > '9') return std::nullopt;
  }
  const auto* util = PhoneNumberUtil::GetInstance();
  int code = 0;
  for (size_t length = 1; length <= 3; ++length) {
    code = code * 10 + (number[length] - '0');
    std::string region;
    util->GetRegionCodeForCountryCode(code, &region);
    if (region == "ZZ") continue;
    const std::string national = number.substr(1 + length);
    PhoneNumber parsed;
    parsed.set_country_code(code);
    parsed.set_national_number(std::stoull(national));
    // Leading zeros are part of some national numbers (Italy); the parser keeps them this way,
    // never counting the last digit of an all-zero number.
    if (national.size() > 1 && national[0] == '0') {
      parsed.set_italian_leading_zero(true);
      size_t zeros = 1;
      while (zeros < national.size() - 1 && national[zeros] == '0') ++zeros;
      if (zeros != 1) parsed.set_number_of_leading_zeros(static_cast<int>(zeros));
    }
    return parsed;
  }
  return std::nullopt;
}

}  // namespace

PhoneCheck check_phone_uncached(const std::string& number, const std::string& country) {
  if (number.empty()) return {};
  const auto* util = PhoneNumberUtil::GetInstance();
  PhoneNumber parsed;
  auto region = country.empty() ? std::string("ZZ") : country;
  if (util->Parse(number, region, &parsed) != PhoneNumberUtil::NO_PARSING_ERROR) return {};
  return classify(parsed);
}

// libphonenumber's parser runs dozens of ICU regular expressions (about 10 µs a number, half of
// the decision path for an invoice before this shortcut). A valid strict E.164 number needs
// none of them; anything else (national formats, spaces, a number the shortcut finds invalid)
// goes through the full parser, so the answers are the parser's. Every invoice a customer
// receives carries the same number again, and the answer depends on (number, country) alone:
// a per-thread table keeps recent answers, emptied when full rather than managed as an LRU.
PhoneCheck check_phone(const std::string& number, const std::string& country) {
  if (number.empty()) return {};
  constexpr size_t kMaxCachedNumbers = 1 << 16;
  thread_local std::unordered_map<std::string, PhoneCheck> cache;
  std::string key;
  key.reserve(country.size() + 1 + number.size());
  key.append(country).push_back('|');
  key.append(number);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  PhoneCheck check;
  if (auto split = split_e164(number); split && (check = classify(*split)).valid) {
    // The shortcut's answer stands only when it finds the number valid.
  } else {
    check = check_phone_uncached(number, country);
  }
  if (cache.size() >= kMaxCachedNumbers) cache.clear();
  cache.emplace(std::move(key), check);
  return check;
}

}  // namespace relance::ledger
