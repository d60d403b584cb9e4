#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <filesystem>
#include <stdexcept>

#include "outbox/outbox.h"

namespace relance::outbox {

namespace {

char code_of(ReminderState state) {
  switch (state) {
    case ReminderState::kSending:
      return 's';
    case ReminderState::kAccepted:
      return 'a';
    case ReminderState::kFailed:
      return 'f';
    case ReminderState::kUnknown:
      return 'u';
    case ReminderState::kSuppressed:
      return 'x';
  }
  return 's';
}

std::optional<ReminderState> state_of(const std::string& value) {
  if (value.size() != 1) return std::nullopt;
  switch (value[0]) {
    case 's':
      return ReminderState::kSending;
    case 'a':
      return ReminderState::kAccepted;
    case 'f':
      return ReminderState::kFailed;
    case 'u':
      return ReminderState::kUnknown;
    case 'x':
      return ReminderState::kSuppressed;
    default:
      return std::nullopt;
  }
}

// One byte per reminder id in a RocksDB store. "Sending" is written with fsync before the
// provider is called, so after a crash a reminder id that may have gone out is never sent
// again; the later states need no fsync (losing one leaves "sending", which also blocks a
// resend).
class RocksDbOutbox final : public Outbox {
 public:
  explicit RocksDbOutbox(const std::string& path) {
    std::filesystem::create_directories(path);
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    auto status = rocksdb::DB::Open(options, path, &db);
    if (!status.ok()) throw std::runtime_error("store.path: cannot open the outbox at " + path + ": " + status.ToString());
    db_.reset(db);
    sync_.sync = true;
  }

  bool begin(const std::string& reminder_id) override {
    std::string value;
    if (db_->Get(rocksdb::ReadOptions(), reminder_id, &value).ok()) return false;
    put(reminder_id, ReminderState::kSending, sync_);
    return true;
  }

  void finish(const std::string& reminder_id, ReminderState state) override {
    put(reminder_id, state, rocksdb::WriteOptions());
  }

  void release(const std::string& reminder_id) override {
    auto status = db_->Delete(sync_, reminder_id);
    if (!status.ok()) throw std::runtime_error("outbox: cannot write: " + status.ToString());
  }

  std::optional<ReminderState> state(const std::string& reminder_id) const override {
    std::string value;
    if (!db_->Get(rocksdb::ReadOptions(), reminder_id, &value).ok()) return std::nullopt;
    return state_of(value);
  }

 private:
  void put(const std::string& reminder_id, ReminderState state, const rocksdb::WriteOptions& options) {
    auto status = db_->Put(options, reminder_id, std::string(1, code_of(state)));
    // A store that cannot record a send must stop the gateway before anything is sent.
    if (!status.ok()) throw std::runtime_error("outbox: cannot write: " + status.ToString());
  }

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions sync_;
};

}  // namespace

OutboxPtr make_rocksdb_outbox(const std::string& path) { return std::make_unique<RocksDbOutbox>(path); }

}  // namespace relance::outbox
