#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace relance::testing {

// One message as the SMTP server stored it, with its top-level headers and decoded text parts.
struct ReceivedMail {
  std::string raw;
  std::map<std::string, std::string> headers;  // lower-case names, unfolded values
  std::string text;                            // text/plain part, transfer-decoded
  std::string html;                            // text/html part, transfer-decoded
};

// The mails in a Maildir (new/ and cur/) whose To header names `address`.
std::vector<ReceivedMail> mails_to(const std::filesystem::path& maildir, const std::string& address);

std::string decode_quoted_printable(const std::string& text);

// Decodes RFC 2047 encoded-words (=?UTF-8?B?...?= and =?UTF-8?Q?...?=) in a header value.
std::string decode_header_words(const std::string& value);

}  // namespace relance::testing
