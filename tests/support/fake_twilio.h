#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace relance::testing {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// One scripted answer to a message-create POST. Every member has an initializer, so designated
// initializers may leave any out under -Wextra: {.status = 429, .headers = {{"Retry-After", "2"}}}.
struct FakeResponse {
  int status = 201;
  // Empty: a Twilio-shaped body is generated (2xx: the message resource; otherwise a Twilio error
  // {code, message, more_info, status}).
  std::string body{};
  // For generated error bodies (e.g. 20429, 21211, 21610); 0 picks one from the status
  // (401 20003, 404 20404, 429 20429, 500 20500, 503 20503, other 4xx 21211, other 5xx 20500).
  int twilio_code = 0;
  std::map<std::string, std::string> headers{};  // e.g. {"Retry-After", "2"}
  std::chrono::milliseconds delay{0};          // answer only after this long (to provoke client timeouts)
  // The message is created even though the answer is an error or late (a timeout after send).
  // A 2xx answer always creates it.
  bool create = false;
};

// A message that exists at the provider.
struct FakeMessage {
  std::string sid, account_sid, from, to, body, content_sid, content_variables, status_callback,
      messaging_service_sid;
  std::chrono::system_clock::time_point created;
  FormFields form;  // the create request's form, decoded, in order
  // "queued" when created ("accepted" with a Messaging Service); post_status() moves it (and sets
  // error_code) like Twilio would.
  std::string status = "queued";
  std::string error_code;
};

// One HTTP request the fake received.
struct FakeRequest {
  std::chrono::steady_clock::time_point at;  // taken as soon as the handler starts
  std::string method, path, query;           // path decoded, query raw (without '?')
  std::string authorization;                 // the Authorization header as sent
  FormFields form;                           // decoded form body, in order
  int answered = 0;                          // status the fake answered; 0 while not yet answered
  int prism_status = 0;                      // 0: not relayed to Prism; -1: Prism unreachable
  std::string prism_body;
};

// A Twilio-shaped REST provider on 127.0.0.1:<ephemeral port>, served from its own threads, for
// what Prism (the OpenAPI mock) cannot do: Twilio's error bodies, scripted failures and delays,
// messages that exist for the list filter, and signed status callbacks / inbound messages.
//
// Routes (anything else: 404 with Twilio error 20404):
//   POST /2010-04-01/Accounts/{AccountSid}/Messages.json        create (form body)
//   GET  /2010-04-01/Accounts/{AccountSid}/Messages.json         list: To, From, DateSent,
//        DateSent>, DateSent< (YYYY-MM-DD or RFC 3339), PageSize, Page; newest first
//   GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch
// Every request needs HTTP Basic auth as the account sid with the auth token, or as any SK... API
// key (any secret), else 401 with 20003; another account's path gives 404 with 20404. A create
// without To gets 400/21604, without From or MessagingServiceSid 400/21603, without Body,
// MediaUrl or ContentSid 400/21602, as Twilio answers; only well-formed creates consume the
// script. Created messages get sid "SM" + 32 hex digits and status "queued" ("accepted" when sent
// through a MessagingServiceSid).
//
// With a Prism URL, each request to the Messages resource is first relayed to Prism as received
// (method, path, raw query, Authorization, Content-Type, body) and Prism's verdict recorded in
// FakeRequest::prism_status; Prism checks the path's AccountSid against ^AC[0-9a-fA-F]{32}$, so
// use a well-formed sid.
class FakeTwilio {
 public:
  FakeTwilio(std::string account_sid, std::string auth_token, std::string prism_url = "");
  ~FakeTwilio();
  FakeTwilio(const FakeTwilio&) = delete;
  FakeTwilio& operator=(const FakeTwilio&) = delete;

  std::string base_url() const;  // http://127.0.0.1:PORT
  int port() const;
  const std::string& account_sid() const;
  const std::string& auth_token() const;

  // Answers for the next create POSTs, consumed in arrival order; replaces what is left of an
  // earlier script. Once it runs out, creates get the default (201 unless set_default changed it).
  void script(std::vector<FakeResponse> answers);
  void set_default(FakeResponse answer);

  std::vector<FakeRequest> requests() const;  // every request received, in arrival order
  std::vector<FakeMessage> messages() const;  // messages that exist at the provider, in creation order

  // Form POSTs to the gateway, signed with X-Twilio-Signature (HMAC-SHA1 of the exact URL given
  // followed by the sorted parameters, keyed with the auth token, base64), as Twilio sends them.
  // Each returns the HTTP status, or 0 when the request could not be made.
  //
  // A status callback for `sid`: MessageSid, SmsSid, MessageStatus, SmsStatus, AccountSid, From,
  // To, ApiVersion, plus ErrorCode when given, MessagingServiceSid when the message used one,
  // ChannelPrefix/ChannelToAddress for WhatsApp and RawDlrDoneDate on delivered/undelivered SMS.
  // `extra` replaces a field of the same name or adds one. A known message takes the new status.
  int post_status(const std::string& callback_url, const std::string& sid, const std::string& status,
                  const std::string& error_code = "", const FormFields& extra = {}) const;
  // An incoming message (SmsStatus=received) from `from` to `to`.
  int post_inbound(const std::string& url, const std::string& from, const std::string& to,
                   const std::string& body) const;
  // Like the above with exactly `form`, but with a wrong signature (with_header) or none.
  int post_forged(const std::string& url, const FormFields& form, bool with_header) const;

  // The X-Twilio-Signature value for a form POST to `url`, as Twilio's webhook security documents
  // it: the URL, then each name+value sorted by name (then value), HMAC-SHA1, base64.
  static std::string sign(const std::string& url, const FormFields& params, const std::string& auth_token);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relance::testing
