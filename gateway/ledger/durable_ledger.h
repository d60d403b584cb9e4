#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "ledger/ledger.h"
#include "outbox/outbox.h"
#include "store/state_store.h"

namespace relance::ledger {

// The timelines, their schedule and the outbox, kept in the state store with a bounded cache
// of timelines in memory. Changes gather until collect(), which turns them into one atomic
// store write and the matching changelog records; the caller writes and produces them
// before it hands any message to a provider or commits an input offset. Used from the
// gateway's thread only.
class DurableLedger {
 public:
  explicit DurableLedger(store::StateStore& store, std::size_t cache_capacity = 100'000);

  // The timeline, read from the store when it is not cached; nullptr when unknown. The
  // reference stays valid until the next trim() or forget_partition().
  const CustomerLedger* find(const std::string& key);

  // Applies one validated event read at `offset` of input partition `partition`. A record at
  // or below the timeline's applied offset (read again after a restart) and an event id seen
  // among the timeline's recent ones (a producer's duplicate) are repeats.
  ApplyResult apply(const std::string& key, int32_t partition, int64_t offset, const relance::v1::InvoiceEvent& event);
  void record(const std::string& key, const ActionRecord& action);

  // The schedule: one instant per timeline.
  void schedule(const std::string& key, std::optional<Instant> at);
  // Timelines of the partition due at `now`, taken off the schedule (the caller plans them
  // again), earliest first.
  std::vector<std::string> take_due(int32_t partition, Instant now, std::size_t limit);
  std::optional<Instant> next_due(int32_t partition) const;
  std::size_t count_due(int32_t partition, Instant now, std::size_t cap) const;

  // The outbox. begin() records the reminder as sending and is false when the id is known.
  bool begin(const std::string& reminder_id, int32_t partition, const std::string& timeline_key);
  // Handed to an adapter that marks it sending itself as it leaves (see mark_when_leaving):
  // nothing is recorded in the outbox, but its timeline is looked at again after a crash.
  void queue(const std::string& reminder_id, int32_t partition, const std::string& timeline_key);
  void finish(const std::string& reminder_id, int32_t partition, const std::string& timeline_key,
              outbox::ReminderState state);
  // Forgets a reminder whose send provably did not happen, so it may be tried again.
  void release(const std::string& reminder_id, int32_t partition);
  // Timelines of a partition with a reminder queued or marked sending, not settled.
  std::vector<std::string> sending_timelines(int32_t partition) const { return store_.sending_timelines(partition); }
  std::optional<outbox::ReminderState> outbox_state(const std::string& reminder_id) const;

  // Moves every change since the last call into `batch` and `changelog`.
  void collect(store::StateStore::Batch& batch, std::vector<store::ChangelogRecord>& changelog);
  bool has_changes() const { return !dirty_.empty() || !pending_outbox_.empty(); }

  // A changelog record read while restoring `partition`, written into `batch`.
  void restore(int32_t partition, std::string_view key, const std::optional<std::string_view>& value,
               store::StateStore::Batch& batch);
  // After a partition's restored records are written. Until then the ledger remembers where
  // each restored timeline is scheduled, so a later record of it replaces that entry without
  // reading the store.
  void restored() {
    restoring_.clear();
    scheduled_before_.clear();
  }

  // Drops the cached timelines of a partition (after its changes were collected).
  void forget_partition(int32_t partition);
  // Keeps the cache within its capacity; only at points where no timeline reference is held.
  void trim();
  std::size_t cached() const { return cache_.size(); }

 private:
  struct Entry {
    CustomerLedger ledger;
    std::optional<Instant> indexed_due;  // what the store's schedule holds for it
    bool dirty = false;
  };
  struct PendingMark {
    int32_t partition = 0;
    std::optional<char> state;  // nullopt: released
    std::string timeline_key;
  };
  Entry* load(const std::string& key);
  void touch(Entry& entry);

  store::StateStore& store_;
  std::size_t capacity_;
  std::unordered_map<std::string, Entry> cache_;
  std::vector<std::string> dirty_;
  std::map<std::string, PendingMark> pending_outbox_;
  // Schedule entries found in the store that no timeline claims: removed at the next collect().
  std::vector<std::tuple<int32_t, Instant, std::string>> orphans_;
  // Restored timelines' scheduled instants while their batch is not written yet.
  std::unordered_map<std::string, std::optional<Instant>> restoring_;
  // Per partition being restored, whether the store held any scheduled entry of it when the
  // restore began. When it held none (a store restored whole), no restored timeline has an old
  // entry to replace, and the store is not asked for each new one.
  std::map<int32_t, bool> scheduled_before_;
  // Per partition, an instant no scheduled entry is earlier than: seeks start there, past the
  // deletions that taking timers leaves at the front of the index.
  std::map<int32_t, Instant> low_water_;
  void lower_water(int32_t partition, Instant at);
};

}  // namespace relance::ledger
