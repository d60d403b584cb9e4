#include "render/sms_segments.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

namespace relance::render {

namespace {

// GSM 03.38 basic table, apart from ASCII letters and digits (checked separately).
constexpr std::u32string_view kBasic = U"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà";
// Extension table: each costs an escape septet plus itself.
constexpr std::u32string_view kExtension = U"\f^{}\\[~]|€";

// Decodes one UTF-8 sequence; a malformed byte decodes as U+FFFD and is skipped alone.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto byte = static_cast<unsigned char>(s[i]);
  if (byte < 0x80) {
    ++i;
    return byte;
  }
  std::size_t extra = (byte >> 5) == 0x6 ? 1 : (byte >> 4) == 0xE ? 2 : (byte >> 3) == 0x1E ? 3 : 0;
  if (extra == 0 || i + extra >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t c = byte & (0x3F >> extra);
  for (std::size_t k = 1; k <= extra; ++k) {
    auto cont = static_cast<unsigned char>(s[i + k]);
    if ((cont & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    c = (c << 6) | (cont & 0x3F);
  }
  i += extra + 1;
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool is_basic(char32_t c) {
  if ((c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || (c >= U'0' && c <= U'9')) return true;
  return kBasic.find(c) != std::u32string_view::npos;
}

bool is_extension(char32_t c) { return kExtension.find(c) != std::u32string_view::npos; }

struct Replacement {
  char32_t from;
  const char* to;
};

// Only characters outside GSM-7: é, è, à, ù, ì, ò, É, Ç, Ä, Ö, Ñ, Ü, ß are in the basic table
// and stay as they are.
constexpr std::array kTransliterations{
    Replacement{U'â', "a"},      Replacement{U'ä', "a"},     Replacement{U'á', "a"},   Replacement{U'ã', "a"},
    Replacement{U'ê', "e"},      Replacement{U'ë', "e"},     Replacement{U'î', "i"},   Replacement{U'ï', "i"},
    Replacement{U'í', "i"},      Replacement{U'ô', "o"},     Replacement{U'ó', "o"},   Replacement{U'õ', "o"},
    Replacement{U'û', "u"},      Replacement{U'ú', "u"},     Replacement{U'ÿ', "y"},   Replacement{U'ç', "c"},
    Replacement{U'œ', "oe"},     Replacement{U'Œ', "OE"},    Replacement{U'À', "A"},   Replacement{U'Â', "A"},
    Replacement{U'Á', "A"},      Replacement{U'È', "E"},     Replacement{U'Ê', "E"},   Replacement{U'Ë', "E"},
    Replacement{U'Î', "I"},      Replacement{U'Ï', "I"},     Replacement{U'Ô', "O"},   Replacement{U'Ù', "U"},
    Replacement{U'Û', "U"},      Replacement{U'Ÿ', "Y"},     Replacement{U'’', "'"},   Replacement{U'‘', "'"},
    Replacement{U'“', "\""},     Replacement{U'”', "\""},    Replacement{U'«', "\""},  Replacement{U'»', "\""},
    Replacement{U'–', "-"},      Replacement{U'—', "-"},     Replacement{U'…', "..."}, Replacement{U'\u00A0', " "},
    Replacement{U'\u202F', " "}, Replacement{U'\u2009', " "}};

}  // namespace

bool is_gsm7(char32_t c) { return is_basic(c) || is_extension(c); }

SmsSize count_sms_segments(std::string_view utf8) {
  std::vector<int> septets;
  std::vector<int> utf16;
  bool gsm = true;
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t c = next_code_point(utf8, i);
    utf16.push_back(c >= 0x10000 ? 2 : 1);
    septets.push_back(is_basic(c) ? 1 : 2);
    if (!is_gsm7(c)) gsm = false;
  }
  const auto& costs = gsm ? septets : utf16;
  SmsSize size;
  size.encoding = gsm ? SmsEncoding::kGsm7 : SmsEncoding::kUcs2;
  for (int cost : costs) size.units += cost;
  int single = gsm ? 160 : 70;
  int multi = gsm ? 153 : 67;
  if (size.units == 0) return size;
  if (size.units <= single) {
    size.segments = 1;
    return size;
  }
  // An escape sequence or a surrogate pair is never split across two segments.
  size.segments = 1;
  int used = 0;
  for (int cost : costs) {
    if (used + cost > multi) {
      ++size.segments;
      used = 0;
    }
    used += cost;
  }
  return size;
}

std::string transliterate_to_gsm7(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t c = next_code_point(utf8, i);
    auto it = std::find_if(kTransliterations.begin(), kTransliterations.end(),
                           [c](const Replacement& r) { return r.from == c; });
    if (it != kTransliterations.end()) {
      out += it->to;
    } else {
      append_utf8(out, c);
    }
  }
  return out;
}

std::string plain_spaces(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    // Runs of ASCII are copied as they are; only other characters are decoded.
    auto run = i;
    while (run < utf8.size() && static_cast<unsigned char>(utf8[run]) < 0x80) ++run;
    if (run > i) {
      out.append(utf8.substr(i, run - i));
      i = run;
      continue;
    }
    char32_t c = next_code_point(utf8, i);
    append_utf8(out, c == U'\u00A0' || c == U'\u202F' || c == U'\u2009' ? U' ' : c);
  }
  return out;
}

}  // namespace relance::render
