// Throttled correctness of the Twilio adapter at scale: thousands of senders with mixed
// throughputs (segments per second), the account's concurrency cap, a provider that answers
// 429 to a share of requests, and payments withdrawing queued messages. The provider is a
// Twilio-shaped HTTP server in this process that timestamps every request as it arrives.
//
//   relance_throttled_bench --senders 10000 --seconds 20 --in-flight 32 --reject-every 25
//
// Reports, over the measured window (every sender kept busy throughout):
// - the requests per second that left against the sum of the senders' budgets (goal ≥ 98%),
//   and the messages accepted per second (a 429 takes its sender's slot too);
// - one-second windows over a sender's budget, counted per sender over every request that
//   reached the provider, 429s included (goal 0). Arrival times carry the loopback's and the
//   server threads' delay, which can bunch requests up: windows of 1 s minus a jitter margin
//   are checked, and the busiest full second is printed beside them;
// - withdrawn messages that still reached the provider later than 100 ms after the payment
//   (goal 0), and the latest such arrival.
// Exits non-zero when a goal is missed or a message is lost or sent twice.
#include <httplib.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "channels/channel.h"
#include "channels/http/transfer_loop.h"
#include "channels/twilio/form.h"
#include "channels/twilio/twilio_channel.h"
#include "relance/v1/config.pb.h"

namespace {

namespace v1 = relance::v1;
using relance::channels::Outgoing;
using relance::RenderedMessage;
using relance::channels::SendResult;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kAuthToken = "f00dfeedc0ffee0123456789abcdef01";

// The adapter gives a customer always the same sender: FNV-1a of the timeline key, modulo the
// number of senders of the channel (the order of `senders` in the configuration).
std::size_t sender_of(const std::string& key, std::size_t senders) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ULL;
  return h % senders;
}

std::string sender_number(std::size_t s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "+3375%07zu", s);
  return buffer;
}

struct Arrival {
  Clock::time_point at;
  std::uint32_t sender;
  std::uint32_t message;
  bool accepted;
};

// The provider: 201 with a message resource, or 429 (Twilio's 20429) to every n-th request.
class Provider {
 public:
  Provider(std::size_t senders, int reject_every, int threads) : reject_every_(reject_every) {
    for (std::size_t s = 0; s < senders; ++s) index_of_.emplace(sender_number(s), static_cast<std::uint32_t>(s));
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    server_.set_keep_alive_max_count(1'000'000);
    server_.set_tcp_nodelay(true);
    // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): connections
    // opened at once beyond that lose their SYN and retry a second later, which bunches their
    // requests up here. The socket is remembered as the library creates it and listens again,
    // with the system's maximum, once bound.
    server_.set_socket_options([this](int fd) {
      httplib::default_socket_options(fd);
      listening_fd_ = fd;
    });
    server_.Post(R"(/2010-04-01/Accounts/([^/]+)/Messages\.json)", [this](const httplib::Request& req,
                                                                         httplib::Response& res) {
      auto now = Clock::now();
      auto form = relance::channels::twilio::form_decode(req.body);
      std::string from, body;
      for (const auto& [k, v] : form.value_or(relance::channels::twilio::Params{})) {
        if (k == "From") from = v;
        if (k == "Body") body = v;
      }
      auto sender = index_of_.find(from);
      auto space = body.rfind(' ');
      if (sender == index_of_.end() || space == std::string::npos) {
        res.status = 400;
        res.set_content(R"({"code":21602,"message":"bad request","status":400})", "application/json");
        return;
      }
      auto message = static_cast<std::uint32_t>(std::stoul(body.substr(space + 1)));
      bool accept = reject_every_ <= 0 || ++count_ % static_cast<unsigned>(reject_every_) != 0;
      {
        std::lock_guard lock(mutex_);
        arrivals_.push_back({now, sender->second, message, accept});
      }
      if (!accept) {
        res.status = 429;
        res.set_content(R"({"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429})",
                        "application/json");
        return;
      }
      res.status = 201;
      char sid[48];
      std::snprintf(sid, sizeof sid, "SM%032x", message);
      res.set_content(std::string(R"({"sid":")") + sid + R"(","status":"queued","error_code":null})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (listening_fd_ >= 0) ::listen(listening_fd_, SOMAXCONN);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Provider() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<Arrival> arrivals() {
    std::lock_guard lock(mutex_);
    return arrivals_;
  }

 private:
  int reject_every_;
  std::atomic<unsigned> count_{0};
  std::unordered_map<std::string, std::uint32_t> index_of_;
  httplib::Server server_;
  int port_ = -1;
  int listening_fd_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Arrival> arrivals_;
};

double mps_of(std::size_t sender) {
  // Many slow senders (international long codes at one message every 2 or 4 seconds), some at
  // 1 per second, a few faster toll-free or messaging-service senders: 0.625 segments per
  // second on average, 6,250 for 10,000 senders, below what one adapter thread dispatches on
  // the 2-core benchmark machine (so that the figures measure the pacing, not the machine).
  switch (sender % 20) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9: return 0.25;
    case 10: case 11: case 12: case 13: case 14: case 15: return 0.5;
    case 16: case 17: case 18: return 1;
    default: return 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Throttled correctness of the Twilio adapter: many senders, a concurrency cap, 429s, payments"};
  std::size_t senders = 10'000;
  int seconds = 20;
  int in_flight = 32;
  int reject_every = 25;
  double cancel_share = 0.05;
  int server_threads = 48;
  app.add_option("--senders", senders, "senders, with 0.25, 0.5, 1 and 4 MPS")->capture_default_str();
  app.add_option("--seconds", seconds, "measured window; every sender has work for longer")->capture_default_str();
  app.add_option("--in-flight", in_flight, "the account's concurrency cap (max_in_flight)")->capture_default_str();
  app.add_option("--reject-every", reject_every, "answer 429 to every n-th request (0: never)")->capture_default_str();
  app.add_option("--cancel-share", cancel_share, "share of messages withdrawn by a payment while queued")
      ->capture_default_str();
  app.add_option("--server-threads", server_threads, "the provider's worker threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Provider provider(senders, reject_every, server_threads);
  v1::TwilioChannelConfig config;
  config.set_base_url("http://127.0.0.1:" + std::to_string(provider.port()));
  config.set_account_sid(kAccountSid);
  config.set_max_in_flight(in_flight);
  config.mutable_timeout()->set_seconds(10);
  double budget = 0;
  for (std::size_t s = 0; s < senders; ++s) {
    auto* sender = config.add_senders();
    sender->set_channel(v1::SMS);
    sender->set_from(sender_number(s));
    sender->set_mps(mps_of(s));
    budget += mps_of(s);
  }
  relance::channels::http::TransferLoop loop;
  relance::channels::twilio::TwilioAccount account(config, kAuthToken, "", loop);

  // Work for every sender beyond the window (+50%, at least 2 messages), customers chosen so
  // that each lands on its sender.
  const double horizon = seconds * 1.5 + 2;
  std::vector<std::size_t> wanted(senders), have(senders, 0);
  std::size_t total = 0;
  for (std::size_t s = 0; s < senders; ++s) total += wanted[s] = static_cast<std::size_t>(mps_of(s) * horizon) + 2;
  std::vector<std::string> keys;
  keys.reserve(total);
  std::vector<std::uint32_t> sender_of_message;
  sender_of_message.reserve(total);
  for (std::size_t n = 0; keys.size() < total; ++n) {
    std::string key = "cus_" + std::to_string(n);
    auto s = sender_of(key, senders);
    if (have[s] >= wanted[s]) continue;
    ++have[s];
    keys.push_back(std::move(key));
    sender_of_message.push_back(static_cast<std::uint32_t>(s));
  }
  std::vector<Clock::time_point> withdrawn_at(total);
  std::vector<std::uint8_t> withdrawn(total, 0);
  std::size_t accepted = 0, cancelled = 0, failed = 0, finished = 0;
  std::vector<std::uint8_t> outcome(total, 0);  // 1 accepted, 2 cancelled, 3 failed

  const auto start = Clock::now();
  for (std::size_t i = 0; i < total; ++i) {
    Outgoing out;
    RenderedMessage& m = out.message;
    m.reminder_id = "rem_" + std::to_string(i);
    m.channel = v1::SMS;
    m.customer_id = keys[i];
    m.timeline_key = keys[i];
    char to[32];
    std::snprintf(to, sizeof to, "+336%08zu", i % 100'000'000);
    m.to = to;
    m.locale = "fr-FR";
    m.text = "Relance: la facture F-2026 de 120,00 EUR est echue. Reglez-la sur https://pay.example.fr/r " +
             std::to_string(i);
    out.still_wanted = [&withdrawn, i] { return withdrawn[i] == 0; };
    out.done = [&, i](SendResult r) {
      ++finished;
      if (outcome[i] != 0) {
        std::fprintf(stderr, "message %zu finished twice\n", i);
        std::exit(3);
      }
      if (r.kind == SendResult::Kind::kAccepted) {
        outcome[i] = 1;
        ++accepted;
      } else if (r.kind == SendResult::Kind::kCancelled) {
        outcome[i] = 2;
        ++cancelled;
      } else {
        outcome[i] = 3;
        ++failed;
      }
    };
    account.send(v1::SMS, std::move(out));
    // The loop keeps running while the work is handed over, as the gateway's does: a request
    // the limiter counted must leave at once, not after the whole queue is built.
    if (i % 256 == 255) loop.run_once(0ms);
  }
  std::fprintf(stderr, "%zu messages queued for %zu senders (budget %.0f messages/s) in %.1f s\n", total, senders,
               budget, std::chrono::duration<double>(Clock::now() - start).count());

  // Payments arrive while the messages wait: a share of them is withdrawn at random instants
  // of the window, on the loop's thread as the gateway does.
  std::mt19937_64 random(42);
  std::vector<std::size_t> to_withdraw;
  for (std::size_t i = 0; i < total; ++i) {
    if (std::uniform_real_distribution<double>(0, 1)(random) < cancel_share) to_withdraw.push_back(i);
  }
  std::shuffle(to_withdraw.begin(), to_withdraw.end(), random);
  // The window starts once every message is queued (the senders started during the queueing).
  const auto begin = Clock::now();
  const auto window_end = begin + std::chrono::seconds(seconds);
  std::size_t next_withdrawal = 0;
  while (Clock::now() < window_end) {
    loop.run_once(5ms);
    auto elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
    auto due = static_cast<std::size_t>(static_cast<double>(to_withdraw.size()) * elapsed / seconds);
    for (; next_withdrawal < std::min(due, to_withdraw.size()); ++next_withdrawal) {
      auto i = to_withdraw[next_withdrawal];
      withdrawn[i] = 1;
      withdrawn_at[i] = Clock::now();
    }
  }
  const auto measured_end = Clock::now();
  // The rest goes out as fast as the budgets allow (or is withdrawn) so that every message is
  // accounted for.
  const auto drain_deadline = Clock::now() + std::chrono::seconds(static_cast<int>(horizon) + 30);
  while (finished < total && Clock::now() < drain_deadline) loop.run_once(50ms);

  auto arrivals = provider.arrivals();
  std::sort(arrivals.begin(), arrivals.end(), [](const Arrival& a, const Arrival& b) { return a.at < b.at; });

  // Accepted in the window, against the budget.
  std::size_t accepted_in_window = 0, requests_in_window = 0;
  for (const auto& a : arrivals) {
    bool inside = a.at >= begin && a.at < measured_end;
    accepted_in_window += inside && a.accepted;
    requests_in_window += inside;
  }
  const double window_s = std::chrono::duration<double>(measured_end - begin).count();
  const double rate = static_cast<double>(accepted_in_window) / window_s;
  // A request the provider refused with 429 still took its sender's slot (the adapter cannot
  // know beforehand): the budget used counts every request that left.
  const double used = static_cast<double>(requests_in_window) / window_s;

  // Windows over budget, per sender, over every request that reached the provider.
  constexpr auto kArrivalJitter = 100ms;
  std::vector<std::vector<Clock::time_point>> per_sender(senders);
  for (const auto& a : arrivals) per_sender[a.sender].push_back(a.at);
  std::size_t over_budget = 0, over_budget_full_second = 0, senders_over = 0;
  for (std::size_t s = 0; s < senders; ++s) {
    const auto& at = per_sender[s];
    const double mps = mps_of(s);
    // At most floor(mps) in a second; below 1 MPS, one per 1/mps seconds.
    const auto window = mps >= 1 ? std::chrono::duration_cast<Clock::duration>(1s)
                                 : std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1 / mps));
    const std::size_t allowed = mps >= 1 ? static_cast<std::size_t>(mps) : 1;
    bool any = false;
    for (std::size_t i = 0, j = 0, k = 0; i < at.size(); ++i) {
      while (j < at.size() && at[j] - at[i] < window - kArrivalJitter) ++j;
      while (k < at.size() && at[k] - at[i] < window) ++k;
      if (j - i > allowed) {
        ++over_budget;
        if (!any && std::getenv("RELANCE_BENCH_DEBUG")) {
          std::fprintf(stderr, "sender %zu (%.1f MPS):", s, mps);
          for (std::size_t x = i; x < j; ++x) {
            std::fprintf(stderr, " %.3f", std::chrono::duration<double>(at[x] - begin).count());
            for (const auto& a : arrivals) {
              if (a.at == at[x] && a.sender == s) std::fprintf(stderr, "(m%u%s)", a.message, a.accepted ? "" : " 429");
            }
          }
          std::fprintf(stderr, "\n");
        }
        any = true;
      }
      over_budget_full_second += k - i > allowed;
    }
    senders_over += any;
  }

  // Withdrawn messages that still reached the provider after their payment.
  std::size_t late_after_withdrawal = 0;
  double latest_after_withdrawal_ms = 0;
  std::vector<int> accepted_count(total, 0);
  for (const auto& a : arrivals) {
    if (a.accepted) ++accepted_count[a.message];
    if (!withdrawn[a.message]) continue;
    double after_ms = std::chrono::duration<double, std::milli>(a.at - withdrawn_at[a.message]).count();
    latest_after_withdrawal_ms = std::max(latest_after_withdrawal_ms, after_ms);
    late_after_withdrawal += after_ms > 100;
  }
  std::size_t duplicates = 0, lost = 0;
  for (std::size_t i = 0; i < total; ++i) {
    duplicates += accepted_count[i] > 1;
    lost += outcome[i] == 0 || (outcome[i] == 1 && accepted_count[i] != 1);
  }
  std::size_t rejected = std::count_if(arrivals.begin(), arrivals.end(), [](const Arrival& a) { return !a.accepted; });

  std::printf(
      "throttled senders=%zu in_flight=%d reject_every=%d seconds=%.1f budget_per_s=%.0f accepted_per_s=%.0f "
      "share_of_budget=%.4f budget_used=%.4f requests=%zu rejected_429=%zu windows_over_budget=%zu senders_over_budget=%zu "
      "full_second_windows_over_budget=%zu withdrawn=%zu cancelled=%zu late_after_withdrawal=%zu "
      "latest_after_withdrawal_ms=%.1f accepted=%zu failed=%zu duplicates=%zu lost=%zu\n",
      senders, in_flight, reject_every, window_s, budget, rate, rate / budget, used / budget, arrivals.size(), rejected, over_budget,
      senders_over, over_budget_full_second, to_withdraw.size(), cancelled, late_after_withdrawal,
      latest_after_withdrawal_ms, accepted, failed, duplicates, lost);
  bool ok = used >= 0.98 * budget && over_budget == 0 && late_after_withdrawal == 0 && duplicates == 0 && lost == 0 &&
            failed == 0;
  return ok ? 0 : 1;
}

