#pragma once

#include <string>

#include "channels/channel.h"
#include "kafka/kafka_client.h"

namespace relance::channels::call_task {

// Hands a call task to the support or collections team by publishing it on the call-task topic,
// keyed by customer id. The record is acknowledged before the input offset that caused it is
// committed, like every other effect.
class CallTaskChannel final : public ChannelAdapter {
 public:
  CallTaskChannel(kafka::Producer& producer, std::string topic) : producer_(producer), topic_(std::move(topic)) {}
  std::string_view provider() const override { return "kafka"; }
  void send(const RenderedMessage& message, SendCallback done) override;

 private:
  kafka::Producer& producer_;
  std::string topic_;
};

}  // namespace relance::channels::call_task
