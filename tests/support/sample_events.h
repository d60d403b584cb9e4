#pragma once

#include <string>

#include "relance/v1/events.pb.h"

namespace relance::testing {

struct InvoiceSpec {
  std::string event_id = "evt-1";
  std::string customer_id = "cust-1";
  std::string invoice_id = "inv-1";
  std::string number = "F-2026-001";
  std::string email = "jeanne.martin@example.com";
  std::string name = "Jeanne Martin";
  std::string locale = "en-IE";
  std::string time_zone = "Europe/Paris";
  std::string currency = "EUR";
  int64_t amount_due = 12'000;
  std::string due_on = "2026-10-01";
  std::string payment_link = "https://pay.example.com/inv-1";
};

relance::v1::InvoiceEvent invoice_issued(const InvoiceSpec& spec);
// The invoice of customer number i, for streams of many customers: ids, invoice number, email
// and payment link carry i; odd customers read French, even ones English.
InvoiceSpec numbered_invoice(long i);
// The same event with a French mobile number for its customer and their consent to SMS.
relance::v1::InvoiceEvent with_sms_consent(relance::v1::InvoiceEvent event, const std::string& phone);
relance::v1::InvoiceEvent payment_received(const std::string& event_id, const std::string& invoice_id,
                                           int64_t amount, const std::string& currency = "EUR");

}  // namespace relance::testing
