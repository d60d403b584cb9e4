#include "channels/twilio/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "common/hmac.h"

namespace relance::channels::twilio {

namespace {

std::string_view as_chars(const unsigned char* data, unsigned int size) {
  return {reinterpret_cast<const char*>(data), size};
}

std::string to_hex(std::string_view bytes) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
  }
  return out;
}

// scheme://[userinfo@]host[:port]<rest>, split so the port can be removed or added.
struct UrlParts {
  std::string_view scheme;
  std::string_view before_port;  // up to and including the host
  std::optional<std::string_view> port;
  std::string_view rest;  // path, query and fragment
};

std::optional<UrlParts> split_url(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  auto authority_start = scheme_end + 3;
  auto authority_end = std::min(url.find_first_of("/?#", authority_start), url.size());
  auto authority = url.substr(authority_start, authority_end - authority_start);
  auto at = authority.rfind('@');
  auto host_start = at == std::string_view::npos ? 0 : at + 1;
  // An IPv6 literal has colons of its own; the port can only follow its closing bracket.
  auto search_from = authority.find(']', host_start);
  auto colon = authority.find(':', search_from == std::string_view::npos ? host_start : search_from);
  UrlParts parts;
  parts.scheme = url.substr(0, scheme_end);
  parts.rest = url.substr(authority_end);
  if (colon == std::string_view::npos) {
    parts.before_port = url.substr(0, authority_end);
  } else {
    parts.before_port = url.substr(0, authority_start + colon);
    parts.port = authority.substr(colon + 1);
  }
  return parts;
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Schemes are case-insensitive (RFC 3986 §3.1).
bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::optional<std::string_view> default_port(std::string_view scheme) {
  if (iequals(scheme, "https")) return "443";
  if (iequals(scheme, "http")) return "80";
  return std::nullopt;
}

void add_unique(std::vector<std::string>& urls, std::string url) {
  if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.push_back(std::move(url));
}

// The URL as given, without its port, and with the default port when it has none: the
// python and node helpers accept all three because Twilio signs inconsistently.
std::vector<std::string> port_variants(std::string_view url) {
  std::vector<std::string> urls{std::string(url)};
  auto parts = split_url(url);
  if (!parts) return urls;
  if (parts->port) {
    add_unique(urls, std::string(parts->before_port) + std::string(parts->rest));
  } else if (auto port = default_port(parts->scheme)) {
    add_unique(urls, std::string(parts->before_port) + ":" + std::string(*port) + std::string(parts->rest));
  }
  return urls;
}

// [start, end) of the query (without '?'), or nullopt when there is none.
std::optional<std::pair<std::size_t, std::size_t>> query_bounds(std::string_view url) {
  auto fragment = std::min(url.find('#'), url.size());
  auto question = url.substr(0, fragment).find('?');
  if (question == std::string_view::npos) return std::nullopt;
  return std::pair{question + 1, fragment};
}

std::string replace_in_query(std::string_view url, std::string_view from, std::string_view to) {
  std::string out(url);
  auto bounds = query_bounds(url);
  if (!bounds) return out;
  std::string query(url.substr(bounds->first, bounds->second - bounds->first));
  for (auto pos = query.find(from); pos != std::string::npos; pos = query.find(from, pos + to.size())) {
    query.replace(pos, from.size(), to);
  }
  return out.replace(bounds->first, bounds->second - bounds->first, query);
}

// Node's WHATWG URL turns "'" in a query into "%27" before signing, its legacy parser and
// the other libraries do not, so both spellings are tried.
std::vector<std::string> candidate_urls(std::string_view url) {
  std::vector<std::string> urls;
  for (const auto& variant : port_variants(url)) {
    add_unique(urls, variant);
    add_unique(urls, replace_in_query(variant, "'", "%27"));
    add_unique(urls, replace_in_query(variant, "%27", "'"));
  }
  return urls;
}

bool body_hash_matches(std::string_view url, std::string_view raw_body) {
  auto bounds = query_bounds(url);
  if (!bounds) return false;
  auto query = form_decode(url.substr(bounds->first, bounds->second - bounds->first));
  if (!query) return false;
  auto expected = sha256_hex(raw_body);
  for (const auto& [name, value] : *query) {
    if (name == "bodySHA256") return constant_time_equal(value, expected);
  }
  return false;
}

}  // namespace

std::string twilio_signature(std::string_view url, const Params& params, std::string_view secret) {
  // std::string compares through char_traits<char>, i.e. as unsigned bytes: the byte order
  // Twilio uses, UTF-8 included.
  Params sorted = params;
  std::sort(sorted.begin(), sorted.end());
  std::string data(url);
  for (const auto& [name, value] : sorted) {
    data += name;
    data += value;
  }
  return base64_encode(hmac(EVP_sha1(), secret, data));
}

bool validate_twilio_signature(std::string_view url, const Params& form_params, std::string_view raw_body,
                               bool json_body, std::string_view header_value, std::string_view secret) {
  if (header_value.empty()) return false;
  if (json_body && !body_hash_matches(url, raw_body)) return false;
  const Params no_params;
  const Params& signed_params = json_body ? no_params : form_params;
  bool valid = false;
  // Every candidate is checked, so the time taken does not reveal which one matched.
  for (const auto& candidate : candidate_urls(url)) {
    if (constant_time_equal(twilio_signature(candidate, signed_params, secret), header_value)) valid = true;
  }
  return valid;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return to_hex(as_chars(digest, size));
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  return to_hex(hmac(EVP_sha256(), key, data));
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  auto written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                 reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace relance::channels::twilio
