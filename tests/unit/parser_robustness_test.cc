// Inputs the fuzz targets (tests/fuzz/) found to crash a parser of outside input, kept here so
// that each stays fixed without running the fuzzer.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "app/provider_routes.h"
#include "channels/twilio/twilio_channel.h"
#include "config/config_loader.h"
#include "render/template_catalog.h"

namespace relance {
namespace {

// load_config's contract: a ConfigException listing errors, whatever the text.
std::vector<config::ConfigError> config_errors(const std::string& yaml) {
  try {
    config::load_config(yaml, {});
  } catch (const config::ConfigException& e) {
    return e.errors();
  }
  return {};
}

// A document that is a lone scalar (no space after the colon makes it one) made yaml-cpp throw
// BadSubscript out of load_config when it looked for tenant_policies.
TEST(ParserRobustness, ConfigWhoseTopIsAScalarIsRefused) {
  auto errors = config_errors("channels:policy.calendar.holidays[2].dates[1]KEN(011100012\"}\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "(file)");
  EXPECT_NE(errors[0].message.find("mapping"), std::string::npos) << errors[0].message;
  EXPECT_EQ(config_errors("- kafka\n- channels\n").size(), 1u);
}

// A list or a mapping used as a key made as<std::string>() throw TypedBadConversion out of
// load_config, in a message, a map field (tenant_policies, kafka.properties) alike.
TEST(ParserRobustness, ConfigKeyThatIsAListOrAMappingIsAnError) {
  auto errors = config_errors("policy:\n  stages:\n    - {[a, b]: x}\n");
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].path, "policy.stages[0]");
  EXPECT_FALSE(config_errors("tenant_policies:\n  ? [acme, beta]\n  : {company_name: X}\n").empty());
  EXPECT_FALSE(config_errors("kafka:\n  properties:\n    ? {a: 1}\n    : x\n").empty());
  EXPECT_FALSE(config_errors("? [kafka]\n: {}\n").empty());
}

// A listed message dated after 2262 overflowed system_clock's nanoseconds (signed overflow).
TEST(ParserRobustness, TwilioListedDateBeyondTheClockIsNoMatch) {
  auto since = std::chrono::system_clock::from_time_t(1'700'000'000);
  const std::string list =
      R"({"messages":[{"to":"+15558675310","sid":"SM1","date_created":"Mon, 01 Jun 2826 00:00:00 +0000"},)"
      R"({"to":"+15558675310","sid":"SM2","date_created":"Fri, 24 May 9999 17:44:46 -9999"},)"
      R"({"to":"+15558675310","sid":"SM3","date_created":"Sat, 25 May 2026 09:00:00 -0230"}]})";
  EXPECT_EQ(channels::twilio::find_listed_message(list, "+15558675310", "", "", since), "SM3");
}

// A number no integer holds as Twilio's error code made the cast to long long undefined.
TEST(ParserRobustness, TwilioCodeBeyondAnIntegerIsNoCode) {
  const std::vector<int> twilio{201};
  auto answer = channels::twilio::read_create_answer(
      400, R"({"code": 292233720368547758070, "message": "Too Many Requests", "status": 400})", "", twilio);
  EXPECT_EQ(answer.kind, channels::twilio::ApiAnswer::Kind::kRejected);
  EXPECT_EQ(answer.code, 0);
  EXPECT_EQ(answer.message, "Too Many Requests");
  EXPECT_EQ(channels::twilio::read_create_answer(400, R"({"code": -1e300})", "", twilio).code, 0);
  EXPECT_EQ(channels::twilio::read_create_answer(400, R"({"code": 21211.0})", "", twilio).code, 21211);
}

// kainjow trims line breaks from a tag as it does spaces; variables_used did not, so a tag
// written over two lines rendered empty: the renderer sets only the variables reported as used.
TEST(ParserRobustness, TemplateTagOverTwoLinesCountsItsVariable) {
  using render::variable_bit;
  EXPECT_EQ(render::variables_used("Hello {{customer_name\r\r\r}},\n"), variable_bit("customer_name"));
  EXPECT_EQ(render::variables_used("{{#has_company_contact\n}}{{\tcompany_contact\f}}{{/has_company_contact}}"),
            variable_bit("has_company_contact") | variable_bit("company_contact"));
}

}  // namespace
}  // namespace relance
