#include "rules/timeline_simulator.h"

namespace relance::rules {

ledger::ActionRecord action_record(const Decision& decision, Instant at, bool contacted, bool advance) {
  ledger::ActionRecord action;
  action.kind = decision.kind;
  if (advance) {
    for (const auto& item : decision.items) action.subjects.emplace_back(item.subject_id, item.stage_index);
  }
  action.invoice_ids = decision.invoice_ids;
  action.channel = decision.channel;
  action.stage = decision.stage;
  action.tone = decision.tone;
  action.template_name = decision.template_name;
  action.at = at;
  action.contacted = contacted;
  action.overdue = decision.overdue;
  action.broken_promise = decision.broken_promise && advance;
  action.reminder_id = decision.reminder_id;
  action.stage_key = decision.stage_key;
  return action;
}

void record_accepted(ledger::CustomerLedger& ledger, const Decision& decision, Instant at) {
  ledger::apply_action(ledger, action_record(decision, at, !decision.suppressed, true));
}

std::vector<SimulatedAction> TimelineSimulator::run(ledger::CustomerLedger& ledger, Instant from, Instant until) const {
  std::vector<SimulatedAction> actions;
  Instant t = from;
  // Bounded: every round either acts (moving a stage forward or marking a thank-you) or jumps
  // ahead in time, so a sound policy ends long before this.
  for (int round = 0; round < 10'000 && t < until; ++round) {
    auto plan = rules_.plan(ledger, t);
    if (!plan.now.empty()) {
      for (auto& d : plan.now) {
        record_accepted(ledger, d, t);
        actions.push_back({t, std::move(d)});
      }
      continue;
    }
    if (!plan.next_at || *plan.next_at >= until) break;
    t = std::max(*plan.next_at, t);
  }
  return actions;
}

}  // namespace relance::rules
