// The call-task webhook against a loopback HTTP receiver: signatures, retries with backoff,
// Retry-After, giving up. The TransferLoop is driven from the test thread, as the gateway does.
#include "channels/call_task/call_task_webhook.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace relance::channels::call_task {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kSecret = "whsec-test-secret";
constexpr const char* kBody = R"({"task_id":"task-1","customer_id":"C-1","reason":"final_notice"})";

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Computed here independently of the production code, as a receiver would.
std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

struct Received {
  std::string content_type;
  std::string task_id;
  std::string timestamp;
  std::string signature;
  std::string body;
  SteadyClock::time_point at;
};

// A loopback HTTP server answering POST /hook with the scripted statuses in turn, then 200.
class Receiver {
 public:
  struct Reply {
    int status;
    std::string retry_after;
  };

  explicit Receiver(std::vector<Reply> script) : script_(std::move(script)) {
    server_.set_keep_alive_timeout(1);
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex_);
      received_.push_back({req.get_header_value("Content-Type"), req.get_header_value("X-Relance-Task-Id"),
                           req.get_header_value("X-Relance-Timestamp"), req.get_header_value("X-Relance-Signature"),
                           req.body, SteadyClock::now()});
      Reply reply{200, ""};
      if (next_ < script_.size()) reply = script_[next_++];
      res.status = reply.status;
      if (!reply.retry_after.empty()) res.set_header("Retry-After", reply.retry_after);
      res.set_content(R"({"ok":true})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) std::this_thread::sleep_for(5ms);
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  httplib::Server server_;
  std::vector<Reply> script_;
  std::size_t next_ = 0;
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  int port_ = 0;
  std::thread thread_;
};

// A port on which nothing listens (bound, then released).
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Runs the loop until the webhook has nothing pending; false on timeout.
bool drive(http::TransferLoop& loop, const CallTaskWebhook& webhook, std::chrono::milliseconds limit = 10s) {
  auto deadline = SteadyClock::now() + limit;
  while (webhook.pending() > 0 && SteadyClock::now() < deadline) {
    loop.run_once(10ms);
    // run_once does not sleep while only timers are pending.
    if (loop.transfers_in_flight() == 0) std::this_thread::sleep_for(1ms);
  }
  return webhook.pending() == 0;
}

void expect_signed(const Received& r, const std::string& task_id, std::int64_t not_before) {
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.task_id, task_id);
  EXPECT_EQ(r.body, kBody);
  ASSERT_FALSE(r.timestamp.empty());
  auto timestamp = std::stoll(r.timestamp);
  EXPECT_GE(timestamp, not_before);
  EXPECT_LE(timestamp, unix_now() + 1);
  EXPECT_EQ(r.signature, "v1=" + hmac_hex(kSecret, r.timestamp + "." + r.body));
  // Signed over the timestamp too: another timestamp does not verify.
  EXPECT_NE(r.signature, "v1=" + hmac_hex(kSecret, std::to_string(timestamp + 1) + "." + r.body));
}

TEST(CallTaskWebhook, RetriesServerErrorsUntilDeliveredSigningEachAttempt) {
  Receiver receiver({{503, ""}, {503, ""}, {200, ""}});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 5, loop, 20ms);
  auto now = unix_now();
  webhook.post("task-1", kBody, now);
  EXPECT_EQ(webhook.pending(), 1u);
  ASSERT_TRUE(drive(loop, webhook));

  EXPECT_EQ(webhook.delivered(), 1u);
  EXPECT_EQ(webhook.given_up(), 0u);
  EXPECT_EQ(webhook.attempts(), 3u);
  auto received = receiver.received();
  ASSERT_EQ(received.size(), 3u);
  for (const auto& r : received) expect_signed(r, "task-1", now);
  // Backed off between attempts: about 20 ms, then about 40 ms (minus jitter).
  EXPECT_GE(received[1].at - received[0].at, 14ms);
  EXPECT_GE(received[2].at - received[1].at, 29ms);
}

TEST(CallTaskWebhook, RetriesRequestTimeoutAndTooManyRequests) {
  Receiver receiver({{408, ""}, {429, ""}, {502, ""}, {204, ""}});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 5, loop, 10ms);
  webhook.post("task-2", kBody, unix_now());
  ASSERT_TRUE(drive(loop, webhook));
  EXPECT_EQ(webhook.delivered(), 1u);
  EXPECT_EQ(webhook.attempts(), 4u);
}

TEST(CallTaskWebhook, HonoursRetryAfter) {
  Receiver receiver({{429, "1"}, {200, ""}});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 5, loop, 20ms);
  webhook.post("task-3", kBody, unix_now());
  ASSERT_TRUE(drive(loop, webhook));
  EXPECT_EQ(webhook.delivered(), 1u);
  auto received = receiver.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_GE(received[1].at - received[0].at, 950ms);
}

TEST(CallTaskWebhook, GivesUpAtOnceOnClientError) {
  Receiver receiver({{400, ""}});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 5, loop, 20ms);
  webhook.post("task-4", kBody, unix_now());
  ASSERT_TRUE(drive(loop, webhook));
  EXPECT_EQ(webhook.delivered(), 0u);
  EXPECT_EQ(webhook.given_up(), 1u);
  EXPECT_EQ(webhook.attempts(), 1u);
  EXPECT_EQ(receiver.received().size(), 1u);
}

TEST(CallTaskWebhook, RetriesUnreachableReceiverUpToMaxAttempts) {
  http::TransferLoop loop;
  CallTaskWebhook webhook("http://127.0.0.1:" + std::to_string(closed_port()) + "/hook", kSecret, 2s, 4, loop, 20ms);
  webhook.post("task-5", kBody, unix_now());
  ASSERT_TRUE(drive(loop, webhook));
  EXPECT_EQ(webhook.delivered(), 0u);
  EXPECT_EQ(webhook.given_up(), 1u);
  EXPECT_EQ(webhook.attempts(), 4u);
}

TEST(CallTaskWebhook, DeliversSeveralTasksIndependently) {
  Receiver receiver({{500, ""}});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 3, loop, 10ms);
  auto now = unix_now();
  for (int i = 0; i < 5; ++i) webhook.post("task-" + std::to_string(10 + i), kBody, now);
  EXPECT_EQ(webhook.pending(), 5u);
  ASSERT_TRUE(drive(loop, webhook));
  EXPECT_EQ(webhook.delivered(), 5u);
  EXPECT_EQ(webhook.attempts(), 6u);  // one of them met the 500 and was retried
}

TEST(CallTaskWebhook, RemovesLineBreaksFromTheTaskIdHeader) {
  Receiver receiver({});
  http::TransferLoop loop;
  CallTaskWebhook webhook(receiver.url(), kSecret, 5s, 3, loop, 10ms);
  webhook.post("task-6\r\nX-Injected: yes", kBody, unix_now());
  ASSERT_TRUE(drive(loop, webhook));
  auto received = receiver.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].task_id, "task-6X-Injected: yes");
}

}  // namespace
}  // namespace relance::channels::call_task
