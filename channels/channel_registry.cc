#include "channels/channel_registry.h"

#include "channels/call_task/call_task_channel.h"
#include "channels/capture/capture_channel.h"
#include "channels/email/smtp_channel.h"

namespace relance::channels {

namespace v1 = relance::v1;

ChannelMap make_channels(const v1::Config& config, const config::Environment& env, kafka::Producer* producer) {
  ChannelMap channels;
  const auto& email = config.channels().email();
  if (!email.smtp_url().empty()) {
    channels[v1::EMAIL] = std::make_shared<email::SmtpChannel>(email, config::lookup(env, email.password_env()));
  }
  bool providers = !channels.empty();
  if (producer != nullptr) {
    channels[v1::CALL_TASK] = std::make_shared<call_task::CallTaskChannel>(*producer, config.kafka().call_task_topic());
  }

  const auto& capture = config.channels().capture();
  if (!providers || capture.always()) {
    auto adapter = std::make_shared<capture::CaptureChannel>(capture.dir());
    for (auto channel : {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK}) {
      if (capture.always() || !channels.count(channel)) channels[channel] = adapter;
    }
  }
  return channels;
}

std::set<v1::Channel> available_channels(const v1::Config& config) {
  // Mirrors make_channels above: a provider per configured channel, the capture adapter for
  // the rest when no provider is configured at all, or for every channel when always set.
  std::set<v1::Channel> channels;
  if (!config.channels().email().smtp_url().empty()) channels.insert(v1::EMAIL);
  const auto& capture = config.channels().capture();
  if (channels.empty() || capture.always()) {
    for (auto channel : {v1::EMAIL, v1::SMS, v1::WHATSAPP}) channels.insert(channel);
  }
  channels.insert(v1::CALL_TASK);  // the call-task topic is always there
  return channels;
}

}  // namespace relance::channels
