#include "app/gateway.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
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
         {kc.input_topic(), kc.delivery_topic(), kc.dlq_topic(), kc.call_task_topic(), kc.outcome_topic(),
          kc.inbound_topic()}) {
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
                             kc.outcome_topic(), kc.inbound_topic()},
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
  outbox_ = outbox::make_rocksdb_outbox(config_.store().path());
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
  while (!stop_.load()) {
    auto wait = std::chrono::milliseconds(200);
    if (auto next = schedule_.next_due()) wait = std::min(wait, clock_->real_time_until(*next));
    if (auto timer = transfers_->next_timer()) {
      auto until = std::chrono::ceil<std::chrono::milliseconds>(*timer - std::chrono::steady_clock::now());
      wait = std::clamp(until, std::chrono::milliseconds(0), wait);
    }
    // With requests on the wire the network is the thing to wait on; Kafka is only glanced at.
    bool on_the_wire = transfers_->transfers_in_flight() > 0;
    if (auto record = consumer_->poll(on_the_wire ? std::chrono::milliseconds(0) : wait)) handle(*record);
    transfers_->run_once(on_the_wire ? std::min(wait, std::chrono::milliseconds(5)) : std::chrono::milliseconds(0));
    evaluate_pending();
    fire_due();
    producer_->poll();
    if (dirty_ && std::chrono::steady_clock::now() - last_commit >= commit_every) {
      commit();
      last_commit = std::chrono::steady_clock::now();
    }
  }
  spdlog::info("stopping: settling sends on the wire, flushing delivery events and committing offsets");
  ready_.store(false);
  transfers_->drain(std::chrono::steady_clock::now() + kFlushTimeout);
  evaluate_pending();
  in_flight_.clear();  // still waiting for a rate limit: not sent, planned again after a restart
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
  // Offsets wait for the sends they caused to settle (their outcome is an effect too), but not
  // forever: a long rate-limit queue must not stop the consumer group from making progress.
  if (!in_flight_.empty()) {
    auto now = std::chrono::steady_clock::now();
    if (commit_deferred_since_ == std::chrono::steady_clock::time_point{}) commit_deferred_since_ = now;
    if (now - commit_deferred_since_ < std::chrono::seconds(10)) return;
  }
  commit_deferred_since_ = {};
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
  index_contacts(key, event.value());
  if (event.value().has_delivery_status_reported() && applied.effects.status_changed) {
    metrics_.delivery_reports.fetch_add(1, std::memory_order_relaxed);
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
  // until nothing new is due now; the bound only guards against a policy that never settles.
  for (int round = 0; round < 8; ++round) {
    const auto* ledger = ledger_->find(key);
    if (ledger == nullptr) {
      schedule_.cancel(key);
      return;
    }
    auto confirm_deadline = expire_unconfirmed(key);
    auto now = clock_->now();
    auto plan = rules_for(*ledger).plan(*ledger, now);
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
      if (wake) {
        schedule_.schedule(key, *wake);
      } else {
        schedule_.cancel(key);
      }
      return;
    }
  }
  spdlog::warn("timeline {} still had actions due after 8 rounds; looking again shortly", key);
  schedule_.schedule(key, clock_->now() + std::chrono::seconds(1));
}

void Gateway::evaluate_pending() {
  while (!to_evaluate_.empty()) {
    auto key = std::move(to_evaluate_.extract(to_evaluate_.begin()).value());
    evaluate(key);
  }
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
    auto applied = ledger_->apply(key, event);
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

void Gateway::execute(const rules::Decision& decision, const ledger::CustomerLedger& ledger) {
  const auto key = ledger.key;
  if (!outbox_->begin(decision.reminder_id)) {
    // Handled before a restart (the event was read again because its offset was not committed
    // yet): never sent again, but reported again, since the delivery event may not have left
    // before the crash (its id is the same, so consumers drop a repeat).
    auto state = outbox_->state(decision.reminder_id);
    bool known = ledger.reminders.count(decision.reminder_id) > 0;
    RecordOptions options;
    if (state && !known && decision.channel != v1::CHANNEL_UNSPECIFIED) {
      auto provider = std::string(channels_.at(decision.channel)->provider());
      channels::SendResult recovered;
      recovered.message = "handled before a restart; not sent again";
      switch (*state) {
        case outbox::ReminderState::kAccepted:
          publish(decision, ledger, v1::SENT, provider, &recovered);
          options.contacted = true;
          break;
        case outbox::ReminderState::kSending:
        case outbox::ReminderState::kUnknown:
          // The process stopped while the provider had it: it may or may not have gone out.
          recovered.provider_code = "interrupted";
          publish(decision, ledger, v1::OUTCOME_UNKNOWN, provider, &recovered);
          outbox_->finish(decision.reminder_id, outbox::ReminderState::kUnknown);
          options.contacted = true;
          break;
        case outbox::ReminderState::kFailed:
        case outbox::ReminderState::kSuppressed:
          break;
      }
    }
    record(decision, key, options);
    return;
  }
  if (decision.suppressed) {
    outbox_->finish(decision.reminder_id, outbox::ReminderState::kSuppressed);
    metrics_.reminders_suppressed.fetch_add(1, std::memory_order_relaxed);
    publish(decision, ledger, v1::SUPPRESSED, "", nullptr);
    record(decision, key, {});
    return;
  }
  auto rendered = renderer_->render(decision, ledger, rules_for(ledger).policy());
  if (!rendered) {
    outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
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
  in_flight_[decision.reminder_id] = InFlight{key, decision, rendered->template_variant, adapter->confirms_delivery()};
  metrics_.sends_in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  channels::Outgoing outgoing;
  outgoing.message = std::move(rendered.value());
  outgoing.done = [this, id = decision.reminder_id](channels::SendResult result) { settle(id, std::move(result)); };
  outgoing.still_wanted = [this, key, id = decision.reminder_id] { return still_wanted(key, id); };
  adapter->send(std::move(outgoing));
}

bool Gateway::still_wanted(const std::string& key, const std::string& reminder_id) const {
  const auto* ledger = ledger_->find(key);
  if (ledger == nullptr) return false;
  auto plan = rules_for(*ledger).plan(*ledger, clock_->now());
  if (std::any_of(plan.now.begin(), plan.now.end(),
                  [&](const rules::Decision& d) { return d.reminder_id == reminder_id && !d.suppressed; })) {
    return true;
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
  return std::all_of(decision.invoice_ids.begin(), decision.invoice_ids.end(), [&](const std::string& id) {
    auto inv = ledger->invoices.find(id);
    return inv != ledger->invoices.end() && inv->second.open() && !inv->second.disputed &&
           inv->second.promised_on.empty();
  });
}

void Gateway::settle(const std::string& reminder_id, channels::SendResult result) {
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
  switch (result.kind) {
    case Kind::kAccepted: {
      outbox_->finish(decision.reminder_id, outbox::ReminderState::kAccepted);
      metrics_.reminders_sent.fetch_add(1, std::memory_order_relaxed);
      publish(decision, ledger, v1::SENT, provider, &result, f.template_variant);
      RecordOptions options;
      options.contacted = true;
      options.template_variant = f.template_variant;
      options.provider_message_id = result.provider_message_id;
      options.awaiting_confirmation = f.confirms_delivery && confirm_within_ > Duration::zero();
      record(decision, key, options);
      attempts_.erase(decision.stage_key);
      break;
    }
    case Kind::kCancelled:
      // Not sent: the timeline is planned again as it now stands (paid, paused, or later).
      outbox_->release(decision.reminder_id);
      metrics_.reminders_withdrawn.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("reminder {} withdrawn before sending: {}", decision.reminder_id, result.message);
      break;
    case Kind::kRetriable:
      if (++attempts_[decision.stage_key] < kMaxAttempts) {
        // Provably not sent: forget it so that the next look at this timeline tries again.
        outbox_->release(decision.reminder_id);
        metrics_.reminders_retried.fetch_add(1, std::memory_order_relaxed);
        auto delay = std::max<Duration>(result.retry_after, std::chrono::seconds(1));
        retry_at_[decision.reminder_id] = clock_->now() + delay * attempts_[decision.stage_key];
        spdlog::warn("reminder {} via {}: {} (retry {} of {})", decision.reminder_id, provider, result.message,
                     attempts_[decision.stage_key], kMaxAttempts - 1);
        break;
      }
      outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
      metrics_.reminders_failed.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("reminder {} via {} failed after {} attempts: {}", decision.reminder_id, provider, kMaxAttempts,
                   result.message);
      publish(decision, ledger, v1::FAILED, provider, &result);
      record(decision, key, {});
      break;
    case Kind::kPermanent: {
      outbox_->finish(decision.reminder_id, outbox::ReminderState::kFailed);
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
      outbox_->finish(decision.reminder_id, outbox::ReminderState::kUnknown);
      metrics_.reminders_unknown.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("reminder {} via {}: outcome unknown: {}", decision.reminder_id, provider, result.message);
      publish(decision, ledger, v1::OUTCOME_UNKNOWN, provider, &result, f.template_variant);
      // It may have reached the customer: count it as a contact, never send it again.
      RecordOptions options;
      options.contacted = true;
      options.template_variant = f.template_variant;
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
  std::lock_guard lock(facts_mutex_);
  if (!facts_producer_) return false;
  try {
    facts_producer_->produce(config_.kafka().inbound_topic(), reply.customer_id().empty() ? reply.from() : reply.customer_id(),
                             reply.SerializeAsString(), {{"content-type", "application/x-protobuf"}});
  } catch (const kafka::KafkaError& e) {
    spdlog::error("cannot publish a reply: {}", e.what());
    return false;
  }
  return facts_producer_->flush(std::chrono::seconds(10));
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
  metrics_.delivery_events_published.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace relance::app
