// What a Twilio-compatible provider answers: the body of a create request (a message, or
// Twilio's {code, message, more_info, status} error) and a Messages list read to reconcile a
// send whose outcome is unknown. The provider, or whatever stands in front of it, may answer
// anything.
//
// Input: the body alone, or "<status> <retry-after>\n\n<body>" to vary what came with it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "channels/twilio/twilio_channel.h"

namespace twilio = relance::channels::twilio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  long status = 201;
  std::string retry_after;
  std::string body(input);
  if (auto blank = input.find("\n\n"); blank != std::string_view::npos && blank < 64) {
    std::string head(input.substr(0, blank));
    body = std::string(input.substr(blank + 2));
    status = std::strtol(head.c_str(), nullptr, 10);
    if (auto space = head.find(' '); space != std::string::npos) retry_after = head.substr(space + 1);
  } else {
    static constexpr long kStatuses[] = {200, 201, 400, 404, 429, 500, 503};
    status = kStatuses[size % std::size(kStatuses)];
  }

  static const std::vector<int> kTwilioSuccess{201};
  static const std::vector<int> kTelnyxSuccess{200};
  for (const auto* success : {&kTwilioSuccess, &kTelnyxSuccess}) {
    auto answer = twilio::read_create_answer(status, body, retry_after, *success);
    if (answer.retry_after.count() < 0) std::abort();
    if (answer.kind != twilio::ApiAnswer::Kind::kCreated && answer.message.empty()) std::abort();
  }

  // The recipient of the seeds' messages, and none (a listed message without "to"), so that
  // the search gets past the recipient to the sender, body and date checks.
  auto since = std::chrono::system_clock::from_time_t(1'700'000'000);
  (void)twilio::find_listed_message(body, "+15558675310", "", "", since);
  (void)twilio::find_listed_message(body, "+15558675310", "+15017122661", "Hello", since);
  (void)twilio::find_listed_message(body, "", "", "", std::chrono::system_clock::time_point{});
  return 0;
}
