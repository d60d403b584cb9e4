#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>

namespace relance::app {

// The ids of the provider callbacks this process accepted lately, so that a repeat (the
// provider's own retry, or a captured request played again) is answered without publishing its
// fact a second time. The ledger drops repeated facts too, but only among a timeline's latest
// ones; this keeps the input topic free of them. Safe to use from the HTTP server's threads.
class RecentCallbacks {
 public:
  explicit RecentCallbacks(std::size_t capacity) : capacity_(capacity) {}

  // True when `id` is new: it is then held until forget() or until newer ids push it out.
  bool claim(const std::string& id) {
    std::lock_guard lock(mutex_);
    if (!ids_.insert(id).second) return false;
    order_.push_back(id);
    while (order_.size() > capacity_) {
      ids_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }

  // Gives a claimed id back (its fact could not be published: the provider will retry).
  void forget(const std::string& id) {
    std::lock_guard lock(mutex_);
    if (ids_.erase(id) == 0) return;
    for (auto it = order_.begin(); it != order_.end(); ++it) {
      if (*it == id) {
        order_.erase(it);
        break;
      }
    }
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::unordered_set<std::string> ids_;
  std::deque<std::string> order_;  // oldest first
};

}  // namespace relance::app
