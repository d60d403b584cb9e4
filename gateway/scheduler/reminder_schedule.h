#pragma once

#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace relance::scheduler {

// The next action time of each timeline. Time is never read here: the caller passes the
// clock's `now`, so a simulated clock drives it in tests and in the demo.
class ReminderSchedule {
 public:
  // Sets (or moves) the timeline's next action time.
  void schedule(const std::string& key, Instant at);
  void cancel(const std::string& key);

  // Removes and returns the timelines whose time has come, earliest first.
  std::vector<std::string> take_due(Instant now);

  std::optional<Instant> next_due() const;
  std::optional<Instant> scheduled_at(const std::string& key) const;
  std::size_t size() const { return by_key_.size(); }

 private:
  std::set<std::pair<Instant, std::string>> by_time_;
  std::unordered_map<std::string, Instant> by_key_;
};

}  // namespace relance::scheduler
