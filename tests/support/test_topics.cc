#include "support/test_topics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "support/kafka_test_client.h"

namespace relance::testing {

namespace {

std::string name_of_running_test() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->name()) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

TestTopics::TestTopics() : TestTopics(name_of_running_test()) {}

TestTopics::TestTopics(std::string name) : suffix(std::move(name)) {
  input = "billing.invoice-events." + suffix;
  delivery = "relance.delivery-events." + suffix;
  dlq = "relance.dlq." + suffix;
  outcomes = "relance.reminder-outcomes." + suffix;
  calls = "relance.call-tasks." + suffix;
  inbound = "relance.inbound-replies." + suffix;
  changelog = "relance.changelog." + suffix;
}

void TestTopics::create(const std::string& bootstrap, int partitions) const {
  create_topics(bootstrap, {input, delivery, dlq, outcomes, calls, inbound, changelog}, partitions);
}

std::string TestTopics::kafka_yaml() const {
  return "kafka:\n"
         "  group_id: relance-" + suffix + "\n"
         "  input_topic: " + input + "\n"
         "  delivery_topic: " + delivery + "\n"
         "  dlq_topic: " + dlq + "\n"
         "  call_task_topic: " + calls + "\n"
         "  outcome_topic: " + outcomes + "\n"
         "  inbound_topic: " + inbound + "\n"
         "  changelog_topic: " + changelog + "\n"
         "  commit_interval: 200ms\n";
}

}  // namespace relance::testing
