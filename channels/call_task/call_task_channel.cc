#include "channels/call_task/call_task_channel.h"

#include <google/protobuf/util/json_util.h>

#include <chrono>

#include "relance/v1/call_task.pb.h"

namespace relance::channels::call_task {

void CallTaskChannel::send(Outgoing outgoing) {
  const auto& message = outgoing.message;
  auto& done = outgoing.done;
  if (message.payload.empty()) {
    done({SendResult::Kind::kPermanent, "", "no_call_task", "the message carries no call task", "", {}});
    return;
  }
  try {
    producer_.produce(topic_, message.customer_id, message.payload, {{"content-type", "application/x-protobuf"}});
  } catch (const kafka::KafkaError& e) {
    // Refused locally before anything left the process: safe to try again.
    done({SendResult::Kind::kRetriable, "", "kafka", e.what(), "", std::chrono::seconds(5)});
    return;
  }
  if (webhook_) {
    relance::v1::CallTask task;
    std::string json;
    if (task.ParseFromString(message.payload) && google::protobuf::util::MessageToJsonString(task, &json).ok()) {
      auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
      webhook_->post(task.task_id(), std::move(json), now.count());
    }
  }
  done({SendResult::Kind::kAccepted, message.reminder_id, "", "", "queued", {}});
}

}  // namespace relance::channels::call_task
