#include "render/sms_segments.h"

#include <gtest/gtest.h>

#include <string>

namespace relance::render {
namespace {

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(SmsSegments, PureGsm7) {
  EXPECT_EQ(count_sms_segments("").segments, 0);
  auto one = count_sms_segments("Hello, your payment of 120.00 EUR is due.");
  EXPECT_EQ(one.encoding, SmsEncoding::kGsm7);
  EXPECT_EQ(one.units, 41);
  EXPECT_EQ(one.segments, 1);
  EXPECT_EQ(count_sms_segments(repeat("a", 160)).segments, 1);
  EXPECT_EQ(count_sms_segments(repeat("a", 161)).segments, 2);
  EXPECT_EQ(count_sms_segments(repeat("a", 306)).segments, 2);
  EXPECT_EQ(count_sms_segments(repeat("a", 307)).segments, 3);
}

TEST(SmsSegments, FrenchAccentsInTheBasicTableStayGsm7) {
  // é è à ù ì ò É Ç Ä Ö Ñ Ü ß are in GSM 03.38's basic table.
  auto size = count_sms_segments("Réglé à l'échéance, où ça ? ÉÇÄÖÑÜßìò");
  EXPECT_EQ(size.encoding, SmsEncoding::kUcs2);  // ç (lower case) is not
  auto gsm = count_sms_segments("Réglé à l'échéance, où ? ÉÇÄÖÑÜßìò");
  EXPECT_EQ(gsm.encoding, SmsEncoding::kGsm7);
  EXPECT_EQ(gsm.units, 34);
}

TEST(SmsSegments, ExtensionCharactersCountTwo) {
  auto size = count_sms_segments("120,00 €");
  EXPECT_EQ(size.encoding, SmsEncoding::kGsm7);
  EXPECT_EQ(size.units, 9);
  EXPECT_EQ(count_sms_segments("^{}\\[~]|€").units, 18);
  EXPECT_EQ(count_sms_segments(repeat("€", 80)).segments, 1);
  EXPECT_EQ(count_sms_segments(repeat("€", 81)).segments, 2);
  // An escape sequence is never split: after 152 septets the € moves to the second segment.
  auto split = count_sms_segments(repeat("a", 152) + "€" + repeat("a", 10));
  EXPECT_EQ(split.units, 164);
  EXPECT_EQ(split.segments, 2);
}

TEST(SmsSegments, AnyOtherCharacterForcesUcs2) {
  for (const char* text : {"Montant dû", "ê", "ç", "â", "î", "ô", "û", "œ", "\u00a0", "’"}) {
    EXPECT_EQ(count_sms_segments(text).encoding, SmsEncoding::kUcs2) << text;
  }
  EXPECT_EQ(count_sms_segments(repeat("ê", 70)).segments, 1);
  EXPECT_EQ(count_sms_segments(repeat("ê", 71)).segments, 2);
  EXPECT_EQ(count_sms_segments(repeat("ê", 134)).segments, 2);
  EXPECT_EQ(count_sms_segments(repeat("ê", 135)).segments, 3);
}

TEST(SmsSegments, EmojiTakeTwoUtf16Units) {
  auto size = count_sms_segments("Merci 🙂");
  EXPECT_EQ(size.encoding, SmsEncoding::kUcs2);
  EXPECT_EQ(size.units, 8);
  EXPECT_EQ(count_sms_segments(repeat("🙂", 35)).segments, 1);
  EXPECT_EQ(count_sms_segments(repeat("🙂", 36)).segments, 2);
  // 66 units then a surrogate pair: the pair is not split, it starts the next segment.
  EXPECT_EQ(count_sms_segments(repeat("x", 66) + "🙂" + repeat("x", 66)).segments, 3);
}

TEST(SmsSegments, TransliterationKeepsGsm7Characters) {
  EXPECT_EQ(transliterate_to_gsm7("Montant dû : reçu, fête, œuvre, « oui » – ÇA"),
            "Montant du : recu, fete, oeuvre, \" oui \" - ÇA");
  EXPECT_EQ(transliterate_to_gsm7("échéance à régler où"), "échéance à régler où");
  EXPECT_EQ(count_sms_segments(transliterate_to_gsm7("Montant dû : 1\u202f234,56\u00a0€")).encoding,
            SmsEncoding::kGsm7);
  EXPECT_EQ(plain_spaces("1\u202f234,56\u00a0€"), "1 234,56 €");
}

}  // namespace
}  // namespace relance::render
