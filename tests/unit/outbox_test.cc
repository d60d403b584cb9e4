#include "outbox/outbox.h"

#include <gtest/gtest.h>

namespace relance::outbox {
namespace {

TEST(Outbox, AReminderIdBeginsOnce) {
  auto outbox = make_in_memory_outbox();
  EXPECT_TRUE(outbox->begin("rem-1"));
  EXPECT_FALSE(outbox->begin("rem-1"));
  EXPECT_EQ(outbox->state("rem-1"), ReminderState::kSending);
  outbox->finish("rem-1", ReminderState::kAccepted);
  EXPECT_EQ(outbox->state("rem-1"), ReminderState::kAccepted);
  EXPECT_FALSE(outbox->begin("rem-1"));
}

TEST(Outbox, ReleaseAllowsARetryOfWhatWasProvablyNotSent) {
  auto outbox = make_in_memory_outbox();
  ASSERT_TRUE(outbox->begin("rem-1"));
  outbox->release("rem-1");
  EXPECT_FALSE(outbox->state("rem-1"));
  EXPECT_TRUE(outbox->begin("rem-1"));
}

}  // namespace
}  // namespace relance::outbox
