#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "ledger/ledger.h"

namespace relance::ledger {

namespace {

class InMemoryLedger final : public Ledger {
 public:
  explicit InMemoryLedger(std::size_t dedup_window) : dedup_window_(dedup_window) {}

  ApplyResult apply(const std::string& key, const relance::v1::InvoiceEvent& event) override {
    ApplyResult result;
    if (!remember(event.event_id())) {
      result.duplicate = true;
      return result;
    }
    auto& c = customers_[key];
    c.key = key;
    result.resolved_after_reminders = apply_event(c, event, &result.effects);
    return result;
  }

  void record(const std::string& key, const ActionRecord& action) override {
    if (auto it = customers_.find(key); it != customers_.end()) apply_action(it->second, action);
  }

  const CustomerLedger* find(const std::string& key) const override {
    auto it = customers_.find(key);
    return it == customers_.end() ? nullptr : &it->second;
  }

 private:
  // A bounded window of recent event ids: redeliveries arrive soon after the original.
  bool remember(const std::string& event_id) {
    if (!seen_.insert(event_id).second) return false;
    order_.push_back(event_id);
    if (order_.size() > dedup_window_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }

  std::size_t dedup_window_;
  std::unordered_set<std::string> seen_;
  std::deque<std::string> order_;
  std::unordered_map<std::string, CustomerLedger> customers_;
};

}  // namespace

LedgerPtr make_in_memory_ledger(std::size_t dedup_window) { return std::make_unique<InMemoryLedger>(dedup_window); }

}  // namespace relance::ledger
