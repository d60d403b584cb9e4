#include "ledger/phone_check.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/regex.h>

#include <algorithm>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

// libphonenumber's compiled-in metadata, a serialized PhoneMetadataCollection. The library
// exports these two functions (its metadata.h, which Debian does not install, declares them).
namespace i18n::phonenumbers {
int metadata_size();
const void* metadata_get();
}  // namespace i18n::phonenumbers

namespace relance::ledger {

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberDesc;
using i18n::phonenumbers::PhoneNumberUtil;

namespace {

// libphonenumber's metadata indexed the way GetNumberType looks it up: a region's entry by
// calling code (regions in the library's order, main country first), and the non-geographic
// entities (calling codes of region "001").
struct MetadataIndex {
  PhoneMetadataCollection collection;
  std::unordered_map<int, std::vector<const PhoneMetadata*>> regions_by_code;
  std::unordered_map<int, const PhoneMetadata*> non_geographic;
  bool loaded = false;

  MetadataIndex() {
    if (!collection.ParseFromArray(i18n::phonenumbers::metadata_get(), i18n::phonenumbers::metadata_size())) return;
    std::unordered_map<std::string, const PhoneMetadata*> by_region;
    for (const auto& m : collection.metadata()) {
      if (m.id() == "001") {
        non_geographic.emplace(m.country_code(), &m);
      } else {
        by_region.emplace(m.id(), &m);
      }
    }
    const auto* util = PhoneNumberUtil::GetInstance();
    std::set<int> codes;
    util->GetSupportedCallingCodes(&codes);
    for (int code : codes) {
      std::list<std::string> regions;
      util->GetRegionCodesForCountryCallingCode(code, &regions);
      auto& list = regions_by_code[code];
      for (const auto& region : regions) {
        if (auto it = by_region.find(region); it != by_region.end()) list.push_back(it->second);
      }
    }
    loaded = !by_region.empty();
  }

  static const MetadataIndex& instance() {
    static const MetadataIndex index;
    return index;
  }
};

// GetNumberType's answer, computed the way libphonenumber computes it (the same metadata, the
// same order of questions, the same ICU regular expressions), without its per-call costs: the
// library builds a new ICU matcher for every pattern it tries and looks each pattern up in a
// locked cache, two thirds of classifying a number. Here each thread compiles a pattern once
// into a matcher it keeps and resets on the next number. nullopt when the metadata could not be
// read or a pattern not compiled: the caller asks libphonenumber then.
class TypeClassifier {
 public:
  static TypeClassifier& for_this_thread() {
    thread_local TypeClassifier classifier;
    return classifier;
  }

  std::optional<PhoneNumberUtil::PhoneNumberType> type_of(const PhoneNumber& number) {
    const auto& index = MetadataIndex::instance();
    if (!index.loaded) return std::nullopt;
    std::string national;
    PhoneNumberUtil::GetInstance()->GetNationalSignificantNumber(number, &national);
    input_ = icu::UnicodeString::fromUTF8(national);
    failed_ = false;
    const PhoneMetadata* metadata = nullptr;
    if (auto it = index.regions_by_code.find(number.country_code()); it != index.regions_by_code.end() && !it->second.empty()) {
      metadata = it->second.size() == 1 ? it->second.front() : region_among(it->second, national);
    } else if (auto nongeo = index.non_geographic.find(number.country_code()); nongeo != index.non_geographic.end()) {
      metadata = nongeo->second;
    }
    auto type = metadata ? type_in(*metadata, national) : PhoneNumberUtil::UNKNOWN;
    if (failed_) return std::nullopt;
    return type;
  }

 private:
  // Which of the regions sharing a calling code the number belongs to: the first whose leading
  // digits start the number or, for regions without them, whose patterns know the number.
  const PhoneMetadata* region_among(const std::vector<const PhoneMetadata*>& regions, const std::string& national) {
    for (const auto* region : regions) {
      if (region->has_leading_digits()) {
        if (matches_pattern(region->leading_digits(), /*whole=*/false)) return region;
      } else if (type_in(*region, national) != PhoneNumberUtil::UNKNOWN) {
        return region;
      }
    }
    return nullptr;
  }

  PhoneNumberUtil::PhoneNumberType type_in(const PhoneMetadata& m, const std::string& national) {
    using T = PhoneNumberUtil;
    if (!matches(national, m.general_desc())) return T::UNKNOWN;
    if (matches(national, m.premium_rate())) return T::PREMIUM_RATE;
    if (matches(national, m.toll_free())) return T::TOLL_FREE;
    if (matches(national, m.shared_cost())) return T::SHARED_COST;
    if (matches(national, m.voip())) return T::VOIP;
    if (matches(national, m.personal_number())) return T::PERSONAL_NUMBER;
    if (matches(national, m.pager())) return T::PAGER;
    if (matches(national, m.uan())) return T::UAN;
    if (matches(national, m.voicemail())) return T::VOICEMAIL;
    if (matches(national, m.fixed_line())) {
      return m.same_mobile_and_fixed_line_pattern() || matches(national, m.mobile()) ? T::FIXED_LINE_OR_MOBILE
                                                                                      : T::FIXED_LINE;
    }
    if (!m.same_mobile_and_fixed_line_pattern() && matches(national, m.mobile())) return T::MOBILE;
    return T::UNKNOWN;
  }

  // A description matches when the length is one of its possible lengths (when it lists any)
  // and its pattern matches the whole number; an empty pattern matches nothing.
  bool matches(const std::string& national, const PhoneNumberDesc& desc) {
    const int length = static_cast<int>(national.size());
    if (desc.possible_length_size() > 0 &&
        std::find(desc.possible_length().begin(), desc.possible_length().end(), length) == desc.possible_length().end()) {
      return false;
    }
    if (desc.national_number_pattern().empty()) return false;
    return matches_pattern(desc.national_number_pattern(), /*whole=*/true);
  }

  // The current number against a pattern: all of it, or a prefix of it.
  bool matches_pattern(const std::string& pattern, bool whole) {
    auto& matcher = matchers_[&pattern];
    UErrorCode status = U_ZERO_ERROR;
    if (!matcher) {
      matcher = std::make_unique<icu::RegexMatcher>(icu::UnicodeString::fromUTF8(pattern), 0, status);
      if (U_FAILURE(status)) {
        matcher.reset();
        failed_ = true;
        return false;
      }
    }
    matcher->reset(input_);
    const bool found = whole ? matcher->matches(status) : matcher->lookingAt(status);
    if (U_FAILURE(status)) failed_ = true;
    return found;
  }

  // Keyed by the pattern's address in the metadata, which lives as long as the process.
  std::unordered_map<const std::string*, std::unique_ptr<icu::RegexMatcher>> matchers_;
  icu::UnicodeString input_;
  bool failed_ = false;
};

PhoneCheck from_type(PhoneNumberUtil::PhoneNumberType type) {
  // GetNumberType answers UNKNOWN exactly when IsValidNumber is false (both match the number
  // against its region's patterns), so one pass over the patterns does for both questions.
  if (type == PhoneNumberUtil::UNKNOWN) return {};
  return {true, type == PhoneNumberUtil::MOBILE || type == PhoneNumberUtil::FIXED_LINE_OR_MOBILE};
}

// libphonenumber's own answer, the reference.
PhoneCheck classify(const PhoneNumber& parsed) {
  return from_type(PhoneNumberUtil::GetInstance()->GetNumberType(parsed));
}

PhoneCheck classify_fast(const PhoneNumber& parsed) {
  if (auto type = TypeClassifier::for_this_thread().type_of(parsed)) return from_type(*type);
  return classify(parsed);
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
// goes through the full parser, so the answers are the parser's. The ledger asks again only
// when a customer's numbers change (set_customer).
PhoneCheck check_phone(const std::string& number, const std::string& country) {
  if (number.empty()) return {};
  if (auto split = split_e164(number)) {
    // The shortcut's answer stands only when it finds the number valid.
    if (auto check = classify_fast(*split); check.valid) return check;
  }
  return check_phone_uncached(number, country);
}

}  // namespace relance::ledger
