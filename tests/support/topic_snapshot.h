#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "support/kafka_test_client.h"

namespace relance::testing {

// Every record of a topic up to its end offsets as of the call, partition by partition in
// offset order (partitions interleaved as they arrive). Unlike read_topic it neither stops at a
// count nor waits for more: what a test polls while another process keeps producing. Throws
// when the end is not reached within `timeout`.
std::vector<ConsumedRecord> read_topic_to_end(const std::string& bootstrap, const std::string& topic,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace relance::testing
