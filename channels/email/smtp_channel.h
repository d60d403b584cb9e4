#pragma once

#include <curl/curl.h>

#include <cstddef>
#include <memory>
#include <string>

#include "channels/channel.h"
#include "channels/http/transfer_loop.h"
#include "relance/v1/config.pb.h"

namespace relance::channels::email {

// Sends multipart/alternative (text + HTML) UTF-8 mail over SMTP with libcurl, asynchronously on
// the gateway's TransferLoop: send() never blocks and no thread is started.
//
// - At most kMaxInFlight messages are on the wire at once; the rest wait in this adapter in
//   FIFO order. Just before a message actually starts (at once, or when a slot frees up),
//   Outgoing::still_wanted is asked; false completes it with kCancelled and nothing is sent.
// - A small pool of easy handles is reused (reset per message). The SMTP connections live in
//   the loop's multi handle cache, so consecutive messages reuse them (libcurl closes those idle
//   for more than about two minutes).
// - `done` runs exactly once per message, on the loop's thread, possibly before send() returns
//   (a cancelled or refused message). It may call send() again.
// - Destroying the adapter abandons messages still waiting for a slot (their `done` never runs,
//   like a message waiting for a timer when the loop is drained); messages already on the wire
//   complete, and their `done` runs, as the loop makes progress.
class SmtpChannel final : public ChannelAdapter {
 public:
  static constexpr std::size_t kMaxInFlight = 4;

  SmtpChannel(relance::v1::EmailChannelConfig config, std::string password, http::TransferLoop& loop);
  ~SmtpChannel() override;
  SmtpChannel(const SmtpChannel&) = delete;
  SmtpChannel& operator=(const SmtpChannel&) = delete;

  std::string_view provider() const override { return "smtp"; }
  bool consults_before_sending() const override { return true; }
  void send(Outgoing outgoing) override;

  // Messages on the wire, and waiting for a slot.
  std::size_t in_flight() const;
  std::size_t queued() const;

  // Maps a finished transfer to a send outcome; exposed for tests.
  static SendResult classify(CURLcode code, long smtp_reply, const std::string& detail, bool data_started);

 private:
  struct Core;
  std::shared_ptr<Core> core_;
};

}  // namespace relance::channels::email
