#pragma once

#include <string>

#include "common/clock.h"
#include "ledger/ledger.h"
#include "relance/v1/timeline.pb.h"
#include "rules/reminder_rules.h"

namespace relance::app {

// How far ahead `upcoming` looks.
inline constexpr auto kTimelineHorizon = std::chrono::days(90);

// One timeline as support sees it (GET /v1/customers/{id}/timeline): what the ledger holds, and
// what the rules would do next, played forward on a copy without side effects.
relance::v1::CustomerTimeline timeline_view(const ledger::CustomerLedger& ledger, const rules::ReminderRules& rules,
                                            Instant now);

// Protobuf's JSON mapping with proto field names and every field present; ends with a newline.
std::string timeline_json(const relance::v1::CustomerTimeline& timeline);

}  // namespace relance::app
