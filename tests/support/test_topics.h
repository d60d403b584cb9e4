#pragma once

#include <string>
#include <vector>

namespace relance::testing {

// One test's own topics and consumer group, named after the running test (and the process),
// so that tests never share them.
struct TestTopics {
  TestTopics();
  // Named after `suffix` instead (outside a running test).
  explicit TestTopics(std::string suffix);
  std::string suffix;
  std::string input, delivery, dlq, outcomes, calls, inbound, changelog;

  // Creates them with one partition (or `partitions`): records are processed in the order they
  // are produced. The changelog has as many partitions as the input, as the gateway requires.
  void create(const std::string& bootstrap, int partitions = 1) const;
  // The `kafka:` part of a gateway configuration that uses them.
  std::string kafka_yaml() const;
};

}  // namespace relance::testing
