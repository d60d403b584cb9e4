// A provider callback as the webhook routes receive it: a URL (with its query), an
// X-Twilio-Signature header and a body, form-encoded or JSON. Anyone can post one.
//
// Input: "<url>\n<signature header>\n<body>"; a body starting with '{' is taken as JSON (the
// bodySHA256 path), any other as a form.
//
// Beyond "no crash": a decoded form encodes back to itself, and a request signed as Twilio signs
// it with the secret validates.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "channels/twilio/form.h"
#include "channels/twilio/signature.h"

namespace twilio = relance::channels::twilio;

namespace {

constexpr std::string_view kSecret = "12345";

std::string_view next_line(std::string_view& input) {
  auto end = input.find('\n');
  auto line = input.substr(0, end);
  input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto url = next_line(input);
  auto header = next_line(input);
  auto body = input;
  bool json = !body.empty() && body.front() == '{';

  // The query string is decoded as a form too (it carries what identifies the reminder).
  if (auto question = url.find('?'); question != std::string_view::npos) {
    (void)twilio::form_decode(url.substr(question + 1));
  }

  twilio::Params form;
  if (!json) {
    auto decoded = twilio::form_decode(body);
    if (!decoded) {
      (void)twilio::validate_twilio_signature(url, {}, body, false, header, kSecret);
      return 0;
    }
    form = std::move(*decoded);
    auto again = twilio::form_decode(twilio::form_encode(form));
    if (!again || *again != form) std::abort();  // form_encode and form_decode disagree
  }

  (void)twilio::validate_twilio_signature(url, form, body, json, header, kSecret);

  if (!json) {
    if (!twilio::validate_twilio_signature(url, form, body, false, twilio::twilio_signature(url, form, kSecret),
                                           kSecret)) {
      std::abort();  // a genuine form callback refused
    }
  } else if (url.find('#') == std::string_view::npos && url.find("bodySHA256") == std::string_view::npos) {
    auto question = url.find('?');
    if (question == std::string_view::npos || twilio::form_decode(url.substr(question + 1))) {
      std::string signed_url(url);
      signed_url += question == std::string_view::npos ? '?' : '&';
      signed_url += "bodySHA256=" + twilio::sha256_hex(body);
      if (!twilio::validate_twilio_signature(signed_url, {}, body, true,
                                             twilio::twilio_signature(signed_url, {}, kSecret), kSecret)) {
        std::abort();  // a genuine JSON callback refused
      }
    }
  }
  return 0;
}
