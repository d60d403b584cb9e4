#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "channels/channel.h"
#include "channels/http/transfer_loop.h"
#include "channels/twilio/rate_limiter.h"
#include "relance/v1/config.pb.h"

namespace relance::channels::twilio {

// What a Messages API answer means for the message (EXTERNAL.md §1), apart from the transport.
struct ApiAnswer {
  enum class Kind {
    kCreated,        // the message exists; sid names it
    kThrottled,      // 429 / 20429: never processed, safe to send again after a pause
    kMaybeCreated,   // 5xx after the request was sent: it may exist, look before resending
    kRejected,       // a final 4xx
  };
  Kind kind = Kind::kRejected;
  std::string sid;
  int http_status = 0;
  int code = 0;          // Twilio's error code, 0 when none
  std::string message;   // Twilio's error message
  std::chrono::milliseconds retry_after{0};
};
// Reads one answer to a create request. `success` lists the statuses that mean created.
ApiAnswer read_create_answer(long http_status, const std::string& body, const std::string& retry_after_header,
                             const std::vector<int>& success);
// From a Messages list (GET Messages.json), the sid of a message to `to` from `from` created at
// or after `since` whose body is `body` (any body when empty); empty when none.
std::string find_listed_message(const std::string& list_body, const std::string& to, const std::string& from,
                                const std::string& body, std::chrono::system_clock::time_point since);

// One account at a Twilio-compatible provider: the requests in flight for it (bounded), a queue
// and a pace per sender, and the answers mapped to send results. Messages wait here, in the
// gateway, where a payment can still withdraw them, never at the provider.
class TwilioAccount {
 public:
  TwilioAccount(relance::v1::TwilioChannelConfig config, std::string secret, std::string public_url,
                http::TransferLoop& loop);
  ~TwilioAccount();
  TwilioAccount(const TwilioAccount&) = delete;
  TwilioAccount& operator=(const TwilioAccount&) = delete;

  void send(relance::v1::Channel channel, Outgoing outgoing);
  const std::string& provider_name() const { return provider_; }
  bool status_callbacks() const { return !public_url_.empty(); }
  std::size_t queued() const;
  std::size_t in_flight() const { return in_flight_; }

 private:
  struct Sender;
  struct Job;
  struct Request;

  Sender& sender_for(relance::v1::Channel channel, const std::string& customer);
  const std::vector<Sender*>& senders_of(relance::v1::Channel channel) const;
  void pump();
  void arm(Sender& sender, std::chrono::steady_clock::time_point at);
  void start_create(std::shared_ptr<Job> job);
  void start_lookup(std::shared_ptr<Job> job);
  void on_created(std::shared_ptr<Job> job, Request& request, CURLcode code);
  void on_listed(std::shared_ptr<Job> job, Request& request, CURLcode code);
  void requeue(std::shared_ptr<Job> job, std::chrono::milliseconds delay);
  void reconcile_later(std::shared_ptr<Job> job, std::chrono::milliseconds delay);
  void finish(std::shared_ptr<Job> job, SendResult result);
  std::chrono::milliseconds backoff(int attempt);
  std::chrono::milliseconds request_timeout() const;
  Request& new_request();
  void release(Request& request);

  relance::v1::TwilioChannelConfig config_;
  std::string secret_;
  std::string public_url_;
  std::string provider_;
  std::vector<int> success_;
  http::TransferLoop& loop_;
  std::string messages_url_;
  std::string user_;
  std::vector<std::unique_ptr<Sender>> senders_;
  std::vector<Sender*> sms_senders_, whatsapp_senders_;  // senders_ by channel, in order
  std::deque<Sender*> ready_;  // senders with work, in turn
  std::deque<std::shared_ptr<Job>> lookups_;  // reconciliations waiting for a free slot
  bool pumping_ = false;
  std::size_t in_flight_ = 0;
  std::size_t max_in_flight_ = 0;
  std::mt19937_64 random_{std::random_device{}()};
  std::vector<std::unique_ptr<Request>> pool_;  // easy handles, kept for connection reuse
  std::vector<Request*> idle_;
};

// SMS or WhatsApp through a TwilioAccount.
class TwilioChannel final : public ChannelAdapter {
 public:
  TwilioChannel(std::shared_ptr<TwilioAccount> account, relance::v1::Channel channel)
      : account_(std::move(account)), channel_(channel) {}
  std::string_view provider() const override { return account_->provider_name(); }
  void send(Outgoing outgoing) override { account_->send(channel_, std::move(outgoing)); }
  bool confirms_delivery() const override { return account_->status_callbacks(); }
  bool can_look_up() const override { return true; }
  bool consults_before_sending() const override { return true; }

 private:
  std::shared_ptr<TwilioAccount> account_;
  relance::v1::Channel channel_;
};

}  // namespace relance::channels::twilio
