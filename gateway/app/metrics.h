#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace relance::app {

// Counters exported on /metrics in the Prometheus text format.
struct Metrics {
  std::atomic<uint64_t> records_consumed{0};
  std::atomic<uint64_t> events_applied{0};
  std::atomic<uint64_t> events_duplicate{0};
  std::atomic<uint64_t> events_dead_lettered{0};
  std::atomic<uint64_t> reminders_sent{0};
  std::atomic<uint64_t> reminders_failed{0};
  std::atomic<uint64_t> reminders_retried{0};
  std::atomic<uint64_t> reminders_suppressed{0};
  std::atomic<uint64_t> reminders_unknown{0};
  std::atomic<uint64_t> delivery_events_published{0};
  std::atomic<uint64_t> outcomes_published{0};
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> scheduled_timelines{0};
  std::atomic<uint64_t> reminders_withdrawn{0};
  std::atomic<uint64_t> fallbacks{0};
  std::atomic<uint64_t> delivery_reports{0};
  std::atomic<uint64_t> callbacks_rejected{0};
  std::atomic<uint64_t> inbound_messages{0};
  std::atomic<uint64_t> sends_in_flight{0};
  std::atomic<uint64_t> partitions_owned{0};
  std::atomic<uint64_t> partitions_catching_up{0};
  std::atomic<uint64_t> changelog_records_restored{0};
  std::atomic<uint64_t> store_bytes{0};
  std::atomic<uint64_t> timelines_cached{0};

  std::string prometheus_text() const;
};

}  // namespace relance::app
