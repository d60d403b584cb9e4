#pragma once

#include <string>

#include "app/http_routes.h"
#include "common/error.h"
#include "relance/v1/config.pb.h"
#include "relance/v1/events.pb.h"

namespace relance::app {

class Gateway;

// Provider webhooks (delivery reports, customers' replies) and support's call-task outcomes.
// Each turns into a fact published to the input topic under the timeline's key, so the
// instance that owns the timeline applies it in order with everything else.
void add_provider_routes(Routes& routes, Gateway& gateway, const relance::v1::Config& config);
void add_call_task_routes(Routes& routes, Gateway& gateway, const relance::v1::Config& config);
// What support reads (bearer token, except in the embedded default): GET /v1/customers,
// /v1/customers/{key}/timeline, /v1/call-tasks (open ones) and /v1/outbox (captured messages).
void add_support_routes(Routes& routes, Gateway& gateway, const relance::v1::Config& config);
// GET and POST /v1/admin/clock: read or set a simulated clock (bearer token).
void add_admin_routes(Routes& routes, Gateway& gateway, const relance::v1::Config& config);

// The JSON body of POST /v1/call-tasks/{id}/outcome, as support's console or CRM sends it.
struct CallOutcomeBody {
  relance::v1::CallOutcomeRecorded::Outcome outcome = relance::v1::CallOutcomeRecorded::OUTCOME_UNSPECIFIED;
  std::string outcome_name;  // as written: "promise_to_pay"
  std::string promised_on;   // YYYY-MM-DD, a real date when the outcome is promise_to_pay
  std::string note;
  std::string recorded_by;
  std::string customer_id;  // for an instance that does not know the task
};
// Error codes (each answered 400 with the message): "invalid_json", "invalid_outcome",
// "invalid_date". Fields that are not strings count as absent.
Result<CallOutcomeBody> parse_call_outcome_body(const std::string& body);

// What a customer's reply asks for.
enum class ReplyKeyword { kNone, kStop, kStart };
ReplyKeyword reply_keyword(const std::string& body);

}  // namespace relance::app
