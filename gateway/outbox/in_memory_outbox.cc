#include <unordered_map>

#include "outbox/outbox.h"

namespace relance::outbox {

namespace {

class InMemoryOutbox final : public Outbox {
 public:
  bool begin(const std::string& reminder_id) override {
    return reminders_.try_emplace(reminder_id, ReminderState::kSending).second;
  }

  void finish(const std::string& reminder_id, ReminderState state) override {
    if (auto it = reminders_.find(reminder_id); it != reminders_.end()) it->second = state;
  }

  void release(const std::string& reminder_id) override { reminders_.erase(reminder_id); }

  std::optional<ReminderState> state(const std::string& reminder_id) const override {
    auto it = reminders_.find(reminder_id);
    if (it == reminders_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::unordered_map<std::string, ReminderState> reminders_;
};

}  // namespace

OutboxPtr make_in_memory_outbox() { return std::make_unique<InMemoryOutbox>(); }

}  // namespace relance::outbox
