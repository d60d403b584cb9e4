#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace relance::store {

// A read or write the store refused (a full disk, an I/O error). The gateway holds its work
// on a failed write and tries again rather than stopping: nothing was recorded, so nothing
// that depends on it may happen yet.
class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& what, bool no_space) : std::runtime_error(what), no_space_(no_space) {}
  bool no_space() const { return no_space_; }

 private:
  bool no_space_;
};

// One record for the changelog topic, on the partition of the timeline it belongs to.
struct ChangelogRecord {
  int32_t partition = 0;
  std::string key;
  std::optional<std::string> value;  // nullopt: a tombstone
};

// Changelog keys: a timeline's snapshot, or a reminder id's outbox state.
std::string timeline_changelog_key(std::string_view timeline_key);
std::string outbox_changelog_key(std::string_view reminder_id);

// The instance's local state in one RocksDB database, one column family per kind:
//   timelines  timeline key → relance.v1.TimelineSnapshot
//   due        partition (4 bytes) · instant (8 bytes) · timeline key → ""   (the schedule)
//   outbox     reminder id → one state byte · timeline key
//   inflight   partition (4 bytes) · reminder id → timeline key   (queued or marked sending)
//   meta       "changelog/<partition>" → next changelog offset reflected here; "clean"
// It is a cache of the changelog topic, trusted only after a clean stop: a store left by a
// crash may hold writes the changelog never acknowledged (their input offsets were not
// committed either, so the input is read again), so its timelines and schedule are dropped
// and restored from the changelog. The outbox is kept, and the changelog's outbox records
// are replayed over it: a "sending" mark reaches the changelog before any provider is called,
// and is what prevents a second send.
class StateStore {
 public:
  explicit StateStore(const std::string& path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // True when the previous process stopped cleanly and the timelines were kept.
  bool was_clean() const { return was_clean_; }
  // True when there was no store at the path before (nothing to trust, nothing lost).
  bool fresh() const { return fresh_; }
  // Records a clean stop (after the last state was written and acknowledged).
  void mark_clean();

  std::optional<std::string> timeline(std::string_view key) const;
  // Keys of stored timelines that start with `prefix`, in key order, at most `limit`.
  std::vector<std::string> timeline_keys(std::string_view prefix, std::size_t limit) const;
  std::optional<char> outbox_state(std::string_view reminder_id) const;
  // Timelines of a partition with a reminder queued or marked sending and not settled: after a
  // crash, they are looked at again (a crash may have cut a send off).
  std::vector<std::string> sending_timelines(int32_t partition) const;
  // The next changelog offset already reflected in this store for that partition (0: none).
  int64_t changelog_offset(int32_t partition) const;

  // The earliest scheduled instant of a partition, at or after `from`. Taken timers leave
  // deletions at the front of the index; seeking past them (`from`) keeps the seek cheap.
  std::optional<Instant> first_due(int32_t partition, Instant from = Instant::min()) const;
  // Timelines of a partition scheduled in [from, now], earliest first, at most `limit`.
  std::vector<std::pair<Instant, std::string>> due(int32_t partition, Instant now, std::size_t limit,
                                                   Instant from = Instant::min()) const;
  std::size_t count_due(int32_t partition, Instant now, std::size_t cap) const;

  // Writes gathered for one atomic write.
  class Batch {
   public:
    explicit Batch(StateStore& store) : store_(store) {}
    void put_timeline(std::string_view key, std::string_view snapshot);
    void delete_timeline(std::string_view key);
    void put_due(int32_t partition, Instant at, std::string_view key);
    void delete_due(int32_t partition, Instant at, std::string_view key);
    void put_outbox(int32_t partition, std::string_view reminder_id, char state, std::string_view timeline_key);
    void delete_outbox(int32_t partition, std::string_view reminder_id);
    void put_changelog_offset(int32_t partition, int64_t next_offset);
    bool empty() const { return batch_.Count() == 0; }

   private:
    friend class StateStore;
    StateStore& store_;
    rocksdb::WriteBatch batch_;
  };
  // Applies the batch atomically; `sync` waits for it to reach the disk. Throws StoreError;
  // the batch is kept then, to be written again.
  void write(Batch& batch, bool sync);
  // Writes state restored from the changelog without the write-ahead log (a crash before the
  // next clean stop leaves the store untrusted, and it is restored again). RocksDB's memtables
  // take keys several times faster in order than scattered: the restore batches its records in
  // key order. Throws StoreError.
  void write_restored(Batch& batch);
  // Around a restore: more memtables may wait for their flush (within the same memory budget)
  // so that the restore's writes do not stall behind the flushes; then the usual setting back,
  // and with `flush` (a large restore) the memtables it filled are flushed in the background,
  // giving their memory back instead of holding it until the gateway's own writes fill them.
  void begin_restore();
  void end_restore(bool flush);
  // After a failed write: asks RocksDB to leave its read-only error state (it refuses every
  // write after a failed one until then). False while it still cannot.
  bool resume();
  // A small synced write, to learn whether the store takes writes again. Throws StoreError.
  void probe();

  // Bytes on disk (SST and WAL files).
  uint64_t size_on_disk() const;

 private:
  rocksdb::ColumnFamilyHandle* cf(int index) const { return handles_[static_cast<std::size_t>(index)]; }
  void reset_timelines();

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  bool was_clean_ = false;
  bool fresh_ = false;
};

// Keys of the `due` column family: big-endian, so that RocksDB's byte order is time order.
std::string due_key(int32_t partition, Instant at, std::string_view timeline_key);
std::string partition_prefix(int32_t partition);

}  // namespace relance::store
