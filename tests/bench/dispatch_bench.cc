// Dispatch throughput of the Twilio adapter over keep-alive HTTP, set beside wrk's requests/s
// against the same local sink (tests/bench/dispatch.sh runs both and prints the table).
//
//   relance_dispatch_bench sink --port 0 [--threads 4] [--server epoll|httplib]
//       A Twilio-shaped sink: POST /2010-04-01/Accounts/{sid}/Messages.json → 201 and a small
//       fixed message resource. Prints "listening port=P" once, nothing per request.
//   relance_dispatch_bench dispatch --url http://127.0.0.1:P --messages N --in-flight K [--repeat R]
//       One TwilioAccount (max_in_flight K, no rate limit, no StatusCallback) on one
//       TransferLoop, driven on this thread as the gateway drives it: N SMS per round, handed
//       to send() between run_once() calls so that 4K are queued or in flight (--backlog), the
//       loop run until every `done` has been called. Prints one line of key=value pairs.
//   relance_dispatch_bench libcurl --url http://127.0.0.1:P --messages N --in-flight K [--repeat R]
//       The same requests on a bare libcurl multi handle, nothing else: what any adapter on
//       libcurl could reach on one thread. Same output line.
//   relance_dispatch_bench wrk-script
//       The wrk Lua script sending the request the adapter sends (same form fields and size,
//       same Basic auth, same Accept header).
//
// The sink is TwilioSink (twilio_sink.h) by default: an epoll server, one acceptor handing
// connections round-robin to --threads workers, each running its own epoll. cpp-httplib's
// Server (--server httplib) ties a worker to a keep-alive connection for the connection's life, so with fewer workers than
// connections the extra connections wait for a worker that never frees up while the client
// keeps them busy (wrk -c32 on 4 workers: 27,700 req/s, as with -c4); with 32 workers it
// answers 40,000 req/s where the epoll sink answers 115,000 on the same 2-CPU machine, less than
// the adapter itself can send. Kept for comparison only.
#include <curl/curl.h>
#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "channels/channel.h"
#include "channels/http/transfer_loop.h"
#include "channels/twilio/form.h"
#include "channels/twilio/twilio_channel.h"
#include "relance/v1/config.pb.h"
#include "twilio_sink.h"

namespace relance::bench {
namespace {

namespace v1 = relance::v1;
using channels::Outgoing;
using channels::SendResult;
using Clock = std::chrono::steady_clock;

constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kAuthToken = "f00dfeedc0ffee0123456789abcdef01";
constexpr const char* kFrom = "+33757000001";
constexpr std::string_view kMessagesPrefix = "/2010-04-01/Accounts/";
constexpr std::string_view kMessagesSuffix = "/Messages.json";

// --- the messages -----------------------------------------------------------------------------

// A first SMS reminder as the renderer writes it: 152 GSM-7 characters, one segment; the same
// length for every index so that every request has the same size.
RenderedMessage reminder(std::size_t i) {
  RenderedMessage m;
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "rem_%08zx", i);
  m.reminder_id = buffer;
  m.channel = v1::SMS;
  std::snprintf(buffer, sizeof buffer, "cus_%06zu", i % 1'000'000);
  m.customer_id = buffer;
  m.timeline_key = m.customer_id;
  std::snprintf(buffer, sizeof buffer, "+336%08zu", i % 100'000'000);
  m.to = buffer;
  m.locale = "fr-FR";
  std::snprintf(buffer, sizeof buffer,
                "Relance: la facture F-2026-%06zu de 1 249,90 EUR est echue depuis le 12/03. Reglez-la en 1 clic "
                "sur https://pay.example.fr/r/%08zx ou repondez STOP.",
                i % 1'000'000, (i * 2654435761U) & 0xffffffffU);
  m.text = buffer;
  return m;
}

// The form the adapter posts for reminder(i) (To, From, Body: no StatusCallback, no validity).
std::string create_form(std::size_t i) {
  auto m = reminder(i);
  return channels::twilio::form_encode({{"To", m.to}, {"From", kFrom}, {"Body", m.text}});
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int wrk_script() {
  std::printf(
      "-- Generated by relance_dispatch_bench wrk-script: the create request TwilioAccount sends.\n"
      "wrk.method = \"POST\"\n"
      "wrk.path = \"%.*s%s%.*s\"\n"
      "wrk.headers[\"Authorization\"] = \"Basic %s\"\n"
      "wrk.headers[\"Accept\"] = \"application/json\"\n"
      "wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n"
      "wrk.body = \"%s\"\n",
      static_cast<int>(kMessagesPrefix.size()), kMessagesPrefix.data(), kAccountSid,
      static_cast<int>(kMessagesSuffix.size()), kMessagesSuffix.data(),
      base64(std::string(kAccountSid) + ":" + kAuthToken).c_str(), create_form(0).c_str());
  return 0;
}

// --- the sinks --------------------------------------------------------------------------------

int run_epoll_sink(int port, int threads) {
  TwilioSink sink(port, threads);
  std::printf("listening port=%d server=epoll threads=%d\n", sink.port(), threads);
  std::fflush(stdout);
  for (;;) ::pause();  // serves until killed
}

int run_httplib_sink(int port, int threads) {
  httplib::Server server;
  auto workers = static_cast<std::size_t>(threads);
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(std::numeric_limits<std::size_t>::max());
  server.set_keep_alive_timeout(60);
  const std::string body(kCreatedBody);
  server.Post(R"(/2010-04-01/Accounts/([^/]+)/Messages\.json)", [&body](const httplib::Request&, httplib::Response& res) {
    res.status = 201;
    res.set_content(body, "application/json");
  });
  int bound = port;
  if (port == 0) {
    bound = server.bind_to_any_port("127.0.0.1");
  } else if (!server.bind_to_port("127.0.0.1", port)) {
    bound = -1;
  }
  if (bound <= 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  std::printf("listening port=%d server=httplib threads=%d\n", bound, threads);
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}

// --- the dispatch -----------------------------------------------------------------------------

struct Round {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system time of this process during the round
  std::size_t accepted = 0;
  std::size_t errors = 0;
  std::string first_error;
};

double cpu_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

const char* kind_name(SendResult::Kind kind) {
  switch (kind) {
    case SendResult::Kind::kAccepted: return "accepted";
    case SendResult::Kind::kRetriable: return "retriable";
    case SendResult::Kind::kPermanent: return "permanent";
    case SendResult::Kind::kUnknown: return "unknown";
    case SendResult::Kind::kCancelled: return "cancelled";
  }
  return "?";
}

// Sends `count` reminders starting at index `first` and runs the loop until all are answered.
// At most `backlog` are handed to the account and not yet answered at any time (queued there or
// in flight), topped up between run_once() calls as the gateway's thread would: the account's
// queue never runs dry, and 60,000 queued messages do not turn the benchmark into a test of the
// memory system. The messages are built on the way (under 1% of the time, counted).
Round dispatch_round(channels::twilio::TwilioAccount& account, channels::http::TransferLoop& loop, std::size_t first,
                     std::size_t count, std::size_t backlog,
                     std::chrono::seconds stall_limit = std::chrono::seconds(60)) {
  Round round;
  std::size_t sent = 0, finished = 0;
  auto top_up = [&] {
    while (sent < count && sent - finished < backlog) {
      Outgoing out;
      out.message = reminder(first + sent++);
      out.done = [&round, &finished](SendResult r) {
        ++finished;
        if (r.kind == SendResult::Kind::kAccepted && !r.provider_message_id.empty()) {
          ++round.accepted;
        } else {
          ++round.errors;
          if (round.first_error.empty()) {
            round.first_error = std::string(kind_name(r.kind)) + " " + r.provider_code + " " + r.message;
          }
        }
      };
      account.send(v1::SMS, std::move(out));
    }
  };
  auto cpu_start = cpu_now();
  auto start = Clock::now();
  top_up();
  auto last_progress = Clock::now();
  std::size_t last_finished = finished;
  while (finished < count) {
    loop.run_once(std::chrono::milliseconds(100));
    top_up();
    if (finished != last_finished) {
      last_finished = finished;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > stall_limit) {
      throw std::runtime_error("no answer for " + std::to_string(stall_limit.count()) + " s (" +
                               std::to_string(finished) + "/" + std::to_string(count) + " finished)");
    }
  }
  round.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  round.cpu_seconds = cpu_now() - cpu_start;
  return round;
}

int run_dispatch(const std::string& url, std::size_t messages, int in_flight, int repeat, std::size_t warmup,
                 std::size_t backlog) {
  v1::TwilioChannelConfig config;
  config.set_base_url(url);
  config.set_account_sid(kAccountSid);
  config.set_sms_from(kFrom);
  config.set_max_in_flight(in_flight);
  config.set_default_mps(0);
  config.mutable_timeout()->set_seconds(10);
  channels::http::TransferLoop loop;
  channels::twilio::TwilioAccount account(config, kAuthToken, "", loop);

  // One message first: a wrong URL fails here, in seconds, rather than after every message has
  // gone through the adapter's retries.
  try {
    auto probe = dispatch_round(account, loop, 0, 1, 1, std::chrono::seconds(10));
    if (probe.errors != 0) throw std::runtime_error(probe.first_error);
  } catch (const std::exception& e) {
    throw std::runtime_error("the sink at " + url + " did not accept a message: " + e.what());
  }
  std::size_t next = 1;
  // Opens the connections and warms the caches; not counted.
  auto warm = dispatch_round(account, loop, next, warmup, backlog);
  next += warmup;
  std::size_t errors = warm.errors;
  std::string first_error = warm.first_error;

  std::vector<double> rates;
  double cpu = 0, wall = 0;
  for (int r = 0; r < repeat; ++r) {
    auto round = dispatch_round(account, loop, next, messages, backlog);
    next += messages;
    rates.push_back(static_cast<double>(messages) / round.seconds);
    cpu += round.cpu_seconds;
    wall += round.seconds;
    errors += round.errors;
    if (first_error.empty()) first_error = round.first_error;
  }
  auto sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  auto n = sorted.size();
  double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  std::string all;
  for (auto rate : rates) all += (all.empty() ? "" : ",") + std::to_string(static_cast<long long>(rate));
  auto total = static_cast<double>(messages) * repeat;
  std::printf(
      "dispatch messages=%zu in_flight=%d backlog=%zu repeat=%d median_per_s=%.0f min_per_s=%.0f max_per_s=%.0f rounds=%s "
      "cpu_us_per_msg=%.2f cpu_share=%.2f errors=%zu%s%s\n",
      messages, in_flight, backlog, repeat, median, sorted.front(), sorted.back(), all.c_str(), cpu / total * 1e6,
      cpu / wall, errors, first_error.empty() ? "" : " first_error=", first_error.c_str());
  return errors == 0 ? 0 : 2;
}

// --- the same requests on bare libcurl ----------------------------------------------------------

std::size_t discard(char*, std::size_t size, std::size_t count, void*) { return size * count; }

// What libcurl alone costs for the same traffic on one thread: K easy handles configured once,
// each re-added to the multi handle as soon as its answer is in, the same form body every time,
// no adapter and no TransferLoop. The floor for any adapter built on a libcurl multi handle.
int run_libcurl(const std::string& url, std::size_t messages, int in_flight, int repeat, std::size_t warmup) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto target = url;
  while (!target.empty() && target.back() == '/') target.pop_back();
  target += std::string(kMessagesPrefix) + kAccountSid + std::string(kMessagesSuffix);
  const auto body = create_form(0);
  const auto authorization = "Authorization: Basic " + base64(std::string(kAccountSid) + ":" + kAuthToken);
  curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  headers = curl_slist_append(headers, authorization.c_str());
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
  std::vector<CURL*> handles(static_cast<std::size_t>(in_flight));
  for (auto& e : handles) {
    e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, target.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10'000L);
  }
  std::size_t errors = 0;
  std::string first_error;
  auto round = [&](std::size_t count) {
    std::size_t started = 0, finished = 0;
    auto cpu_start = cpu_now();
    auto start = Clock::now();
    for (auto* e : handles) {
      if (started == count) break;
      curl_multi_add_handle(multi, e);
      ++started;
    }
    int running = 0;
    while (finished < count) {
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* e = msg->easy_handle;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK || status != 201) {
          ++errors;
          if (first_error.empty()) first_error = std::string(curl_easy_strerror(msg->data.result)) + " HTTP " + std::to_string(status);
        }
        curl_multi_remove_handle(multi, e);
        ++finished;
        if (started < count) {
          curl_multi_add_handle(multi, e);
          ++started;
        }
      }
      if (finished < count) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    return std::pair{std::chrono::duration<double>(Clock::now() - start).count(), cpu_now() - cpu_start};
  };
  round(warmup);
  std::vector<double> rates;
  double cpu = 0;
  for (int r = 0; r < repeat; ++r) {
    auto [seconds, cpu_seconds] = round(messages);
    rates.push_back(static_cast<double>(messages) / seconds);
    cpu += cpu_seconds;
  }
  for (auto* e : handles) curl_easy_cleanup(e);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  std::sort(rates.begin(), rates.end());
  auto n = rates.size();
  double median = n % 2 == 1 ? rates[n / 2] : (rates[n / 2 - 1] + rates[n / 2]) / 2;
  std::printf("libcurl messages=%zu in_flight=%d repeat=%d median_per_s=%.0f min_per_s=%.0f max_per_s=%.0f "
              "cpu_us_per_msg=%.2f errors=%zu%s%s\n",
              messages, in_flight, repeat, median, rates.front(), rates.back(),
              cpu / (static_cast<double>(messages) * repeat) * 1e6, errors, first_error.empty() ? "" : " first_error=",
              first_error.c_str());
  return errors == 0 ? 0 : 2;
}

}  // namespace
}  // namespace relance::bench

int main(int argc, char** argv) {
  using namespace relance::bench;
  CLI::App app{"Twilio adapter dispatch throughput against a local sink"};
  app.require_subcommand(1);

  int port = 0, threads = 4;
  std::string server = "epoll";
  auto* sink = app.add_subcommand("sink", "Serve Twilio-shaped 201 answers on 127.0.0.1 (port 0: any free port)");
  sink->add_option("--port", port, "TCP port; 0 picks a free one")->capture_default_str();
  sink->add_option("--threads", threads, "worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  sink->add_option("--server", server, "epoll or httplib (httplib needs --threads >= connections)")
      ->capture_default_str()
      ->check(CLI::IsMember({"epoll", "httplib"}));

  std::string url;
  std::size_t messages = 20000, warmup = 0, backlog = 0;
  int in_flight = 8, repeat = 1;
  auto* dispatch = app.add_subcommand("dispatch", "Send SMS through a TwilioAccount to the sink");
  dispatch->add_option("--url", url, "the sink's base URL (http://127.0.0.1:P)")->required();
  dispatch->add_option("--messages", messages, "messages per round")->capture_default_str()->check(CLI::PositiveNumber);
  dispatch->add_option("--in-flight", in_flight, "max_in_flight")->capture_default_str()->check(CLI::Range(1, 4096));
  dispatch->add_option("--repeat", repeat, "measured rounds")->capture_default_str()->check(CLI::Range(1, 1000));
  dispatch->add_option("--warmup", warmup, "messages sent before measuring (default: 20 per in-flight slot)");
  dispatch->add_option("--backlog", backlog,
                       "messages handed to the account and not yet answered, at most (default: 4 per in-flight slot)");

  auto* bare = app.add_subcommand("libcurl", "The same requests on a bare libcurl multi handle (no adapter)");
  bare->add_option("--url", url, "the sink's base URL (http://127.0.0.1:P)")->required();
  bare->add_option("--messages", messages, "requests per round")->capture_default_str()->check(CLI::PositiveNumber);
  bare->add_option("--in-flight", in_flight, "easy handles in flight")->capture_default_str()->check(CLI::Range(1, 4096));
  bare->add_option("--repeat", repeat, "measured rounds")->capture_default_str()->check(CLI::Range(1, 1000));

  app.add_subcommand("wrk-script", "Print the wrk Lua script sending the adapter's create request");

  CLI11_PARSE(app, argc, argv);
  try {
    if (sink->parsed()) {
      return server == "epoll" ? run_epoll_sink(port, threads) : run_httplib_sink(port, threads);
    }
    if (dispatch->parsed()) {
      if (warmup == 0) warmup = static_cast<std::size_t>(in_flight) * 20;
      if (backlog == 0) backlog = static_cast<std::size_t>(in_flight) * 4;
      return run_dispatch(url, messages, in_flight, repeat, warmup, backlog);
    }
    if (bare->parsed()) return run_libcurl(url, messages, in_flight, repeat, static_cast<std::size_t>(in_flight) * 20);
    return wrk_script();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "relance_dispatch_bench: %s\n", e.what());
    return 1;
  }
}
