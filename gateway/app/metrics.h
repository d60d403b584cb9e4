#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace relance::app {

// A family of counters or gauges told apart by label values, e.g.
// relance_sends_total{channel="SMS",provider="twilio",result="accepted"}. Written by the
// gateway's thread, read by the HTTP thread; label sets are few (enums and stage names), so one
// mutex and an ordered map are enough.
class LabelledFamily {
 public:
  enum class Type { kCounter, kGauge };
  LabelledFamily(const char* name, const char* help, Type type, std::vector<std::string> labels);

  void add(const std::vector<std::string>& values, double by = 1);
  void set(const std::vector<std::string>& values, double value);
  // Drops every series (a gauge whose label set changed, e.g. partitions reassigned).
  void clear();
  void write(std::ostream& out) const;
  // The series' value, 0 when absent.
  double value(const std::vector<std::string>& values) const;

 private:
  const char* name_;
  const char* help_;
  Type type_;
  std::vector<std::string> labels_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, double> series_;
};

// A Prometheus histogram family in seconds with fixed buckets, labelled.
class LabelledHistogram {
 public:
  LabelledHistogram(const char* name, const char* help, std::vector<std::string> labels, std::vector<double> bounds);

  void observe(const std::vector<std::string>& values, std::chrono::microseconds duration);
  void write(std::ostream& out) const;

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // cumulative at write time; per bucket here
    uint64_t count = 0;
    double sum = 0;
  };
  const char* name_;
  const char* help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, Series> series_;
};

// Everything exported on /metrics in the Prometheus text format.
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
  std::atomic<uint64_t> store_write_failures{0};
  std::atomic<uint64_t> store_unwritable{0};
  std::atomic<uint64_t> timelines_cached{0};

  LabelledFamily events_rejected{"relance_events_rejected_total",
                                 "Input records sent to the dead-letter topic, by reason.",
                                 LabelledFamily::Type::kCounter,
                                 {"reason"}};
  LabelledFamily decisions{"relance_decisions_total",
                           "Decisions carried out (sent, suppressed or failed to render), by kind, stage, channel and "
                           "tone.",
                           LabelledFamily::Type::kCounter,
                           {"kind", "stage", "channel", "tone"}};
  LabelledFamily sends{"relance_sends_total",
                       "Answers of channel adapters, by channel, provider and result (accepted, retriable, permanent, "
                       "unknown, cancelled).",
                       LabelledFamily::Type::kCounter,
                       {"channel", "provider", "result"}};
  LabelledFamily delivery_statuses{"relance_delivery_statuses_total",
                                   "Delivery statuses reported by providers that moved a reminder forward.",
                                   LabelledFamily::Type::kCounter,
                                   {"channel", "status"}};
  LabelledFamily rate_limit_waits{"relance_rate_limit_waits_total",
                                  "Messages that waited in the gateway for a sender's rate limit.",
                                  LabelledFamily::Type::kCounter,
                                  {"channel", "provider"}};
  LabelledFamily provider_retries{"relance_provider_retries_total",
                                  "Requests an adapter sent again after a retriable answer (429, refused connection, "
                                  "5xx with an empty look-up), by channel and provider.",
                                  LabelledFamily::Type::kCounter,
                                  {"channel", "provider"}};
  LabelledFamily outbox_records{"relance_outbox_records_total",
                                "Reminder ids recorded in the outbox, by the state written (sending, accepted, "
                                "failed, unknown, suppressed).",
                                LabelledFamily::Type::kCounter,
                                {"state"}};
  LabelledFamily payments_after_reminders{"relance_payments_after_reminders_total",
                                          "Invoices paid in full after reminders, by the last stage they had reached.",
                                          LabelledFamily::Type::kCounter,
                                          {"last_stage"}};
  LabelledFamily consumer_lag{"relance_consumer_lag",
                              "Input records not yet read, per owned partition (log end offset minus position).",
                              LabelledFamily::Type::kGauge,
                              {"partition"}};
  LabelledHistogram provider_latency{"relance_provider_latency_seconds",
                                     "Time from a request leaving for the provider to its answer (last attempt).",
                                     {"channel", "provider"},
                                     {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  LabelledHistogram send_wait{"relance_send_wait_seconds",
                              "Time from a message's hand-over to its adapter to its request leaving (rate limits, free slots); "
                              "adapters that ask before sending only.",
                              {"channel", "provider"},
                              {0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300}};

  std::string prometheus_text() const;
};

}  // namespace relance::app
