#include "common/logging.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace relance {
namespace {

TEST(MaskPersonalData, EmailsKeepTheirFirstLetterAndDomain) {
  EXPECT_EQ(mask_personal_data("smtp 550 <jeanne.martin@example.com>: no such user"),
            "smtp 550 <j***@example.com>: no such user");
  EXPECT_EQ(mask_personal_data("a@b.fr and zoe+billing@mail.example.org"), "a***@b.fr and z***@mail.example.org");
  // Not an address: no local part, or no dot in the domain.
  EXPECT_EQ(mask_personal_data("@here and user@localhost"), "@here and user@localhost");
}

TEST(MaskPersonalData, PhoneNumbersKeepTheirFirstAndLastTwoDigits) {
  EXPECT_EQ(mask_personal_data("To +33612345678 refused"), "To +3********78 refused");
  EXPECT_EQ(mask_personal_data("whatsapp:+447700900123"), "whatsapp:+4*********23");
  EXPECT_EQ(mask_personal_data("+33 6 12 34 56 78."), "+3********78.");
  EXPECT_EQ(mask_personal_data("+1-202-555-0143"), "+1********43");
}

TEST(MaskPersonalData, NumbersThatAreNotPhonesStay) {
  for (const char* text : {"offset 123456789 of partition 3", "retry in +2 s", "+1234567 is too short",
                           "rem_+33612345678x is glued to letters", "took 12.5 ms", "2026-11-24T10:00:00+01:00"}) {
    EXPECT_EQ(mask_personal_data(text), text);
  }
}

std::string formatted(LogFormat format, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(make_log_formatter(format));
  spdlog::logger logger("relance", sink);
  logger.info("{}", message);
  return out.str();
}

TEST(LogFormat, JsonLinesCarryTheContextAndAMaskedEscapedMessage) {
  std::string line;
  {
    LogContext event("evt-42", {});
    LogContext reminder({}, "rem-7");
    line = formatted(LogFormat::kJson, "mail to jeanne@example.com: \"550\"\nrefused");
  }
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per entry";
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("level").string_value(), "info");
  EXPECT_EQ(f.at("message").string_value(), "mail to j***@example.com: \"550\"\nrefused");
  EXPECT_EQ(f.at("event_id").string_value(), "evt-42");
  EXPECT_EQ(f.at("reminder_id").string_value(), "rem-7");
  EXPECT_EQ(f.at("time").string_value().size(), 24u);  // 2026-11-24T10:00:00.000Z

  // Outside any context the ids are left out.
  auto plain = formatted(LogFormat::kJson, "started");
  EXPECT_EQ(plain.find("event_id"), std::string::npos);
  EXPECT_EQ(plain.find("reminder_id"), std::string::npos);
}

TEST(LogFormat, TextIsForPeopleAndMaskedToo) {
  auto line = formatted(LogFormat::kText, "SMS to +33612345678 accepted");
  EXPECT_NE(line.find("[info] SMS to +3********78 accepted"), std::string::npos) << line;
  EXPECT_EQ(line.front(), '[');
}

}  // namespace
}  // namespace relance
