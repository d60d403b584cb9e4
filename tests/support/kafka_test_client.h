#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "kafka/kafka_client.h"

namespace relance::testing {

struct ConsumedRecord {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  kafka::Headers headers;
  std::string header(const std::string& name) const;
};

// Creates topics with the Admin API; throws on any failure other than "already exists".
void create_topics(const std::string& bootstrap, const std::vector<std::string>& topics, int partitions);

// Produces records and waits for their acknowledgement, as a billing service would.
void produce(const std::string& bootstrap, const std::string& topic, const std::string& key, const std::string& value,
             const kafka::Headers& headers = {});

// Produces (key, value) records in order with one producer, then waits for all of them: a batch
// arrives at once, as fast as the broker takes it.
void produce_all(const std::string& bootstrap, const std::string& topic,
                 const std::vector<std::pair<std::string, std::string>>& records);

// Reads a topic from the beginning (no consumer group commits) until `at_least` records have
// arrived or `timeout` passes, then keeps reading for `settle` to catch unexpected extras.
std::vector<ConsumedRecord> read_topic(const std::string& bootstrap, const std::string& topic, std::size_t at_least,
                                       std::chrono::milliseconds timeout,
                                       std::chrono::milliseconds settle = std::chrono::milliseconds(0));

}  // namespace relance::testing
