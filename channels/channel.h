#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "render/rendered_message.h"

namespace relance::channels {

// What a provider said about one message.
struct SendResult {
  enum class Kind {
    kAccepted,   // the provider took the message; provider_message_id names it
    kRetriable,  // provably not sent (refused connection, 429, 4xx SMTP): safe to try again
    kPermanent,  // will never succeed as it is (bad address, opted out, auth refused)
    kUnknown,    // may or may not have been sent (timeout after the request): never resend blindly
  };
  Kind kind = Kind::kPermanent;
  std::string provider_message_id;
  std::string provider_code;      // the provider's own code ("550", "21211")
  std::string message;            // human-readable detail, free of personal data
  std::string provider_response;  // the provider's reply status, for the trail
  std::chrono::milliseconds retry_after{0};
};

using SendCallback = std::function<void(SendResult)>;

// One delivery channel. Adapters live in channels/<name>/, are listed in channel_registry.cc,
// and the core names no provider.
class ChannelAdapter {
 public:
  virtual ~ChannelAdapter() = default;
  // The provider's name as it appears in delivery events ("smtp", "capture").
  virtual std::string_view provider() const = 0;
  // Sends one message; `done` is called exactly once, possibly before send() returns.
  virtual void send(const RenderedMessage& message, SendCallback done) = 0;
};
using ChannelAdapterPtr = std::shared_ptr<ChannelAdapter>;

}  // namespace relance::channels
