#include "support/sample_events.h"

namespace relance::testing {

relance::v1::InvoiceEvent invoice_issued(const InvoiceSpec& spec) {
  relance::v1::InvoiceEvent e;
  e.set_event_id(spec.event_id);
  e.set_source("billing-test");
  e.mutable_occurred_at()->set_seconds(1'790'000'000);
  auto* inv = e.mutable_invoice_issued()->mutable_invoice();
  inv->set_invoice_id(spec.invoice_id);
  inv->set_number(spec.number);
  inv->set_customer_id(spec.customer_id);
  inv->mutable_amount_total()->set_currency(spec.currency);
  inv->mutable_amount_total()->set_minor_units(spec.amount_due);
  inv->mutable_amount_due()->set_currency(spec.currency);
  inv->mutable_amount_due()->set_minor_units(spec.amount_due);
  inv->set_issued_on("2026-09-01");
  inv->set_due_on(spec.due_on);
  inv->set_payment_link(spec.payment_link);
  auto* c = e.mutable_invoice_issued()->mutable_customer();
  c->set_customer_id(spec.customer_id);
  c->set_name(spec.name);
  c->set_email(spec.email);
  c->set_locale(spec.locale);
  c->set_time_zone(spec.time_zone);
  return e;
}

InvoiceSpec numbered_invoice(long i) {
  const auto n = std::to_string(i);
  InvoiceSpec spec;
  spec.event_id = "issued-" + n;
  spec.customer_id = "cust-" + n;
  spec.invoice_id = "inv-" + n;
  spec.number = "F-2026-" + n;
  spec.email = "customer" + n + "@example.com";
  spec.locale = i % 2 ? "fr-FR" : "en-IE";
  spec.payment_link = "https://pay.example.com/inv-" + n;
  return spec;
}

relance::v1::InvoiceEvent with_sms_consent(relance::v1::InvoiceEvent event, const std::string& phone) {
  auto* customer = event.mutable_invoice_issued()->mutable_customer();
  customer->set_country("FR");
  customer->set_phone(phone);
  auto* consent = customer->add_consents();
  consent->set_channel(relance::v1::SMS);
  consent->set_granted(true);
  return event;
}

relance::v1::InvoiceEvent payment_received(const std::string& event_id, const std::string& invoice_id, int64_t amount,
                                           const std::string& currency) {
  relance::v1::InvoiceEvent e;
  e.set_event_id(event_id);
  e.mutable_payment_received()->set_invoice_id(invoice_id);
  e.mutable_payment_received()->mutable_amount()->set_currency(currency);
  e.mutable_payment_received()->mutable_amount()->set_minor_units(amount);
  return e;
}

}  // namespace relance::testing
