#include "decode/event_decoder.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "support/sample_events.h"

namespace relance::decode {
namespace {

using relance::testing::InvoiceSpec;
using relance::testing::invoice_issued;

std::string error_code_of(const relance::v1::InvoiceEvent& event) {
  auto r = validate_event(event);
  return r ? std::string("ok") : r.error().code;
}

TEST(EventDecoder, DecodesBinaryProtobuf) {
  std::string bytes;
  invoice_issued({}).SerializeToString(&bytes);
  auto event = decode_event(bytes, ContentType::kProtobuf);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->invoice_issued().invoice().amount_due().minor_units(), 12'000);
  EXPECT_EQ(error_code_of(event.value()), "ok");
}

TEST(EventDecoder, DecodesCanonicalJsonAndIgnoresUnknownFields) {
  auto event = decode_event(R"({"eventId":"e1","futureField":true,"invoiceIssued":{
      "invoice":{"invoiceId":"i1","customerId":"c1","amountDue":{"currency":"EUR","minorUnits":"500"},
                 "dueOn":"2026-11-15","paymentLink":"https://pay/i1"},
      "customer":{"customerId":"c1","email":"a@b.c","preferredChannels":["EMAIL"]}}})",
                            ContentType::kJson);
  ASSERT_TRUE(event) << event.error().message;
  EXPECT_EQ(event->invoice_issued().customer().preferred_channels(0), relance::v1::EMAIL);
  EXPECT_EQ(error_code_of(event.value()), "ok");
}

TEST(EventDecoder, RejectsUndecodableBytes) {
  auto bin = decode_event("\xff\xff\xff garbage", ContentType::kProtobuf);
  ASSERT_FALSE(bin);
  EXPECT_EQ(bin.error().code, "undecodable");
  auto json = decode_event("{not json", ContentType::kJson);
  ASSERT_FALSE(json);
  EXPECT_EQ(json.error().code, "undecodable");
}

TEST(EventDecoder, ContentTypeHeader) {
  EXPECT_EQ(content_type_from_header("").value(), ContentType::kProtobuf);
  EXPECT_EQ(content_type_from_header("application/x-protobuf").value(), ContentType::kProtobuf);
  EXPECT_EQ(content_type_from_header("Application/JSON; charset=utf-8").value(), ContentType::kJson);
  EXPECT_FALSE(content_type_from_header("text/csv"));
}

TEST(EventValidation, RejectsWhatTheSchemaCannot) {
  auto missing_id = invoice_issued({});
  missing_id.clear_event_id();
  EXPECT_EQ(error_code_of(missing_id), "missing_event_id");

  relance::v1::InvoiceEvent no_kind;
  no_kind.set_event_id("e");
  EXPECT_EQ(error_code_of(no_kind), "missing_kind");

  InvoiceSpec negative;
  negative.amount_due = -1;
  EXPECT_EQ(error_code_of(invoice_issued(negative)), "negative_amount");

  InvoiceSpec impossible;
  impossible.due_on = "2026-02-30";
  EXPECT_EQ(error_code_of(invoice_issued(impossible)), "invalid_date");

  InvoiceSpec currency;
  currency.currency = "euro";
  EXPECT_EQ(error_code_of(invoice_issued(currency)), "invalid_currency");

  InvoiceSpec zone;
  zone.time_zone = "Europe/Atlantis";
  EXPECT_EQ(error_code_of(invoice_issued(zone)), "invalid_time_zone");

  auto unspecified = invoice_issued({});
  unspecified.mutable_invoice_issued()->mutable_customer()->add_preferred_channels(relance::v1::CHANNEL_UNSPECIFIED);
  EXPECT_EQ(error_code_of(unspecified), "unspecified_enum");

  auto payment = relance::testing::payment_received("p1", "", 100);
  EXPECT_EQ(error_code_of(payment), "missing_field");
}

TEST(EventValidation, UnknownKindFromANewerSchemaIsMissingKind) {
  // Field 99 is not part of the oneof this gateway knows.
  std::string bytes;
  relance::v1::InvoiceEvent e;
  e.set_event_id("e-new");
  e.SerializeToString(&bytes);
  bytes += std::string("\x9a\x06\x00", 3);  // field 99, length-delimited, empty
  auto event = decode_event(bytes, ContentType::kProtobuf);
  ASSERT_TRUE(event);
  EXPECT_EQ(error_code_of(event.value()), "missing_kind");
}

}  // namespace
}  // namespace relance::decode
