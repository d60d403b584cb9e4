// The body support's console or CRM posts to /v1/call-tasks/{id}/outcome: any bytes up to the
// route's size limit. It must be refused with one of the documented error codes or give an
// outcome that can be recorded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/provider_routes.h"
#include "common/dates.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto body = relance::app::parse_call_outcome_body(text);
  if (!body) {
    const auto& code = body.error().code;
    if (code != "invalid_json" && code != "invalid_outcome" && code != "invalid_date") std::abort();
    return 0;
  }
  if (body->outcome == relance::v1::CallOutcomeRecorded::OUTCOME_UNSPECIFIED) std::abort();
  if (body->outcome == relance::v1::CallOutcomeRecorded::PROMISE_TO_PAY &&
      !relance::parse_iso_date(body->promised_on)) {
    std::abort();
  }
  return 0;
}
