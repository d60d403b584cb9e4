#include <gtest/gtest.h>

#include "app/provider_routes.h"
#include "channels/twilio/twilio_channel.h"

namespace relance::channels::twilio {
namespace {

using Kind = ApiAnswer::Kind;
const std::vector<int> kTwilio{201};

TEST(TwilioAnswer, CreatedCarriesTheSid) {
  auto a = read_create_answer(201, R"({"sid":"SM0123","status":"queued","error_code":null})", "", kTwilio);
  EXPECT_EQ(a.kind, Kind::kCreated);
  EXPECT_EQ(a.sid, "SM0123");
}

TEST(TwilioAnswer, SuccessCodesComeFromTheProviderProfile) {
  // Telnyx answers 200; for a Twilio profile a 200 is unexpected, so the message may exist.
  EXPECT_EQ(read_create_answer(200, R"({"sid":"a-uuid"})", "", {200}).kind, Kind::kCreated);
  EXPECT_EQ(read_create_answer(200, R"({"sid":"a-uuid"})", "", kTwilio).kind, Kind::kMaybeCreated);
}

TEST(TwilioAnswer, ThrottlingIsRetriableAndHonoursRetryAfter) {
  auto a = read_create_answer(429, R"({"code":20429,"message":"Too Many Requests","status":429})", "3", kTwilio);
  EXPECT_EQ(a.kind, Kind::kThrottled);
  EXPECT_EQ(a.code, 20429);
  EXPECT_EQ(a.retry_after, std::chrono::seconds(3));
  // The code alone says so even behind a proxy that changed the status.
  EXPECT_EQ(read_create_answer(400, R"({"code":20429})", "", kTwilio).kind, Kind::kThrottled);
}

TEST(TwilioAnswer, ServerErrorsMayHaveCreatedTheMessage) {
  EXPECT_EQ(read_create_answer(500, "", "", kTwilio).kind, Kind::kMaybeCreated);
  EXPECT_EQ(read_create_answer(503, "<html>busy</html>", "", kTwilio).kind, Kind::kMaybeCreated);
}

TEST(TwilioAnswer, ClientErrorsAreFinalWithTwiliosCode) {
  auto a = read_create_answer(
      400, R"({"code":21211,"message":"The 'To' number is not valid.","more_info":"https://x","status":400})", "",
      kTwilio);
  EXPECT_EQ(a.kind, Kind::kRejected);
  EXPECT_EQ(a.code, 21211);
  EXPECT_EQ(a.message, "The 'To' number is not valid.");
  auto unreadable = read_create_answer(401, "nope", "", kTwilio);
  EXPECT_EQ(unreadable.kind, Kind::kRejected);
  EXPECT_EQ(unreadable.code, 0);
  EXPECT_EQ(unreadable.message, "HTTP 401");
}

TEST(TwilioAnswer, AListedMessageIsFoundByRecipientSenderBodyAndTime) {
  const std::string list = R"({"messages":[
    {"sid":"SMnew","to":"+33612345678","from":"+15005550006","body":"Hello","date_created":"Tue, 24 Nov 2026 10:00:05 +0000"},
    {"sid":"SMold","to":"+33612345678","from":"+15005550006","body":"Hello","date_created":"Mon, 23 Nov 2026 10:00:05 +0000"}
  ],"page":0})";
  auto since = std::chrono::system_clock::from_time_t(1795514400);  // 2026-11-24T10:00:00Z
  EXPECT_EQ(find_listed_message(list, "+33612345678", "+15005550006", "Hello", since), "SMnew");
  EXPECT_EQ(find_listed_message(list, "+33612345678", "", "", since), "SMnew");
  EXPECT_EQ(find_listed_message(list, "+33612345678", "+15005550006", "Other", since), "");
  EXPECT_EQ(find_listed_message(list, "+33699999999", "+15005550006", "Hello", since), "");
  EXPECT_EQ(find_listed_message(list, "+33612345678", "+15005550006", "Hello", since + std::chrono::minutes(1)), "");
  EXPECT_EQ(find_listed_message("not json", "+33612345678", "", "", since), "");
}

}  // namespace
}  // namespace relance::channels::twilio

namespace relance::app {
namespace {

TEST(ReplyKeyword, StopAndStartWordsInEnglishAndFrench) {
  for (const char* word : {"STOP", "stop", " Stop ", "STOP.", "UNSUBSCRIBE", "ARRET", "ARRÊT", "arret", "Cancel"}) {
    EXPECT_EQ(reply_keyword(word), ReplyKeyword::kStop) << word;
  }
  for (const char* word : {"START", "start", "UNSTOP", "Oui"}) EXPECT_EQ(reply_keyword(word), ReplyKeyword::kStart) << word;
  for (const char* text : {"", "Can I pay next week?", "please stop calling me at work", "stopped"}) {
    EXPECT_EQ(reply_keyword(text), ReplyKeyword::kNone) << text;
  }
}

}  // namespace
}  // namespace relance::app
