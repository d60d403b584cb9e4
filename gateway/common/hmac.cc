#include "common/hmac.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace relance {

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  using Context = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;
  struct Keyed {
    const EVP_MD* md = nullptr;
    std::string key;
    Context ctx{nullptr, EVP_MAC_CTX_free};
  };
  constexpr size_t kKeysPerThread = 8;
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::vector<Keyed> keyed;
  auto it = std::find_if(keyed.begin(), keyed.end(), [&](const Keyed& k) { return k.md == md && k.key == key; });
  if (it == keyed.end()) {
    if (keyed.size() >= kKeysPerThread) keyed.erase(keyed.begin());
    Keyed entry{md, std::string(key), {EVP_MAC_CTX_new(mac), EVP_MAC_CTX_free}};
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(EVP_MD_get0_name(md)), 0),
        OSSL_PARAM_construct_end()};
    // OpenSSL has treated a null key pointer as "reuse the previous key" in some versions, so
    // an empty key is passed as a valid pointer to zero bytes.
    const char* key_bytes = key.empty() ? "" : key.data();
    EVP_MAC_init(entry.ctx.get(), reinterpret_cast<const unsigned char*>(key_bytes), key.size(), params);
    keyed.push_back(std::move(entry));
    it = std::prev(keyed.end());
  }
  Context ctx(EVP_MAC_CTX_dup(it->ctx.get()), EVP_MAC_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  std::size_t size = 0;
  EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size());
  EVP_MAC_final(ctx.get(), digest, &size, sizeof digest);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

}  // namespace relance
