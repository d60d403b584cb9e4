#pragma once

#include <memory>
#include <string>

#include "channels/call_task/call_task_webhook.h"
#include "channels/channel.h"
#include "kafka/kafka_client.h"

namespace relance::channels::call_task {

// Hands a call task to the support or collections team by publishing it on the call-task topic,
// keyed by customer id. The record is acknowledged before the input offset that caused it is
// committed, like every other effect.
class CallTaskChannel final : public ChannelAdapter {
 public:
  // With a webhook, each task is also POSTed there as JSON (a copy for a helpdesk or chat tool).
  CallTaskChannel(kafka::Producer& producer, std::string topic, std::unique_ptr<CallTaskWebhook> webhook = nullptr)
      : producer_(producer), topic_(std::move(topic)), webhook_(std::move(webhook)) {}
  std::string_view provider() const override { return "kafka"; }
  void send(Outgoing outgoing) override;

 private:
  kafka::Producer& producer_;
  std::string topic_;
  std::unique_ptr<CallTaskWebhook> webhook_;
};

}  // namespace relance::channels::call_task
