#include "channels/twilio/form.h"

namespace relance::channels::twilio {

namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string percent_encode(std::string_view text, std::string_view space) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (is_unreserved(c)) {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += space;
    } else {
      out += '%';
      out += kHexDigits[c >> 4];
      out += kHexDigits[c & 0xF];
    }
  }
  return out;
}

std::optional<int> hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return std::nullopt;
}

std::optional<std::string> form_unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else {
      if (text.size() - i < 3) return std::nullopt;
      auto high = hex_value(text[i + 1]);
      auto low = hex_value(text[i + 2]);
      if (!high || !low) return std::nullopt;
      out += static_cast<char>((*high << 4) | *low);
      i += 2;
    }
  }
  return out;
}

}  // namespace

std::string form_encode(const Params& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(name, "+");
    out += '=';
    out += percent_encode(value, "+");
  }
  return out;
}

std::optional<Params> form_decode(std::string_view body) {
  Params params;
  while (!body.empty()) {
    auto amp = body.find('&');
    auto segment = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (segment.empty()) continue;
    auto eq = segment.find('=');
    auto name = form_unescape(segment.substr(0, eq));
    auto value = form_unescape(eq == std::string_view::npos ? std::string_view{} : segment.substr(eq + 1));
    if (!name || !value) return std::nullopt;
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

std::string url_encode(std::string_view component) { return percent_encode(component, "%20"); }

}  // namespace relance::channels::twilio
