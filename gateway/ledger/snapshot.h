#pragma once

#include <string>
#include <string_view>

#include "ledger/ledger.h"

namespace relance::ledger {

// The timeline as stored and as written to the changelog (relance.v1.TimelineSnapshot bytes).
// The same timeline always gives the same bytes, and decoding them gives it back exactly.
std::string encode_snapshot(const CustomerLedger& ledger);
// False (and `out` unspecified) when the bytes are not a snapshot this version reads.
bool decode_snapshot(std::string_view bytes, CustomerLedger& out);

}  // namespace relance::ledger
