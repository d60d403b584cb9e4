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
    kCancelled,  // withdrawn before it left: still_wanted() said no (paid or paused meanwhile)
  };
  Kind kind = Kind::kPermanent;
  std::string provider_message_id;
  std::string provider_code;      // the provider's own code ("550", "21211")
  std::string message;            // human-readable detail, free of personal data
  std::string provider_response;  // the provider's reply status, for the trail
  std::chrono::milliseconds retry_after{0};
  // With kPermanent: the recipient asked the provider to stop (Twilio 21610); the channel is
  // recorded as opted out for this customer, not as broken.
  bool recipient_opted_out = false;
  // Measured by adapters that can (zero otherwise): whether a sender's rate limit held the
  // message, and how long the provider took to answer its last request.
  bool waited_for_rate_limit = false;
  std::chrono::microseconds provider_latency{0};
  // Requests the adapter made for this message (more than one after retriable answers it
  // handled itself: 429, a refused connection, a 5xx whose look-up found nothing).
  int attempts = 1;
};

using SendCallback = std::function<void(SendResult)>;

// One message handed to an adapter.
struct Outgoing {
  RenderedMessage message;
  // Called exactly once, on the gateway's thread, possibly before send() returns.
  SendCallback done;
  // Asked just before the message leaves, after any wait for a rate limit or a free slot: false
  // withdraws it (done gets kCancelled), so a payment that arrives meanwhile still stops it.
  // Empty: always wanted.
  std::function<bool()> still_wanted;
  // This reminder was marked sending before a restart and its outcome is unknown: an adapter
  // that can look messages up (can_look_up()) checks first and sends only if it finds none.
  bool interrupted = false;
};

// One delivery channel. Adapters live in channels/<name>/, are listed in channel_registry.cc,
// and the core names no provider.
class ChannelAdapter {
 public:
  virtual ~ChannelAdapter() = default;
  // The provider's name as it appears in delivery events ("smtp", "capture").
  virtual std::string_view provider() const = 0;
  virtual void send(Outgoing outgoing) = 0;
  // True when the provider later reports delivery (status callbacks): the gateway then waits
  // for that verdict, and may fall back to the next channel without it.
  virtual bool confirms_delivery() const { return false; }
  // True when the provider can be asked whether a message exists, so a send cut off by a
  // crash is reconciled instead of reported unknown or sent blindly.
  virtual bool can_look_up() const { return false; }
  // True when the adapter asks Outgoing::still_wanted right before each message leaves. The
  // gateway then records the reminder as sending at that instant, not when it is queued, so a
  // crash leaves only what was really on its way in doubt.
  virtual bool consults_before_sending() const { return false; }
};
using ChannelAdapterPtr = std::shared_ptr<ChannelAdapter>;

}  // namespace relance::channels
