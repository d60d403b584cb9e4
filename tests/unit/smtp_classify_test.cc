#include <gtest/gtest.h>

#include "channels/email/smtp_channel.h"

namespace relance::channels::email {
namespace {

using Kind = SendResult::Kind;

TEST(SmtpClassify, OnlyProvablyUnsentFailuresAreRetried) {
  EXPECT_EQ(SmtpChannel::classify(CURLE_OK, 250, "", true).kind, Kind::kAccepted);
  EXPECT_EQ(SmtpChannel::classify(CURLE_COULDNT_CONNECT, 0, "", false).kind, Kind::kRetriable);
  EXPECT_EQ(SmtpChannel::classify(CURLE_SEND_ERROR, 451, "", true).kind, Kind::kRetriable);
  EXPECT_EQ(SmtpChannel::classify(CURLE_SEND_ERROR, 550, "", false).kind, Kind::kPermanent);
  EXPECT_EQ(SmtpChannel::classify(CURLE_LOGIN_DENIED, 535, "", false).kind, Kind::kPermanent);
  // Cut off mid-DATA with no reply: the server may have the message.
  EXPECT_EQ(SmtpChannel::classify(CURLE_OPERATION_TIMEDOUT, 354, "", true).kind, Kind::kUnknown);
  EXPECT_EQ(SmtpChannel::classify(CURLE_OPERATION_TIMEDOUT, 0, "", false).kind, Kind::kRetriable);
  EXPECT_EQ(SmtpChannel::classify(CURLE_SEND_ERROR, 550, "", false).provider_code, "550");
}

}  // namespace
}  // namespace relance::channels::email
