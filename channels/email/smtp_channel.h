#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

#include "channels/channel.h"
#include "relance/v1/config.pb.h"

namespace relance::channels::email {

// Sends multipart/alternative (text + HTML) UTF-8 mail over SMTP with libcurl. The easy handle
// is kept so the connection is reused between messages.
class SmtpChannel final : public ChannelAdapter {
 public:
  SmtpChannel(relance::v1::EmailChannelConfig config, std::string password);
  ~SmtpChannel() override;
  std::string_view provider() const override { return "smtp"; }
  void send(const RenderedMessage& message, SendCallback done) override;

  // Maps a finished transfer to a send outcome; exposed for tests.
  static SendResult classify(CURLcode code, long smtp_reply, const std::string& detail, bool data_started);

 private:
  struct CurlDeleter {
    void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
  };
  relance::v1::EmailChannelConfig config_;
  std::string password_;
  std::string message_id_domain_;
  std::unique_ptr<CURL, CurlDeleter> curl_;
};

}  // namespace relance::channels::email
