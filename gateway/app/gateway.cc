#include "app/gateway.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/dates.h"
#include "decode/event_decoder.h"
#include "relance/v1/call_task.pb.h"
#include "rules/timeline_simulator.h"

namespace relance::app {

namespace v1 = relance::v1;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int kMaxAttempts = 5;
constexpr auto kFlushTimeout = std::chrono::seconds(30);

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
  if (bootstrap_.empty()) {
    embedded_ = std::make_unique<kafka::EmbeddedCluster>(1);
    bootstrap_ = embedded_->bootstrap_servers();
    for (const auto& topic :
         {kc.input_topic(), kc.delivery_topic(), kc.dlq_topic(), kc.call_task_topic(), kc.outcome_topic()}) {
      embedded_->create_topic(topic, kc.embedded().partitions());
    }
    std::filesystem::path file(kc.embedded().bootstrap_file());
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << bootstrap_ << "\n";
    spdlog::info("embedded Kafka cluster listening on {} (written to {})", bootstrap_, file.string());
  }

  kafka::Properties props(kc.properties().begin(), kc.properties().end());
  props["bootstrap.servers"] = bootstrap_;
  producer_ = std::make_unique<kafka::Producer>(props);
  producer_->require_topics({kc.input_topic(), kc.delivery_topic(), kc.dlq_topic(), kc.call_task_topic(),
                             kc.outcome_topic()},
                            std::chrono::seconds(30));

  facts_producer_ = std::make_unique<kafka::Producer>(props);

  auto consumer_props = props;
  consumer_props["group.id"] = kc.group_id();
  consumer_ = std::make_unique<kafka::Consumer>(consumer_props, [this] {
    // Offsets about to be committed cover effects whose delivery events must be on the broker.
    return producer_->flush(kFlushTimeout);
  });
  consumer_->subscribe({kc.input_topic()});

  ledger_ = ledger::make_in_memory_ledger();
  outbox_ = outbox::make_in_memory_outbox();
  channels_ = channels::make_channels(config_, env_, producer_.get());
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
  while (!stop_.load()) {
    auto wait = std::chrono::milliseconds(200);
    if (auto next = schedule_.next_due()) wait = std::min(wait, clock_->real_time_until(*next));
    if (auto record = consumer_->poll(wait)) handle(*record);
    fire_due();
    producer_->poll();
    if (dirty_ && std::chrono::steady_clock::now() - last_commit >= commit_every) {
      commit();
      last_commit = std::chrono::steady_clock::now();
    }
  }
  spdlog::info("stopping: flushing delivery events and committing offsets");
  ready_.store(false);
  commit();
  consumer_->close();
  producer_->flush(kFlushTimeout);
  spdlog::info("stopped");
}

bool Gateway::submit_fact(const std::string& key, const v1::InvoiceEvent& event) {
  std::lock_guard lock(facts_mutex_);
  if (!facts_producer_) return false;
  std::string bytes;
  event.SerializeToString(&bytes);
  try {
    facts_producer_->produce(config_.kafka().input_topic(), key, bytes, {{"content-type", "application/x-protobuf"}});
  } catch (const kafka::KafkaError& e) {
    spdlog::error("cannot publish a fact: {}", e.what());
    return false;
  }
  return facts_producer_->flush(std::chrono::seconds(10));
}

void Gateway::commit() {
  if (!dirty_) return;
  // Offsets move only once every effect they cover is acknowledged by the broker.
  if (!producer_->flush(kFlushTimeout)) {
    spdlog::error("delivery events not acknowledged; offsets not committed");
    return;
  }
  if (consumer_->commit()) {
    dirty_ = false;
    metrics_.commits.fetch_add(1, std::memory_order_relaxed);
  }
}

void Gateway::handle(const kafka::Record& record) {
  metrics_.records_consumed.fetch_add(1, std::memory_order_relaxed);
  auto finish = [&] {
    consumer_->store_offset(record);
    dirty_ = true;
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
  std::string key(record.key());
  if (key.empty()) key = decode::subject_key(event.value());
  if (key.empty()) {
    dead_letter(record, Error{"missing_key", "the record has no key and the event names no customer", false});
    return finish();
  }
  auto applied = ledger_->apply(key, event.value());
  if (applied.duplicate) {
    metrics_.events_duplicate.fetch_add(1, std::memory_order_relaxed);
    return finish();
  }
  metrics_.events_applied.fetch_add(1, std::memory_order_relaxed);
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
  for (const auto& key : schedule_.take_due(clock_->now())) evaluate(key);
  metrics_.scheduled_timelines.store(schedule_.size(), std::memory_order_relaxed);
}

const rules::ReminderRules& Gateway::rules_for(const ledger::CustomerLedger& ledger) const {
  if (auto it = tenant_rules_.find(ledger.tenant_id); it != tenant_rules_.end()) return *it->second;
  return *rules_;
}

void Gateway::evaluate(const std::string& key) {
  // Acting changes the ledger (stages reached, contacts made), so the timeline is planned again
  // until nothing is due now; the bound only guards against a policy that never settles.
  for (int round = 0; round < 8; ++round) {
    const auto* ledger = ledger_->find(key);
    if (ledger == nullptr) {
      schedule_.cancel(key);
      return;
    }
    auto now = clock_->now();
    auto plan = rules_for(*ledger).plan(*ledger, now);
    if (plan.now.empty()) {
      if (plan.next_at) {
        schedule_.schedule(key, *plan.next_at);
      } else {
        schedule_.cancel(key);
      }
      return;
    }
    std::optional<Instant> retry_at;
    for (const auto& decision : plan.now) {
      if (auto retry = execute(decision, *ledger_->find(key)); retry && (!retry_at || *retry < *retry_at)) {
        retry_at = retry;
      }
    }
    if (retry_at) {
      schedule_.schedule(key, plan.next_at ? std::min(*plan.next_at, *retry_at) : *retry_at);
      return;
    }
  }
  spdlog::warn("timeline {} still had actions due after 8 rounds; looking again shortly", key);
  schedule_.schedule(key, clock_->now() + std::chrono::seconds(1));
}

void Gateway::record(const rules::Decision& decision, const std::string& key, bool contacted, bool advance,
                     bool channel_failed, const std::string& template_variant) {
  auto action = rules::action_record(decision, clock_->now(), contacted, advance);
  action.template_variant = template_variant;
  action.channel_failed_permanently = channel_failed;
  ledger_->record(key, action);
  if (decision.kind == rules::ActionKind::kEscalation && contacted) {
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
  metrics_.outcomes_published.fetch_add(1, std::memory_order_relaxed);
}

std::optional<Instant> Gateway::execute(const rules::Decision& decision, const ledger::CustomerLedger& ledger) {
  const auto key = ledger.key;
  if (!outbox_->begin(decision.reminder_id)) {
    // Already handled (a repeat after a retry round): make sure the ledger knows it.
    record(decision, key, false, true, false);
    return std::nullopt;
  }
  if (decision.suppressed) {
    outbox_->finish(decision.reminder_id, outbox::ReminderState::kSuppressed);
    metrics_.reminders_suppressed.fetch_add(1, std::memory_order_relaxed);
    publish(decision, ledger, v1::SUPPRESSED, "", nullptr);
    record(decision, key, false, true, false);
    return std::nullopt;
  }
  auto rendered = renderer_->render(decision, ledger, rules_for(ledger).policy());
  if (!rendered) {
    outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
    metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
    channels::SendResult failure{channels::SendResult::Kind::kPermanent, "", rendered.error().code,
                                 rendered.error().message, "", {}};
    publish(decision, ledger, v1::FAILED, "", &failure);
    record(decision, key, false, true, false);
    return std::nullopt;
  }
  if (decision.channel == v1::CALL_TASK) {
    rendered->payload = call_task_for(decision, ledger, rendered->text, clock_->now()).SerializeAsString();
  }
  auto& adapter = channels_.at(decision.channel);
  std::optional<Instant> retry_at;
  const auto variant = rendered->template_variant;
  adapter->send(rendered.value(), [&](channels::SendResult result) {
    using Kind = channels::SendResult::Kind;
    auto provider = std::string(adapter->provider());
    switch (result.kind) {
      case Kind::kAccepted:
        outbox_->finish(decision.reminder_id, outbox::ReminderState::kAccepted);
        metrics_.reminders_sent.fetch_add(1, std::memory_order_relaxed);
        publish(decision, ledger, v1::SENT, provider, &result, variant);
        record(decision, key, true, true, false, variant);
        break;
      case Kind::kRetriable:
        if (++attempts_[decision.stage_key] < kMaxAttempts) {
          // Provably not sent: forget it so that the next look at this timeline tries again.
          outbox_->release(decision.reminder_id);
          metrics_.reminders_retried.fetch_add(1, std::memory_order_relaxed);
          auto delay = std::max<Duration>(result.retry_after, std::chrono::seconds(1));
          retry_at = clock_->now() + delay * attempts_[decision.stage_key];
          spdlog::warn("reminder {} via {}: {} (retry {} of {})", decision.reminder_id, provider, result.message,
                       attempts_[decision.stage_key], kMaxAttempts - 1);
          break;
        }
        outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
        metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("reminder {} via {} failed after {} attempts: {}", decision.reminder_id, provider, kMaxAttempts,
                     result.message);
        publish(decision, ledger, v1::FAILED, provider, &result);
        record(decision, key, false, true, false);
        break;
      case Kind::kPermanent:
        outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
        metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("reminder {} via {} failed: {}", decision.reminder_id, provider, result.message);
        publish(decision, ledger, v1::FAILED, provider, &result);
        // The stage stays open: the next planning round uses the next channel.
        record(decision, key, false, false, true);
        break;
      case Kind::kUnknown:
        outbox_->finish(decision.reminder_id, outbox::ReminderState::kUnknown);
        metrics_.reminders_unknown.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("reminder {} via {}: outcome unknown: {}", decision.reminder_id, provider, result.message);
        publish(decision, ledger, v1::OUTCOME_UNKNOWN, provider, &result, variant);
        // It may have reached the customer: count it as a contact, never send it again.
        record(decision, key, true, true, false, variant);
        break;
    }
  });
  return retry_at;
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
  std::string bytes;
  event.SerializeToString(&bytes);
  producer_->produce(config_.kafka().delivery_topic(), event.customer_id(), bytes,
                     {{"content-type", "application/x-protobuf"}});
  metrics_.delivery_events_published.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace relance::app
