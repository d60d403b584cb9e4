#pragma once

#include <memory>
#include <optional>
#include <string>

namespace relance::outbox {

enum class ReminderState { kSending, kAccepted, kFailed, kUnknown, kSuppressed };

// Remembers every reminder before its provider is called, so a reminder id is sent at most once.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // Records the reminder as sending; false when this reminder id is already known (never send).
  virtual bool begin(const std::string& reminder_id) = 0;
  virtual void finish(const std::string& reminder_id, ReminderState state) = 0;
  // Forgets a reminder whose send provably did not happen, so it may be tried again.
  virtual void release(const std::string& reminder_id) = 0;
  virtual std::optional<ReminderState> state(const std::string& reminder_id) const = 0;
};
using OutboxPtr = std::unique_ptr<Outbox>;

OutboxPtr make_in_memory_outbox();
// Kept on disk (RocksDB) under `path`, so that a reminder handed to a provider before a crash
// is not sent again after the restart.
OutboxPtr make_rocksdb_outbox(const std::string& path);

}  // namespace relance::outbox
