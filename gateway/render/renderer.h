#pragma once

#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "ledger/ledger.h"
#include "relance/v1/config.pb.h"
#include "render/rendered_message.h"
#include "rules/reminder_rules.h"

namespace relance::render {

// Turns a decision into the words the customer reads, in their language, with money and dates
// formatted for their locale.
class Renderer {
 public:
  // `policy` is the policy the decision was made under (the tenant's, or the default one).
  Result<RenderedMessage> render(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                 const relance::v1::PolicyConfig& policy) const;
};

}  // namespace relance::render
