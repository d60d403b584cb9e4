#include "support/maildir.h"

#include <algorithm>
#include <sstream>

#include "support/gateway_process.h"

namespace relance::testing {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::map<std::string, std::string> parse_headers(const std::string& block) {
  std::map<std::string, std::string> headers;
  std::istringstream in(block);
  std::string line, name;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!name.empty()) headers[name] += line;
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    name = lower(line.substr(0, colon));
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    headers[name] = value;
  }
  return headers;
}

std::pair<std::string, std::string> split_head_body(const std::string& raw) {
  auto pos = raw.find("\r\n\r\n");
  std::size_t skip = 4;
  if (pos == std::string::npos) {
    pos = raw.find("\n\n");
    skip = 2;
  }
  if (pos == std::string::npos) return {raw, ""};
  return {raw.substr(0, pos), raw.substr(pos + skip)};
}

}  // namespace

std::string decode_quoted_printable(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') {
      out += text[i];
      continue;
    }
    if (i + 1 < text.size() && (text[i + 1] == '\r' || text[i + 1] == '\n')) {  // soft line break
      i += (text[i + 1] == '\r' && i + 2 < text.size() && text[i + 2] == '\n') ? 2 : 1;
      continue;
    }
    if (i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    }
  }
  return out;
}

namespace {

std::string base64_decode(const std::string& in) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (v < 0) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

}  // namespace

std::string decode_header_words(const std::string& value) {
  std::string out;
  std::size_t pos = 0;
  bool last_was_word = false;
  while (pos < value.size()) {
    auto start = value.find("=?", pos);
    if (start == std::string::npos) {
      out += value.substr(pos);
      break;
    }
    auto between = value.substr(pos, start - pos);
    // Whitespace between two encoded-words is not part of the text (RFC 2047 §6.2).
    if (!(last_was_word && between.find_first_not_of(" \t\r\n") == std::string::npos)) out += between;
    auto q1 = value.find('?', start + 2);
    auto q2 = q1 == std::string::npos ? q1 : value.find('?', q1 + 1);
    auto end = q2 == std::string::npos ? q2 : value.find("?=", q2 + 1);
    if (end == std::string::npos) {
      out += value.substr(start);
      break;
    }
    auto encoding = value[q1 + 1];
    auto text = value.substr(q2 + 1, end - q2 - 1);
    if (encoding == 'B' || encoding == 'b') {
      out += base64_decode(text);
    } else {
      for (auto& c : text) {
        if (c == '_') c = ' ';
      }
      out += decode_quoted_printable(text);
    }
    pos = end + 2;
    last_was_word = true;
  }
  return out;
}

std::vector<ReceivedMail> mails_to(const std::filesystem::path& maildir, const std::string& address) {
  std::vector<ReceivedMail> out;
  for (const auto* sub : {"new", "cur"}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(maildir / sub, ec)) {
      ReceivedMail mail;
      mail.raw = read_file(entry.path());
      auto [head, body] = split_head_body(mail.raw);
      mail.headers = parse_headers(head);
      if (mail.headers["to"].find(address) == std::string::npos) continue;
      auto ctype = mail.headers["content-type"];
      auto bpos = ctype.find("boundary=");
      if (bpos != std::string::npos) {
        auto boundary = ctype.substr(bpos + 9);
        if (!boundary.empty() && boundary[0] == '"') boundary = boundary.substr(1, boundary.find('"', 1) - 1);
        auto delimiter = "--" + boundary;
        std::size_t pos = body.find(delimiter);
        while (pos != std::string::npos) {
          auto start = pos + delimiter.size();
          auto next = body.find(delimiter, start);
          if (next == std::string::npos) break;
          auto [phead, pbody] = split_head_body(body.substr(start, next - start));
          auto pheaders = parse_headers(phead);
          auto decoded = lower(pheaders["content-transfer-encoding"]) == "quoted-printable"
                             ? decode_quoted_printable(pbody)
                             : pbody;
          if (pheaders["content-type"].find("text/plain") != std::string::npos) mail.text = decoded;
          if (pheaders["content-type"].find("text/html") != std::string::npos) mail.html = decoded;
          pos = next;
        }
      } else {
        mail.text = body;
      }
      out.push_back(std::move(mail));
    }
  }
  return out;
}

}  // namespace relance::testing
