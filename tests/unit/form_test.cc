#include "channels/twilio/form.h"

#include <gtest/gtest.h>

namespace relance::channels::twilio {
namespace {

TEST(TwilioForm, EncodesInOrder) {
  Params params{{"To", "+33612345678"}, {"From", "whatsapp:+14155238886"}, {"Body", "Hello world"}};
  EXPECT_EQ(form_encode(params), "To=%2B33612345678&From=whatsapp%3A%2B14155238886&Body=Hello+world");
}

TEST(TwilioForm, KeepsUnreservedCharacters) {
  EXPECT_EQ(form_encode({{"k", "AZaz09-._~"}}), "k=AZaz09-._~");
  EXPECT_EQ(form_encode({{"k", "a&b=c+d%e/f?g*h'i"}}), "k=a%26b%3Dc%2Bd%25e%2Ff%3Fg%2Ah%27i");
}

TEST(TwilioForm, EncodesUtf8AsUpperCaseHexBytes) {
  EXPECT_EQ(form_encode({{"Body", "échéance ç"}}), "Body=%C3%A9ch%C3%A9ance+%C3%A7");
}

TEST(TwilioForm, EncodesEmpty) {
  EXPECT_EQ(form_encode({}), "");
  EXPECT_EQ(form_encode({{"a", ""}, {"", "b"}}), "a=&=b");
}

TEST(TwilioForm, DecodesPlusAndEscapes) {
  auto params = form_decode("Body=Hello+world%21&To=%2b33612345678");
  ASSERT_TRUE(params);
  EXPECT_EQ(*params, (Params{{"Body", "Hello world!"}, {"To", "+33612345678"}}));
}

TEST(TwilioForm, DecodesUtf8) {
  auto params = form_decode("Body=%C3%A9ch%C3%A9ance+%E2%82%AC");
  ASSERT_TRUE(params);
  EXPECT_EQ(*params, (Params{{"Body", "échéance €"}}));
}

TEST(TwilioForm, KeepsRepeatedNamesInOrder) {
  auto params = form_decode("MediaUrl=b&Digits=5678&MediaUrl=a&Digits=1234");
  ASSERT_TRUE(params);
  EXPECT_EQ(*params, (Params{{"MediaUrl", "b"}, {"Digits", "5678"}, {"MediaUrl", "a"}, {"Digits", "1234"}}));
}

TEST(TwilioForm, EmptyBodyIsEmptyParams) {
  auto params = form_decode("");
  ASSERT_TRUE(params);
  EXPECT_TRUE(params->empty());
}

TEST(TwilioForm, MissingValuesAndEmptySegments) {
  auto params = form_decode("a&b=&&=c&d=e=f&");
  ASSERT_TRUE(params);
  EXPECT_EQ(*params, (Params{{"a", ""}, {"b", ""}, {"", "c"}, {"d", "e=f"}}));
}

TEST(TwilioForm, RejectsMalformedEscapes) {
  EXPECT_FALSE(form_decode("a=%"));
  EXPECT_FALSE(form_decode("a=%4"));
  EXPECT_FALSE(form_decode("a=%4G"));
  EXPECT_FALSE(form_decode("a=%G4&b=1"));
  EXPECT_FALSE(form_decode("a%=1"));
  EXPECT_FALSE(form_decode("ok=1&bad=100%"));
}

TEST(TwilioForm, RoundTrips) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes += static_cast<char>(c);
  Params params{{"To", "whatsapp:+33612345678"},
                {"Body", "Rappel : facture n° 42 — 1 234,56 € due le 12/03 (a+b=c & 100%)"},
                {"MediaUrl", "https://example.com/a.pdf?x=1&y=2"},
                {"MediaUrl", "https://example.com/b.pdf"},
                {"Empty", ""},
                {"Bytes", all_bytes}};
  auto decoded = form_decode(form_encode(params));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, params);
}

TEST(TwilioForm, UrlEncodeUsesPercent20ForSpace) {
  EXPECT_EQ(url_encode("a b+c"), "a%20b%2Bc");
  EXPECT_EQ(url_encode("SM0123abc-._~"), "SM0123abc-._~");
  EXPECT_EQ(url_encode("é/?#&="), "%C3%A9%2F%3F%23%26%3D");
  EXPECT_EQ(url_encode(""), "");
}

}  // namespace
}  // namespace relance::channels::twilio
