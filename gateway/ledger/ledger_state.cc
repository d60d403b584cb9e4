#include <algorithm>
#include <cctype>

#include "common/dates.h"
#include "ledger/ledger.h"
#include "ledger/phone_check.h"

namespace relance::ledger {

namespace v1 = relance::v1;

namespace {

// Contacts older than the longest cap window no longer matter.
constexpr auto kContactMemory = std::chrono::hours(24 * 8);

void mark_late(CustomerLedger& ledger, const std::string& invoice_id, const std::string& day) {
  ledger.late_invoices.emplace(invoice_id, day);
}

void apply_payment_to_plan(PaymentPlanState& plan, int64_t amount) {
  for (auto& inst : plan.installments) {
    if (amount <= 0) break;
    auto take = std::min(amount, inst.amount - inst.paid);
    if (take > 0) {
      inst.paid += take;
      amount -= take;
    }
  }
}

void upsert_invoice(CustomerLedger& ledger, const v1::Invoice& invoice) {
  auto& state = ledger.invoices[invoice.invoice_id()];
  bool was_open = state.open();
  state.invoice = invoice;
  if (was_open && state.paid() && state.reminders_sent > 0) state.paid_after_reminders = true;
}

bool looks_like_email(const std::string& email) {
  auto at = email.find('@');
  return at != std::string::npos && at > 0 && email.find('.', at) != std::string::npos &&
         email.find_first_of(" \t\r\n<>") == std::string::npos;
}

}  // namespace

ContactValidity check_contacts(const v1::Customer& customer) {
  ContactValidity v;
  v.email = looks_like_email(customer.email());
  auto phone = check_phone(customer.phone(), customer.country());
  v.phone = phone.valid;
  v.mobile = phone.mobile;
  v.whatsapp = customer.whatsapp().empty() ? phone.mobile : check_phone(customer.whatsapp(), customer.country()).valid;
  return v;
}

void set_customer(CustomerLedger& c, const v1::Customer& customer) {
  // Every invoice carries its customer again, and classifying a phone number is most of the
  // cost of applying one: the numbers' answers are kept while the numbers and the country are
  // those they were given for (the ledger's contacts always describe its customer).
  const bool same_numbers = customer.phone() == c.customer.phone() && customer.whatsapp() == c.customer.whatsapp() &&
                            customer.country() == c.customer.country();
  if (same_numbers) {
    c.contacts.email = looks_like_email(customer.email());
  } else {
    c.contacts = check_contacts(customer);
  }
  c.customer = customer;
}

int delivery_rank(v1::DeliveryStatus status) {
  switch (status) {
    case v1::QUEUED:
      return 0;
    case v1::SENT:
    case v1::OUTCOME_UNKNOWN:
      return 1;
    case v1::FAILED:
    case v1::UNDELIVERED:
    case v1::BOUNCED:
      return 2;
    case v1::DELIVERED:
      return 3;
    case v1::READ:
      return 4;
    default:
      return 0;
  }
}

bool fall_back(CustomerLedger& c, const std::string& reminder_id) {
  auto it = c.reminders.find(reminder_id);
  if (it == c.reminders.end()) return false;
  auto& r = it->second;
  if (r.fell_back || delivery_rank(r.status) >= delivery_rank(v1::DELIVERED)) return false;
  r.fell_back = true;
  r.awaiting_confirmation = false;
  c.stage_failed_channels[r.stage_key].insert(r.channel);
  // The stage is open again for its next channel; a later stage already reached stays.
  for (std::size_t i = 0; i < r.reached.size(); ++i) {
    const auto& [subject, reached] = r.reached[i];
    auto stage = c.last_stage.find(subject);
    if (stage == c.last_stage.end() || stage->second != reached) continue;
    if (r.before[i].second < 0) {
      c.last_stage.erase(stage);
    } else {
      stage->second = r.before[i].second;
    }
  }
  // The customer was not reached: the contact does not count towards the cap.
  if (auto made = std::find(c.contacts_made.begin(), c.contacts_made.end(), r.sent_at); made != c.contacts_made.end()) {
    c.contacts_made.erase(made);
  }
  return true;
}

namespace {

void apply_delivery_report(CustomerLedger& c, const v1::DeliveryStatusReported& k, EventEffects* effects) {
  auto it = c.reminders.find(k.reminder_id());
  if (it == c.reminders.end()) return;
  auto& r = it->second;
  // Reports arrive out of order and repeat: only a step forward counts.
  if (delivery_rank(k.status()) <= delivery_rank(r.status)) return;
  r.status = k.status();
  if (!k.provider_message_id().empty()) r.provider_message_id = k.provider_message_id();
  if (effects) effects->status_changed = true;
  if (delivery_rank(k.status()) >= delivery_rank(v1::DELIVERED)) {
    r.awaiting_confirmation = false;
  } else if (fall_back(c, k.reminder_id()) && effects) {
    effects->fell_back = true;
  }
}

v1::InvoiceEvent derived_event(const v1::InvoiceEvent& from) {
  v1::InvoiceEvent e;
  e.set_event_id(from.event_id());
  *e.mutable_occurred_at() = from.occurred_at();
  e.set_tenant_id(from.tenant_id());
  e.set_source(from.source());
  return e;
}

}  // namespace

std::vector<std::string> apply_event(CustomerLedger& c, const v1::InvoiceEvent& event, EventEffects* effects) {
  if (!event.tenant_id().empty()) c.tenant_id = event.tenant_id();
  // Which invoices were open with reminders before, to tell which this event closes.
  std::vector<std::string> open_before;
  for (const auto& [id, inv] : c.invoices) {
    if (inv.open() && inv.reminders_sent > 0) open_before.push_back(id);
  }
  switch (event.kind_case()) {
    case v1::InvoiceEvent::kInvoiceIssued: {
      const auto& k = event.invoice_issued();
      set_customer(c, k.customer());
      upsert_invoice(c, k.invoice());
      break;
    }
    case v1::InvoiceEvent::kInvoiceUpdated:
      upsert_invoice(c, event.invoice_updated().invoice());
      break;
    case v1::InvoiceEvent::kPaymentReceived: {
      const auto& k = event.payment_received();
      auto it = c.invoices.find(k.invoice_id());
      if (it == c.invoices.end()) break;
      auto& state = it->second;
      bool was_open = state.open();
      auto* due = state.invoice.mutable_amount_due();
      due->set_minor_units(std::max<int64_t>(0, due->minor_units() - k.amount().minor_units()));
      if (!state.plan_id.empty()) {
        if (auto plan = c.plans.find(state.plan_id); plan != c.plans.end()) {
          apply_payment_to_plan(plan->second, k.amount().minor_units());
        }
      }
      if (k.has_paid_at()) {
        auto paid_day = format_iso_date(local_date(
            Instant{std::chrono::seconds(k.paid_at().seconds())},
            c.customer.time_zone().empty() ? std::string("UTC") : c.customer.time_zone()));
        if (paid_day > state.invoice.due_on()) mark_late(c, state.invoice.invoice_id(), state.invoice.due_on());
      }
      if (was_open && state.paid() && state.reminders_sent > 0) state.paid_after_reminders = true;
      break;
    }
    case v1::InvoiceEvent::kPaymentPlanAgreed: {
      const auto& k = event.payment_plan_agreed();
      PaymentPlanState plan;
      plan.plan_id = k.plan_id().empty() ? event.event_id() : k.plan_id();
      for (const auto& id : k.invoice_ids()) {
        plan.invoice_ids.push_back(id);
        if (auto it = c.invoices.find(id); it != c.invoices.end()) {
          it->second.plan_id = plan.plan_id;
          it->second.promised_on.clear();
        }
      }
      for (const auto& inst : k.installments()) {
        plan.currency = inst.amount().currency();
        plan.installments.push_back({inst.due_on(), inst.amount().minor_units(), 0});
      }
      c.plans[plan.plan_id] = std::move(plan);
      break;
    }
    case v1::InvoiceEvent::kPromiseToPay:
      for (const auto& id : event.promise_to_pay().invoice_ids()) {
        if (auto it = c.invoices.find(id); it != c.invoices.end()) {
          it->second.promised_on = event.promise_to_pay().promised_on();
        }
      }
      break;
    case v1::InvoiceEvent::kDisputeOpened:
      if (auto it = c.invoices.find(event.dispute_opened().invoice_id()); it != c.invoices.end()) {
        it->second.disputed = true;
      }
      break;
    case v1::InvoiceEvent::kDisputeResolved:
      if (auto it = c.invoices.find(event.dispute_resolved().invoice_id()); it != c.invoices.end()) {
        it->second.disputed = false;
        if (event.has_occurred_at()) {
          auto tz = c.customer.time_zone().empty() ? std::string("UTC") : c.customer.time_zone();
          auto day = local_date(Instant{std::chrono::seconds(event.occurred_at().seconds())}, tz);
          it->second.resume_on = format_iso_date(std::chrono::year_month_day{std::chrono::sys_days{day} + std::chrono::days{1}});
        }
        if (event.dispute_resolved().outcome() == v1::DisputeResolved::UPHELD) {
          it->second.cancelled = true;
          it->second.cancel_reason = v1::InvoiceCancelled::CREDITED;
        }
      }
      break;
    case v1::InvoiceEvent::kInvoiceCancelled:
      if (auto it = c.invoices.find(event.invoice_cancelled().invoice_id()); it != c.invoices.end()) {
        it->second.cancelled = true;
        it->second.cancel_reason = event.invoice_cancelled().reason();
      }
      break;
    case v1::InvoiceEvent::kCustomerUpdated: {
      const auto& customer = event.customer_updated().customer();
      // New contact data gets a fresh chance on channels that failed with the old data.
      if (customer.email() != c.customer.email()) c.failed_channels.erase(v1::EMAIL);
      if (customer.phone() != c.customer.phone()) {
        c.failed_channels.erase(v1::SMS);
        c.failed_channels.erase(v1::CALL_TASK);
      }
      if (customer.whatsapp() != c.customer.whatsapp()) c.failed_channels.erase(v1::WHATSAPP);
      set_customer(c, customer);
      break;
    }
    case v1::InvoiceEvent::kConsentChanged: {
      // Kept apart from the customer snapshot, which billing keeps sending without it.
      const auto& k = event.consent_changed();
      if (k.granted()) {
        c.opted_out.erase(k.channel());
      } else {
        c.opted_out.insert(k.channel());
      }
      break;
    }
    case v1::InvoiceEvent::kDeliveryStatusReported:
      apply_delivery_report(c, event.delivery_status_reported(), effects);
      break;
    case v1::InvoiceEvent::kContactUnreachable:
      for (auto channel : event.contact_unreachable().channels()) c.failed_channels.insert(static_cast<v1::Channel>(channel));
      break;
    case v1::InvoiceEvent::kCallOutcomeRecorded: {
      // The call's task names its invoices; the outcome becomes the same fact billing would send.
      const auto& k = event.call_outcome_recorded();
      auto task = c.reminders.find(k.task_id());
      if (task == c.reminders.end()) break;
      task->second.call_outcome = v1::CallOutcomeRecorded::Outcome_Name(k.outcome());
      std::transform(task->second.call_outcome.begin(), task->second.call_outcome.end(),
                     task->second.call_outcome.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      auto fact = derived_event(event);
      switch (k.outcome()) {
        case v1::CallOutcomeRecorded::PROMISE_TO_PAY: {
          auto* promise = fact.mutable_promise_to_pay();
          for (const auto& id : task->second.invoice_ids) promise->add_invoice_ids(id);
          promise->set_promised_on(k.promised_on());
          promise->set_note(k.note());
          apply_event(c, fact);
          break;
        }
        case v1::CallOutcomeRecorded::DISPUTE:
          for (const auto& id : task->second.invoice_ids) {
            auto* dispute = fact.mutable_dispute_opened();
            dispute->set_invoice_id(id);
            dispute->set_dispute_id(k.task_id());
            dispute->set_reason(k.note());
            apply_event(c, fact);
          }
          break;
        case v1::CallOutcomeRecorded::WRONG_NUMBER:
          // Every channel that uses the phone number; a new number in a customer update clears it.
          for (auto channel : {v1::SMS, v1::WHATSAPP, v1::CALL_TASK}) c.failed_channels.insert(channel);
          break;
        default:
          break;
      }
      break;
    }
    case v1::InvoiceEvent::KIND_NOT_SET:
      break;
  }
  std::vector<std::string> resolved;
  for (const auto& id : open_before) {
    if (!c.invoices.at(id).open()) resolved.push_back(id);
  }
  return resolved;
}

void apply_action(CustomerLedger& c, const ActionRecord& action) {
  SentReminder* sent = nullptr;
  if (action.contacted && !action.reminder_id.empty()) {
    sent = &c.reminders[action.reminder_id];
    sent->stage_key = action.stage_key;
    sent->channel = action.channel;
    sent->invoice_ids = action.invoice_ids;
    sent->stage = action.stage;
    sent->tone = action.tone;
    sent->sent_at = action.at;
    sent->awaiting_confirmation = action.awaiting_confirmation;
    sent->provider_message_id = action.provider_message_id;
    sent->explanation = action.explanation;
    sent->subject = action.subject;
    sent->text = action.text;
  }
  for (const auto& [subject, stage] : action.subjects) {
    auto [it, inserted] = c.last_stage.emplace(subject, stage);
    if (sent != nullptr) {
      sent->reached.emplace_back(subject, stage);
      sent->before.emplace_back(subject, inserted ? -1 : it->second);
    }
    if (!inserted) it->second = std::max(it->second, stage);
  }
  if (action.channel_failed_permanently) c.failed_channels.insert(action.channel);
  if (action.opted_out) c.opted_out.insert(action.channel);
  for (const auto& id : action.invoice_ids) {
    auto it = c.invoices.find(id);
    if (it == c.invoices.end()) continue;
    auto& inv = it->second;
    if (action.kind == ActionRecord::Kind::kThankYou) {
      inv.thanked = true;
      continue;
    }
    if (action.broken_promise) inv.promised_on.clear();
    if (!action.contacted) continue;
    // One reminder may go out on several channels at once (a call and its email): it counts once.
    bool same_reminder = inv.reminders_sent > 0 && inv.last_reminder_at == action.at;
    if (!same_reminder && inv.reminders_sent++ == 0) inv.first_reminder_at = action.at;
    inv.last_reminder_at = action.at;
    inv.last_channel = action.channel;
    inv.last_stage_name = action.stage;
    inv.last_tone = action.tone;
    inv.last_template = action.template_name;
    inv.last_variant = action.template_variant;
    if (action.overdue) mark_late(c, id, inv.invoice.due_on());
  }
  // Messages of one decision on several channels (a call and its email) are one contact.
  if (action.contacted && action.kind != ActionRecord::Kind::kThankYou &&
      (c.contacts_made.empty() || c.contacts_made.back() != action.at)) {
    c.contacts_made.push_back(action.at);
    std::sort(c.contacts_made.begin(), c.contacts_made.end());
    auto horizon = action.at - kContactMemory;
    c.contacts_made.erase(c.contacts_made.begin(),
                          std::lower_bound(c.contacts_made.begin(), c.contacts_made.end(), horizon));
  }
}

}  // namespace relance::ledger
