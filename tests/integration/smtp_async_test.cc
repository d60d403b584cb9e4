// The asynchronous SMTP adapter against a tiny scripted SMTP responder on loopback: messages in
// flight at once, connection reuse, the outcome of 5xx and 4xx replies, withdrawal before sending.
// The TransferLoop is driven from the test thread, as the gateway does.
#include "channels/email/smtp_channel.h"

#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace relance::channels::email {
namespace {

using namespace std::chrono_literals;
using Kind = SendResult::Kind;

constexpr const char* kRejected = "nobody@example.org";  // RCPT gets 550
constexpr const char* kBusy = "busy@example.org";        // end of DATA gets 451

struct Mail {
  std::string from;
  std::vector<std::string> recipients;
  std::string data;
};

// Speaks just enough SMTP, one thread per connection: 220, EHLO/HELO 250, MAIL 250, RCPT 250
// (550 for kRejected), DATA 354, "." 250 (451 when kBusy is a recipient), RSET/NOOP 250, QUIT 221.
class SmtpResponder {
 public:
  SmtpResponder() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 16) != 0) {
      throw std::runtime_error("cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~SmtpResponder() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : sessions_) t.join();
    ::close(listener_);
  }
  SmtpResponder(const SmtpResponder&) = delete;
  SmtpResponder& operator=(const SmtpResponder&) = delete;

  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }
  std::vector<Mail> accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      sessions_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static void reply(int fd, const std::string& line) {
    auto text = line + "\r\n";
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
      auto n = ::send(fd, p, left, MSG_NOSIGNAL);
      if (n <= 0) return;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  static std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
  }

  static std::string address_in(const std::string& line) {
    auto open = line.find('<');
    auto close = line.find('>', open);
    if (open == std::string::npos || close == std::string::npos) return {};
    return line.substr(open + 1, close - open - 1);
  }

  void serve(int fd) {
    reply(fd, "220 responder ESMTP test");
    std::string buffer;
    Mail mail;
    bool in_data = false;
    bool open = true;
    while (open && !stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[4096];
      auto n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(n));
      std::size_t eol;
      while (open && (eol = buffer.find("\r\n")) != std::string::npos) {
        std::string line = buffer.substr(0, eol);
        buffer.erase(0, eol + 2);
        if (in_data) {
          if (line == ".") {
            in_data = false;
            bool busy = std::find(mail.recipients.begin(), mail.recipients.end(), kBusy) != mail.recipients.end();
            if (busy) {
              reply(fd, "451 4.3.0 try again later");
            } else {
              {
                std::lock_guard lock(mutex_);
                accepted_.push_back(mail);
              }
              reply(fd, "250 2.0.0 queued");
            }
            mail = {};
          } else {
            mail.data += (line.rfind("..", 0) == 0 ? line.substr(1) : line) + "\n";
          }
          continue;
        }
        auto command = upper(line.substr(0, line.find_first_of(" :")));
        if (command == "EHLO") {
          reply(fd, "250-responder greets you");
          reply(fd, "250 8BITMIME");
        } else if (command == "HELO" || command == "RSET" || command == "NOOP") {
          if (command == "RSET") mail = {};
          reply(fd, "250 OK");
        } else if (command == "MAIL") {
          mail = {};
          mail.from = address_in(line);
          reply(fd, "250 2.1.0 OK");
        } else if (command == "RCPT") {
          auto to = address_in(line);
          if (to == kRejected) {
            reply(fd, "550 5.1.1 no such user");
          } else {
            mail.recipients.push_back(to);
            reply(fd, "250 2.1.5 OK");
          }
        } else if (command == "DATA") {
          in_data = true;
          reply(fd, "354 go ahead");
        } else if (command == "QUIT") {
          reply(fd, "221 bye");
          open = false;
        } else {
          reply(fd, "502 5.5.2 not implemented");
        }
      }
    }
    ::close(fd);
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::vector<std::thread> sessions_;  // touched by the acceptor only, joined after it
  mutable std::mutex mutex_;
  std::vector<Mail> accepted_;
};

relance::v1::EmailChannelConfig config_for(const SmtpResponder& responder) {
  relance::v1::EmailChannelConfig config;
  config.set_smtp_url(responder.url());
  config.set_from("billing@example.com");
  config.set_from_name("Billing");
  *config.mutable_timeout() = google::protobuf::util::TimeUtil::SecondsToDuration(10);
  return config;
}

RenderedMessage message(const std::string& reminder_id, const std::string& to = "alice@example.org") {
  RenderedMessage m;
  m.reminder_id = reminder_id;
  m.to = to;
  m.to_name = "Alice";
  m.subject = "Rappel : facture échue";
  m.text = "Your invoice is due.";
  m.html = "<p>Your invoice is due.</p>";
  m.unsubscribe_url = "https://pay.example.com/u/abc";
  return m;
}

// The responder, then the loop, then the adapter: destroyed in the reverse order, so the loop
// closes its cached connections before the responder stops.
struct Rig {
  SmtpResponder responder;
  http::TransferLoop loop;
  SmtpChannel channel{config_for(responder), "", loop};
  std::map<std::string, SendResult> results;

  void send(const std::string& reminder_id, const std::string& to = "alice@example.org",
            std::function<bool()> still_wanted = {}) {
    channel.send({message(reminder_id, to),
                  [this, reminder_id](SendResult r) {
                    EXPECT_FALSE(results.count(reminder_id)) << "done called twice for " << reminder_id;
                    results[reminder_id] = std::move(r);
                  },
                  std::move(still_wanted)});
  }

  bool drive(std::size_t expected, std::chrono::milliseconds limit = 15s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (results.size() < expected && std::chrono::steady_clock::now() < deadline) loop.run_once(20ms);
    return results.size() >= expected;
  }
};

std::set<std::string> reminder_ids(const std::vector<Mail>& mails) {
  std::set<std::string> ids;
  for (const auto& mail : mails) {
    auto at = mail.data.find("X-Relance-Reminder-Id: ");
    if (at == std::string::npos) continue;
    auto end = mail.data.find('\n', at);
    ids.insert(mail.data.substr(at + 23, end - at - 23));
  }
  return ids;
}

TEST(SmtpAsync, ConcurrentMessagesAllArriveOverFewerConnections) {
  Rig rig;
  std::set<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    rig.send("r-" + std::to_string(i));
    expected.insert("r-" + std::to_string(i));
  }
  // Nothing blocked: at most kMaxInFlight on the wire, the rest waiting in order.
  EXPECT_TRUE(rig.results.empty());
  EXPECT_EQ(rig.channel.in_flight(), SmtpChannel::kMaxInFlight);
  EXPECT_EQ(rig.channel.queued(), 10 - SmtpChannel::kMaxInFlight);
  ASSERT_TRUE(rig.drive(10));

  for (int i = 0; i < 10; ++i) {
    auto id = "r-" + std::to_string(i);
    ASSERT_TRUE(rig.results.count(id)) << id;
    EXPECT_EQ(rig.results[id].kind, Kind::kAccepted) << id << ": " << rig.results[id].message;
    EXPECT_EQ(rig.results[id].provider_message_id, "<" + id + "@example.com>");
  }
  auto mails = rig.responder.accepted();
  EXPECT_EQ(mails.size(), 10u);
  EXPECT_EQ(reminder_ids(mails), expected);
  EXPECT_LE(rig.responder.connections(), static_cast<int>(SmtpChannel::kMaxInFlight));
  EXPECT_LT(rig.responder.connections(), 10);
  EXPECT_EQ(rig.channel.in_flight(), 0u);
  EXPECT_EQ(rig.channel.queued(), 0u);
}

TEST(SmtpAsync, ReusesTheConnectionForConsecutiveMessages) {
  Rig rig;
  for (int i = 0; i < 3; ++i) {
    rig.send("seq-" + std::to_string(i));
    ASSERT_TRUE(rig.drive(static_cast<std::size_t>(i + 1)));
  }
  for (const auto& [id, result] : rig.results) EXPECT_EQ(result.kind, Kind::kAccepted) << id;
  EXPECT_EQ(rig.responder.accepted().size(), 3u);
  EXPECT_EQ(rig.responder.connections(), 1);
}

TEST(SmtpAsync, MessageCarriesTheReminderHeaders) {
  Rig rig;
  rig.send("r-headers");
  ASSERT_TRUE(rig.drive(1));
  auto mails = rig.responder.accepted();
  ASSERT_EQ(mails.size(), 1u);
  const auto& mail = mails[0];
  EXPECT_EQ(mail.from, "billing@example.com");
  EXPECT_EQ(mail.recipients, std::vector<std::string>{"alice@example.org"});
  for (const char* header :
       {"Date: ", R"(From: "Billing" <billing@example.com>)", R"(To: "Alice" <alice@example.org>)", "Subject: =?UTF-8?B?",
        "Message-ID: <r-headers@example.com>", "X-Relance-Reminder-Id: r-headers",
        "List-Unsubscribe: <https://pay.example.com/u/abc>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Content-Type: multipart/alternative", "Content-Type: text/plain; charset=UTF-8",
        "Content-Type: text/html; charset=UTF-8", "Content-Transfer-Encoding: quoted-printable"}) {
    EXPECT_NE(mail.data.find(header), std::string::npos) << header << "\n" << mail.data;
  }
}

TEST(SmtpAsync, RejectedRecipientIsPermanent) {
  Rig rig;
  rig.send("r-550", kRejected);
  ASSERT_TRUE(rig.drive(1));
  const auto& result = rig.results["r-550"];
  EXPECT_EQ(result.kind, Kind::kPermanent) << result.message;
  EXPECT_EQ(result.provider_code, "550");
  EXPECT_TRUE(rig.responder.accepted().empty());
}

TEST(SmtpAsync, TemporaryFailureAfterDataIsRetriable) {
  Rig rig;
  rig.send("r-451", kBusy);
  ASSERT_TRUE(rig.drive(1));
  const auto& result = rig.results["r-451"];
  EXPECT_EQ(result.kind, Kind::kRetriable) << result.message;
  EXPECT_EQ(result.provider_code, "451");
  EXPECT_GT(result.retry_after.count(), 0);
  EXPECT_TRUE(rig.responder.accepted().empty());
}

TEST(SmtpAsync, FailuresDoNotDisturbTheOtherMessages) {
  Rig rig;
  rig.send("ok-1");
  rig.send("bad", kRejected);
  rig.send("ok-2");
  rig.send("busy", kBusy);
  rig.send("ok-3");
  rig.send("ok-4");
  ASSERT_TRUE(rig.drive(6));
  EXPECT_EQ(rig.results["bad"].kind, Kind::kPermanent);
  EXPECT_EQ(rig.results["busy"].kind, Kind::kRetriable);
  for (const char* id : {"ok-1", "ok-2", "ok-3", "ok-4"}) EXPECT_EQ(rig.results[id].kind, Kind::kAccepted) << id;
  EXPECT_EQ(reminder_ids(rig.responder.accepted()), (std::set<std::string>{"ok-1", "ok-2", "ok-3", "ok-4"}));
}

TEST(SmtpAsync, WithdrawnMessageIsCancelledAndNeverSent) {
  Rig rig;
  // A free slot: asked at once, and done runs before send() returns.
  int asked = 0;
  rig.send("r-withdrawn", "alice@example.org", [&asked] {
    ++asked;
    return false;
  });
  EXPECT_EQ(asked, 1);
  ASSERT_TRUE(rig.results.count("r-withdrawn"));
  EXPECT_EQ(rig.results["r-withdrawn"].kind, Kind::kCancelled);

  // Waiting for a slot: asked only when its turn comes, after the payment arrived meanwhile.
  for (std::size_t i = 0; i < SmtpChannel::kMaxInFlight; ++i) rig.send("busy-" + std::to_string(i));
  bool paid = false;
  int asked_queued = 0;
  rig.send("r-paid-meanwhile", "alice@example.org", [&] {
    ++asked_queued;
    return !paid;
  });
  rig.send("r-after", "alice@example.org", [] { return true; });
  EXPECT_EQ(asked_queued, 0);
  paid = true;
  ASSERT_TRUE(rig.drive(SmtpChannel::kMaxInFlight + 3));
  EXPECT_EQ(asked_queued, 1);
  EXPECT_EQ(rig.results["r-paid-meanwhile"].kind, Kind::kCancelled);
  EXPECT_EQ(rig.results["r-after"].kind, Kind::kAccepted);

  auto ids = reminder_ids(rig.responder.accepted());
  EXPECT_EQ(ids.count("r-withdrawn"), 0u);
  EXPECT_EQ(ids.count("r-paid-meanwhile"), 0u);
  EXPECT_EQ(ids.count("r-after"), 1u);
  EXPECT_EQ(ids.size(), SmtpChannel::kMaxInFlight + 1);
}

TEST(SmtpAsync, DoneMaySendAgain) {
  Rig rig;
  int chained = 0;
  std::function<void(int)> send_next = [&](int i) {
    rig.channel.send({message("chain-" + std::to_string(i)),
                      [&, i](SendResult r) {
                        EXPECT_EQ(r.kind, Kind::kAccepted);
                        ++chained;
                        rig.results["chain-" + std::to_string(i)] = std::move(r);
                        if (i < 4) send_next(i + 1);
                      },
                      {}});
  };
  send_next(0);
  ASSERT_TRUE(rig.drive(5));
  EXPECT_EQ(chained, 5);
  EXPECT_EQ(rig.responder.accepted().size(), 5u);
}

TEST(SmtpAsync, UnreachableServerIsRetriable) {
  // Bound and released: nothing listens there.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);

  http::TransferLoop loop;
  relance::v1::EmailChannelConfig config;
  config.set_smtp_url("smtp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  config.set_from("billing@example.com");
  *config.mutable_timeout() = google::protobuf::util::TimeUtil::SecondsToDuration(5);
  SmtpChannel channel(config, "", loop);
  std::optional<SendResult> result;
  channel.send({message("r-down"), [&](SendResult r) { result = std::move(r); }, {}});
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!result && std::chrono::steady_clock::now() < deadline) loop.run_once(20ms);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->kind, Kind::kRetriable) << result->message;
}

}  // namespace
}  // namespace relance::channels::email
