#pragma once

#include "relance/v1/config.pb.h"

namespace httplib {
class Server;
}

namespace relance::app {

class Gateway;

// Provider webhooks (delivery reports, customers' replies) and support's call-task outcomes.
// Each turns into a fact published to the input topic under the timeline's key, so the
// instance that owns the timeline applies it in order with everything else.
void add_provider_routes(httplib::Server& server, Gateway& gateway, const relance::v1::Config& config);
void add_call_task_routes(httplib::Server& server, Gateway& gateway, const relance::v1::Config& config);
// What support reads (bearer token, except in the embedded default): GET /v1/customers,
// /v1/customers/{key}/timeline, /v1/call-tasks (open ones) and /v1/outbox (captured messages).
void add_support_routes(httplib::Server& server, Gateway& gateway, const relance::v1::Config& config);
// GET and POST /v1/admin/clock: read or set a simulated clock (bearer token).
void add_admin_routes(httplib::Server& server, Gateway& gateway, const relance::v1::Config& config);

// What a customer's reply asks for.
enum class ReplyKeyword { kNone, kStop, kStart };
ReplyKeyword reply_keyword(const std::string& body);

}  // namespace relance::app
