#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "relance/v1/events.pb.h"

namespace relance::decode {

enum class ContentType { kProtobuf, kJson };

// Reads the `content-type` header value; absent or unknown means binary protobuf.
Result<ContentType> content_type_from_header(std::string_view header);

// Decodes one Kafka record value. Error codes: "undecodable".
Result<relance::v1::InvoiceEvent> decode_event(std::string_view bytes, ContentType type);

// Checks what the schema cannot: required ids, the kind, amounts, dates, enums. Error codes:
// "missing_event_id", "missing_kind", "missing_field", "negative_amount", "invalid_currency",
// "invalid_date", "unspecified_enum", "invalid_time_zone".
Result<bool> validate_event(const relance::v1::InvoiceEvent& event);

// The key a reminder timeline belongs to: the customer id, or what the event carries instead.
std::string subject_key(const relance::v1::InvoiceEvent& event);

}  // namespace relance::decode
