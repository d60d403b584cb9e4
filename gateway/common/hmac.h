#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace relance {

// HMAC of `data` under `key` with the digest `md` (EVP_sha1(), EVP_sha256(), ...), as raw bytes.
// Each thread keeps a keyed context for the last few (digest, key) pairs it used and copies it
// per message: OpenSSL 3's one-shot HMAC() looks the algorithm up in its providers on every
// call, which costs more than hashing a short message.
std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data);

}  // namespace relance
