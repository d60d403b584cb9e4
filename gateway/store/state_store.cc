#include "store/state_store.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace relance::store {

namespace {

enum Family { kDefault = 0, kTimelines = 1, kDue = 2, kOutbox = 3, kMeta = 4, kInflight = 5 };
const char* const kFamilyNames[] = {"default", "timelines", "due", "outbox", "meta", "inflight"};
constexpr int kFamilies = 6;
constexpr char kSendingCode = 's';
constexpr char kQueuedCode = 'q';  // outbox::kQueuedCode
constexpr std::string_view kCleanKey = "clean";

void check(const rocksdb::Status& status, const std::string& what) {
  // A store that cannot record state must stop the gateway before anything is sent or committed.
  if (!status.ok()) throw StoreError("store: " + what + ": " + status.ToString(), status.IsNoSpace());
}

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint64_t get_u64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  return v;
}

// Flipping the sign bit orders negative ticks before positive ones in unsigned byte order.
uint64_t order_preserving(Instant at) {
  return static_cast<uint64_t>(at.time_since_epoch().count()) ^ (uint64_t{1} << 63);
}

Instant instant_of(uint64_t encoded) {
  return Instant{Duration{static_cast<Duration::rep>(encoded ^ (uint64_t{1} << 63))}};
}

constexpr std::size_t kMemtableBudget = std::size_t{64} << 20;

rocksdb::ColumnFamilyOptions family_options(int family) {
  rocksdb::ColumnFamilyOptions options;
  options.write_buffer_size = kMemtableBudget / 4;
  if (family == kTimelines || family == kOutbox) {
    // Looked up by key, and often for a key that is not there (a new customer, a reminder
    // before its first send): Bloom filters, in the files and in the memtable, answer those
    // without reading a block.
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    options.memtable_prefix_bloom_size_ratio = 0.02;
    options.memtable_whole_key_filtering = true;
  }
  if (family == kDue || family == kInflight) {
    // Queues: every entry is deleted soon after it is written. Files full of deletions are
    // compacted early so that seeks do not wade through them.
    options.table_properties_collector_factories.emplace_back(
        rocksdb::NewCompactOnDeletionCollectorFactory(4096, 2048));
  }
  return options;
}

std::string offset_key(int32_t partition) { return "changelog/" + std::to_string(partition); }

// RocksDB's own messages, warnings and worse, go to the gateway's log instead of a LOG file in
// the store: on a full disk that file's writer would fail too, and RocksDB builds with
// assertions abort on the next line written through a writer that has failed once.
class InfoLogToSpdlog : public rocksdb::Logger {
 public:
  InfoLogToSpdlog() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", line);
    } else {
      spdlog::warn("rocksdb: {}", line);
    }
  }
};

}  // namespace

std::string timeline_changelog_key(std::string_view timeline_key) {
  std::string key("t/");
  key.append(timeline_key);
  return key;
}

std::string outbox_changelog_key(std::string_view reminder_id) {
  std::string key("o/");
  key.append(reminder_id);
  return key;
}

std::string partition_prefix(int32_t partition) {
  std::string key;
  put_u32(key, static_cast<uint32_t>(partition));
  return key;
}

std::string due_key(int32_t partition, Instant at, std::string_view timeline_key) {
  std::string key;
  key.reserve(12 + timeline_key.size());
  put_u32(key, static_cast<uint32_t>(partition));
  put_u64(key, order_preserving(at));
  key.append(timeline_key);
  return key;
}

StateStore::StateStore(const std::string& path) {
  std::filesystem::create_directories(path);
  fresh_ = !std::filesystem::exists(std::filesystem::path(path) / "CURRENT");
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  // Small, steady writes; the changelog is the durable copy, so the defaults for the WAL are fine.
  options.max_background_jobs = 2;
  // Memtables are the store's largest use of memory: bounded together, and small enough
  // that a memtable insert stays cheap.
  options.db_write_buffer_size = kMemtableBudget;
  options.info_log = std::make_shared<InfoLogToSpdlog>();
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (int i = 0; i < kFamilies; ++i) {
    families.emplace_back(kFamilyNames[i], family_options(i));
  }
  rocksdb::DB* db = nullptr;
  auto status = rocksdb::DB::Open(options, path, families, &handles_, &db);
  if (!status.ok()) throw std::runtime_error("store.path: cannot open the store at " + path + ": " + status.ToString());
  db_.reset(db);

  std::string value;
  was_clean_ = db_->Get(rocksdb::ReadOptions(), cf(kMeta), kCleanKey, &value).ok();
  if (!was_clean_) reset_timelines();
  // From here until the next clean stop, a crash leaves the store untrusted.
  rocksdb::WriteOptions sync;
  sync.sync = true;
  check(db_->Delete(sync, cf(kMeta), kCleanKey), "cannot write");
}

StateStore::~StateStore() {
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  handles_.clear();
  db_.reset();
}

void StateStore::reset_timelines() {
  for (int family : {kTimelines, kDue, kMeta}) {
    auto& handle = handles_[static_cast<std::size_t>(family)];
    check(db_->DropColumnFamily(handle), "cannot drop " + std::string(kFamilyNames[family]));
    db_->DestroyColumnFamilyHandle(handle);
    handle = nullptr;
    check(db_->CreateColumnFamily(family_options(family), kFamilyNames[family], &handle),
          "cannot create " + std::string(kFamilyNames[family]));
  }
}

void StateStore::mark_clean() {
  // Flushed, so the next start reads files instead of replaying the whole write-ahead log.
  check(db_->Flush(rocksdb::FlushOptions(), handles_), "cannot flush");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  check(db_->Put(sync, cf(kMeta), kCleanKey, "1"), "cannot write");
}

std::optional<std::string> StateStore::timeline(std::string_view key) const {
  std::string value;
  auto status = db_->Get(rocksdb::ReadOptions(), cf(kTimelines), rocksdb::Slice(key.data(), key.size()), &value);
  if (status.IsNotFound()) return std::nullopt;
  check(status, "cannot read");
  return value;
}

std::vector<std::string> StateStore::timeline_keys(std::string_view prefix, std::size_t limit) const {
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kTimelines)));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid() && keys.size() < limit; it->Next()) {
    if (!it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    keys.push_back(it->key().ToString());
  }
  check(it->status(), "cannot list timelines");
  return keys;
}

std::optional<char> StateStore::outbox_state(std::string_view reminder_id) const {
  std::string value;
  auto status =
      db_->Get(rocksdb::ReadOptions(), cf(kOutbox), rocksdb::Slice(reminder_id.data(), reminder_id.size()), &value);
  if (status.IsNotFound() || value.empty()) return std::nullopt;
  check(status, "cannot read");
  return value[0];
}

std::vector<std::string> StateStore::sending_timelines(int32_t partition) const {
  std::vector<std::string> out;
  auto prefix = partition_prefix(partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kInflight)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) out.push_back(it->value().ToString());
  return out;
}

int64_t StateStore::changelog_offset(int32_t partition) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), cf(kMeta), offset_key(partition), &value).ok() || value.size() != 8) return 0;
  return static_cast<int64_t>(get_u64(value));
}

std::optional<Instant> StateStore::first_due(int32_t partition, Instant from) const {
  auto prefix = partition_prefix(partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kDue)));
  it->Seek(from == Instant::min() ? prefix : due_key(partition, from, {}));
  if (!it->Valid() || !it->key().starts_with(prefix) || it->key().size() < 12) return std::nullopt;
  return instant_of(get_u64(std::string_view(it->key().data() + 4, 8)));
}

std::vector<std::pair<Instant, std::string>> StateStore::due(int32_t partition, Instant now, std::size_t limit,
                                                             Instant from) const {
  std::vector<std::pair<Instant, std::string>> out;
  auto prefix = partition_prefix(partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kDue)));
  for (it->Seek(from == Instant::min() ? prefix : due_key(partition, from, {})); it->Valid() && out.size() < limit; it->Next()) {
    auto key = it->key();
    if (!key.starts_with(prefix) || key.size() < 12) break;
    auto at = instant_of(get_u64(std::string_view(key.data() + 4, 8)));
    if (at > now) break;
    out.emplace_back(at, std::string(key.data() + 12, key.size() - 12));
  }
  return out;
}

std::size_t StateStore::count_due(int32_t partition, Instant now, std::size_t cap) const {
  std::size_t n = 0;
  auto prefix = partition_prefix(partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kDue)));
  for (it->Seek(prefix); it->Valid() && n < cap; it->Next()) {
    auto key = it->key();
    if (!key.starts_with(prefix) || key.size() < 12) break;
    if (instant_of(get_u64(std::string_view(key.data() + 4, 8))) > now) break;
    ++n;
  }
  return n;
}

void StateStore::Batch::put_timeline(std::string_view key, std::string_view snapshot) {
  check(batch_.Put(store_.cf(kTimelines), rocksdb::Slice(key.data(), key.size()),
                   rocksdb::Slice(snapshot.data(), snapshot.size())),
        "cannot batch");
}

void StateStore::Batch::delete_timeline(std::string_view key) {
  check(batch_.Delete(store_.cf(kTimelines), rocksdb::Slice(key.data(), key.size())), "cannot batch");
}

void StateStore::Batch::put_due(int32_t partition, Instant at, std::string_view key) {
  check(batch_.Put(store_.cf(kDue), due_key(partition, at, key), rocksdb::Slice()), "cannot batch");
}

void StateStore::Batch::delete_due(int32_t partition, Instant at, std::string_view key) {
  check(batch_.Delete(store_.cf(kDue), due_key(partition, at, key)), "cannot batch");
}

void StateStore::Batch::put_outbox(int32_t partition, std::string_view reminder_id, char state,
                                   std::string_view timeline_key) {
  std::string value(1, state);
  value.append(timeline_key);
  rocksdb::Slice id(reminder_id.data(), reminder_id.size());
  check(batch_.Put(store_.cf(kOutbox), id, value), "cannot batch");
  auto inflight = partition_prefix(partition);
  inflight.append(reminder_id);
  if (state == kSendingCode || state == kQueuedCode) {
    check(batch_.Put(store_.cf(kInflight), inflight, rocksdb::Slice(timeline_key.data(), timeline_key.size())),
          "cannot batch");
  } else {
    check(batch_.Delete(store_.cf(kInflight), inflight), "cannot batch");
  }
}

void StateStore::Batch::delete_outbox(int32_t partition, std::string_view reminder_id) {
  check(batch_.Delete(store_.cf(kOutbox), rocksdb::Slice(reminder_id.data(), reminder_id.size())), "cannot batch");
  auto inflight = partition_prefix(partition);
  inflight.append(reminder_id);
  check(batch_.Delete(store_.cf(kInflight), inflight), "cannot batch");
}

void StateStore::Batch::put_changelog_offset(int32_t partition, int64_t next_offset) {
  std::string value;
  put_u64(value, static_cast<uint64_t>(next_offset));
  check(batch_.Put(store_.cf(kMeta), offset_key(partition), value), "cannot batch");
}

void StateStore::write(Batch& batch, bool sync) {
  if (batch.empty()) return;
  rocksdb::WriteOptions options;
  options.sync = sync;
  check(db_->Write(options, &batch.batch_), "cannot write");
  batch.batch_.Clear();
}

void StateStore::write_restored(Batch& batch) {
  if (batch.empty()) return;
  rocksdb::WriteOptions options;
  options.disableWAL = true;
  check(db_->Write(options, &batch.batch_), "cannot write");
  batch.batch_.Clear();
}

void StateStore::begin_restore() {
  for (auto* handle : handles_) {
    check(db_->SetOptions(handle, {{"max_write_buffer_number", "6"}}), "cannot set restore options");
  }
}

void StateStore::end_restore(bool flush) {
  const auto usual = std::to_string(rocksdb::ColumnFamilyOptions().max_write_buffer_number);
  for (auto* handle : handles_) {
    check(db_->SetOptions(handle, {{"max_write_buffer_number", usual}}), "cannot set options");
  }
  if (!flush) return;
  rocksdb::FlushOptions in_background;
  in_background.wait = false;
  check(db_->Flush(in_background, handles_), "cannot flush");
}

bool StateStore::resume() { return db_->Resume().ok(); }

void StateStore::probe() {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  check(db_->Put(sync, cf(kMeta), "probe", ""), "cannot write");
}

uint64_t StateStore::size_on_disk() const {
  uint64_t total = 0;
  for (auto* handle : handles_) {
    uint64_t size = 0;
    if (db_->GetIntProperty(handle, rocksdb::DB::Properties::kTotalSstFilesSize, &size)) total += size;
  }
  uint64_t wal = 0;
  if (db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &wal)) total += wal;
  return total;
}

}  // namespace relance::store
