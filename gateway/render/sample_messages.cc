#include "render/sample_messages.h"

#include <set>

namespace relance::render {

namespace v1 = relance::v1;

namespace {

void add_channels(std::set<v1::Channel>& out, const google::protobuf::RepeatedField<int>& list) {
  for (int c : list) out.insert(static_cast<v1::Channel>(c));
}

v1::Money euros(int64_t minor_units) {
  v1::Money m;
  m.set_currency("EUR");
  m.set_minor_units(minor_units);
  return m;
}

}  // namespace

std::vector<MessageSlot> message_slots(const v1::PolicyConfig& policy) {
  std::vector<MessageSlot> slots;
  for (int i = 0; i < policy.stages_size(); ++i) {
    const auto& stage = policy.stages(i);
    std::set<v1::Channel> channels;
    const auto& tc = stage.channels();
    for (const auto* list : {&tc.minor(), &tc.middle(), &tc.large(), &tc.minor_alongside(), &tc.middle_alongside(),
                             &tc.large_alongside()}) {
      add_channels(channels, *list);
    }
    for (auto channel : channels) {
      for (auto tone : {v1::FRIENDLY, v1::COURTEOUS, v1::FIRM, v1::FINAL}) {
        MessageSlot s;
        s.kind = stage.action() == v1::ESCALATE ? rules::ActionKind::kEscalation : rules::ActionKind::kReminder;
        s.stage = stage.name();
        s.stage_index = i;
        s.template_name = stage.template_().empty() ? stage.name() : stage.template_();
        s.channel = channel;
        s.tone = tone;
        s.offer_payment_plan = stage.offer_payment_plan();
        s.mention_late_terms = stage.mention_late_terms();
        slots.push_back(s);
      }
    }
  }
  if (policy.thank_you()) {
    for (auto channel : {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK}) {
      MessageSlot s;
      s.kind = rules::ActionKind::kThankYou;
      s.stage = "thank_you";
      s.template_name = "thank_you";
      s.channel = channel;
      s.tone = v1::FRIENDLY;
      slots.push_back(s);
    }
  }
  return slots;
}

SampleMessage sample_message(const MessageSlot& slot, const std::string& locale, SampleKind kind) {
  SampleMessage m;
  auto& customer = m.ledger.customer;
  bool worst = kind == SampleKind::kWorstCase;
  customer.set_customer_id("cus_sample");
  customer.set_name(worst ? "Marie-Christine de La Tour-Bellefontaine" : "Camille Martin");
  customer.set_email("camille.martin@example.com");
  customer.set_phone("+33612345678");
  customer.set_locale(locale);
  m.ledger.key = "cus_sample";

  auto& d = m.decision;
  d.kind = slot.kind;
  d.reminder_id = "rem_sample";
  d.stage = slot.stage;
  d.stage_index = slot.stage_index;
  d.template_name = slot.template_name;
  d.channel = slot.channel;
  d.tone = slot.tone;
  d.offer_payment_plan = slot.offer_payment_plan;
  d.mention_late_terms = slot.mention_late_terms;

  int count = kind == SampleKind::kGrouped ? 3 : 1;
  int64_t total = 0;
  const int64_t amounts[] = {12000, 48050, 7525};
  for (int i = 0; i < count; ++i) {
    rules::DecisionItem item;
    item.invoice_id = "inv_" + std::to_string(i + 1);
    item.subject_id = item.invoice_id;
    item.number = "F-2026-00" + std::to_string(i + 1);
    item.payment_link = worst ? "https://pay.example-company-payments.com/i/8f3a9c2e7b1d4ef01"
                              : "https://pay.example.com/F-2026-00" + std::to_string(i + 1);
    item.amount_due = euros(worst ? 99999999 : amounts[i]);
    // The longest month names: September in English, septembre in French.
    item.due_on = worst ? "2026-09-30" : "2026-11-1" + std::to_string(5 + i);
    item.days_overdue = slot.stage_index <= 0 ? 0 : 3 + 7 * (slot.stage_index - 1);
    item.stage_index = slot.stage_index;
    total += item.amount_due.minor_units();
    d.invoice_ids.push_back(item.invoice_id);
    if (slot.kind != rules::ActionKind::kThankYou) d.items.push_back(item);

    ledger::InvoiceState state;
    state.invoice.set_invoice_id(item.invoice_id);
    state.invoice.set_number(item.number);
    *state.invoice.mutable_amount_total() = item.amount_due;
    *state.invoice.mutable_amount_due() = item.amount_due;
    state.invoice.set_due_on(item.due_on);
    state.invoice.set_payment_link(item.payment_link);
    m.ledger.invoices[item.invoice_id] = state;
  }
  d.total_due = euros(total);
  return m;
}

}  // namespace relance::render
