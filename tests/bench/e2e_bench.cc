// End to end on a real Kafka broker: invoice events produced to the input topic (2+ partitions)
// → the `relance` binary (one instance, both partitions) → a Twilio-shaped sink in this process
// → delivery events the gateway produces (idempotent producer: acks=all). Every event is an
// overdue invoice of a customer of its own with SMS consent, so every event is one SMS.
//
//   relance_e2e_bench sink [--port 0] [--threads 2]
//       The same sink alone, for wrk (the HTTP ceiling). Prints "listening port=P".
//   relance_e2e_bench event-size
//       The mean size of an event's record value, for the kcat ceilings.
//   relance_e2e_bench create-topics --brokers HOST:PORT [--partitions 2] TOPIC...
//   relance_e2e_bench run --brokers HOST:PORT --relance BIN --work DIR [--partitions 2]
//                         [--burst 100000] [--sustain 60] [--latency 30] [--low-rate 10000]
//       1. burst: --burst events produced as fast as the producer goes; the rate at which the
//          gateway drains them (first produced → last at the sink) estimates its capacity.
//       2. sustained: events paced at 90% of that rate for --sustain seconds; held when every
//          event reached the sink exactly once, has exactly one SENT delivery event, nothing went
//          to the dead-letter topic and the events of the last 10 s arrived with p99 < 1 s (the
//          gateway kept up rather than piling up a backlog). If not held, 15% less or 90% of the
//          rate the try got through, whichever is lower; up to 4 tries.
//       3. latency: events paced at --low-rate and at half the highest held rate for --latency
//          seconds each; latency = the producer's timestamp (just before produce()) → the
//          request at the sink, p50/p99/max over every event.
//       4. restarts with every timeline of the run in the state: from the local store, then with
//          the store deleted (restored from the changelog), each timed to readiness, and the
//          memory held once restored.
//       Prints one key=value line per phase and a summary line. --only-rate R: after the warm-up,
//       only a latency run at R (for profiling the gateway under a steady load).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <httplib.h>
#include <unistd.h>

#include "kafka/kafka_client.h"
#include "relance/v1/delivery.pb.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"
#include "support/sample_events.h"
#include "support/test_topics.h"
#include "twilio_sink.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kAccountSid = "AC0123456789abcdef0123456789abcdef";
constexpr const char* kAuthToken = "e2e-bench-auth-token-0123456789ab";
constexpr long kPhoneBase = 10'000'000;  // customer i has the mobile number +336 (kPhoneBase + i)

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch()).count(); }

// What happened to each event, by customer index.
struct Tracker {
  explicit Tracker(std::size_t n) : produced_ns(n), arrived_ns(n), arrivals(n), sent_events(n) {}
  std::vector<std::atomic<int64_t>> produced_ns;
  std::vector<std::atomic<int64_t>> arrived_ns;  // first arrival at the sink
  std::vector<std::atomic<int>> arrivals;        // requests at the sink
  std::vector<std::atomic<int>> sent_events;     // SENT delivery events
  std::atomic<long> other_statuses{0};           // delivery events other than SENT
  std::atomic<long> dead_letters{0};
  std::atomic<long> strangers{0};                // requests or events naming no customer of ours
};

// The customer index from the To field of a create form ("To=%2B336NNNNNNNN&...").
std::optional<std::size_t> index_of_form(std::string_view form) {
  auto at = form.find("To=%2B336");
  if (at == std::string_view::npos) return std::nullopt;
  long number = 0;
  std::size_t digits = 0;
  for (auto i = at + 9; i < form.size() && form[i] >= '0' && form[i] <= '9'; ++i, ++digits) {
    number = number * 10 + (form[i] - '0');
  }
  if (digits != 8 || number < kPhoneBase) return std::nullopt;
  return static_cast<std::size_t>(number - kPhoneBase);
}

std::optional<std::size_t> index_of_customer(std::string_view id) {
  if (id.substr(0, 5) != "cust-") return std::nullopt;
  try {
    return static_cast<std::size_t>(std::stoul(std::string(id.substr(5))));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string event_for(std::size_t i) {
  auto spec = relance::testing::numbered_invoice(static_cast<long>(i));
  spec.due_on = "2026-11-20";
  spec.amount_due = 12'000 + static_cast<int64_t>(i % 1000);
  auto phone = "+336" + std::to_string(kPhoneBase + static_cast<long>(i));
  return relance::testing::with_sms_consent(relance::testing::invoice_issued(spec), phone).SerializeAsString();
}

struct Rig {
  std::string brokers;
  relance::testing::TestTopics topics;
  std::unique_ptr<relance::kafka::Producer> producer;
};

// Produces customers [first, first + count) at `rate` events/s (0: as fast as possible), each
// record's produce time noted just before produce().
void produce_paced(Rig& rig, Tracker& tracker, std::size_t first, std::size_t count, double rate) {
  std::vector<std::string> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = event_for(first + i);
  const auto start = Steady::now();
  std::size_t done = 0;
  while (done < count) {
    std::size_t due = count;
    if (rate > 0) {
      auto elapsed = std::chrono::duration<double>(Steady::now() - start).count();
      due = std::min(count, static_cast<std::size_t>(elapsed * rate) + 1);
    }
    for (; done < due; ++done) {
      auto i = first + done;
      tracker.produced_ns[i].store(now_ns(), std::memory_order_relaxed);
      rig.producer->produce(rig.topics.input, "cust-" + std::to_string(i), values[done]);
    }
    rig.producer->poll();
    if (rate > 0) std::this_thread::sleep_for(500us);
  }
  if (!rig.producer->flush(30s)) throw std::runtime_error("the broker did not acknowledge the events");
}

struct Outcome {
  std::size_t events = 0;
  std::size_t arrived = 0;      // at the sink at least once
  std::size_t duplicates = 0;   // requests beyond the first
  std::size_t sent_events = 0;  // customers with exactly one SENT delivery event
  long other_statuses = 0, dead_letters = 0, strangers = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0, tail_p99_ms = 0;
  int64_t first_produced = 0, last_arrived = 0;
  bool complete() const {
    return arrived == events && duplicates == 0 && sent_events == events && other_statuses == 0 &&
           dead_letters == 0 && strangers == 0;
  }
};

// Resident memory of a process, KiB (0 when it cannot be read).
long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// Waits until every event of the range reached the sink and has its delivery event (or
// `drain` passes with no progress), then tallies the range.
Outcome settle(Tracker& tracker, std::size_t first, std::size_t count, std::chrono::seconds drain,
               int64_t tail_from_ns) {
  auto counted = [&] {
    std::size_t n = 0;
    for (std::size_t i = first; i < first + count; ++i) {
      if (tracker.arrivals[i].load() > 0 && tracker.sent_events[i].load() > 0) ++n;
    }
    return n;
  };
  auto last_progress = Steady::now();
  std::size_t seen = 0;
  while (Steady::now() - last_progress < drain) {
    auto n = counted();
    if (n == count) break;
    if (n != seen) {
      seen = n;
      last_progress = Steady::now();
    }
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(1s);  // room for a duplicate to show
  Outcome out;
  out.events = count;
  out.first_produced = INT64_MAX;
  std::vector<double> latency, tail;
  latency.reserve(count);
  for (std::size_t i = first; i < first + count; ++i) {
    auto arrivals = tracker.arrivals[i].load();
    auto produced = tracker.produced_ns[i].load();
    out.first_produced = std::min(out.first_produced, produced);
    if (arrivals > 0) {
      ++out.arrived;
      out.duplicates += static_cast<std::size_t>(arrivals - 1);
      auto arrived = tracker.arrived_ns[i].load();
      out.last_arrived = std::max(out.last_arrived, arrived);
      double ms = static_cast<double>(arrived - produced) / 1e6;
      latency.push_back(ms);
      if (produced >= tail_from_ns) tail.push_back(ms);
    }
    if (tracker.sent_events[i].load() == 1) ++out.sent_events;
  }
  out.other_statuses = tracker.other_statuses.exchange(0);
  out.dead_letters = tracker.dead_letters.exchange(0);
  out.strangers = tracker.strangers.exchange(0);
  out.p50_ms = percentile(latency, 0.50);
  out.p99_ms = percentile(latency, 0.99);
  out.max_ms = latency.empty() ? 0 : *std::max_element(latency.begin(), latency.end());
  out.tail_p99_ms = percentile(tail, 0.99);
  return out;
}

void print(const char* phase, double rate, double seconds, const Outcome& o, bool held) {
  std::printf("%s rate=%.0f seconds=%.1f events=%zu arrived=%zu duplicates=%zu sent_events=%zu other_statuses=%ld "
              "dead_letters=%ld strangers=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f tail_p99_ms=%.2f held=%d\n",
              phase, rate, seconds, o.events, o.arrived, o.duplicates, o.sent_events, o.other_statuses,
              o.dead_letters, o.strangers, o.p50_ms, o.p99_ms, o.max_ms, o.tail_p99_ms, held ? 1 : 0);
  std::fflush(stdout);
}

int run(const std::string& brokers, const std::string& relance_binary, const fs::path& work, int partitions,
        std::size_t burst, int sustain_seconds, int latency_seconds, double low_rate, double fixed_rate) {
  const std::string suffix = "e2e-bench-" + std::to_string(getpid());
  Rig rig{brokers, relance::testing::TestTopics(suffix), nullptr};
  rig.topics.create(brokers, partitions);
  rig.producer = std::make_unique<relance::kafka::Producer>(
      relance::kafka::Properties{{"bootstrap.servers", brokers}, {"linger.ms", "1"}});

  // Room for every phase: the burst, four sustained tries at up to the burst's rate and two
  // latency runs.
  const std::size_t capacity = burst * 2 + 400'000 * static_cast<std::size_t>(sustain_seconds) / 10 +
                               static_cast<std::size_t>(low_rate) * static_cast<std::size_t>(latency_seconds) * 2 +
                               10'000;
  Tracker tracker(capacity);

  relance::bench::TwilioSink sink(0, 2, [&tracker](std::string_view form) {
    auto i = index_of_form(form);
    if (!i || *i >= tracker.arrivals.size()) {
      tracker.strangers.fetch_add(1);
      return;
    }
    if (tracker.arrivals[*i].fetch_add(1) == 0) tracker.arrived_ns[*i].store(now_ns());
  });

  // Delivery events and dead letters, read as analytics would (read_committed).
  std::atomic<bool> stopping{false};
  std::thread reader([&] {
    relance::kafka::Consumer consumer({{"bootstrap.servers", brokers}, {"group.id", "bench-reader-" + suffix}}, {});
    consumer.subscribe({rig.topics.delivery, rig.topics.dlq});
    while (!stopping.load()) {
      auto record = consumer.poll(100ms);
      if (!record) continue;
      if (record->topic() == rig.topics.dlq) {
        tracker.dead_letters.fetch_add(1);
        continue;
      }
      v1::DeliveryEvent event;
      auto value = record->value();
      if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        tracker.strangers.fetch_add(1);
        continue;
      }
      auto i = index_of_customer(event.customer_id());
      if (!i || *i >= tracker.sent_events.size()) {
        tracker.strangers.fetch_add(1);
      } else if (event.status() == v1::SENT && event.channel() == v1::SMS) {
        tracker.sent_events[*i].fetch_add(1);
      } else {
        tracker.other_statuses.fetch_add(1);
      }
    }
    consumer.close();
  });

  fs::create_directories(work);
  const int http_port = relance::testing::free_port();
  std::ofstream(work / "relance.yaml")
      << rig.topics.kafka_yaml() << "store:\n  path: " << (work / "store").string() << "\n"
      << "channels:\n"
      << "  twilio:\n"
      << "    base_url: " << sink.base_url() << "\n"
      << "    account_sid: " << kAccountSid << "\n"
      << "    auth_token_env: RELANCE_BENCH_TWILIO_TOKEN\n"
      << "    sms_from: \"+15005550006\"\n"
      << "    max_in_flight: 64\n"
      << "policy:\n"
      << "  company_name: Example Ltd\n"
      << "  stages:\n"
      << "    - {name: first_reminder, offset_days: 1, tone: courteous, channels: {minor: [sms], middle: [sms], "
         "large: [sms]}}\n"
      << "http:\n"
      << "  listen: 127.0.0.1:" << http_port << "\n"
      << "  public_url: http://127.0.0.1:" << http_port << "\n"
      << "clock:\n"
      << "  mode: simulated\n"
      << "  simulated_start: 2026-11-24T10:00:00Z\n"
      << "  speed: 1\n"
      << "logging:\n"
      << "  level: warn\n";
  auto start_gateway = [&] {
    return std::make_unique<relance::testing::GatewayProcess>(
        std::vector<std::string>{fs::absolute(relance_binary).string(), "run", "--config",
                                 (work / "relance.yaml").string()},
        std::map<std::string, std::string>{{"RELANCE_KAFKA__BROKERS", brokers},
                                           {"RELANCE_BENCH_TWILIO_TOKEN", kAuthToken}},
        work, work / "gateway.log");
  };
  // Seconds from now until /readyz answers 200 (partitions assigned, restored, caught up), or -1.
  auto seconds_to_ready = [&](relance::testing::GatewayProcess& process, std::chrono::seconds timeout) {
    auto start = Steady::now();
    bool ready = relance::testing::eventually(timeout, [&] {
      httplib::Client client("127.0.0.1", http_port);
      auto res = client.Get("/readyz");
      return (res && res->status == 200) || !process.running();
    });
    if (!ready || !process.running()) return -1.0;
    return std::chrono::duration<double>(Steady::now() - start).count();
  };
  auto gateway = start_gateway();
  if (seconds_to_ready(*gateway, 60s) < 0) {
    std::fprintf(stderr, "the gateway did not get ready; its log:\n%s\n", gateway->log().c_str());
    stopping = true;
    reader.join();
    return 2;
  }
  const long baseline_rss_kib = rss_kib(gateway->pid());

  std::size_t next = 0;
  auto phase = [&](std::size_t count, double rate, std::chrono::seconds drain) {
    auto first = next;
    next += count;
    auto start = Steady::now();
    auto tail_from = now_ns() + static_cast<int64_t>(rate > 0 ? (static_cast<double>(count) / rate - 10) * 1e9 : 0);
    produce_paced(rig, tracker, first, count, rate);
    auto outcome = settle(tracker, first, count, drain, tail_from);
    double seconds = std::chrono::duration<double>(Steady::now() - start).count();
    return std::make_pair(outcome, seconds);
  };

  // Warm-up: connections, the store and the page cache, not measured.
  {
    auto [o, s] = phase(2'000, 0, 60s);
    print("warmup", 0, s, o, o.complete());
    if (!o.complete()) {
      std::fprintf(stderr, "the gateway did not send the warm-up events; its log:\n%s\n", gateway->log().c_str());
      stopping = true;
      reader.join();
      return 2;
    }
  }

  if (fixed_rate > 0) {
    auto o = phase(static_cast<std::size_t>(fixed_rate * latency_seconds), fixed_rate, 30s).first;
    print("latency", fixed_rate, latency_seconds, o, o.complete());
    stopping = true;
    reader.join();
    gateway->stop();
    return o.complete() ? 0 : 3;
  }

  auto [burst_outcome, burst_seconds] = phase(burst, 0, 60s);
  double drained_per_s = static_cast<double>(burst_outcome.arrived) /
                         (static_cast<double>(burst_outcome.last_arrived - burst_outcome.first_produced) / 1e9);
  print("burst", drained_per_s, burst_seconds, burst_outcome, burst_outcome.complete());

  double held_rate = 0;
  Outcome held_outcome;
  double rate = 0.9 * drained_per_s;
  for (int attempt = 0; attempt < 4 && held_rate == 0; ++attempt) {
    auto count = static_cast<std::size_t>(rate * sustain_seconds);
    if (next + count > capacity) break;
    auto [o, s] = phase(count, rate, 30s);
    bool held = o.complete() && o.tail_p99_ms < 1000;
    print("sustained", rate, s, o, held);
    if (held) {
      held_rate = rate;
      held_outcome = o;
    }
    // Next: 15% less, or 90% of what the gateway actually got through in this try if that is
    // lower (a try it could not hold tells its rate better than the burst did).
    double achieved = static_cast<double>(o.arrived) / (static_cast<double>(o.last_arrived - o.first_produced) / 1e9);
    rate = std::min(rate * 0.85, achieved * 0.9);
  }

  Outcome low, half;
  bool low_run = false;
  if (held_rate > 0 && low_rate <= held_rate) {
    auto count = static_cast<std::size_t>(low_rate * latency_seconds);
    if (next + count <= capacity) {
      low = phase(count, low_rate, 30s).first;
      print("latency", low_rate, latency_seconds, low, low.complete());
      low_run = true;
    }
  }
  if (held_rate > 0) {
    auto count = static_cast<std::size_t>(held_rate / 2 * latency_seconds);
    half = phase(count, held_rate / 2, 30s).first;
    print("latency", held_rate / 2, latency_seconds, half, half.complete());
  }

  std::printf("summary partitions=%d burst_per_s=%.0f max_sustained_per_s=%.0f low_rate=%.0f low_p50_ms=%s "
              "low_p99_ms=%s half_rate=%.0f half_p50_ms=%.2f half_p99_ms=%.2f half_complete=%d\n",
              partitions, drained_per_s, held_rate, low_rate, low_run ? std::to_string(low.p50_ms).c_str() : "none",
              low_run ? std::to_string(low.p99_ms).c_str() : "none", held_rate / 2, half.p50_ms, half.p99_ms,
              half.complete() ? 1 : 0);
  std::fflush(stdout);
  stopping = true;
  reader.join();

  // Restarts with every timeline of the run in the state: from the local store, then with the
  // store deleted (restored from the changelog topic), each timed from the process's start to
  // its readiness; the memory it holds once restored, beside what it held empty.
  auto restart = [&](bool from_changelog) {
    if (auto status = gateway->stop(); status != 0) {
      std::fprintf(stderr, "the gateway ended with %d\n", status.value_or(-1));
    }
    if (from_changelog) fs::remove_all(work / "store");
    gateway = start_gateway();
    auto seconds = seconds_to_ready(*gateway, 600s);
    std::this_thread::sleep_for(2s);  // what the restore left behind, not its peak
    return std::make_pair(seconds, rss_kib(gateway->pid()));
  };
  auto [local_s, local_rss] = restart(false);
  auto [changelog_s, changelog_rss] = restart(true);
  std::printf("restart timelines=%zu local_s=%.2f changelog_s=%.2f baseline_rss_mib=%.0f local_rss_mib=%.0f "
              "changelog_rss_mib=%.0f bytes_per_timeline=%.0f\n",
              next, local_s, changelog_s, static_cast<double>(baseline_rss_kib) / 1024,
              static_cast<double>(local_rss) / 1024, static_cast<double>(changelog_rss) / 1024,
              static_cast<double>(changelog_rss - baseline_rss_kib) * 1024 / static_cast<double>(next));
  std::fflush(stdout);
  if (auto status = gateway->stop(); status != 0) {
    std::fprintf(stderr, "the gateway ended with %d\n", status.value_or(-1));
  }
  return held_rate > 0 && local_s >= 0 && changelog_s >= 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Events to SMS end to end on a real Kafka broker"};
  app.require_subcommand(1);

  int port = 0, threads = 2;
  auto* sink = app.add_subcommand("sink", "Serve the Twilio-shaped sink alone on 127.0.0.1 (for wrk)");
  sink->add_option("--port", port, "TCP port; 0 picks a free one")->capture_default_str();
  sink->add_option("--threads", threads, "worker threads")->capture_default_str()->check(CLI::Range(1, 64));

  std::string brokers, relance_binary, work;
  int partitions = 2, sustain = 60, latency = 30;
  std::size_t burst = 100'000;
  double low_rate = 10'000, fixed_rate = 0;
  auto* run_cmd = app.add_subcommand("run", "Measure: burst, sustained rate, latency");
  run_cmd->add_option("--brokers", brokers, "bootstrap servers")->required();
  run_cmd->add_option("--relance", relance_binary, "the relance binary")->required()->check(CLI::ExistingFile);
  run_cmd->add_option("--work", work, "work directory (config, store, log)")->required();
  run_cmd->add_option("--partitions", partitions, "input topic partitions")->capture_default_str()->check(CLI::Range(2, 64));
  run_cmd->add_option("--burst", burst, "events in the burst")->capture_default_str()->check(CLI::Range(1000, 2'000'000));
  run_cmd->add_option("--sustain", sustain, "seconds per sustained try")->capture_default_str()->check(CLI::Range(5, 600));
  run_cmd->add_option("--latency", latency, "seconds per latency run")->capture_default_str()->check(CLI::Range(5, 600));
  run_cmd->add_option("--low-rate", low_rate, "the fixed latency rate (events/s)")->capture_default_str();
  run_cmd->add_option("--only-rate", fixed_rate, "only a latency run at this rate (events/s), for profiling");

  app.add_subcommand("event-size", "Print the mean size in bytes of the events the run produces");
  std::vector<std::string> topics;
  auto* create = app.add_subcommand("create-topics", "Create topics (for the kcat ceilings)");
  create->add_option("--brokers", brokers, "bootstrap servers")->required();
  create->add_option("--partitions", partitions, "partitions")->capture_default_str();
  create->add_option("topics", topics, "topic names")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (app.got_subcommand("event-size")) {
      std::size_t total = 0;
      for (std::size_t i = 0; i < 1000; ++i) total += event_for(i).size();
      std::printf("%zu\n", total / 1000);
      return 0;
    }
    if (create->parsed()) {
      relance::testing::create_topics(brokers, topics, partitions);
      return 0;
    }
    if (sink->parsed()) {
      relance::bench::TwilioSink server(port, threads);
      std::printf("listening port=%d\n", server.port());
      std::fflush(stdout);
      for (;;) ::pause();  // serves until killed
    }
    return run(brokers, relance_binary, work, partitions, burst, sustain, latency, low_rate, fixed_rate);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "relance_e2e_bench: %s\n", e.what());
    return 1;
  }
}
