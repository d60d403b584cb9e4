#include "app/metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace relance::app {

namespace {

void write_escaped(std::ostream& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out << '\\' << c;
    } else if (c == '\n') {
      out << "\\n";
    } else {
      out << c;
    }
  }
}

void write_labels(std::ostream& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                  const char* extra_name = nullptr, const std::string& extra_value = {}) {
  if (names.empty() && extra_name == nullptr) return;
  out << '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out << ',';
    out << names[i] << "=\"";
    write_escaped(out, i < values.size() ? values[i] : std::string());
    out << '"';
  }
  if (extra_name != nullptr) {
    if (!names.empty()) out << ',';
    out << extra_name << "=\"" << extra_value << '"';
  }
  out << '}';
}

std::string format_bound(double bound) {
  std::ostringstream s;
  s << bound;
  return s.str();
}

}  // namespace

LabelledFamily::LabelledFamily(const char* name, const char* help, Type type, std::vector<std::string> labels)
    : name_(name), help_(help), type_(type), labels_(std::move(labels)) {}

void LabelledFamily::add(const std::vector<std::string>& values, double by) {
  std::lock_guard lock(mutex_);
  series_[values] += by;
}

void LabelledFamily::set(const std::vector<std::string>& values, double value) {
  std::lock_guard lock(mutex_);
  series_[values] = value;
}

void LabelledFamily::clear() {
  std::lock_guard lock(mutex_);
  series_.clear();
}

double LabelledFamily::value(const std::vector<std::string>& values) const {
  std::lock_guard lock(mutex_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second;
}

void LabelledFamily::write(std::ostream& out) const {
  out << "# HELP " << name_ << ' ' << help_ << "\n# TYPE " << name_ << (type_ == Type::kCounter ? " counter\n" : " gauge\n");
  std::lock_guard lock(mutex_);
  for (const auto& [values, value] : series_) {
    out << name_;
    write_labels(out, labels_, values);
    out << ' ' << value << '\n';
  }
}

LabelledHistogram::LabelledHistogram(const char* name, const char* help, std::vector<std::string> labels,
                                     std::vector<double> bounds)
    : name_(name), help_(help), labels_(std::move(labels)), bounds_(std::move(bounds)) {}

void LabelledHistogram::observe(const std::vector<std::string>& values, std::chrono::microseconds duration) {
  double seconds = std::chrono::duration<double>(duration).count();
  auto bucket = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  std::lock_guard lock(mutex_);
  auto& series = series_[values];
  if (series.buckets.empty()) series.buckets.assign(bounds_.size() + 1, 0);
  ++series.buckets[bucket];
  ++series.count;
  series.sum += seconds;
}

void LabelledHistogram::write(std::ostream& out) const {
  out << "# HELP " << name_ << ' ' << help_ << "\n# TYPE " << name_ << " histogram\n";
  std::lock_guard lock(mutex_);
  for (const auto& [values, series] : series_) {
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series.buckets[i];
      out << name_ << "_bucket";
      write_labels(out, labels_, values, "le", i < bounds_.size() ? format_bound(bounds_[i]) : "+Inf");
      out << ' ' << cumulative << '\n';
    }
    out << name_ << "_sum";
    write_labels(out, labels_, values);
    out << ' ' << series.sum << '\n' << name_ << "_count";
    write_labels(out, labels_, values);
    out << ' ' << series.count << '\n';
  }
}

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
  counter("relance_store_write_failures_total", "State writes the local store refused (full disk, I/O error).",
          store_write_failures);
  gauge("relance_store_unwritable", "1 while the local store refuses writes: consuming, sending and committing wait.",
        store_unwritable);
  gauge("relance_timelines_cached", "Timelines held decoded in memory.", timelines_cached);
  for (const auto* family :
       {&events_rejected, &decisions, &sends, &delivery_statuses, &rate_limit_waits, &provider_retries, &outbox_records,
        &payments_after_reminders, &consumer_lag}) {
    family->write(out);
  }
  provider_latency.write(out);
  send_wait.write(out);
  return out.str();
}

}  // namespace relance::app
