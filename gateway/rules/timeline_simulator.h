#pragma once

#include <functional>
#include <vector>

#include "common/clock.h"
#include "ledger/ledger.h"
#include "rules/reminder_rules.h"

namespace relance::rules {

struct SimulatedAction {
  Instant at;
  Decision decision;
};

// Plays a timeline forward without side effects, as the gateway would with every send
// accepted: plan, record what was done, plan again, jump to the next planned instant. Used by
// `relance preview` and by the policy's tests and simulations.
class TimelineSimulator {
 public:
  explicit TimelineSimulator(const ReminderRules& rules) : rules_(rules) {}

  // Acts on everything due in [from, until) and returns it in order; `ledger` records the actions.
  std::vector<SimulatedAction> run(ledger::CustomerLedger& ledger, Instant from, Instant until) const;

 private:
  const ReminderRules& rules_;
};

// What the ledger learns from carrying out a decision: `advance` moves its subjects to the
// decision's stages (false when the stage stays open for another channel), `contacted` counts it
// towards caps and history. Shared by the gateway and the simulator so both record alike.
ledger::ActionRecord action_record(const Decision& decision, Instant at, bool contacted, bool advance);

// Records a decision in the ledger as if its send had been accepted (or suppressed).
void record_accepted(ledger::CustomerLedger& ledger, const Decision& decision, Instant at);

}  // namespace relance::rules
