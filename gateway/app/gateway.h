#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <string>

#include "app/metrics.h"
#include "channels/channel_registry.h"
#include "common/clock.h"
#include "common/error.h"
#include "config/config_loader.h"
#include "kafka/kafka_client.h"
#include "ledger/ledger.h"
#include "outbox/outbox.h"
#include "relance/v1/config.pb.h"
#include "relance/v1/delivery.pb.h"
#include "render/renderer.h"
#include "rules/reminder_rules.h"
#include "scheduler/reminder_schedule.h"

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

  bool ready() const { return ready_.load(); }
  const Metrics& metrics() const { return metrics_; }
  const std::string& bootstrap_servers() const { return bootstrap_; }

 private:
  void handle(const kafka::Record& record);
  void dead_letter(const kafka::Record& record, const Error& error);
  void evaluate(const std::string& key);
  // Carries out one decision and records what happened in the ledger. Returns a retry instant
  // when the send provably did not happen and may be tried again later.
  std::optional<Instant> execute(const rules::Decision& decision, const ledger::CustomerLedger& ledger);
  void record(const rules::Decision& decision, const std::string& key, bool contacted, bool advance,
              bool channel_failed, const std::string& template_variant = {});
  void publish(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
               relance::v1::DeliveryStatus status, const std::string& provider, const channels::SendResult* result,
               const std::string& template_variant = {});
  void publish_outcome(const ledger::CustomerLedger& ledger, const std::string& invoice_id,
                       relance::v1::ReminderOutcome::Resolution resolution, Instant at);
  void fire_due();
  void commit();

  relance::v1::Config config_;
  config::Environment env_;
  ClockPtr clock_;
  std::unique_ptr<kafka::EmbeddedCluster> embedded_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::mutex facts_mutex_;
  std::unique_ptr<kafka::Producer> facts_producer_;  // for submit_fact, apart from the loop's
  std::string bootstrap_;
  ledger::LedgerPtr ledger_;
  outbox::OutboxPtr outbox_;
  scheduler::ReminderSchedule schedule_;
  channels::ChannelMap channels_;
  const rules::ReminderRules& rules_for(const ledger::CustomerLedger& ledger) const;

  std::unique_ptr<rules::ReminderRules> rules_;
  std::map<std::string, std::unique_ptr<rules::ReminderRules>> tenant_rules_;
  std::unique_ptr<render::Renderer> renderer_;
  std::map<std::string, int> attempts_;  // stage key → failed attempts so far
  Metrics metrics_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  bool dirty_ = false;  // offsets stored since the last commit
};

}  // namespace relance::app
