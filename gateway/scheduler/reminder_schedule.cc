#include "scheduler/reminder_schedule.h"

namespace relance::scheduler {

void ReminderSchedule::schedule(const std::string& key, Instant at) {
  cancel(key);
  by_time_.emplace(at, key);
  by_key_.emplace(key, at);
}

void ReminderSchedule::cancel(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  by_time_.erase({it->second, key});
  by_key_.erase(it);
}

std::vector<std::string> ReminderSchedule::take_due(Instant now) {
  std::vector<std::string> due;
  while (!by_time_.empty() && by_time_.begin()->first <= now) {
    auto node = by_time_.extract(by_time_.begin());
    by_key_.erase(node.value().second);
    due.push_back(std::move(node.value().second));
  }
  return due;
}

std::optional<Instant> ReminderSchedule::next_due() const {
  if (by_time_.empty()) return std::nullopt;
  return by_time_.begin()->first;
}

std::optional<Instant> ReminderSchedule::scheduled_at(const std::string& key) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

}  // namespace relance::scheduler
