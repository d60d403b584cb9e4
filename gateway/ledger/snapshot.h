#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ledger/ledger.h"

namespace relance::ledger {

// The timeline as stored and as written to the changelog (relance.v1.TimelineSnapshot bytes).
// The same timeline always gives the same bytes, and decoding them gives it back exactly.
std::string encode_snapshot(const CustomerLedger& ledger);
// False (and `out` unspecified) when the bytes are not a snapshot this version reads.
bool decode_snapshot(std::string_view bytes, CustomerLedger& out);

// What a restore needs of a snapshot without decoding it whole: its schedule (the timeline's
// next due instant). False when the bytes are not a snapshot this version reads at the top
// level (framing, format); the nested parts are checked when the timeline is next loaded.
bool read_snapshot_schedule(std::string_view bytes, std::optional<Instant>& next_due);

}  // namespace relance::ledger
