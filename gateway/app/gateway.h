#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <vector>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "app/metrics.h"
#include "channels/channel_registry.h"
#include "common/clock.h"
#include "common/error.h"
#include "config/config_loader.h"
#include "kafka/kafka_client.h"
#include "ledger/durable_ledger.h"
#include "relance/v1/config.pb.h"
#include "relance/v1/delivery.pb.h"
#include "relance/v1/timeline.pb.h"
#include "render/renderer.h"
#include "rules/reminder_rules.h"
#include "store/state_store.h"

namespace relance::app {

// The whole flow on one thread: consume → decode → validate → ledger → schedule → rules →
// render → outbox → channel → delivery event, committing input offsets only after the effects
// they caused are published.
class Gateway {
 public:
  Gateway(relance::v1::Config config, config::Environment env, ClockPtr clock);
  ~Gateway();

  // Connects (starting the embedded cluster when no brokers are configured) and checks topics.
  void start();
  // Processes until request_stop(); then finishes in-flight work, flushes, commits, closes.
  void run();
  void request_stop() { stop_.store(true); }

  // Publishes a fact learned outside Kafka (an opt-out from an unsubscribe link) to the input
  // topic, keyed like its timeline, so the instance that owns the timeline applies it in order.
  // Waits for the broker's acknowledgement. Safe to call from any thread.
  bool submit_fact(const std::string& key, const relance::v1::InvoiceEvent& event);
  // The same without waiting: `acknowledged` is called once, from Kafka's delivery-report thread
  // (or at once when the fact cannot be produced), with false after 10 s without an answer.
  void submit_fact(const std::string& key, const relance::v1::InvoiceEvent& event,
                   std::function<void(bool)> acknowledged);

  // Publishes a customer's reply for support (relance.v1.InboundReply on the inbound topic).
  bool publish_inbound(const relance::v1::InboundReply& reply);
  // The timeline that holds this phone number (SMS or WhatsApp), when this instance knows it.
  std::optional<std::string> key_for_phone(const std::string& number) const;
  // The timeline of a call task this instance created.
  std::optional<std::string> key_for_task(const std::string& task_id) const;

  void count_rejected_callback() { metrics_.callbacks_rejected.fetch_add(1, std::memory_order_relaxed); }
  void count_inbound() { metrics_.inbound_messages.fetch_add(1, std::memory_order_relaxed); }
  const config::Environment& environment() const { return env_; }
  const ClockPtr& clock() const { return clock_; }

  // Runs `task` on the gateway's thread between two turns of its loop (at most a fraction of
  // a second) and waits for it; false when it did not run within `wait` (it may still run
  // later, so it must own what it touches). Safe to call from any thread.
  bool run_on_loop(std::function<void()> task, std::chrono::milliseconds wait);

  // What support reads, made on the gateway's thread (see run_on_loop).
  enum class Lookup { kFound, kUnknown, kNotOwned, kUnavailable };
  struct TimelineAnswer {
    Lookup lookup = Lookup::kUnavailable;
    relance::v1::CustomerTimeline timeline;
  };
  TimelineAnswer timeline(const std::string& key, std::chrono::milliseconds wait);
  // Timelines of owned partitions whose key starts with `prefix`; nullopt when unavailable.
  std::optional<relance::v1::CustomerList> customers(const std::string& prefix, std::size_t limit,
                                                     std::chrono::milliseconds wait);
  // Call tasks this instance created that have no outcome yet; nullopt when unavailable.
  std::optional<relance::v1::CallTaskList> open_call_tasks(std::chrono::milliseconds wait);

  bool ready() const { return ready_.load(); }
  // Empty when ready to serve: started, partitions assigned, their state restored and the input
  // read up to where it stood at the assignment. Otherwise what it waits for.
  std::string not_ready_reason() const;
  const Metrics& metrics() const { return metrics_; }
  const std::string& bootstrap_servers() const { return bootstrap_; }

 private:
  void handle(const kafka::Record& record);
  void dead_letter(const kafka::Record& record, const Error& error);
  void evaluate(const std::string& key);
  // A message handed to an adapter and not settled yet.
  struct InFlight {
    std::string key;
    int32_t partition = -1;
    rules::Decision decision;
    std::string template_variant;
    bool confirms_delivery = false;
    // Marked sending as it leaves rather than when queued (adapters without a look-up).
    bool mark_when_leaving = false;
    // When the message was handed to its adapter (the send-wait histogram).
    std::chrono::steady_clock::time_point handed_at{};
    // What the customer receives, for the written trail.
    std::string subject;
    std::string text;
  };
  // Carries out one decision: suppressions and render failures at once, sends through the
  // channel's adapter, whose answer comes to settle() (possibly before execute returns).
  void execute(const rules::Decision& decision, const ledger::CustomerLedger& ledger);
  // scheduler.catch_up: skip_stale turns reminders that were due long before the start into
  // suppressions.
  void skip_stale(rules::Plan& plan) const;
  void settle(const std::string& reminder_id, channels::SendResult result);
  // Asked by an adapter just before a waiting message leaves: is it still due?
  bool still_wanted(const std::string& key, const std::string& reminder_id);
  // Records the reminder as sending, on disk and on the broker, as it leaves.
  bool mark_leaving(const std::string& reminder_id);
  // still_wanted's yes: marks the reminder leaving and records how long it waited.
  bool leaving(const std::string& reminder_id);
  struct RecordOptions {
    bool contacted = false;
    bool advance = true;
    bool channel_failed = false;
    bool opted_out = false;
    bool awaiting_confirmation = false;
    std::string template_variant;
    std::string provider_message_id;
    std::string subject;
    std::string text;
  };
  void record(const rules::Decision& decision, const std::string& key, const RecordOptions& options);
  // Reminders whose delivery was never confirmed in time fall back; returns the next deadline.
  std::optional<Instant> expire_unconfirmed(const std::string& key);
  void publish_report(const ledger::CustomerLedger& ledger, const relance::v1::DeliveryStatusReported& report,
                      bool fell_back);
  void index_contacts(const std::string& key, const relance::v1::InvoiceEvent& event);
  void evaluate_pending();
  void publish(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
               relance::v1::DeliveryStatus status, const std::string& provider, const channels::SendResult* result,
               const std::string& template_variant = {});
  void publish_event(const relance::v1::DeliveryEvent& event);
  void publish_outcome(const ledger::CustomerLedger& ledger, const std::string& invoice_id,
                       relance::v1::ReminderOutcome::Resolution resolution, Instant at);
  void fire_due();
  // Commits the stored offsets once everything they cover is acknowledged, waiting for that at
  // most `flush_timeout` (else they wait for the next call).
  void commit(std::chrono::milliseconds flush_timeout);
  // Writes every state change and waits at most `timeout` for the broker to acknowledge it and
  // every effect; false when something is still unwritten or unacknowledged.
  bool write_and_acknowledge(std::chrono::milliseconds timeout);
  // Waits for the broker to acknowledge everything produced so far.
  bool flush_producer(std::chrono::milliseconds timeout);
  void answer_queries();
  // The outbox's writes, counted by state.
  bool begin_outbox(const std::string& reminder_id, int32_t partition, const std::string& key);
  void finish_outbox(const std::string& reminder_id, int32_t partition, const std::string& key,
                     outbox::ReminderState state);
  void update_gauges();

  // Partitions: state restored on assignment, sends settled and state written on revocation.
  void on_assigned(const std::vector<int32_t>& partitions);
  bool on_revoking(const std::vector<int32_t>& partitions);
  void on_revoked(const std::vector<int32_t>& partitions);
  // Reads the partitions' changelogs from the offsets the store reflects into the store, the
  // partitions in parallel. Throws if one cannot be read or written.
  void restore_partitions(const std::vector<int32_t>& partitions);
  void open_gate(int32_t partition);
  bool owns(int32_t partition) const;
  void update_partition_gauges();
  // The state commit point: writes every change to the store and the changelog, then hands
  // over the messages waiting for their "sending" mark to be durable. `send` false drops
  // them instead (shutting down), releasing their marks.
  void persist(bool send = true);
  // Writes the gathered state changes; false (and the gateway holds) when the store refuses.
  bool write_state();
  // A state write failed: from here on nothing is consumed, fired, sent or committed until it
  // succeeds (retried once a second). Said in the log, /readyz and the metrics.
  void hold_for_store(const store::StoreError& error);
  bool holding_for_store() const { return unwritten_ != nullptr || !store_failure_.empty(); }
  // Writes how far the changelog is reflected in the store, after a successful flush.
  void checkpoint();
  std::optional<Instant> next_due() const;
  relance::v1::Config config_;
  config::Environment env_;
  ClockPtr clock_;
  std::unique_ptr<kafka::EmbeddedCluster> embedded_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<kafka::Producer> facts_producer_;  // for submit_fact, apart from the loop's
  std::string bootstrap_;
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<ledger::DurableLedger> ledger_;
  kafka::Properties kafka_properties_;
  // One per owned input partition.
  struct OwnedPartition {
    // Reminders wait until the input is read up to its end as of the assignment, so a payment
    // already published wins over a reminder that became due meanwhile.
    bool gate_open = false;
    int64_t catch_up_end = 0;
    // Timelines with a reminder marked sending before the assignment: looked at once the gate
    // opens (reported, reconciled or resent as configured).
    std::vector<std::string> interrupted;
  };
  std::map<int32_t, OwnedPartition> owned_;
  std::set<int32_t> revoking_;
  std::map<int32_t, int64_t> changelog_acked_;  // next changelog offset per partition
  std::size_t restored_records_ = 0;  // by the restores of the assignment under way
  std::vector<store::ChangelogRecord> changelog_buffer_;
  // State changes the store refused, kept as they were gathered (the ledger has let go of
  // them) and written before anything else; changelog_buffer_ holds their records meanwhile.
  std::unique_ptr<store::StateStore::Batch> unwritten_;
  // Why the store refuses writes (empty while it takes them); read by the HTTP thread.
  std::string store_failure_;
  mutable std::mutex store_failure_mutex_;
  std::chrono::steady_clock::time_point store_failed_since_{};
  std::chrono::steady_clock::time_point store_retry_at_{};
  // Messages whose "sending" mark is not durable yet.
  std::vector<std::pair<channels::ChannelAdapter*, channels::Outgoing>> ready_to_send_;
  Instant started_at_{};
  // Catch-up pacing (scheduler.catch_up.max_per_second).
  double fire_tokens_ = 0;
  std::chrono::steady_clock::time_point fire_refilled_{};
  channels::ChannelMap channels_;
  const rules::ReminderRules& rules_for(const ledger::CustomerLedger& ledger) const;

  std::unique_ptr<rules::ReminderRules> rules_;
  std::map<std::string, std::unique_ptr<rules::ReminderRules>> tenant_rules_;
  std::unique_ptr<render::Renderer> renderer_;
  std::map<std::string, int> attempts_;  // stage key → failed attempts so far
  std::map<std::string, InFlight> in_flight_;  // by reminder id
  std::map<std::string, Instant> retry_at_;    // reminder id → not before
  std::set<std::string> to_evaluate_;          // timelines whose sends settled
  Duration confirm_within_{};
  // Network transfers of every adapter; declared after channels_ so it goes first on
  // destruction, while the adapters' handles still exist.
  std::unique_ptr<channels::http::TransferLoop> transfers_;
  mutable std::mutex index_mutex_;  // the indexes below are read by the HTTP thread
  std::map<std::string, std::string> phone_index_;  // E.164 → timeline key
  std::map<std::string, std::string> task_index_;   // call task id → timeline key
  std::chrono::steady_clock::time_point commit_deferred_since_{};
  std::mutex loop_tasks_mutex_;
  std::vector<std::function<void()>> loop_tasks_;
  Metrics metrics_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> joined_{false};  // the group assigned this member its partitions once
  bool dirty_ = false;  // offsets stored since the last commit
  // Delivery events or outcomes produced since the last acknowledged flush: the changelog
  // records of the state that follows them wait until they are acknowledged.
  bool effects_unacknowledged_ = false;
};

}  // namespace relance::app
