#include "channels/email/mime_headers.h"

#include <gtest/gtest.h>

#include "common/dates.h"

namespace relance::channels::email {
namespace {

TEST(MimeHeaders, AsciiStaysReadable) { EXPECT_EQ(encode_header_text("Payment reminder"), "Payment reminder"); }

TEST(MimeHeaders, NonAsciiBecomesEncodedWords) {
  EXPECT_EQ(encode_header_text("Rappel : échéance"), "=?UTF-8?B?UmFwcGVsIDogw6ljaMOpYW5jZQ==?=");
}

TEST(MimeHeaders, LongTextSplitsWithoutBreakingCharacters) {
  std::string subject;
  for (int i = 0; i < 30; ++i) subject += "é";  // 60 bytes, 2 per character
  auto encoded = encode_header_text(subject);
  std::size_t words = 0;
  std::size_t pos = 0;
  while (pos < encoded.size()) {
    auto end = encoded.find("\r\n ", pos);
    auto word = encoded.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    EXPECT_LE(word.size(), 75u);
    EXPECT_EQ(word.rfind("=?UTF-8?B?", 0), 0u);
    ++words;
    pos = end == std::string::npos ? encoded.size() : end + 3;
  }
  EXPECT_EQ(words, 2u);
  // 45 bytes fit in one word; an odd count would split a character, so 44 go first.
  EXPECT_EQ(encoded.substr(0, encoded.find("\r\n")).size(), std::string("=?UTF-8?B?" "?=").size() + 60u);
}

TEST(MimeHeaders, Addresses) {
  EXPECT_EQ(format_address("", "a@b.c"), "<a@b.c>");
  EXPECT_EQ(format_address("Jeanne \"JM\" Martin", "a@b.c"), "\"Jeanne \\\"JM\\\" Martin\" <a@b.c>");
  EXPECT_EQ(format_address("Hélène", "a@b.c"), "=?UTF-8?B?SMOpbMOobmU=?= <a@b.c>");
}

TEST(MimeHeaders, DateAndDomain) {
  EXPECT_EQ(format_rfc5322_date(*parse_rfc3339("2026-11-22T21:56:34Z")), "Sun, 22 Nov 2026 21:56:34 +0000");
  EXPECT_EQ(domain_of("billing@example.com"), "example.com");
}

}  // namespace
}  // namespace relance::channels::email
