#pragma once

#include <string>
#include <string_view>

namespace relance::render {

enum class SmsEncoding { kGsm7, kUcs2 };

// How a text travels as SMS. GSM-7 counts septets (an extension-table character such as € or {
// takes two); UCS-2 counts UTF-16 code units (a character outside the BMP, such as an emoji,
// takes two). One segment holds 160 septets or 70 units; a concatenated message loses room to
// its header: 153 septets or 67 units a segment.
struct SmsSize {
  SmsEncoding encoding = SmsEncoding::kGsm7;
  int units = 0;
  int segments = 0;
};

SmsSize count_sms_segments(std::string_view utf8);

// True when the character is in GSM 03.38's basic table or its extension table.
bool is_gsm7(char32_t c);

// Replaces characters outside GSM-7 by their nearest GSM-7 spelling (ê → e, ç → c, œ → oe,
// typographic quotes and dashes → ASCII) so that French text is sent as GSM-7. Characters that
// have no such spelling are kept (the message then goes as UCS-2).
std::string transliterate_to_gsm7(std::string_view utf8);

// No-break spaces (U+00A0, U+202F, which ICU puts in French amounts) become plain spaces: an
// SMS loses nothing by it and otherwise goes as UCS-2.
std::string plain_spaces(std::string_view utf8);

}  // namespace relance::render
