#include "app/metrics.h"

#include <sstream>

namespace relance::app {

std::string Metrics::prometheus_text() const {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
        << name << ' ' << value.load(std::memory_order_relaxed) << '\n';
  };
  counter("relance_records_consumed_total", "Input records read from Kafka.", records_consumed);
  counter("relance_events_applied_total", "Events applied to the ledger.", events_applied);
  counter("relance_events_duplicate_total", "Events skipped because their id was already applied.", events_duplicate);
  counter("relance_events_dead_lettered_total", "Records sent to the dead-letter topic.", events_dead_lettered);
  counter("relance_reminders_sent_total", "Reminders accepted by a provider.", reminders_sent);
  counter("relance_reminders_failed_total", "Reminders that failed permanently.", reminders_failed);
  counter("relance_reminders_retried_total", "Send attempts that will be retried.", reminders_retried);
  counter("relance_reminders_suppressed_total", "Reminders suppressed by the rules.", reminders_suppressed);
  counter("relance_reminders_unknown_total", "Sends whose outcome is unknown.", reminders_unknown);
  counter("relance_delivery_events_published_total", "Delivery events produced.", delivery_events_published);
  counter("relance_outcomes_published_total", "Reminder outcomes produced for analytics.", outcomes_published);
  counter("relance_offset_commits_total", "Offset commits.", commits);
  counter("relance_reminders_withdrawn_total", "Sends withdrawn while waiting (paid or paused meanwhile).",
          reminders_withdrawn);
  counter("relance_fallbacks_total", "Reminders moved to the next channel of their stage.", fallbacks);
  counter("relance_delivery_reports_total", "Provider delivery reports that moved a reminder forward.",
          delivery_reports);
  counter("relance_callbacks_rejected_total", "Provider callbacks refused (bad signature or body).", callbacks_rejected);
  counter("relance_inbound_messages_total", "Messages received from customers.", inbound_messages);
  counter("relance_changelog_records_restored_total", "Changelog records read back on partition assignment.",
          changelog_records_restored);
  auto gauge = [&](const char* name, const char* help, const std::atomic<uint64_t>& value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n"
        << name << ' ' << value.load(std::memory_order_relaxed) << '\n';
  };
  gauge("relance_sends_in_flight", "Messages handed to adapters and not yet settled.", sends_in_flight);
  gauge("relance_scheduled_timelines", "Timelines whose next action is due now (counted up to 10,000).",
        scheduled_timelines);
  gauge("relance_partitions_owned", "Input partitions assigned to this instance.", partitions_owned);
  gauge("relance_partitions_catching_up",
        "Owned partitions whose reminders wait until the input is read up to its end as of the assignment.",
        partitions_catching_up);
  gauge("relance_store_bytes", "Size of the local state store (SST files and memtables).", store_bytes);
  gauge("relance_timelines_cached", "Timelines held decoded in memory.", timelines_cached);
  return out.str();
}

}  // namespace relance::app
