#include "ledger/phone_check.h"

#include <gtest/gtest.h>
#include <phonenumbers/phonenumberutil.h>

#include <random>
#include <set>
#include <string>

#include "ledger/ledger.h"

namespace relance::ledger {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// check_phone's answer set beside libphonenumber's full parser's, counted.
struct Comparison {
  int compared = 0, valid = 0, mobile = 0;

  void expect_same(const std::string& number, const std::string& country) {
    auto fast = check_phone(number, country);
    auto full = check_phone_uncached(number, country);
    ASSERT_EQ(fast.valid, full.valid) << number << " for " << country;
    ASSERT_EQ(fast.mobile, full.mobile) << number << " for " << country;
    ++compared;
    valid += full.valid;
    mobile += full.mobile;
  }
};

// The E.164 shortcut must answer exactly as libphonenumber's parser for every region's example
// numbers of every type (and for those numbers with a digit more or less, which are mostly
// invalid), whatever the customer's country.
TEST(PhoneCheck, TheE164ShortcutAnswersAsTheFullParserForEveryRegionsExamples) {
  const auto* util = PhoneNumberUtil::GetInstance();
  std::set<std::string> regions;
  util->GetSupportedRegions(&regions);
  const PhoneNumberUtil::PhoneNumberType types[] = {
      PhoneNumberUtil::FIXED_LINE, PhoneNumberUtil::MOBILE,    PhoneNumberUtil::TOLL_FREE,
      PhoneNumberUtil::PREMIUM_RATE, PhoneNumberUtil::VOIP,    PhoneNumberUtil::PERSONAL_NUMBER,
      PhoneNumberUtil::PAGER,      PhoneNumberUtil::UAN,       PhoneNumberUtil::VOICEMAIL,
      PhoneNumberUtil::SHARED_COST};
  Comparison c;
  for (const auto& region : regions) {
    for (auto type : types) {
      PhoneNumber example;
      if (!util->GetExampleNumberForType(region, type, &example)) continue;
      std::string e164;
      util->Format(example, PhoneNumberUtil::E164, &e164);
      for (const auto& number : {e164, e164 + "5", e164.substr(0, e164.size() - 1)}) {
        for (const std::string& country : {std::string(), region, std::string("FR")}) {
          ASSERT_NO_FATAL_FAILURE(c.expect_same(number, country));
        }
      }
    }
  }
  EXPECT_GT(c.compared, 3000);
  EXPECT_GT(c.valid, 1000);
  EXPECT_GT(c.mobile, 300);
}

// The shortcut classifies numbers with its own matchers over libphonenumber's metadata. Random
// numbers around every region's examples (the same leading digits, the rest drawn at random,
// one digit more or less) must get the library's answer, including in the regions that share a
// calling code (+1, +7, +44, +262, ...), where the region is told by the number itself.
TEST(PhoneCheck, TheShortcutsClassifierAnswersAsTheLibraryForRandomNumbers) {
  const auto* util = PhoneNumberUtil::GetInstance();
  std::set<std::string> regions;
  util->GetSupportedRegions(&regions);
  std::mt19937 random(20261207);
  Comparison c;
  for (const auto& region : regions) {
    for (auto type : {PhoneNumberUtil::FIXED_LINE, PhoneNumberUtil::MOBILE, PhoneNumberUtil::TOLL_FREE,
                      PhoneNumberUtil::VOIP}) {
      PhoneNumber example;
      if (!util->GetExampleNumberForType(region, type, &example)) continue;
      std::string e164;
      util->Format(example, PhoneNumberUtil::E164, &e164);
      for (int draw = 0; draw < 12; ++draw) {
        std::string number = e164;
        const size_t keep = 3 + random() % (number.size() - 3);
        for (size_t i = keep; i < number.size(); ++i) number[i] = static_cast<char>('0' + random() % 10);
        if (draw % 4 == 1) number.push_back(static_cast<char>('0' + random() % 10));
        if (draw % 4 == 2 && number.size() > 9) number.pop_back();
        ASSERT_NO_FATAL_FAILURE(c.expect_same(number, region));
      }
    }
  }
  EXPECT_GT(c.compared, 5000);
  EXPECT_GT(c.valid, 1500);
  EXPECT_GT(c.mobile, 500);
}

TEST(PhoneCheck, NationalFormatsAndNoiseGoThroughTheParser) {
  EXPECT_TRUE(check_phone("06 12 34 56 78", "FR").mobile);
  EXPECT_TRUE(check_phone("+33 6 12 34 56 78", "").mobile);
  EXPECT_TRUE(check_phone("+33612345678", "").mobile);
  EXPECT_TRUE(check_phone("+33145678901", "FR").valid);
  EXPECT_FALSE(check_phone("+33145678901", "FR").mobile);
  EXPECT_TRUE(check_phone("+390612345678", "IT").valid);  // Rome: the leading zero stays
  EXPECT_FALSE(check_phone("+3361234", "FR").valid);
  EXPECT_FALSE(check_phone("not a number", "FR").valid);
  EXPECT_FALSE(check_phone("", "FR").valid);
  EXPECT_FALSE(check_phone("+0612345678", "").valid);
}

// Each invoice carries its customer again: the ledger keeps the numbers' answers while the
// numbers and the country stay, and checks again as soon as one of them changes.
TEST(PhoneCheck, TheLedgerChecksNumbersAgainOnlyWhenTheyOrTheCountryChange) {
  CustomerLedger ledger;
  relance::v1::Customer customer;
  customer.set_email("jeanne@example.com");
  customer.set_phone("06 12 34 56 78");  // national format: needs the country
  customer.set_country("FR");
  set_customer(ledger, customer);
  EXPECT_TRUE(ledger.contacts.email);
  EXPECT_TRUE(ledger.contacts.mobile);
  EXPECT_TRUE(ledger.contacts.whatsapp);  // no WhatsApp number: the mobile

  customer.set_email("not an address");
  set_customer(ledger, customer);
  EXPECT_FALSE(ledger.contacts.email) << "the email is always checked";
  EXPECT_TRUE(ledger.contacts.mobile);

  customer.set_country("BE");  // the same digits read in Belgium
  set_customer(ledger, customer);
  EXPECT_EQ(ledger.contacts.phone, check_phone("06 12 34 56 78", "BE").valid);
  EXPECT_EQ(ledger.contacts.mobile, check_phone("06 12 34 56 78", "BE").mobile);
  EXPECT_FALSE(ledger.contacts.mobile);

  customer.set_country("FR");
  customer.set_phone("+33145678901");  // a landline
  set_customer(ledger, customer);
  EXPECT_TRUE(ledger.contacts.phone);
  EXPECT_FALSE(ledger.contacts.mobile);
  EXPECT_FALSE(ledger.contacts.whatsapp);

  customer.set_whatsapp("+447400123456");
  set_customer(ledger, customer);
  EXPECT_TRUE(ledger.contacts.whatsapp);
  EXPECT_EQ(ledger.customer.whatsapp(), "+447400123456");
}

}  // namespace
}  // namespace relance::ledger
