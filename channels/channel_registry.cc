#include "channels/channel_registry.h"

#include <google/protobuf/util/time_util.h>

#include "channels/call_task/call_task_channel.h"
#include "channels/capture/capture_channel.h"
#include "channels/email/smtp_channel.h"
#include "channels/twilio/twilio_channel.h"

namespace relance::channels {

namespace v1 = relance::v1;

namespace {

bool has_sender(const v1::TwilioChannelConfig& twilio, v1::Channel channel) {
  if (twilio.account_sid().empty()) return false;
  for (const auto& s : twilio.senders()) {
    if (s.channel() == channel) return true;
  }
  return !(channel == v1::SMS ? twilio.sms_from() : twilio.whatsapp_from()).empty();
}

// The providers configured, channel by channel (the capture adapter and call tasks aside).
std::set<v1::Channel> provider_channels(const v1::Config& config) {
  std::set<v1::Channel> channels;
  if (!config.channels().email().smtp_url().empty()) channels.insert(v1::EMAIL);
  for (auto channel : {v1::SMS, v1::WHATSAPP}) {
    if (has_sender(config.channels().twilio(), channel)) channels.insert(channel);
  }
  return channels;
}

}  // namespace

ChannelMap make_channels(const v1::Config& config, const config::Environment& env, kafka::Producer* producer,
                         http::TransferLoop& loop) {
  ChannelMap channels;
  const auto& email = config.channels().email();
  if (!email.smtp_url().empty()) {
    channels[v1::EMAIL] =
        std::make_shared<email::SmtpChannel>(email, config::secret(env, email.password_env(), email.password_file()), loop);
  }
  const auto& twilio = config.channels().twilio();
  if (!twilio.account_sid().empty()) {
    auto account = std::make_shared<twilio::TwilioAccount>(twilio, config::secret(env, twilio.auth_token_env(), twilio.auth_token_file()),
                                                           config.http().public_url(), loop);
    for (auto channel : {v1::SMS, v1::WHATSAPP}) {
      if (has_sender(twilio, channel)) channels[channel] = std::make_shared<twilio::TwilioChannel>(account, channel);
    }
  }
  bool providers = !channels.empty();
  if (producer != nullptr) {
    std::unique_ptr<call_task::CallTaskWebhook> webhook;
    const auto& ct = config.channels().call_task();
    if (!ct.webhook_url().empty()) {
      webhook = std::make_unique<call_task::CallTaskWebhook>(
          ct.webhook_url(), config::secret(env, ct.secret_env(), ct.secret_file()),
          std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(ct.timeout())),
          ct.max_attempts(), loop);
    }
    channels[v1::CALL_TASK] =
        std::make_shared<call_task::CallTaskChannel>(*producer, config.kafka().call_task_topic(), std::move(webhook));
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
  auto channels = provider_channels(config);
  const auto& capture = config.channels().capture();
  if (channels.empty() || capture.always()) {
    for (auto channel : {v1::EMAIL, v1::SMS, v1::WHATSAPP}) channels.insert(channel);
  }
  channels.insert(v1::CALL_TASK);  // the call-task topic is always there
  return channels;
}

}  // namespace relance::channels
