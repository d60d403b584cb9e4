#include "channels/email/mime_headers.h"

#include <ctime>

namespace relance::channels::email {

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(std::string_view in) {
  std::string out;
  std::size_t i = 0;
  while (i + 2 < in.size()) {
    auto n = (static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
             (static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8) |
             static_cast<unsigned char>(in[i + 2]);
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += kBase64[(n >> 6) & 63];
    out += kBase64[n & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    auto n = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    auto n = (static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
             (static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8);
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += kBase64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

bool needs_encoding(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80 || c < 0x20) return true;
  }
  return false;
}

std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace

std::string encode_header_text(std::string_view text) {
  if (!needs_encoding(text)) return std::string(text);
  // "=?UTF-8?B?" + "?=" is 12 characters, leaving 63 for base64: 45 bytes of input at most.
  constexpr std::size_t kMaxChunk = 45;
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = pos;
    while (end < text.size()) {
      auto len = utf8_length(static_cast<unsigned char>(text[end]));
      if (end + len - pos > kMaxChunk) break;
      end += len;
    }
    if (end == pos) end = std::min(text.size(), pos + utf8_length(static_cast<unsigned char>(text[pos])));
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(text.substr(pos, end - pos)) + "?=";
    pos = end;
  }
  return out;
}

std::string format_address(std::string_view display_name, std::string_view address) {
  std::string addr = "<" + std::string(address) + ">";
  if (display_name.empty()) return addr;
  if (needs_encoding(display_name)) return encode_header_text(display_name) + " " + addr;
  std::string quoted = "\"";
  for (char c : display_name) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\" " + addr;
}

std::string format_rfc5322_date(Instant at) {
  std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return "relance.invalid";
  auto domain = address.substr(at + 1);
  if (!domain.empty() && domain.back() == '>') domain.remove_suffix(1);
  return std::string(domain);
}

}  // namespace relance::channels::email
