#pragma once

#include <string>
#include <string_view>

#include "channels/twilio/form.h"

namespace relance::channels::twilio {

// X-Twilio-Signature (contracts/EXTERNAL.md §3): base64(HMAC-SHA1(secret, url + name+value ...))
// with the parameters sorted by name, then by value, in byte order. Pass no params for JSON bodies
// (the URL then carries bodySHA256).
std::string twilio_signature(std::string_view url, const Params& params, std::string_view secret);

// Checks an incoming webhook. `url` is the public URL Twilio requested (query included); it is
// tried as given, with its port stripped and, when it has none, with the scheme's default port,
// each with "'" and "%27" in the query taken as equivalent, because Twilio's back ends and
// helper libraries disagree on all of these. For a form POST pass the decoded `form_params`;
// for a JSON body set `json_body`: the signature then covers the URL alone and the URL's
// bodySHA256 must be the SHA-256 of `raw_body`. An empty header never validates.
bool validate_twilio_signature(std::string_view url, const Params& form_params, std::string_view raw_body,
                               bool json_body, std::string_view header_value, std::string_view secret);

// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view data);

// Lower-case hex HMAC-SHA256.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Standard alphabet with '=' padding, no line breaks.
std::string base64_encode(std::string_view data);

// Time depends only on the length, never on where the inputs differ. Different lengths are
// unequal (lengths are not secret here: signatures and digests have fixed sizes).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace relance::channels::twilio
