#include <unordered_map>

#include "outbox/outbox.h"

namespace relance::outbox {

namespace {

class InMemoryOutbox final : public Outbox {
 public:
  bool begin(const std::string& reminder_id, const std::string& stage_key) override {
    auto [it, inserted] = reminders_.try_emplace(reminder_id, Entry{ReminderState::kSending, stage_key});
    if (!inserted) return false;
    ++stages_[stage_key];
    return true;
  }

  void finish(const std::string& reminder_id, ReminderState state) override {
    if (auto it = reminders_.find(reminder_id); it != reminders_.end()) it->second.state = state;
  }

  void release(const std::string& reminder_id) override {
    auto it = reminders_.find(reminder_id);
    if (it == reminders_.end()) return;
    if (auto s = stages_.find(it->second.stage_key); s != stages_.end() && --s->second == 0) stages_.erase(s);
    reminders_.erase(it);
  }

  std::optional<ReminderState> state(const std::string& reminder_id) const override {
    auto it = reminders_.find(reminder_id);
    if (it == reminders_.end()) return std::nullopt;
    return it->second.state;
  }

  bool stage_done(const std::string& stage_key) const override { return stages_.count(stage_key) > 0; }

 private:
  struct Entry {
    ReminderState state;
    std::string stage_key;
  };
  std::unordered_map<std::string, Entry> reminders_;
  std::unordered_map<std::string, int> stages_;
};

}  // namespace

OutboxPtr make_in_memory_outbox() { return std::make_unique<InMemoryOutbox>(); }

}  // namespace relance::outbox
