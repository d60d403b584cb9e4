#include "outbox/outbox.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

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

namespace relance::outbox {
namespace {

TEST(RocksDbOutbox, StatesSurviveAReopen) {
  auto dir = std::filesystem::temp_directory_path() / ("relance-outbox-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    auto outbox = make_rocksdb_outbox(dir.string());
    EXPECT_TRUE(outbox->begin("rem-sent"));
    outbox->finish("rem-sent", ReminderState::kAccepted);
    EXPECT_TRUE(outbox->begin("rem-crashed"));  // a crash while the provider was being called
    EXPECT_TRUE(outbox->begin("rem-refused"));
    outbox->release("rem-refused");             // provably not sent
  }
  auto outbox = make_rocksdb_outbox(dir.string());
  EXPECT_EQ(outbox->state("rem-sent"), ReminderState::kAccepted);
  EXPECT_EQ(outbox->state("rem-crashed"), ReminderState::kSending);
  EXPECT_FALSE(outbox->state("rem-refused"));
  EXPECT_FALSE(outbox->begin("rem-sent"));
  EXPECT_FALSE(outbox->begin("rem-crashed"));
  EXPECT_TRUE(outbox->begin("rem-refused"));
  outbox.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace relance::outbox
