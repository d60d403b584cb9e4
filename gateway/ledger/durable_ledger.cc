#include "ledger/durable_ledger.h"

#include <algorithm>
#include <stdexcept>

#include "ledger/snapshot.h"

namespace relance::ledger {

DurableLedger::DurableLedger(store::StateStore& store, std::size_t cache_capacity)
    : store_(store), capacity_(std::max<std::size_t>(cache_capacity, 16)) {}

DurableLedger::Entry* DurableLedger::load(const std::string& key) {
  if (auto it = cache_.find(key); it != cache_.end()) return &it->second;
  auto bytes = store_.timeline(key);
  if (!bytes) return nullptr;
  Entry entry;
  if (!decode_snapshot(*bytes, entry.ledger)) throw std::runtime_error("store: unreadable timeline " + key);
  entry.indexed_due = entry.ledger.next_due;
  return &cache_.emplace(key, std::move(entry)).first->second;
}

void DurableLedger::touch(Entry& entry) {
  if (entry.dirty) return;
  entry.dirty = true;
  dirty_.push_back(entry.ledger.key);
}

const CustomerLedger* DurableLedger::find(const std::string& key) {
  auto* entry = load(key);
  return entry ? &entry->ledger : nullptr;
}

ApplyResult DurableLedger::apply(const std::string& key, int32_t partition, int64_t offset,
                                 const relance::v1::InvoiceEvent& event) {
  ApplyResult result;
  auto* entry = load(key);
  if (entry == nullptr) {
    entry = &cache_.emplace(key, Entry{}).first->second;
    entry->ledger.key = key;
  }
  auto& ledger = entry->ledger;
  ledger.partition = partition;
  if (offset >= 0 && offset <= ledger.applied_offset) {
    result.duplicate = true;
    return result;
  }
  touch(*entry);
  ledger.applied_offset = std::max(ledger.applied_offset, offset);
  const auto& id = event.event_id();
  if (!id.empty()) {
    auto& recent = ledger.recent_event_ids;
    if (std::find(recent.begin(), recent.end(), id) != recent.end()) {
      result.duplicate = true;
      return result;
    }
    recent.push_back(id);
    if (recent.size() > kRecentEventIds) recent.erase(recent.begin());
  }
  result.resolved_after_reminders = apply_event(ledger, event, &result.effects);
  return result;
}

void DurableLedger::record(const std::string& key, const ActionRecord& action) {
  auto* entry = load(key);
  if (entry == nullptr) return;
  apply_action(entry->ledger, action);
  touch(*entry);
}

void DurableLedger::schedule(const std::string& key, std::optional<Instant> at) {
  auto* entry = load(key);
  if (entry == nullptr || entry->ledger.next_due == at) return;
  entry->ledger.next_due = at;
  touch(*entry);
}

void DurableLedger::lower_water(int32_t partition, Instant at) {
  auto it = low_water_.find(partition);
  if (it != low_water_.end() && at < it->second) it->second = at;
}

std::vector<std::string> DurableLedger::take_due(int32_t partition, Instant now, std::size_t limit) {
  std::vector<std::string> keys;
  auto water = low_water_.find(partition);
  auto from = water == low_water_.end() ? Instant::min() : water->second;
  auto entries = store_.due(partition, now, limit, from);
  // Everything before the last entry read (or before `now`, when fewer than asked came back)
  // is taken or moved by the next collect().
  auto reached = entries.size() < limit ? now : entries.back().first;
  if (water == low_water_.end()) {
    low_water_.emplace(partition, reached);
  } else {
    water->second = std::max(water->second, reached);
  }
  for (auto& [at, key] : entries) {
    auto* entry = load(key);
    // The store's schedule is behind the cache until the next collect(): an entry whose
    // timeline has moved since is not due.
    if (entry == nullptr || entry->indexed_due != at) {
      orphans_.emplace_back(partition, at, key);
      continue;
    }
    if (entry->ledger.next_due != at) continue;
    entry->ledger.next_due.reset();
    touch(*entry);
    keys.push_back(std::move(key));
  }
  return keys;
}

std::optional<Instant> DurableLedger::next_due(int32_t partition) const {
  auto water = low_water_.find(partition);
  return store_.first_due(partition, water == low_water_.end() ? Instant::min() : water->second);
}

std::size_t DurableLedger::count_due(int32_t partition, Instant now, std::size_t cap) const {
  return store_.count_due(partition, now, cap);
}

bool DurableLedger::begin(const std::string& reminder_id, int32_t partition, const std::string& timeline_key) {
  if (outbox_state(reminder_id)) return false;
  pending_outbox_[reminder_id] =
      PendingMark{partition, outbox::code_of(outbox::ReminderState::kSending), timeline_key};
  return true;
}

void DurableLedger::queue(const std::string& reminder_id, int32_t partition, const std::string& timeline_key) {
  pending_outbox_[reminder_id] = PendingMark{partition, outbox::kQueuedCode, timeline_key};
}

void DurableLedger::finish(const std::string& reminder_id, int32_t partition, const std::string& timeline_key,
                           outbox::ReminderState state) {
  pending_outbox_[reminder_id] = PendingMark{partition, outbox::code_of(state), timeline_key};
}

void DurableLedger::release(const std::string& reminder_id, int32_t partition) {
  pending_outbox_[reminder_id] = PendingMark{partition, std::nullopt, {}};
}

std::optional<outbox::ReminderState> DurableLedger::outbox_state(const std::string& reminder_id) const {
  if (auto it = pending_outbox_.find(reminder_id); it != pending_outbox_.end()) {
    if (!it->second.state) return std::nullopt;
    return outbox::state_of(*it->second.state);
  }
  if (auto code = store_.outbox_state(reminder_id)) return outbox::state_of(*code);
  return std::nullopt;
}

void DurableLedger::collect(store::StateStore::Batch& batch, std::vector<store::ChangelogRecord>& changelog) {
  for (const auto& key : dirty_) {
    auto it = cache_.find(key);
    if (it == cache_.end() || !it->second.dirty) continue;
    auto& entry = it->second;
    entry.dirty = false;
    const auto& ledger = entry.ledger;
    auto bytes = encode_snapshot(ledger);
    batch.put_timeline(key, bytes);
    if (entry.indexed_due != ledger.next_due) {
      if (entry.indexed_due) batch.delete_due(ledger.partition, *entry.indexed_due, key);
      if (ledger.next_due) {
        batch.put_due(ledger.partition, *ledger.next_due, key);
        lower_water(ledger.partition, *ledger.next_due);
      }
      entry.indexed_due = ledger.next_due;
    }
    changelog.push_back({ledger.partition, store::timeline_changelog_key(key), std::move(bytes)});
  }
  dirty_.clear();
  for (const auto& [partition, at, key] : orphans_) batch.delete_due(partition, at, key);
  orphans_.clear();
  for (auto& [id, mark] : pending_outbox_) {
    if (mark.state) {
      batch.put_outbox(mark.partition, id, *mark.state, mark.timeline_key);
      changelog.push_back({mark.partition, store::outbox_changelog_key(id), *mark.state + mark.timeline_key});
    } else {
      batch.delete_outbox(mark.partition, id);
      changelog.push_back({mark.partition, store::outbox_changelog_key(id), std::nullopt});
    }
  }
  pending_outbox_.clear();
}

void DurableLedger::restore(int32_t partition, std::string_view key, const std::optional<std::string_view>& value,
                            store::StateStore::Batch& batch) {
  auto [scheduled, unknown] = scheduled_before_.try_emplace(partition, false);
  if (unknown) scheduled->second = store_.first_due(partition).has_value();
  if (key.starts_with("t/")) {
    auto [restoring, first_seen] = restoring_.try_emplace(std::string(key.substr(2)));
    const std::string& timeline = restoring->first;
    // What the local schedule holds for this timeline now, to replace it.
    std::optional<Instant> indexed;
    auto cached = cache_.find(timeline);
    if (!first_seen) {
      indexed = restoring->second;
    } else if (cached != cache_.end()) {
      indexed = cached->second.indexed_due;
    } else if (scheduled->second) {
      if (auto bytes = store_.timeline(timeline); !bytes || !read_snapshot_schedule(*bytes, indexed)) {
        indexed.reset();
      }
    }
    if (indexed) batch.delete_due(partition, *indexed, timeline);
    if (cached != cache_.end()) cache_.erase(cached);
    if (!value) {
      batch.delete_timeline(timeline);
      restoring->second.reset();
      return;
    }
    std::optional<Instant> next_due;
    if (!read_snapshot_schedule(*value, next_due)) throw std::runtime_error("changelog: unreadable timeline " + timeline);
    batch.put_timeline(timeline, *value);
    if (next_due) {
      batch.put_due(partition, *next_due, timeline);
      lower_water(partition, *next_due);
    }
    restoring->second = next_due;
  } else if (key.starts_with("o/")) {
    auto id = key.substr(2);
    if (value && !value->empty()) {
      batch.put_outbox(partition, id, (*value)[0], value->substr(1));
    } else {
      batch.delete_outbox(partition, id);
    }
  }
}

void DurableLedger::forget_partition(int32_t partition) {
  low_water_.erase(partition);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.ledger.partition == partition && !it->second.dirty) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

void DurableLedger::trim() {
  if (cache_.size() <= capacity_) return;
  auto target = capacity_ - capacity_ / 10;
  for (auto it = cache_.begin(); it != cache_.end() && cache_.size() > target;) {
    if (!it->second.dirty) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace relance::ledger
