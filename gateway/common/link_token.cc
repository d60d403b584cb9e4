#include "common/link_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <mutex>

#include "common/hmac.h"

namespace relance {

namespace {

constexpr std::size_t kMacBytes = 16;

std::mutex secret_mutex;
std::string& secret() {
  static std::string value = [] {
    // Until configured: a random secret, so links are valid only for this process's life.
    std::string s(32, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size()));
    return s;
  }();
  return value;
}

std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out += kAlphabet[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> unbase64url(std::string_view in) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out += static_cast<char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

std::string mac(std::string_view payload) {
  std::lock_guard lock(secret_mutex);
  auto digest = hmac(EVP_sha256(), secret(), payload);
  digest.resize(kMacBytes);
  return digest;
}

}  // namespace

void set_link_secret(std::string value) {
  std::lock_guard lock(secret_mutex);
  secret() = std::move(value);
}

std::string make_link_token(std::string_view timeline_key, relance::v1::Channel channel) {
  auto payload = base64url(timeline_key) + "." + std::to_string(static_cast<int>(channel));
  return payload + "." + base64url(mac(payload));
}

std::optional<std::pair<std::string, relance::v1::Channel>> verify_link_token(std::string_view token) {
  auto last = token.rfind('.');
  if (last == std::string_view::npos) return std::nullopt;
  auto payload = token.substr(0, last);
  auto given = unbase64url(token.substr(last + 1));
  auto expected = mac(payload);
  if (!given || given->size() != expected.size() || CRYPTO_memcmp(given->data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  auto dot = payload.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto key = unbase64url(payload.substr(0, dot));
  int channel = 0;
  for (char c : payload.substr(dot + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    channel = channel * 10 + (c - '0');
  }
  if (!key || key->empty() || !relance::v1::Channel_IsValid(channel) || channel == 0) return std::nullopt;
  return std::pair{*key, static_cast<relance::v1::Channel>(channel)};
}

}  // namespace relance
