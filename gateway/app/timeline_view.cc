#include "app/timeline_view.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "app/preview.h"
#include "common/dates.h"
#include "rules/timeline_simulator.h"

namespace relance::app {

namespace v1 = relance::v1;

namespace {

std::string instant_or_empty(Instant at) { return at == Instant{} ? std::string() : format_rfc3339(at); }

v1::TimelineInvoice::Status status_of(const ledger::InvoiceState& state) {
  if (state.cancelled) return v1::TimelineInvoice::CANCELLED;
  return state.paid() ? v1::TimelineInvoice::PAID : v1::TimelineInvoice::OPEN;
}

}  // namespace

v1::CustomerTimeline timeline_view(const ledger::CustomerLedger& ledger, const rules::ReminderRules& rules, Instant now) {
  v1::CustomerTimeline out;
  out.set_key(ledger.key);
  out.set_customer_id(ledger.customer.customer_id());
  out.set_tenant_id(ledger.tenant_id);
  out.set_partition(ledger.partition);
  out.set_as_of(format_rfc3339(now));
  *out.mutable_customer() = ledger.customer;

  for (const auto& [id, state] : ledger.invoices) {
    auto* invoice = out.add_invoices();
    invoice->set_invoice_id(id);
    invoice->set_number(state.invoice.number());
    *invoice->mutable_amount_total() = state.invoice.amount_total();
    *invoice->mutable_amount_due() = state.invoice.amount_due();
    invoice->set_issued_on(state.invoice.issued_on());
    invoice->set_due_on(state.invoice.due_on());
    invoice->set_status(status_of(state));
    invoice->set_disputed(state.disputed);
    invoice->set_promised_on(state.promised_on);
    invoice->set_resume_on(state.resume_on);
    invoice->set_payment_plan_id(state.plan_id);
    invoice->set_reminders_sent(state.reminders_sent);
    invoice->set_last_stage(state.last_stage_name);
    invoice->set_last_channel(state.last_channel);
    invoice->set_last_reminder_at(instant_or_empty(state.last_reminder_at));
    if (auto late = ledger.late_invoices.find(id); late != ledger.late_invoices.end()) {
      invoice->set_late_since(late->second);
    }
  }
  for (const auto& [id, plan] : ledger.plans) {
    auto* view = out.add_payment_plans();
    view->set_plan_id(id);
    view->set_currency(plan.currency);
    for (const auto& invoice_id : plan.invoice_ids) view->add_invoice_ids(invoice_id);
    for (const auto& installment : plan.installments) {
      auto* i = view->add_installments();
      i->set_due_on(installment.due_on);
      i->set_amount(installment.amount);
      i->set_paid(installment.paid);
    }
  }

  std::vector<std::pair<const std::string*, const ledger::SentReminder*>> sent;
  sent.reserve(ledger.reminders.size());
  for (const auto& [id, reminder] : ledger.reminders) sent.emplace_back(&id, &reminder);
  std::stable_sort(sent.begin(), sent.end(),
                   [](const auto& a, const auto& b) { return a.second->sent_at < b.second->sent_at; });
  for (const auto& [id, reminder] : sent) {
    auto* message = out.add_messages();
    message->set_reminder_id(*id);
    message->set_stage(reminder->stage);
    message->set_channel(reminder->channel);
    message->set_tone(reminder->tone);
    for (const auto& invoice_id : reminder->invoice_ids) message->add_invoice_ids(invoice_id);
    message->set_sent_at(instant_or_empty(reminder->sent_at));
    message->set_status(reminder->status);
    message->set_provider_message_id(reminder->provider_message_id);
    message->set_awaiting_confirmation(reminder->awaiting_confirmation);
    message->set_fell_back(reminder->fell_back);
    message->set_call_outcome(reminder->call_outcome);
    for (const auto& line : reminder->explanation) message->add_explanation(line);
    message->set_subject(reminder->subject);
    message->set_text(reminder->text);
  }
  for (auto channel : ledger.opted_out) out.add_opted_out(channel);
  for (auto channel : ledger.failed_channels) out.add_failed_channels(channel);
  if (ledger.next_due) out.set_next_action_at(format_rfc3339(*ledger.next_due));

  // On a copy: the simulator records what it plays.
  ledger::CustomerLedger copy = ledger;
  auto actions = rules::TimelineSimulator(rules).run(copy, now, now + kTimelineHorizon);
  const auto& zone =
      ledger.customer.time_zone().empty() ? rules.policy().default_time_zone() : ledger.customer.time_zone();
  append_planned_actions(*out.mutable_upcoming(), actions, zone);
  return out;
}

std::string timeline_json(const v1::CustomerTimeline& timeline) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(timeline, &out, options);
  if (!status.ok()) throw std::runtime_error("cannot print the timeline as JSON: " + status.ToString());
  out += '\n';
  return out;
}

}  // namespace relance::app
