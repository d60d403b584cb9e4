#include "app/gateway.h"

#include <google/protobuf/util/time_util.h>
#include <malloc.h>
#ifdef RELANCE_MIMALLOC
#include <mimalloc.h>
#endif
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include <algorithm>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "app/timeline_view.h"
#include "common/dates.h"
#include "common/logging.h"
#include "decode/event_decoder.h"
#include "relance/v1/call_task.pb.h"
#include "rules/timeline_simulator.h"

namespace relance::app {

namespace v1 = relance::v1;
using google::protobuf::util::TimeUtil;

namespace {

// Retriable failures (a provider or mail server down, throttling) are tried again with a
// doubling delay, capped: about an hour and a half of outage before a reminder is given up.
constexpr int kMaxAttempts = 20;
constexpr auto kMaxRetryDelay = std::chrono::minutes(10);
constexpr auto kFlushTimeout = std::chrono::seconds(30);
// Waits for the broker inside the loop stay short: the same loop drives the transfers on the
// wire, and a broker outage must not starve them into timeouts (a mail cut off after its data
// went out is an outcome unknown, never sent again). What could not wait is tried again.
constexpr auto kLoopFlushTimeout = std::chrono::seconds(2);
// Changelog records gathered before a restore writes them (the memory it holds meanwhile).
constexpr std::size_t kRestoreChunk = 50000;

google::protobuf::Timestamp to_timestamp(Instant at) {
  return TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What the person who calls needs: who, how much, since when, what to say, and the history.
v1::CallTask call_task_for(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                           const std::string& talking_points, Instant now) {
  v1::CallTask task;
  task.set_task_id(decision.reminder_id);
  task.set_reminder_id(decision.reminder_id);
  task.set_tenant_id(ledger.tenant_id);
  auto* contact = task.mutable_customer();
  contact->set_customer_id(ledger.customer.customer_id().empty() ? ledger.key : ledger.customer.customer_id());
  contact->set_name(ledger.customer.name());
  contact->set_phone(ledger.customer.phone());
  contact->set_locale(ledger.customer.locale());
  contact->set_time_zone(ledger.customer.time_zone());
  int days_overdue = 0;
  for (const auto& item : decision.items) {
    auto* line = task.add_invoices();
    line->set_invoice_id(item.invoice_id);
    line->set_number(item.number);
    *line->mutable_amount_due() = item.amount_due;
    line->set_due_on(item.due_on);
    line->set_days_overdue(item.days_overdue);
    line->set_payment_link(item.payment_link);
    days_overdue = std::max(days_overdue, item.days_overdue);
  }
  *task.mutable_total_due() = decision.total_due;
  task.set_days_overdue(days_overdue);
  task.set_stage(decision.stage);
  task.set_tone(decision.tone);
  std::size_t start = 0;
  while (start < talking_points.size()) {
    auto end = talking_points.find('\n', start);
    if (end == std::string::npos) end = talking_points.size();
    auto line = talking_points.substr(start, end - start);
    if (line.find_first_not_of(" \t-•*") != std::string::npos) task.add_talking_points(line);
    start = end + 1;
  }
  int sent = 0;
  for (const auto& id : decision.invoice_ids) {
    if (auto it = ledger.invoices.find(id); it != ledger.invoices.end()) sent += it->second.reminders_sent;
  }
  std::string history = std::to_string(sent) + " reminder(s) sent for these invoices; " +
                        std::to_string(ledger.late_invoices.size()) + " invoice(s) late on record";
  if (decision.recurring_late_payer) history += "; recurring late payer: ask for a deposit or upfront payment";
  task.set_history_summary(history);
  task.set_priority(decision.kind == rules::ActionKind::kEscalation || decision.tier == rules::AmountTierKind::kLarge
                        ? v1::CallTask::HIGH
                        : v1::CallTask::NORMAL);
  *task.mutable_created_at() = to_timestamp(now);
  *task.mutable_due_by() = to_timestamp(now + std::chrono::hours(48));
  return task;
}

}  // namespace

Gateway::Gateway(v1::Config config, config::Environment env, ClockPtr clock)
    : config_(std::move(config)), env_(std::move(env)), clock_(std::move(clock)) {}

Gateway::~Gateway() = default;

void Gateway::start() {
  const auto& kc = config_.kafka();
  bootstrap_ = kc.brokers();
  const std::vector<std::string> topics{kc.input_topic(),     kc.delivery_topic(), kc.dlq_topic(),
                                        kc.call_task_topic(), kc.outcome_topic(),  kc.inbound_topic(),
                                        kc.changelog_topic()};
  if (bootstrap_.empty()) {
    embedded_ = std::make_unique<kafka::EmbeddedCluster>(1);
    bootstrap_ = embedded_->bootstrap_servers();
    for (const auto& topic : topics) embedded_->create_topic(topic, kc.embedded().partitions());
    std::filesystem::path file(kc.embedded().bootstrap_file());
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << bootstrap_ << "\n";
    spdlog::info("embedded Kafka cluster listening on {} (written to {})", bootstrap_, file.string());
  }

  kafka::Properties props(kc.properties().begin(), kc.properties().end());
  props["bootstrap.servers"] = bootstrap_;
  kafka_properties_ = props;
  producer_ = std::make_unique<kafka::Producer>(props);
  producer_->require_topics(topics, std::chrono::seconds(30));
  // State is partitioned like the input: partition p of the changelog holds the timelines of
  // input partition p.
  auto inputs = producer_->partition_count(kc.input_topic(), std::chrono::seconds(10));
  auto changelogs = producer_->partition_count(kc.changelog_topic(), std::chrono::seconds(10));
  if (inputs != changelogs) {
    throw std::runtime_error("kafka.changelog_topic: " + kc.changelog_topic() + " has " + std::to_string(changelogs) +
                             " partition(s); it needs as many as kafka.input_topic " + kc.input_topic() + " (" +
                             std::to_string(inputs) + ")");
  }
  producer_->on_delivered([this](const rd_kafka_message_t& msg) {
    if (config_.kafka().changelog_topic() != rd_kafka_topic_name(msg.rkt)) return;
    auto& next = changelog_acked_[msg.partition];
    next = std::max(next, msg.offset + 1);
  });

  // Facts from HTTP callbacks: each caller waits for its record's acknowledgement, so records
  // leave after 1 ms instead of librdkafka's 5 (those arriving meanwhile share the request).
  auto fact_props = props;
  fact_props.emplace("linger.ms", "1");
  facts_producer_ = std::make_unique<kafka::Producer>(fact_props);

  store_ = std::make_unique<store::StateStore>(config_.store().path());
  if (!store_->was_clean() && !store_->fresh()) {
    spdlog::warn("the store at {} was not closed cleanly: its timelines are restored from {}", config_.store().path(),
                 kc.changelog_topic());
  }
  ledger_ = std::make_unique<ledger::DurableLedger>(*store_);
  started_at_ = clock_->now();

  auto consumer_props = props;
  consumer_props["group.id"] = kc.group_id();
  kafka::Consumer::Hooks hooks;
  hooks.assigned = [this](const auto& partitions) { on_assigned(partitions); };
  hooks.revoking = [this](const auto& partitions) { return on_revoking(partitions); };
  hooks.revoked = [this](const auto& partitions) { on_revoked(partitions); };
  consumer_ = std::make_unique<kafka::Consumer>(consumer_props, std::move(hooks));
  consumer_->subscribe({kc.input_topic()});

  transfers_ = std::make_unique<channels::http::TransferLoop>();
  channels_ = channels::make_channels(config_, env_, producer_.get(), *transfers_);
  confirm_within_ = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(config_.channels().fallback().confirm_within()));
  std::set<v1::Channel> available;
  for (const auto& [channel, adapter] : channels_) {
    available.insert(channel);
    spdlog::info("channel {} → {}", v1::Channel_Name(channel), adapter->provider());
  }
  rules_ = std::make_unique<rules::ReminderRules>(config_.policy(), available);
  for (const auto& [tenant, policy] : config_.tenant_policies()) {
    tenant_rules_[tenant] = std::make_unique<rules::ReminderRules>(policy, available);
  }
  renderer_ = std::make_unique<render::Renderer>();
  ready_.store(true);
  spdlog::info("consuming {} as group {} from {}", kc.input_topic(), kc.group_id(), bootstrap_);
}

void Gateway::run() {
  auto commit_every = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(config_.kafka().commit_interval()));
  auto last_commit = std::chrono::steady_clock::now();
  auto last_gauges = last_commit;
  while (!stop_.load()) {
    ledger_->trim();
    auto wait = std::chrono::milliseconds(200);
    if (auto next = next_due()) wait = std::min(wait, clock_->real_time_until(*next));
    if (auto timer = transfers_->next_timer()) {
      auto until = std::chrono::ceil<std::chrono::milliseconds>(*timer - std::chrono::steady_clock::now());
      wait = std::clamp(until, std::chrono::milliseconds(0), wait);
    }
    // With requests on the wire the network is the thing to wait on; Kafka is only glanced at.
    bool on_the_wire = transfers_->transfers_in_flight() > 0;
    if (holding_for_store()) {
      // Nothing new is read, fired or sent while the store refuses writes: their effects could
      // not be recorded. Sends already on the wire settle; their outcomes wait in memory, and
      // persist() tries the write again.
      transfers_->run_once(on_the_wire ? std::chrono::milliseconds(5) : std::chrono::milliseconds(0));
      if (!on_the_wire) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } else {
      // Records come in small batches, so that one state write and one wait for the broker
      // serve all the sends they cause.
      for (int n = 0; n < 500; ++n) {
        auto record = consumer_->poll(n == 0 && !on_the_wire ? wait : std::chrono::milliseconds(0));
        if (!record) break;
        handle(*record);
        // A record whose effects the store refused holds the gateway at once, not after the batch.
        if (holding_for_store()) break;
      }
      transfers_->run_once(on_the_wire ? std::min(wait, std::chrono::milliseconds(5)) : std::chrono::milliseconds(0));
      evaluate_pending();
      fire_due();
    }
    persist();
    answer_queries();
    producer_->poll();
    // Gauges that need a look at the consumer or the store, once a second rather than per turn.
    if (std::chrono::steady_clock::now() - last_gauges >= std::chrono::seconds(1)) {
      update_gauges();
      last_gauges = std::chrono::steady_clock::now();
    }
    if (dirty_ && std::chrono::steady_clock::now() - last_commit >= commit_every) {
      commit(kLoopFlushTimeout);
      last_commit = std::chrono::steady_clock::now();
    }
  }
  spdlog::info("stopping: settling sends on the wire, flushing delivery events and committing offsets");
  ready_.store(false);
  transfers_->drain(std::chrono::steady_clock::now() + kFlushTimeout);
  evaluate_pending();
  persist(false);
  // Still waiting for a rate limit after the drain: never left, so their marks are released
  // and their timelines are looked at first thing after a restart.
  for (const auto& [id, f] : in_flight_) {
    ledger_->release(id, f.partition);
    ledger_->schedule(f.key, clock_->now());
  }
  in_flight_.clear();
  persist(false);
  commit_deferred_since_ = {};
  dirty_ = true;
  commit(kFlushTimeout);
  consumer_->close();
  bool flushed = write_and_acknowledge(kFlushTimeout);
  if (holding_for_store()) {
    // Offsets past the unwritten state were never committed: the next start reads them again.
    spdlog::error("stopping with state changes the store refused ({}); the next start restores the store from the "
                  "changelog and reads the input again from the last commit",
                  store_failure_);
  } else if (flushed) {
    try {
      checkpoint();
      store_->mark_clean();
    } catch (const store::StoreError& e) {
      spdlog::error("cannot record a clean stop ({}); the next start restores the store from the changelog", e.what());
    }
  } else {
    spdlog::error("state changes not acknowledged by the broker; the store will be restored from the changelog");
  }
  spdlog::info("stopped");
}

bool Gateway::run_on_loop(std::function<void()> task, std::chrono::milliseconds wait) {
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  {
    std::lock_guard lock(loop_tasks_mutex_);
    loop_tasks_.push_back([task = std::move(task), done] {
      task();
      done->set_value();
    });
  }
  return finished.wait_for(wait) == std::future_status::ready;
}

void Gateway::answer_queries() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(loop_tasks_mutex_);
    tasks.swap(loop_tasks_);
  }
  for (auto& task : tasks) task();
}

Gateway::TimelineAnswer Gateway::timeline(const std::string& key, std::chrono::milliseconds wait) {
  auto answer = std::make_shared<TimelineAnswer>();
  bool ran = run_on_loop(
      [this, key, answer] {
        const auto* ledger = ledger_->find(key);
        if (ledger == nullptr) {
          answer->lookup = Lookup::kUnknown;
        } else if (!owns(ledger->partition)) {
          // The store may hold a stale copy of a timeline another instance owns now.
          answer->lookup = Lookup::kNotOwned;
        } else {
          answer->lookup = Lookup::kFound;
          answer->timeline = timeline_view(*ledger, rules_for(*ledger), clock_->now());
        }
      },
      wait);
  if (!ran) return {};
  return std::move(*answer);
}

std::optional<v1::CustomerList> Gateway::customers(const std::string& prefix, std::size_t limit,
                                                   std::chrono::milliseconds wait) {
  auto list = std::make_shared<v1::CustomerList>();
  bool ran = run_on_loop(
      [this, prefix, limit, list] {
        // Timelines of partitions owned elsewhere may linger in the store: read a few more keys.
        for (const auto& key : store_->timeline_keys(prefix, limit * 4)) {
          if (static_cast<std::size_t>(list->customers_size()) >= limit) break;
          const auto* ledger = ledger_->find(key);
          if (ledger == nullptr || !owns(ledger->partition)) continue;
          auto* c = list->add_customers();
          c->set_key(key);
          c->set_customer_id(ledger->customer.customer_id());
          c->set_name(ledger->customer.name());
          c->set_open_invoices(static_cast<int32_t>(std::count_if(
              ledger->invoices.begin(), ledger->invoices.end(), [](const auto& i) { return i.second.open(); })));
          if (ledger->next_due) c->set_next_action_at(format_rfc3339(*ledger->next_due));
        }
      },
      wait);
  if (!ran) return std::nullopt;
  return std::move(*list);
}

std::optional<v1::CallTaskList> Gateway::open_call_tasks(std::chrono::milliseconds wait) {
  std::map<std::string, std::string> tasks;
  {
    std::lock_guard lock(index_mutex_);
    tasks = task_index_;
  }
  auto list = std::make_shared<v1::CallTaskList>();
  bool ran = run_on_loop(
      [this, tasks, list] {
        std::vector<std::pair<Instant, v1::OpenCallTask>> open;
        for (const auto& [task_id, key] : tasks) {
          const auto* ledger = ledger_->find(key);
          if (ledger == nullptr || !owns(ledger->partition)) continue;
          auto it = ledger->reminders.find(task_id);
          if (it == ledger->reminders.end() || it->second.channel != v1::CALL_TASK || !it->second.call_outcome.empty()) {
            continue;
          }
          const auto& sent = it->second;
          bool still_due = std::any_of(sent.invoice_ids.begin(), sent.invoice_ids.end(), [&](const std::string& id) {
            auto inv = ledger->invoices.find(id);
            return inv != ledger->invoices.end() && inv->second.open();
          });
          if (!still_due) continue;
          v1::OpenCallTask t;
          t.set_task_id(task_id);
          t.set_key(key);
          t.set_customer_id(ledger->customer.customer_id());
          t.set_customer_name(ledger->customer.name());
          t.set_phone(ledger->customer.phone());
          t.set_stage(sent.stage);
          t.set_tone(sent.tone);
          for (const auto& id : sent.invoice_ids) t.add_invoice_ids(id);
          t.set_created_at(format_rfc3339(sent.sent_at));
          open.emplace_back(sent.sent_at, std::move(t));
        }
        std::stable_sort(open.begin(), open.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [at, t] : open) *list->add_tasks() = std::move(t);
      },
      wait);
  if (!ran) return std::nullopt;
  return std::move(*list);
}

bool Gateway::submit_fact(const std::string& key, const v1::InvoiceEvent& event) {
  // Called by every HTTP worker at once: each waits for its own record's acknowledgement only,
  // so callbacks are answered as fast as the broker acknowledges batches of them.
  if (!facts_producer_) return false;
  std::string bytes;
  event.SerializeToString(&bytes);
  return facts_producer_->produce_acknowledged(config_.kafka().input_topic(), key, bytes,
                                               {{"content-type", "application/x-protobuf"}}, std::chrono::seconds(10));
}

void Gateway::submit_fact(const std::string& key, const v1::InvoiceEvent& event, std::function<void(bool)> acknowledged) {
  if (!facts_producer_) return acknowledged(false);
  std::string bytes;
  event.SerializeToString(&bytes);
  facts_producer_->produce_then(config_.kafka().input_topic(), key, bytes, {{"content-type", "application/x-protobuf"}},
                                std::chrono::seconds(10), std::move(acknowledged));
}

void Gateway::commit(std::chrono::milliseconds flush_timeout) {
  if (!dirty_) return;
  // Offsets wait for the sends they caused to settle (their outcome is an effect too), but not
  // forever: a long rate-limit queue must not stop the consumer group from making progress.
  if (!in_flight_.empty()) {
    auto now = std::chrono::steady_clock::now();
    if (commit_deferred_since_ == std::chrono::steady_clock::time_point{}) commit_deferred_since_ = now;
    if (now - commit_deferred_since_ < std::chrono::seconds(10)) return;
  }
  commit_deferred_since_ = {};
  // Offsets move only once the state and every effect they cover are in the store and
  // acknowledged by the broker.
  if (!write_and_acknowledge(flush_timeout)) {
    if (!holding_for_store()) spdlog::error("state changes or delivery events not acknowledged; offsets not committed");
    return;
  }
  checkpoint();
  if (consumer_->commit()) {
    dirty_ = false;
    metrics_.commits.fetch_add(1, std::memory_order_relaxed);
  }
}

bool Gateway::write_and_acknowledge(std::chrono::milliseconds timeout) {
  persist();
  if (holding_for_store() || !flush_producer(timeout)) return false;
  if (!ledger_->has_changes()) return true;
  // Held back behind effects that only this flush saw acknowledged.
  persist();
  return !holding_for_store() && !ledger_->has_changes() && flush_producer(timeout);
}

bool Gateway::flush_producer(std::chrono::milliseconds timeout) {
  if (!producer_->flush(timeout)) return false;
  effects_unacknowledged_ = false;
  return true;
}

void Gateway::persist(bool send) {
  if (!send) {
    for (auto& [adapter, outgoing] : ready_to_send_) {
      auto it = in_flight_.find(outgoing.message.reminder_id);
      if (it != in_flight_.end()) {
        // Never left: looked at again first thing by whoever owns the timeline next.
        ledger_->release(it->first, it->second.partition);
        ledger_->schedule(it->second.key, clock_->now());
        in_flight_.erase(it);
      }
    }
    ready_to_send_.clear();
  }
  if (!write_state()) return;
  if (ledger_->has_changes()) {
    // A turn's delivery events and outcomes are on the broker before the changelog records of
    // the state that follows them: a crash between the two would otherwise restore a settled
    // reminder whose event never got out, and the input read again is recognised as applied,
    // so nothing would publish it. Until then the changes stay in the ledger (and the messages
    // waiting for their marks wait too).
    if (effects_unacknowledged_ && !flush_producer(kLoopFlushTimeout)) {
      spdlog::warn("state changes wait: the delivery events they follow are not acknowledged yet");
      return;
    }
    unwritten_ = std::make_unique<store::StateStore::Batch>(*store_);
    changelog_buffer_.clear();
    ledger_->collect(*unwritten_, changelog_buffer_);
    if (!write_state()) return;
  }
  if (ready_to_send_.empty()) return;
  // A message leaves only once its "sending" mark is on the broker too: an instance that takes
  // the partition over after a crash then knows it may have gone out. (The store's write above
  // is not synced: a store not closed cleanly is restored from the changelog.) Waiting here
  // rather than releasing each message on its record's delivery report batches the next turn's
  // records: measured faster on two cores.
  if (!flush_producer(kLoopFlushTimeout)) {
    // They wait for the next commit point; the broker has their marks queued.
    spdlog::warn("{} message(s) wait: the changelog has not acknowledged their sending marks yet",
                 ready_to_send_.size());
    return;
  }
  auto sends = std::move(ready_to_send_);
  ready_to_send_.clear();
  for (auto& [adapter, outgoing] : sends) adapter->send(std::move(outgoing));
}

bool Gateway::write_state() {
  if (!unwritten_ && store_failure_.empty()) return true;
  auto now = std::chrono::steady_clock::now();
  if (!store_failure_.empty()) {
    if (now < store_retry_at_) return false;
    store_->resume();
  }
  try {
    // With nothing held (a refused sending mark), a small write tells whether the store is back.
    if (unwritten_) {
      // After a failure the write is synced whatever it holds: RocksDB buffers an unsynced
      // write in memory, which would pass for a store taking writes again while the disk is
      // still full.
      store_->write(*unwritten_, !store_failure_.empty());
    } else {
      store_->probe();
    }
  } catch (const store::StoreError& e) {
    hold_for_store(e);
    return false;
  }
  if (unwritten_) {
    unwritten_.reset();
    // The changelog follows the store: records leave only once their state is written here.
    const auto& topic = config_.kafka().changelog_topic();
    for (const auto& r : changelog_buffer_) {
      producer_->produce_to(topic, r.partition, r.key,
                            r.value ? std::optional<std::string_view>(*r.value) : std::nullopt);
    }
    changelog_buffer_.clear();
  }
  if (!store_failure_.empty()) {
    spdlog::info("store: writable again after {} s; consuming, sending and committing resume",
                 std::chrono::duration_cast<std::chrono::seconds>(now - store_failed_since_).count());
    std::lock_guard lock(store_failure_mutex_);
    store_failure_.clear();
    metrics_.store_unwritable.store(0, std::memory_order_relaxed);
  }
  return true;
}

void Gateway::hold_for_store(const store::StoreError& error) {
  metrics_.store_write_failures.fetch_add(1, std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  store_retry_at_ = now + std::chrono::seconds(1);
  if (!store_failure_.empty()) return;
  store_failed_since_ = now;
  metrics_.store_unwritable.store(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(store_failure_mutex_);
    store_failure_ = error.no_space() ? std::string("no space left on the device of store.path (") + error.what() + ")"
                                      : error.what();
  }
  spdlog::error("{}: {}; consuming, sending and committing wait until the store takes writes again (retried every "
                "second); nothing is lost",
                error.no_space() ? "store full" : "store unwritable", error.what());
}

void Gateway::checkpoint() {
  store::StateStore::Batch batch(*store_);
  for (const auto& [partition, owned] : owned_) {
    if (auto it = changelog_acked_.find(partition); it != changelog_acked_.end()) {
      batch.put_changelog_offset(partition, it->second);
    }
  }
  try {
    store_->write(batch, false);
  } catch (const store::StoreError& e) {
    // Only saves a restore some reading: an older position is still correct.
    metrics_.store_write_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("changelog positions not recorded: {}", e.what());
  }
}

bool Gateway::owns(int32_t partition) const { return owned_.count(partition) > 0 && !revoking_.count(partition); }

std::optional<Instant> Gateway::next_due() const {
  std::optional<Instant> next;
  for (const auto& [partition, owned] : owned_) {
    if (!owned.gate_open) continue;
    if (auto at = ledger_->next_due(partition); at && (!next || *at < *next)) next = at;
  }
  return next;
}

void Gateway::restore_partitions(const std::vector<int32_t>& partitions) {
  if (partitions.empty()) return;
  std::map<int32_t, int64_t> from;
  for (auto partition : partitions) from[partition] = store_->changelog_offset(partition);
  // The readers fetch and gather the next chunks while this thread applies one (the ledger is
  // not shared); a timeline changed four times within a chunk is written once.
  std::exception_ptr failure;
  std::map<int32_t, kafka::PartitionRead> reads;
  store_->begin_restore();
  try {
    reads = kafka::read_partitions(kafka_properties_, config_.kafka().changelog_topic(), from, kRestoreChunk,
                                   [&](int32_t partition, const kafka::LatestByKey& chunk) {
                                     store::StateStore::Batch batch(*store_);
                                     for (const auto& [key, value] : chunk) {
                                       ledger_->restore(partition, key,
                                                        value ? std::optional<std::string_view>(*value) : std::nullopt,
                                                        batch);
                                     }
                                     store_->write_restored(batch);
                                   });
  } catch (...) {
    failure = std::current_exception();
  }
  ledger_->restored();
  std::size_t records = 0;
  for (const auto& [partition, read] : reads) records += read.records;
  store_->end_restore(records >= kRestoreChunk);
  if (failure) std::rethrow_exception(failure);
  store::StateStore::Batch batch(*store_);
  for (const auto& [partition, read] : reads) batch.put_changelog_offset(partition, read.end);
  store_->write(batch, true);
  for (const auto& [partition, read] : reads) {
    restored_records_ += read.records;
    metrics_.changelog_records_restored.fetch_add(read.records, std::memory_order_relaxed);
    changelog_acked_[partition] = read.end;
    spdlog::info("partition {}: restored {} changelog record(s) (offsets {} to {}) in {} ms", partition, read.records,
                 read.from, read.end, read.took.count());
  }
}

void Gateway::on_assigned(const std::vector<int32_t>& partitions) {
  const auto& input = config_.kafka().input_topic();
  // This instance may have owned these partitions a moment ago (its session lost to a broker
  // outage, then the same assignment back): what it wrote to their changelog may still be
  // queued in its producer. Restoring before those records land would replay older records over
  // newer state — a sending mark over the outcome that followed it — and report sends that
  // completed as interrupted.
  if (!producer_->wait_delivered(kFlushTimeout)) {
    spdlog::warn("changelog records of this instance are still unacknowledged; the restore may miss them");
  }
  for (auto partition : partitions) ledger_->forget_partition(partition);
  restore_partitions(partitions);
  for (auto partition : partitions) {
    OwnedPartition owned;
    auto end = consumer_->end_offset(input, partition, std::chrono::seconds(10));
    auto committed = consumer_->committed(input, partition, std::chrono::seconds(10));
    owned.catch_up_end = end.value_or(0);
    owned.interrupted = ledger_->sending_timelines(partition);
    owned_[partition] = std::move(owned);
    revoking_.erase(partition);
    if (!end || *end <= 0 || committed >= *end) {
      open_gate(partition);
    } else {
      spdlog::info("partition {}: reminders wait until offset {} is read (committed: {})", partition, *end - 1,
                   committed);
    }
  }
  // A restore reads and gathers hundreds of megabytes for a large changelog, freed by now but
  // kept by the allocator; given back so that the resident size stays the state's own.
  if (restored_records_ >= kRestoreChunk) {
#ifdef RELANCE_MIMALLOC
    mi_collect(true);
#else
    ::malloc_trim(0);
#endif
  }
  restored_records_ = 0;
  update_partition_gauges();
  joined_.store(true);
}

std::string Gateway::not_ready_reason() const {
  if (!ready_.load()) return "not started, or stopping";
  {
    std::lock_guard lock(store_failure_mutex_);
    if (!store_failure_.empty()) return "the local store refuses writes: " + store_failure_;
  }
  if (!joined_.load()) return "waiting for the consumer group to assign partitions";
  if (auto n = metrics_.partitions_catching_up.load(std::memory_order_relaxed); n > 0) {
    return std::to_string(n) + " partition(s) restoring their state or catching up with the input";
  }
  return {};
}

void Gateway::open_gate(int32_t partition) {
  auto it = owned_.find(partition);
  if (it == owned_.end() || it->second.gate_open) return;
  it->second.gate_open = true;
  if (!it->second.interrupted.empty()) {
    spdlog::warn("partition {}: {} timeline(s) had a reminder on its way when the previous owner stopped", partition,
                 it->second.interrupted.size());
  }
  for (auto& key : it->second.interrupted) to_evaluate_.insert(std::move(key));
  it->second.interrupted.clear();
  update_partition_gauges();
  spdlog::info("partition {}: caught up; reminders may fire", partition);
}

bool Gateway::on_revoking(const std::vector<int32_t>& partitions) {
  std::set<int32_t> leaving(partitions.begin(), partitions.end());
  revoking_.insert(partitions.begin(), partitions.end());
  auto of_leaving = [&](const InFlight& f) { return leaving.count(f.partition) > 0; };
  // Not handed over yet: they never leave, and their marks are released.
  for (auto it = ready_to_send_.begin(); it != ready_to_send_.end();) {
    auto found = in_flight_.find(it->second.message.reminder_id);
    if (found != in_flight_.end() && of_leaving(found->second)) {
      ledger_->release(found->first, found->second.partition);
      ledger_->schedule(found->second.key, clock_->now());
      in_flight_.erase(found);
      it = ready_to_send_.erase(it);
    } else {
      ++it;
    }
  }
  // Sends on their way settle first (a waiting one is withdrawn when its turn comes, since
  // still_wanted() now says no), so their outcome is in the state the next owner restores.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  auto pending = [&] { return std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& e) { return of_leaving(e.second); }); };
  while (pending() && std::chrono::steady_clock::now() < deadline) {
    transfers_->run_once(std::chrono::milliseconds(5));
    evaluate_pending();
    persist();
  }
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (of_leaving(it->second)) {
      spdlog::warn("reminder {} still on its way as its partition {} leaves; its outcome is left to the next owner",
                   it->first, it->second.partition);
      ledger_->schedule(it->second.key, clock_->now());
      it = in_flight_.erase(it);
    } else {
      ++it;
    }
  }
  evaluate_pending();
  if (!write_and_acknowledge(kFlushTimeout)) return false;
  checkpoint();
  return true;
}

void Gateway::on_revoked(const std::vector<int32_t>& partitions) {
  for (auto partition : partitions) {
    owned_.erase(partition);
    revoking_.erase(partition);
    ledger_->forget_partition(partition);
  }
  update_partition_gauges();
}

void Gateway::update_gauges() {
  metrics_.consumer_lag.clear();
  std::size_t backlog = 0;
  for (const auto& [partition, owned] : owned_) {
    if (auto lag = consumer_->lag(config_.kafka().input_topic(), partition)) {
      metrics_.consumer_lag.set({std::to_string(partition)}, static_cast<double>(*lag));
    }
    backlog += ledger_->count_due(partition, clock_->now(), 10'000);
  }
  metrics_.scheduled_timelines.store(backlog, std::memory_order_relaxed);
  metrics_.store_bytes.store(store_->size_on_disk(), std::memory_order_relaxed);
  metrics_.timelines_cached.store(ledger_->cached(), std::memory_order_relaxed);
}

void Gateway::update_partition_gauges() {
  auto catching_up = std::count_if(owned_.begin(), owned_.end(), [](const auto& e) { return !e.second.gate_open; });
  metrics_.partitions_owned.store(owned_.size(), std::memory_order_relaxed);
  metrics_.partitions_catching_up.store(static_cast<uint64_t>(catching_up), std::memory_order_relaxed);
}

void Gateway::handle(const kafka::Record& record) {
  metrics_.records_consumed.fetch_add(1, std::memory_order_relaxed);
  auto finish = [&] {
    consumer_->store_offset(record);
    dirty_ = true;
    if (auto owned = owned_.find(record.partition());
        owned != owned_.end() && !owned->second.gate_open && record.offset() + 1 >= owned->second.catch_up_end) {
      open_gate(record.partition());
    }
  };
  auto type = decode::content_type_from_header(record.header("content-type").value_or(""));
  if (!type) {
    dead_letter(record, type.error());
    return finish();
  }
  auto event = decode::decode_event(record.value(), type.value());
  if (!event) {
    dead_letter(record, event.error());
    return finish();
  }
  if (auto valid = decode::validate_event(event.value()); !valid) {
    dead_letter(record, valid.error());
    return finish();
  }
  LogContext context(event.value().event_id(), {});
  std::string key(record.key());
  if (key.empty()) key = decode::subject_key(event.value());
  if (key.empty()) {
    dead_letter(record, Error{"missing_key", "the record has no key and the event names no customer", false});
    return finish();
  }
  auto applied = ledger_->apply(key, record.partition(), record.offset(), event.value());
  if (applied.duplicate) {
    metrics_.events_duplicate.fetch_add(1, std::memory_order_relaxed);
    return finish();
  }
  metrics_.events_applied.fetch_add(1, std::memory_order_relaxed);
  index_contacts(key, event.value());
  if (event.value().has_delivery_status_reported() && applied.effects.status_changed) {
    metrics_.delivery_reports.fetch_add(1, std::memory_order_relaxed);
    const auto& report = event.value().delivery_status_reported();
    std::string channel = "CHANNEL_UNSPECIFIED";
    if (const auto* reported = ledger_->find(key)) {
      if (auto it = reported->reminders.find(report.reminder_id()); it != reported->reminders.end()) {
        channel = v1::Channel_Name(it->second.channel);
      }
    }
    metrics_.delivery_statuses.add({channel, v1::DeliveryStatus_Name(report.status())});
    publish_report(*ledger_->find(key), event.value().delivery_status_reported(), applied.effects.fell_back);
  }
  if (!applied.resolved_after_reminders.empty()) {
    const auto& e = event.value();
    auto at = clock_->now();
    if (e.has_payment_received() && e.payment_received().has_paid_at()) {
      at = Instant{std::chrono::seconds(e.payment_received().paid_at().seconds())};
    } else if (e.has_occurred_at()) {
      at = Instant{std::chrono::seconds(e.occurred_at().seconds())};
    }
    const auto& ledger = *ledger_->find(key);
    for (const auto& id : applied.resolved_after_reminders) {
      const auto& inv = ledger.invoices.at(id);
      auto resolution = v1::ReminderOutcome::PAID;
      if (inv.cancelled) {
        resolution = inv.cancel_reason == v1::InvoiceCancelled::WRITTEN_OFF ? v1::ReminderOutcome::WRITTEN_OFF
                     : inv.cancel_reason == v1::InvoiceCancelled::CREDITED  ? v1::ReminderOutcome::CREDITED
                                                                            : v1::ReminderOutcome::CANCELLED;
      }
      publish_outcome(ledger, id, resolution, at);
    }
  }
  // Reminders already due are sent before the offset moves, so a crash never skips them.
  evaluate(key);
  finish();
}

void Gateway::dead_letter(const kafka::Record& record, const Error& error) {
  metrics_.events_dead_lettered.fetch_add(1, std::memory_order_relaxed);
  metrics_.events_rejected.add({error.code});
  spdlog::warn("dead-lettering {}[{}]@{}: {}: {}", record.topic(), record.partition(), record.offset(), error.code,
               error.message);
  auto headers = record.headers();
  headers.emplace_back("relance-error", error.code);
  headers.emplace_back("relance-error-message", error.message);
  headers.emplace_back("relance-source-topic", std::string(record.topic()));
  headers.emplace_back("relance-source-partition", std::to_string(record.partition()));
  headers.emplace_back("relance-source-offset", std::to_string(record.offset()));
  producer_->produce(config_.kafka().dlq_topic(), record.key(), record.value(), headers);
}

void Gateway::fire_due() {
  auto now = clock_->now();
  std::size_t limit = 256;
  if (auto per_second = config_.scheduler().catch_up().max_per_second(); per_second > 0) {
    auto real_now = std::chrono::steady_clock::now();
    std::chrono::duration<double> elapsed = real_now - fire_refilled_;
    fire_refilled_ = real_now;
    fire_tokens_ = std::min<double>(per_second, fire_tokens_ + elapsed.count() * per_second);
    limit = static_cast<std::size_t>(fire_tokens_);
    if (limit == 0) return;
  }
  std::size_t fired = 0;
  for (const auto& [partition, owned] : owned_) {
    if (!owned.gate_open || revoking_.count(partition) || fired >= limit) continue;
    for (const auto& key : ledger_->take_due(partition, now, limit - fired)) {
      evaluate(key);
      ++fired;
    }
  }
  if (config_.scheduler().catch_up().max_per_second() > 0) fire_tokens_ -= static_cast<double>(fired);
}

const rules::ReminderRules& Gateway::rules_for(const ledger::CustomerLedger& ledger) const {
  if (auto it = tenant_rules_.find(ledger.tenant_id); it != tenant_rules_.end()) return *it->second;
  return *rules_;
}

void Gateway::evaluate(const std::string& key) {
  // Acting changes the ledger (stages reached, contacts made), so the timeline is planned again
  // until nothing new is due now; the bound only guards against a policy that never settles.
  for (int round = 0; round < 8; ++round) {
    const auto* ledger = ledger_->find(key);
    if (ledger == nullptr) return;
    auto now = clock_->now();
    auto owned = owned_.find(ledger->partition);
    if (owned == owned_.end()) return;
    if (!owned->second.gate_open || revoking_.count(ledger->partition) || holding_for_store()) {
      // Looked at again once the partition has caught up (or the store takes writes again), or
      // at once by its next owner.
      ledger_->schedule(key, now);
      return;
    }
    auto confirm_deadline = expire_unconfirmed(key);
    ledger = ledger_->find(key);
    auto plan = rules_for(*ledger).plan(*ledger, now);
    skip_stale(plan);
    std::optional<Instant> wake = plan.next_at;
    auto earliest = [&wake](Instant at) {
      if (!wake || at < *wake) wake = at;
    };
    if (confirm_deadline) earliest(*confirm_deadline);
    bool acted = false;
    for (const auto& decision : plan.now) {
      // On its way: its answer settles it and looks at the timeline again.
      if (in_flight_.count(decision.reminder_id)) continue;
      if (auto retry = retry_at_.find(decision.reminder_id); retry != retry_at_.end()) {
        if (retry->second > now) {
          earliest(retry->second);
          continue;
        }
        retry_at_.erase(retry);
      }
      execute(decision, *ledger_->find(key));
      acted = true;
    }
    if (!acted) {
      ledger_->schedule(key, wake);
      return;
    }
  }
  spdlog::warn("timeline {} still had actions due after 8 rounds; looking again shortly", key);
  ledger_->schedule(key, clock_->now() + std::chrono::seconds(1));
}

void Gateway::evaluate_pending() {
  // A send settled at once (withdrawn as it was handed over) puts its timeline back in the set:
  // looked at next turn, not in a loop that never ends.
  auto keys = std::move(to_evaluate_);
  to_evaluate_.clear();
  for (const auto& key : keys) evaluate(key);
}

std::optional<Instant> Gateway::expire_unconfirmed(const std::string& key) {
  if (confirm_within_ <= Duration::zero()) return std::nullopt;
  const auto* ledger = ledger_->find(key);
  std::optional<Instant> next;
  std::vector<std::pair<std::string, v1::Channel>> expired;
  auto now = clock_->now();
  for (const auto& [id, sent] : ledger->reminders) {
    if (!sent.awaiting_confirmation || sent.fell_back) continue;
    auto deadline = sent.sent_at + confirm_within_;
    if (deadline <= now) {
      expired.emplace_back(id, sent.channel);
    } else if (!next || deadline < *next) {
      next = deadline;
    }
  }
  for (const auto& [id, channel] : expired) {
    // Recorded like a provider's report, so the trail and the fallback are the same.
    v1::InvoiceEvent event;
    event.set_event_id("no-confirmation:" + id);
    event.set_source("relance");
    *event.mutable_occurred_at() = to_timestamp(now);
    auto* report = event.mutable_delivery_status_reported();
    report->set_reminder_id(id);
    report->set_channel(channel);
    report->set_status(v1::UNDELIVERED);
    report->set_error_code("no_confirmation");
    report->set_error_message("no delivery confirmation within " +
                              std::to_string(std::chrono::duration_cast<std::chrono::minutes>(confirm_within_).count()) +
                              " min");
    auto applied = ledger_->apply(key, ledger->partition, -1, event);
    if (applied.effects.status_changed) publish_report(*ledger_->find(key), *report, applied.effects.fell_back);
  }
  return next;
}

void Gateway::record(const rules::Decision& decision, const std::string& key, const RecordOptions& options) {
  auto action = rules::action_record(decision, clock_->now(), options.contacted, options.advance);
  action.template_variant = options.template_variant;
  action.channel_failed_permanently = options.channel_failed;
  action.opted_out = options.opted_out;
  action.awaiting_confirmation = options.awaiting_confirmation;
  action.provider_message_id = options.provider_message_id;
  if (options.contacted) {
    action.explanation = decision.explanation;
    action.subject = options.subject;
    action.text = options.text.substr(0, ledger::kTrailTextLimit);
  }
  ledger_->record(key, action);
  if (decision.kind == rules::ActionKind::kEscalation && options.contacted) {
    const auto& ledger = *ledger_->find(key);
    for (const auto& id : decision.invoice_ids) publish_outcome(ledger, id, v1::ReminderOutcome::ESCALATED, action.at);
  }
}

void Gateway::publish_outcome(const ledger::CustomerLedger& ledger, const std::string& invoice_id,
                              v1::ReminderOutcome::Resolution resolution, Instant at) {
  const auto& inv = ledger.invoices.at(invoice_id);
  v1::ReminderOutcome outcome;
  outcome.set_event_id(invoice_id + "/" + lower(v1::ReminderOutcome::Resolution_Name(resolution)));
  outcome.set_customer_id(ledger.customer.customer_id().empty() ? ledger.key : ledger.customer.customer_id());
  outcome.set_invoice_id(invoice_id);
  outcome.set_tenant_id(ledger.tenant_id);
  outcome.set_resolution(resolution);
  outcome.set_last_stage(inv.last_stage_name);
  if (resolution == v1::ReminderOutcome::PAID) metrics_.payments_after_reminders.add({inv.last_stage_name});
  outcome.set_last_channel(inv.last_channel);
  outcome.set_last_tone(inv.last_tone);
  outcome.set_last_template(inv.last_template);
  outcome.set_template_variant(inv.last_variant);
  outcome.set_reminders_sent(inv.reminders_sent);
  auto whole_days = [&](Instant from) {
    return static_cast<int32_t>(std::max<int64_t>(0, std::chrono::floor<std::chrono::days>(at - from).count()));
  };
  outcome.set_days_from_first_reminder(whole_days(inv.first_reminder_at));
  outcome.set_days_from_last_reminder(whole_days(inv.last_reminder_at));
  *outcome.mutable_resolved_at() = to_timestamp(at);
  *outcome.mutable_amount_total() = inv.invoice.amount_total();
  std::string bytes;
  outcome.SerializeToString(&bytes);
  producer_->produce(config_.kafka().outcome_topic(), outcome.customer_id(), bytes,
                     {{"content-type", "application/x-protobuf"}});
  effects_unacknowledged_ = true;
  metrics_.outcomes_published.fetch_add(1, std::memory_order_relaxed);
}

void Gateway::skip_stale(rules::Plan& plan) const {
  const auto& catch_up = config_.scheduler().catch_up();
  if (catch_up.policy() != v1::SKIP_STALE) return;
  auto max_lateness = std::chrono::seconds(TimeUtil::DurationToSeconds(catch_up.max_lateness()));
  for (auto& decision : plan.now) {
    auto planned = decision.planned_at == Instant{} ? decision.due_at : decision.planned_at;
    if (decision.suppressed || decision.kind == rules::ActionKind::kThankYou || planned + max_lateness >= started_at_) {
      continue;
    }
    auto hours = std::chrono::duration_cast<std::chrono::hours>(started_at_ - planned).count();
    decision.suppressed = true;
    decision.suppression_reason = "catch-up: due " + std::to_string(hours) +
                                  " h before the gateway started, more than scheduler.catch_up.max_lateness; skipped";
    decision.explanation.push_back(decision.suppression_reason);
  }
}

namespace {

const char* result_name(channels::SendResult::Kind kind) {
  using Kind = channels::SendResult::Kind;
  switch (kind) {
    case Kind::kAccepted:
      return "accepted";
    case Kind::kRetriable:
      return "retriable";
    case Kind::kPermanent:
      return "permanent";
    case Kind::kUnknown:
      return "unknown";
    case Kind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

const char* kind_name(rules::ActionKind kind) {
  switch (kind) {
    case rules::ActionKind::kReminder:
      return "reminder";
    case rules::ActionKind::kThankYou:
      return "thank_you";
    case rules::ActionKind::kEscalation:
      return "escalation";
  }
  return "reminder";
}

}  // namespace

void Gateway::execute(const rules::Decision& decision, const ledger::CustomerLedger& ledger) {
  LogContext context({}, decision.reminder_id);
  metrics_.decisions.add({kind_name(decision.kind), decision.stage,
                          decision.suppressed ? "NONE" : v1::Channel_Name(decision.channel), v1::Tone_Name(decision.tone)});
  const auto key = ledger.key;
  const auto partition = ledger.partition;
  bool interrupted = false;
  // Where the provider cannot be asked afterwards, a message is recorded as sending only as it
  // leaves (still_wanted), so one that was still queued at a crash is not left in doubt.
  auto found = channels_.find(decision.channel);
  bool mark_when_leaving = !decision.suppressed && found != channels_.end() &&
                           found->second->consults_before_sending() && !found->second->can_look_up();
  bool known = mark_when_leaving ? ledger_->outbox_state(decision.reminder_id).has_value()
                                 : !begin_outbox(decision.reminder_id, partition, key);
  if (known) {
    // Handled before a restart (the event was read again because its offset was not committed
    // yet, or the partition was restored from the changelog): never sent again blindly, but
    // reported again, since the delivery event may not have left before the crash (its id is
    // the same, so consumers drop a repeat).
    auto state = ledger_->outbox_state(decision.reminder_id);
    bool recorded = ledger.reminders.count(decision.reminder_id) > 0;
    RecordOptions options;
    if (state && !recorded && decision.channel != v1::CHANNEL_UNSPECIFIED) {
      auto& adapter = channels_.at(decision.channel);
      auto provider = std::string(adapter->provider());
      channels::SendResult recovered;
      recovered.message = "handled before a restart; not sent again";
      switch (*state) {
        case outbox::ReminderState::kAccepted:
          publish(decision, ledger, v1::SENT, provider, &recovered);
          options.contacted = true;
          break;
        case outbox::ReminderState::kSending:
          // The process stopped while the provider may have had it.
          if (adapter->can_look_up() || config_.store().interrupted_sends() == v1::RESEND) {
            interrupted = true;
            break;
          }
          [[fallthrough]];
        case outbox::ReminderState::kUnknown:
          recovered.provider_code = "interrupted";
          recovered.message = "the process stopped while this message was being sent; it may or may not have gone "
                              "out, and is not sent again (store.interrupted_sends: report)";
          publish(decision, ledger, v1::OUTCOME_UNKNOWN, provider, &recovered);
          finish_outbox(decision.reminder_id, partition, key, outbox::ReminderState::kUnknown);
          options.contacted = true;
          break;
        case outbox::ReminderState::kFailed:
        case outbox::ReminderState::kSuppressed:
          break;
      }
    }
    if (!interrupted) {
      record(decision, key, options);
      return;
    }
  }
  if (decision.suppressed) {
    finish_outbox(decision.reminder_id, partition, key, outbox::ReminderState::kSuppressed);
    metrics_.reminders_suppressed.fetch_add(1, std::memory_order_relaxed);
    publish(decision, ledger, v1::SUPPRESSED, "", nullptr);
    record(decision, key, {});
    return;
  }
  auto rendered = renderer_->render(decision, ledger, rules_for(ledger).policy());
  if (!rendered) {
    finish_outbox(decision.reminder_id, partition, key, outbox::ReminderState::kFailed);
    metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
    channels::SendResult failure;
    failure.kind = channels::SendResult::Kind::kPermanent;
    failure.provider_code = rendered.error().code;
    failure.message = rendered.error().message;
    publish(decision, ledger, v1::FAILED, "", &failure);
    record(decision, key, {});
    return;
  }
  rendered->timeline_key = key;
  if (decision.channel == v1::CALL_TASK) {
    rendered->payload = call_task_for(decision, ledger, rendered->text, clock_->now()).SerializeAsString();
    std::lock_guard lock(index_mutex_);
    task_index_[decision.reminder_id] = key;
  }
  auto& adapter = channels_.at(decision.channel);
  in_flight_[decision.reminder_id] = InFlight{key,
                                              partition,
                                              decision,
                                              rendered->template_variant,
                                              adapter->confirms_delivery(),
                                              mark_when_leaving,
                                              std::chrono::steady_clock::now(),
                                              rendered->subject,
                                              rendered->text.substr(0, ledger::kTrailTextLimit)};
  metrics_.sends_in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  channels::Outgoing outgoing;
  outgoing.message = std::move(rendered.value());
  outgoing.done = [this, id = decision.reminder_id](channels::SendResult result) { settle(id, std::move(result)); };
  outgoing.still_wanted = [this, key, id = decision.reminder_id] { return still_wanted(key, id); };
  if (interrupted) {
    outgoing.interrupted = true;
    spdlog::warn("reminder {} was on its way when the process stopped; {}", decision.reminder_id,
                 adapter->can_look_up() ? "looking it up before any resend" : "sending it again (store.interrupted_sends: resend)");
    in_flight_[decision.reminder_id].decision.explanation.push_back(
        adapter->can_look_up() ? "on its way when the process stopped: looked up at the provider before any resend"
                               : "on its way when the process stopped: sent again, so it may arrive twice "
                                 "(store.interrupted_sends: resend)");
  }
  if (mark_when_leaving) {
    ledger_->queue(decision.reminder_id, partition, key);
    adapter->send(std::move(outgoing));
    return;
  }
  // Leaves at the next state commit point, once its "sending" mark is durable.
  ready_to_send_.emplace_back(adapter.get(), std::move(outgoing));
}

bool Gateway::still_wanted(const std::string& key, const std::string& reminder_id) {
  const auto* ledger = ledger_->find(key);
  if (ledger == nullptr || !owns(ledger->partition)) return false;
  auto plan = rules_for(*ledger).plan(*ledger, clock_->now());
  if (std::any_of(plan.now.begin(), plan.now.end(),
                  [&](const rules::Decision& d) { return d.reminder_id == reminder_id && !d.suppressed; })) {
    return leaving(reminder_id);
  }
  // A message that goes with another (the email alongside a call) is no longer in the plan once
  // its sibling has gone out and the stage counts as reached; it is still wanted unless
  // something stopped the stage meanwhile.
  auto it = in_flight_.find(reminder_id);
  if (it == in_flight_.end()) return false;
  const auto& decision = it->second.decision;
  bool sibling_sent = std::any_of(ledger->reminders.begin(), ledger->reminders.end(), [&](const auto& entry) {
    return entry.first != reminder_id && entry.second.stage_key == decision.stage_key;
  });
  if (!sibling_sent || ledger->opted_out.count(decision.channel)) return false;
  bool wanted = std::all_of(decision.invoice_ids.begin(), decision.invoice_ids.end(), [&](const std::string& id) {
    auto inv = ledger->invoices.find(id);
    return inv != ledger->invoices.end() && inv->second.open() && !inv->second.disputed &&
           inv->second.promised_on.empty();
  });
  return wanted && leaving(reminder_id);
}

bool Gateway::leaving(const std::string& reminder_id) {
  if (!mark_leaving(reminder_id)) return false;
  if (auto it = in_flight_.find(reminder_id); it != in_flight_.end()) {
    const auto channel = it->second.decision.channel;
    metrics_.send_wait.observe({v1::Channel_Name(channel), std::string(channels_.at(channel)->provider())},
                               std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                                     it->second.handed_at));
  }
  return true;
}

bool Gateway::mark_leaving(const std::string& reminder_id) {
  auto it = in_flight_.find(reminder_id);
  if (it == in_flight_.end() || !it->second.mark_when_leaving) return true;
  const auto& f = it->second;
  // In the store, and acknowledged by the broker, before the message leaves: this instance
  // after a restart, or the partition's next owner, never sends it blindly again. The store's
  // write is not synced: after a crash the store is restored from the changelog, which holds
  // the mark.
  store::StateStore::Batch batch(*store_);
  auto code = outbox::code_of(outbox::ReminderState::kSending);
  batch.put_outbox(f.partition, reminder_id, code, f.key);
  if (holding_for_store()) return false;
  try {
    store_->write(batch, false);
  } catch (const store::StoreError& e) {
    // Not recorded, so it must not leave: withdrawn, and planned again once the store takes
    // writes; everything holds until then.
    spdlog::error("reminder {} held back: its sending mark could not be written", reminder_id);
    hold_for_store(e);
    return false;
  }
  // The queued mark still waiting for the next commit point must not overwrite this one.
  finish_outbox(reminder_id, f.partition, f.key, outbox::ReminderState::kSending);
  producer_->produce_to(config_.kafka().changelog_topic(), f.partition, store::outbox_changelog_key(reminder_id),
                        code + f.key);
  if (!flush_producer(kLoopFlushTimeout)) {
    // Withdrawn for now (the mark is released behind it) and tried again a second later.
    spdlog::error("reminder {} held back: its sending mark was not acknowledged by the broker", reminder_id);
    retry_at_[reminder_id] = clock_->now() + std::chrono::seconds(1);
    return false;
  }
  it->second.mark_when_leaving = false;
  return true;
}

bool Gateway::begin_outbox(const std::string& reminder_id, int32_t partition, const std::string& key) {
  if (!ledger_->begin(reminder_id, partition, key)) return false;
  metrics_.outbox_records.add({"sending"});
  return true;
}

void Gateway::finish_outbox(const std::string& reminder_id, int32_t partition, const std::string& key,
                            outbox::ReminderState state) {
  ledger_->finish(reminder_id, partition, key, state);
  static constexpr const char* kNames[] = {"sending", "accepted", "failed", "unknown", "suppressed"};
  metrics_.outbox_records.add({kNames[static_cast<int>(state)]});
}


void Gateway::settle(const std::string& reminder_id, channels::SendResult result) {
  LogContext context({}, reminder_id);
  auto node = in_flight_.extract(reminder_id);
  metrics_.sends_in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  if (node.empty()) return;
  const auto& f = node.mapped();
  const auto& decision = f.decision;
  const auto& key = f.key;
  to_evaluate_.insert(key);
  const auto* found = ledger_->find(key);
  if (found == nullptr) return;
  const auto& ledger = *found;
  using Kind = channels::SendResult::Kind;
  auto provider = std::string(channels_.at(decision.channel)->provider());
  const auto channel = v1::Channel_Name(decision.channel);
  metrics_.sends.add({channel, provider, result_name(result.kind)});
  if (result.provider_latency.count() > 0) metrics_.provider_latency.observe({channel, provider}, result.provider_latency);
  if (result.waited_for_rate_limit) metrics_.rate_limit_waits.add({channel, provider});
  if (result.attempts > 1) metrics_.provider_retries.add({channel, provider}, result.attempts - 1);
  switch (result.kind) {
    case Kind::kAccepted: {
      finish_outbox(decision.reminder_id, f.partition, key, outbox::ReminderState::kAccepted);
      metrics_.reminders_sent.fetch_add(1, std::memory_order_relaxed);
      publish(decision, ledger, v1::SENT, provider, &result, f.template_variant);
      RecordOptions options;
      options.contacted = true;
      options.template_variant = f.template_variant;
      options.subject = f.subject;
      options.text = f.text;
      options.provider_message_id = result.provider_message_id;
      options.awaiting_confirmation = f.confirms_delivery && confirm_within_ > Duration::zero();
      record(decision, key, options);
      attempts_.erase(decision.stage_key);
      break;
    }
    case Kind::kCancelled:
      // Not sent: the timeline is planned again as it now stands (paid, paused, or later).
      ledger_->release(decision.reminder_id, f.partition);
      metrics_.reminders_withdrawn.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("reminder {} withdrawn before sending: {}", decision.reminder_id, result.message);
      break;
    case Kind::kRetriable:
      if (++attempts_[decision.stage_key] < kMaxAttempts) {
        // Provably not sent: forget it so that the next look at this timeline tries again.
        ledger_->release(decision.reminder_id, f.partition);
        metrics_.reminders_retried.fetch_add(1, std::memory_order_relaxed);
        auto doubling = std::chrono::seconds(1) * (int64_t{1} << std::min(attempts_[decision.stage_key] - 1, 10));
        auto delay = std::max<Duration>(result.retry_after, std::min<Duration>(doubling, kMaxRetryDelay));
        retry_at_[decision.reminder_id] = clock_->now() + delay;
        spdlog::warn("reminder {} via {}: {} (retry {} of {})", decision.reminder_id, provider, result.message,
                     attempts_[decision.stage_key], kMaxAttempts - 1);
        break;
      }
      finish_outbox(decision.reminder_id, f.partition, key, outbox::ReminderState::kFailed);
      metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("reminder {} via {} failed after {} attempts: {}", decision.reminder_id, provider, kMaxAttempts,
                   result.message);
      publish(decision, ledger, v1::FAILED, provider, &result);
      record(decision, key, {});
      break;
    case Kind::kPermanent: {
      finish_outbox(decision.reminder_id, f.partition, key, outbox::ReminderState::kFailed);
      metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("reminder {} via {} failed: {} {}", decision.reminder_id, provider, result.provider_code,
                   result.message);
      publish(decision, ledger, v1::FAILED, provider, &result);
      // The stage stays open: the next planning round uses the next channel.
      RecordOptions options;
      options.advance = false;
      options.opted_out = result.recipient_opted_out;
      options.channel_failed = !result.recipient_opted_out;
      record(decision, key, options);
      break;
    }
    case Kind::kUnknown: {
      finish_outbox(decision.reminder_id, f.partition, key, outbox::ReminderState::kUnknown);
      metrics_.reminders_unknown.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("reminder {} via {}: outcome unknown: {}", decision.reminder_id, provider, result.message);
      publish(decision, ledger, v1::OUTCOME_UNKNOWN, provider, &result, f.template_variant);
      // It may have reached the customer: count it as a contact, never send it again.
      RecordOptions options;
      options.contacted = true;
      options.template_variant = f.template_variant;
      options.subject = f.subject;
      options.text = f.text;
      record(decision, key, options);
      break;
    }
  }
}

void Gateway::publish_report(const ledger::CustomerLedger& ledger, const v1::DeliveryStatusReported& report,
                             bool fell_back) {
  auto it = ledger.reminders.find(report.reminder_id());
  if (it == ledger.reminders.end()) return;
  const auto& sent = it->second;
  v1::DeliveryEvent event;
  event.set_event_id(report.reminder_id() + "/" + lower(v1::DeliveryStatus_Name(report.status())));
  event.set_reminder_id(report.reminder_id());
  event.set_customer_id(ledger.customer.customer_id().empty() ? ledger.key : ledger.customer.customer_id());
  for (const auto& id : sent.invoice_ids) event.add_invoice_ids(id);
  event.set_stage(sent.stage);
  event.set_channel(sent.channel);
  event.set_tone(sent.tone);
  event.set_status(report.status());
  event.set_provider(report.provider());
  event.set_provider_message_id(report.provider_message_id().empty() ? sent.provider_message_id
                                                                      : report.provider_message_id());
  event.set_error_code(report.error_code());
  event.set_error_message(report.error_message());
  event.set_tenant_id(ledger.tenant_id);
  *event.mutable_occurred_at() = to_timestamp(clock_->now());
  if (fell_back) {
    metrics_.fallbacks.fetch_add(1, std::memory_order_relaxed);
    event.add_explanation("fallback: " + v1::Channel_Name(sent.channel) + " did not deliver (" +
                          (report.error_code().empty() ? lower(v1::DeliveryStatus_Name(report.status()))
                                                       : report.error_code()) +
                          "); the stage moves to its next channel");
  }
  publish_event(event);
}

void Gateway::index_contacts(const std::string& key, const v1::InvoiceEvent& event) {
  const v1::Customer* customer = nullptr;
  if (event.has_invoice_issued()) customer = &event.invoice_issued().customer();
  if (event.has_customer_updated()) customer = &event.customer_updated().customer();
  if (customer == nullptr) return;
  std::lock_guard lock(index_mutex_);
  for (const auto* number : {&customer->phone(), &customer->whatsapp()}) {
    if (!number->empty()) phone_index_[*number] = key;
  }
}

std::optional<std::string> Gateway::key_for_phone(const std::string& number) const {
  std::lock_guard lock(index_mutex_);
  auto it = phone_index_.find(number);
  if (it == phone_index_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Gateway::key_for_task(const std::string& task_id) const {
  std::lock_guard lock(index_mutex_);
  auto it = task_index_.find(task_id);
  if (it == task_index_.end()) return std::nullopt;
  return it->second;
}

bool Gateway::publish_inbound(const v1::InboundReply& reply) {
  if (!facts_producer_) return false;
  return facts_producer_->produce_acknowledged(config_.kafka().inbound_topic(),
                                               reply.customer_id().empty() ? reply.from() : reply.customer_id(),
                                               reply.SerializeAsString(), {{"content-type", "application/x-protobuf"}},
                                               std::chrono::seconds(10));
}

void Gateway::publish(const rules::Decision& decision, const ledger::CustomerLedger& ledger, v1::DeliveryStatus status,
                      const std::string& provider, const channels::SendResult* result,
                      const std::string& template_variant) {
  v1::DeliveryEvent event;
  auto attempt = attempts_.count(decision.stage_key) ? attempts_[decision.stage_key] + 1 : 1;
  // Deterministic, so consumers can drop a repeat after a failover.
  event.set_event_id(decision.reminder_id + "/" + lower(v1::DeliveryStatus_Name(status)));
  event.set_reminder_id(decision.reminder_id);
  event.set_customer_id(ledger.customer.customer_id().empty() ? ledger.key : ledger.customer.customer_id());
  for (const auto& id : decision.invoice_ids) event.add_invoice_ids(id);
  event.set_stage(decision.stage);
  event.set_channel(decision.channel);
  event.set_tone(decision.tone);
  event.set_status(status);
  event.set_provider(provider);
  event.set_attempt(attempt);
  event.set_tenant_id(ledger.tenant_id);
  event.set_template_variant(template_variant);
  *event.mutable_occurred_at() = to_timestamp(clock_->now());
  for (const auto& line : decision.explanation) event.add_explanation(line);
  if (status == v1::SUPPRESSED) event.set_error_message(decision.suppression_reason);
  if (result != nullptr) {
    event.set_provider_message_id(result->provider_message_id);
    event.set_provider_response(result->provider_response);
    if (status != v1::SENT) {
      event.set_error_code(result->provider_code);
      event.set_error_message(result->message);
    }
  }
  publish_event(event);
}

void Gateway::publish_event(const v1::DeliveryEvent& event) {
  std::string bytes;
  event.SerializeToString(&bytes);
  producer_->produce(config_.kafka().delivery_topic(), event.customer_id(), bytes,
                     {{"content-type", "application/x-protobuf"}});
  effects_unacknowledged_ = true;
  metrics_.delivery_events_published.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace relance::app
