#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "relance/v1/config.pb.h"
#include "relance/v1/preview.pb.h"
#include "rules/timeline_simulator.h"

namespace relance::app {

inline constexpr int kDefaultPreviewDays = 90;
inline constexpr int kMaxPreviewDays = 3660;

// What the gateway would do with `json_lines` (one relance.v1.PreviewEvent or bare
// relance.v1.InvoiceEvent in protobuf JSON per line; blank lines are skipped), decided without
// side effects: each timeline's events are applied at their `occurred_at`, in time order, and
// the timeline is played forward between them as if every send were accepted, from `from` (the
// earliest event when absent) for `days` days. Uses the channels the configuration would set
// up and the tenant's policy where it has one.
//
// A line that cannot be used refuses the whole input: the error's message starts with
// "line N: " and, when `error_line` is given, N is stored there (0 for a bad parameter). Codes
// are those of decode::validate_event, plus "undecodable", "missing_key",
// "missing_occurred_at" and "invalid_days".
Result<relance::v1::PreviewResult> preview(const relance::v1::Config& config, std::string_view json_lines,
                                           std::optional<Instant> from, int days = kDefaultPreviewDays,
                                           int* error_line = nullptr);

// Appends simulated actions as the preview prints them, with local times read in `time_zone`.
void append_planned_actions(google::protobuf::RepeatedPtrField<relance::v1::PlannedAction>& out,
                            const std::vector<rules::SimulatedAction>& actions, const std::string& time_zone);

// The result as pretty-printed JSON with every field present and proto field names, so the
// same input always prints the same document. Ends with a newline.
std::string preview_json(const relance::v1::PreviewResult& result);

// {"error": message, "code": code, "line": N}; `line` is left out when 0.
std::string preview_error_json(const Error& error, int line);

}  // namespace relance::app
