#pragma once

#include <string>

namespace relance::ledger {

struct PhoneCheck {
  bool valid = false;
  bool mobile = false;
};

// Whether a number is valid and whether it can take SMS, as libphonenumber says, for a customer
// of `country` (ISO 3166 alpha-2; empty: the number must carry its country code). Strict E.164
// numbers skip libphonenumber's parser and its per-call costs.
PhoneCheck check_phone(const std::string& number, const std::string& country);

// The same answer through libphonenumber's full parser, without the E.164 shortcut or the cache.
PhoneCheck check_phone_uncached(const std::string& number, const std::string& country);

}  // namespace relance::ledger
