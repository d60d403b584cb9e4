#include "channels/call_task/call_task_channel.h"

namespace relance::channels::call_task {

void CallTaskChannel::send(const RenderedMessage& message, SendCallback done) {
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
  done({SendResult::Kind::kAccepted, message.reminder_id, "", "", "queued", {}});
}

}  // namespace relance::channels::call_task
