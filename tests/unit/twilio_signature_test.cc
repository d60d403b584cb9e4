#include <gtest/gtest.h>

#include "channels/twilio/signature.h"

namespace relance::channels::twilio {
namespace {

// Test vectors from contracts/EXTERNAL.md §3 (twilio-python tests/unit/test_request_validator.py).
constexpr std::string_view kToken = "12345";
constexpr std::string_view kUrl = "https://mycompany.com/myapp.php?foo=1&bar=2";
constexpr std::string_view kExpected = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
constexpr std::string_view kJsonBody = R"({"property": "value", "boolean": true})";
constexpr std::string_view kJsonBodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
constexpr std::string_view kJsonSignature = "a9nBmqA0ju/hNViExpshrM61xv4=";

// Deliberately not in sorted order: the signature must sort them.
Params callback_params() {
  return {{"CallSid", "CA1234567890ABCDE"},
          {"Digits", "1234"},
          {"From", "+14158675309"},
          {"To", "+18005551212"},
          {"Caller", "+14158675309"}};
}

std::string json_url() { return std::string(kUrl) + "&bodySHA256=" + std::string(kJsonBodyHash); }

bool validate_form(std::string_view url, const Params& params, std::string_view header) {
  return validate_twilio_signature(url, params, "", false, header, kToken);
}

bool validate_json(std::string_view url, std::string_view body, std::string_view header) {
  return validate_twilio_signature(url, {}, body, true, header, kToken);
}

TEST(TwilioSignature, ComputesReferenceSignature) {
  EXPECT_EQ(twilio_signature(kUrl, callback_params(), kToken), kExpected);
}

TEST(TwilioSignature, ReferenceSignedStringMatches) {
  // The signed string spelled out in the contract gives the same HMAC once base64-encoded.
  std::string signed_string =
      std::string(kUrl) + "CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212";
  EXPECT_EQ(twilio_signature(signed_string, {}, kToken), kExpected);
}

TEST(TwilioSignature, ValidatesReferenceRequest) { EXPECT_TRUE(validate_form(kUrl, callback_params(), kExpected)); }

TEST(TwilioSignature, AcceptsSignatureMadeWithDefaultHttpsPort) {
  EXPECT_EQ(twilio_signature("https://mycompany.com:443/myapp.php?foo=1&bar=2", callback_params(), kToken),
            "kvajT1Ptam85bY51eRf/AJRuM3w=");
  EXPECT_TRUE(validate_form(kUrl, callback_params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
}

TEST(TwilioSignature, AcceptsPortlessSignatureWhenUrlHasDefaultPort) {
  EXPECT_TRUE(validate_form("https://mycompany.com:443/myapp.php?foo=1&bar=2", callback_params(), kExpected));
}

TEST(TwilioSignature, AcceptsSignatureMadeWithDefaultHttpPort) {
  constexpr std::string_view expected = "0ZXoZLH/DfblKGATFgpif+LLRf4=";
  EXPECT_EQ(twilio_signature("http://mycompany.com:80/myapp.php?foo=1&bar=2", callback_params(), kToken), expected);
  EXPECT_TRUE(validate_form("http://mycompany.com/myapp.php?foo=1&bar=2", callback_params(), expected));
}

TEST(TwilioSignature, AcceptsHttpUrlWithItsOwnPort) {
  constexpr std::string_view url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
  constexpr std::string_view expected = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
  EXPECT_EQ(twilio_signature(url, callback_params(), kToken), expected);
  EXPECT_TRUE(validate_form(url, callback_params(), expected));
}

TEST(TwilioSignature, AcceptsHttpsUrlOnceItsPortIsStripped) {
  EXPECT_TRUE(validate_form("https://mycompany.com:1234/myapp.php?foo=1&bar=2", callback_params(), kExpected));
}

TEST(TwilioSignature, PortHandlingCopesWithIpv6AndUserinfo) {
  auto params = callback_params();
  EXPECT_TRUE(
      validate_form("https://[::1]:8443/cb?a=1", params, twilio_signature("https://[::1]/cb?a=1", params, kToken)));
  EXPECT_TRUE(validate_form("https://[::1]/cb", params, twilio_signature("https://[::1]:443/cb", params, kToken)));
  EXPECT_TRUE(
      validate_form("https://u:p@host:8443/cb", params, twilio_signature("https://u:p@host/cb", params, kToken)));
  EXPECT_TRUE(validate_form("HTTP://host/cb", params, twilio_signature("HTTP://host:80/cb", params, kToken)));
  // The port is taken from the authority only, never from a colon in the path or query.
  EXPECT_FALSE(validate_form("https://host/a:1?b=c:2", params, twilio_signature("https://host/a?b=c", params, kToken)));
}

TEST(TwilioSignature, SortsRepeatedNamesByValue) {
  Params params{{"Sid", "CA123"}, {"SidAccount", "AC123"}, {"Digits", "5678"}, {"Digits", "1234"}};
  constexpr std::string_view expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
  EXPECT_EQ(twilio_signature(kUrl, params, kToken), expected);
  EXPECT_EQ(twilio_signature(std::string(kUrl) + "Digits1234Digits5678SidCA123SidAccountAC123", {}, kToken), expected);
  EXPECT_TRUE(validate_form(kUrl, params, expected));
}

TEST(TwilioSignature, JsonBodyHashAndSignature) {
  EXPECT_EQ(sha256_hex(kJsonBody), kJsonBodyHash);
  EXPECT_EQ(twilio_signature(json_url(), {}, kToken), kJsonSignature);
  EXPECT_TRUE(validate_json(json_url(), kJsonBody, kJsonSignature));
}

TEST(TwilioSignature, JsonBodyIgnoresFormParams) {
  EXPECT_TRUE(validate_twilio_signature(json_url(), callback_params(), kJsonBody, true, kJsonSignature, kToken));
}

TEST(TwilioSignature, ApostropheAndPercent27AreEquivalentInQuery) {
  // Computed independently (python hmac/hashlib) over each spelling of the same URL.
  Params params{{"A", "b"}};
  constexpr std::string_view literal_url = "https://mycompany.com/cb?name=O'Brien&x=1";
  constexpr std::string_view encoded_url = "https://mycompany.com/cb?name=O%27Brien&x=1";
  constexpr std::string_view signed_literal = "Dv/HIvb5mYGVPP1g9ZYCPQipuAI=";
  constexpr std::string_view signed_encoded = "zClnvDFa6vPGL7Vtc6BCRCUOh/w=";
  EXPECT_EQ(twilio_signature(literal_url, params, kToken), signed_literal);
  EXPECT_EQ(twilio_signature(encoded_url, params, kToken), signed_encoded);
  for (auto url : {literal_url, encoded_url}) {
    for (auto header : {signed_literal, signed_encoded}) {
      EXPECT_TRUE(validate_form(url, params, header)) << url << " / " << header;
    }
  }
}

TEST(TwilioSignature, RejectsChangedParameter) {
  auto params = callback_params();
  params[1].second = "1235";
  EXPECT_FALSE(validate_form(kUrl, params, kExpected));
}

TEST(TwilioSignature, RejectsExtraOrMissingParameter) {
  auto params = callback_params();
  params.emplace_back("ErrorCode", "30003");
  EXPECT_FALSE(validate_form(kUrl, params, kExpected));
  params = callback_params();
  params.pop_back();
  EXPECT_FALSE(validate_form(kUrl, params, kExpected));
}

TEST(TwilioSignature, RejectsChangedUrl) {
  EXPECT_FALSE(validate_form("https://mycompany.com/myapp.php?foo=1&bar=3", callback_params(), kExpected));
  EXPECT_FALSE(validate_form("https://mycompany.com/other.php?foo=1&bar=2", callback_params(), kExpected));
  EXPECT_FALSE(validate_form("http://mycompany.com/myapp.php?foo=1&bar=2", callback_params(), kExpected));
  EXPECT_FALSE(validate_form("https://evil.com/myapp.php?foo=1&bar=2", callback_params(), kExpected));
}

TEST(TwilioSignature, RejectsMissingOrEmptyHeader) {
  EXPECT_FALSE(validate_form(kUrl, callback_params(), ""));
  EXPECT_FALSE(validate_json(json_url(), kJsonBody, ""));
}

TEST(TwilioSignature, RejectsWrongSecretOrMangledHeader) {
  EXPECT_FALSE(validate_twilio_signature(kUrl, callback_params(), "", false, kExpected, "54321"));
  EXPECT_FALSE(validate_form(kUrl, callback_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8"));
  EXPECT_FALSE(validate_form(kUrl, callback_params(), "rsoydt4t1cutdk1pdd93/vvr8b8="));
}

TEST(TwilioSignature, RejectsChangedJsonBody) {
  EXPECT_FALSE(validate_json(json_url(), R"({"property": "value", "boolean": false})", kJsonSignature));
  EXPECT_FALSE(validate_json(json_url(), "", kJsonSignature));
}

TEST(TwilioSignature, RejectsJsonWithoutBodyHashInUrl) {
  auto signature = twilio_signature(kUrl, {}, kToken);
  EXPECT_FALSE(validate_json(kUrl, kJsonBody, signature));
}

TEST(TwilioSignature, RejectsJsonWhenUrlHashWasReplaced) {
  // An attacker who swaps body and hash still cannot produce the signature over the new URL.
  auto other_body = std::string(R"({"property": "other"})");
  auto url = std::string(kUrl) + "&bodySHA256=" + sha256_hex(other_body);
  EXPECT_FALSE(validate_json(url, other_body, kJsonSignature));
}

TEST(TwilioSignature, Helpers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hmac_sha256_hex("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

}  // namespace
}  // namespace relance::channels::twilio
