#include "decode/event_decoder.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>

#include "common/dates.h"

namespace relance::decode {

namespace v1 = relance::v1;

namespace {

std::string trim_lower(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ';') break;  // parameters such as "; charset=utf-8" do not change the format
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

Error invalid(std::string code, std::string message) { return Error{std::move(code), std::move(message), false}; }

std::optional<Error> check_money(const v1::Money& money, const std::string& path, bool required) {
  if (!required && money.currency().empty() && money.minor_units() == 0) return std::nullopt;
  const auto& c = money.currency();
  if (c.size() != 3 || !std::all_of(c.begin(), c.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
    return invalid("invalid_currency", path + ".currency must be an ISO 4217 code, got '" + c + "'");
  }
  if (money.minor_units() < 0) return invalid("negative_amount", path + ".minor_units must not be negative");
  return std::nullopt;
}

std::optional<Error> check_date(const std::string& date, const std::string& path, bool required) {
  if (date.empty() && !required) return std::nullopt;
  if (!parse_iso_date(date)) return invalid("invalid_date", path + " must be a real date YYYY-MM-DD, got '" + date + "'");
  return std::nullopt;
}

std::optional<Error> require(const std::string& value, const std::string& path) {
  if (value.empty()) return invalid("missing_field", path + " is required");
  return std::nullopt;
}

std::optional<Error> check_invoice(const v1::Invoice& inv, const std::string& path) {
  if (auto e = require(inv.invoice_id(), path + ".invoice_id")) return e;
  if (auto e = require(inv.customer_id(), path + ".customer_id")) return e;
  if (auto e = check_money(inv.amount_due(), path + ".amount_due", true)) return e;
  if (auto e = check_money(inv.amount_total(), path + ".amount_total", false)) return e;
  if (auto e = check_date(inv.due_on(), path + ".due_on", true)) return e;
  if (auto e = check_date(inv.issued_on(), path + ".issued_on", false)) return e;
  return std::nullopt;
}

std::optional<Error> check_customer(const v1::Customer& c, const std::string& path) {
  if (auto e = require(c.customer_id(), path + ".customer_id")) return e;
  for (int i = 0; i < c.preferred_channels_size(); ++i) {
    if (c.preferred_channels(i) == v1::CHANNEL_UNSPECIFIED) {
      return invalid("unspecified_enum", path + ".preferred_channels[" + std::to_string(i) + "] is CHANNEL_UNSPECIFIED");
    }
  }
  for (int i = 0; i < c.consents_size(); ++i) {
    if (c.consents(i).channel() == v1::CHANNEL_UNSPECIFIED) {
      return invalid("unspecified_enum", path + ".consents[" + std::to_string(i) + "].channel is CHANNEL_UNSPECIFIED");
    }
  }
  if (!c.time_zone().empty() && !is_known_time_zone(c.time_zone())) {
    return invalid("invalid_time_zone", path + ".time_zone '" + c.time_zone() + "' is not an IANA time zone");
  }
  return std::nullopt;
}

std::optional<Error> check_kind(const v1::InvoiceEvent& e) {
  switch (e.kind_case()) {
    case v1::InvoiceEvent::kInvoiceIssued: {
      const auto& k = e.invoice_issued();
      if (auto err = check_invoice(k.invoice(), "invoice_issued.invoice")) return err;
      if (auto err = check_customer(k.customer(), "invoice_issued.customer")) return err;
      if (k.customer().customer_id() != k.invoice().customer_id()) {
        return invalid("missing_field", "invoice_issued.customer.customer_id differs from the invoice's customer_id");
      }
      return std::nullopt;
    }
    case v1::InvoiceEvent::kInvoiceUpdated:
      return check_invoice(e.invoice_updated().invoice(), "invoice_updated.invoice");
    case v1::InvoiceEvent::kPaymentReceived: {
      const auto& k = e.payment_received();
      if (auto err = require(k.invoice_id(), "payment_received.invoice_id")) return err;
      return check_money(k.amount(), "payment_received.amount", true);
    }
    case v1::InvoiceEvent::kPaymentPlanAgreed: {
      const auto& k = e.payment_plan_agreed();
      if (k.invoice_ids().empty()) return invalid("missing_field", "payment_plan_agreed.invoice_ids is required");
      for (int i = 0; i < k.installments_size(); ++i) {
        auto path = "payment_plan_agreed.installments[" + std::to_string(i) + "]";
        if (auto err = check_date(k.installments(i).due_on(), path + ".due_on", true)) return err;
        if (auto err = check_money(k.installments(i).amount(), path + ".amount", true)) return err;
      }
      return std::nullopt;
    }
    case v1::InvoiceEvent::kPromiseToPay: {
      const auto& k = e.promise_to_pay();
      if (k.invoice_ids().empty()) return invalid("missing_field", "promise_to_pay.invoice_ids is required");
      if (auto err = check_date(k.promised_on(), "promise_to_pay.promised_on", true)) return err;
      return check_money(k.amount(), "promise_to_pay.amount", false);
    }
    case v1::InvoiceEvent::kDisputeOpened:
      return require(e.dispute_opened().invoice_id(), "dispute_opened.invoice_id");
    case v1::InvoiceEvent::kDisputeResolved:
      if (auto err = require(e.dispute_resolved().invoice_id(), "dispute_resolved.invoice_id")) return err;
      if (e.dispute_resolved().outcome() == v1::DisputeResolved::OUTCOME_UNSPECIFIED) {
        return invalid("unspecified_enum", "dispute_resolved.outcome is OUTCOME_UNSPECIFIED");
      }
      return std::nullopt;
    case v1::InvoiceEvent::kInvoiceCancelled:
      if (auto err = require(e.invoice_cancelled().invoice_id(), "invoice_cancelled.invoice_id")) return err;
      if (e.invoice_cancelled().reason() == v1::InvoiceCancelled::REASON_UNSPECIFIED) {
        return invalid("unspecified_enum", "invoice_cancelled.reason is REASON_UNSPECIFIED");
      }
      return std::nullopt;
    case v1::InvoiceEvent::kCustomerUpdated:
      return check_customer(e.customer_updated().customer(), "customer_updated.customer");
    case v1::InvoiceEvent::kConsentChanged:
      if (e.consent_changed().channel() == v1::CHANNEL_UNSPECIFIED) {
        return invalid("unspecified_enum", "consent_changed.channel is CHANNEL_UNSPECIFIED");
      }
      return std::nullopt;
    case v1::InvoiceEvent::kDeliveryStatusReported: {
      const auto& k = e.delivery_status_reported();
      if (auto err = require(k.reminder_id(), "delivery_status_reported.reminder_id")) return err;
      if (k.status() == v1::DELIVERY_STATUS_UNSPECIFIED) {
        return invalid("unspecified_enum", "delivery_status_reported.status is DELIVERY_STATUS_UNSPECIFIED");
      }
      return std::nullopt;
    }
    case v1::InvoiceEvent::kContactUnreachable:
      if (e.contact_unreachable().channels().empty()) {
        return invalid("missing_field", "contact_unreachable.channels is required");
      }
      return std::nullopt;
    case v1::InvoiceEvent::kCallOutcomeRecorded: {
      const auto& k = e.call_outcome_recorded();
      if (auto err = require(k.task_id(), "call_outcome_recorded.task_id")) return err;
      if (k.outcome() == v1::CallOutcomeRecorded::OUTCOME_UNSPECIFIED) {
        return invalid("unspecified_enum", "call_outcome_recorded.outcome is OUTCOME_UNSPECIFIED");
      }
      if (k.outcome() == v1::CallOutcomeRecorded::PROMISE_TO_PAY) {
        return check_date(k.promised_on(), "call_outcome_recorded.promised_on", true);
      }
      return std::nullopt;
    }
    case v1::InvoiceEvent::KIND_NOT_SET:
      break;
  }
  return invalid("missing_kind", "the event has no kind (empty or unknown oneof)");
}

}  // namespace

Result<ContentType> content_type_from_header(std::string_view header) {
  auto value = trim_lower(header);
  if (value.empty() || value == "application/x-protobuf" || value == "application/protobuf" ||
      value == "application/vnd.google.protobuf") {
    return ContentType::kProtobuf;
  }
  if (value == "application/json") return ContentType::kJson;
  return Error{"unsupported_content_type", "content-type '" + std::string(header) + "' is not supported", false};
}

Result<v1::InvoiceEvent> decode_event(std::string_view bytes, ContentType type) {
  v1::InvoiceEvent event;
  if (type == ContentType::kJson) {
    google::protobuf::util::JsonParseOptions options;
    // Fields added by newer producers must not stop older gateways.
    options.ignore_unknown_fields = true;
    auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(bytes.data(), bytes.size()), &event, options);
    if (!status.ok()) return Error{"undecodable", "invalid protobuf JSON: " + status.ToString(), false};
    return event;
  }
  if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Error{"undecodable", "bytes are not a relance.v1.InvoiceEvent in binary protobuf", false};
  }
  return event;
}

Result<bool> validate_event(const v1::InvoiceEvent& event) {
  if (event.event_id().empty()) return invalid("missing_event_id", "event_id is required");
  if (auto err = check_kind(event)) return *err;
  return true;
}

std::string subject_key(const v1::InvoiceEvent& event) {
  switch (event.kind_case()) {
    case v1::InvoiceEvent::kInvoiceIssued:
      return event.invoice_issued().invoice().customer_id();
    case v1::InvoiceEvent::kInvoiceUpdated:
      return event.invoice_updated().invoice().customer_id();
    case v1::InvoiceEvent::kCustomerUpdated:
      return event.customer_updated().customer().customer_id();
    case v1::InvoiceEvent::kConsentChanged:
      return event.consent_changed().customer_id();
    case v1::InvoiceEvent::kContactUnreachable:
      return event.contact_unreachable().customer_id();
    default:
      return {};
  }
}

}  // namespace relance::decode
