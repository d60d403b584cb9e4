#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"

namespace relance::channels::email {

// RFC 2047: ASCII text is returned as it is; anything else becomes UTF-8 "B" encoded-words of
// at most 75 characters, never splitting a UTF-8 sequence, joined by CRLF SPACE.
std::string encode_header_text(std::string_view text);

// `Name <address>` with the display name quoted or encoded as needed.
std::string format_address(std::string_view display_name, std::string_view address);

// RFC 5322 date-time in UTC, e.g. "Sun, 22 Nov 2026 21:56:34 +0000".
std::string format_rfc5322_date(Instant at);

// The domain part of an address ("example.com" for "billing@example.com").
std::string domain_of(std::string_view address);

}  // namespace relance::channels::email
