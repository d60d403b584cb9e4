// Producer::produce_then, which answers status callbacks without holding a thread: its callback
// comes once, true when the broker acknowledged the record, false when no acknowledgement came
// in time. librdkafka's in-process cluster injects the fault (a partition without a leader):
// one real broker cannot refuse one partition alone.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "kafka/kafka_client.h"

namespace relance::testing {
namespace {

using namespace std::chrono_literals;

// The answers a produce_then callback gave, in order.
class Answers {
 public:
  std::function<void(bool)> callback() {
    return [this](bool ok) {
      std::lock_guard lock(mutex_);
      answers_.push_back(ok);
      changed_.notify_all();
    };
  }
  std::vector<bool> wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return answers_.size() >= count; });
    return answers_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<bool> answers_;
};

TEST(ProducerAcknowledgement, AnAcknowledgedRecordIsAnsweredTrueOnce) {
  kafka::EmbeddedCluster cluster;
  cluster.create_topic("facts", 1);
  kafka::Producer producer({{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "1"}});
  Answers answers;
  producer.produce_then("facts", "key", "value", {}, 10s, answers.callback());
  EXPECT_EQ(answers.wait_for(1, 15s), std::vector<bool>{true});
  // The deadline passing later changes nothing.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(answers.wait_for(2, 0ms), std::vector<bool>{true});
}

TEST(ProducerAcknowledgement, NoAcknowledgementInTimeIsAnsweredFalseOnceEvenIfTheRecordIsWrittenLater) {
  kafka::EmbeddedCluster cluster;
  cluster.create_topic("facts", 1);
  kafka::Producer producer({{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "1"}});
  // The producer knows the partition and its leader first.
  Answers warm;
  producer.produce_then("facts", "key", "first", {}, 10s, warm.callback());
  ASSERT_EQ(warm.wait_for(1, 15s), std::vector<bool>{true});

  cluster.set_leader("facts", 0, -1);
  Answers answers;
  auto started = std::chrono::steady_clock::now();
  producer.produce_then("facts", "key", "second", {}, 500ms, answers.callback());
  EXPECT_EQ(answers.wait_for(1, 10s), std::vector<bool>{false});
  EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms);
  // The leader back, librdkafka delivers the record (it never gives up on one): the caller was
  // told already, and is not told twice.
  cluster.set_leader("facts", 0, 1);
  EXPECT_TRUE(producer.flush(60s));
  EXPECT_EQ(answers.wait_for(2, 0ms), std::vector<bool>{false});
}

}  // namespace
}  // namespace relance::testing
