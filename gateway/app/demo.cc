#include "app/demo.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "app/gateway.h"
#include "app/http_server.h"
#include "app/stop_signals.h"
#include "common/dates.h"
#include "config/config_loader.h"
#include "kafka/kafka_client.h"
#include "relance/v1/preview.pb.h"
#include "render/template_catalog.h"

namespace relance::app {

namespace v1 = relance::v1;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

Instant demo_start() { return *parse_rfc3339("2026-09-01T06:00:00Z"); }

namespace {

struct TimedEvent {
  Instant at;
  std::string key;
  std::string bytes;
};

std::vector<TimedEvent> scenario() {
  std::vector<TimedEvent> events;
  std::istringstream lines(demo_events_jsonl());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    v1::PreviewEvent e;
    if (!google::protobuf::util::JsonStringToMessage(line, &e).ok() || !e.event().has_occurred_at()) {
      throw std::runtime_error("demo scenario line " + std::to_string(n) + " is not a PreviewEvent with occurredAt");
    }
    TimedEvent t;
    t.at = Instant{std::chrono::seconds(e.event().occurred_at().seconds())};
    t.key = e.key();
    e.event().SerializeToString(&t.bytes);
    events.push_back(std::move(t));
  }
  std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
  return events;
}

// Reads the delivery and outcome topics from their beginning, without a group.
class Observer {
 public:
  Observer(const std::string& bootstrap, const std::vector<std::string>& topics, kafka::Producer& metadata) {
    auto conf = kafka::make_conf({{"bootstrap.servers", bootstrap},
                                  {"group.id", "relance-demo-observer"},
                                  {"enable.auto.commit", "false"},
                                  {"enable.partition.eof", "false"}});
    char err[512];
    rk_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
    if (!rk_) throw std::runtime_error(std::string("demo observer: ") + err);
    conf.release();
    kafka::PartitionListPtr parts(rd_kafka_topic_partition_list_new(8));
    for (const auto& topic : topics) {
      int count = metadata.partition_count(topic, std::chrono::seconds(10));
      for (int p = 0; p < count; ++p) {
        rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    rd_kafka_assign(rk_.get(), parts.get());
  }
  ~Observer() {
    if (rk_) rd_kafka_consumer_close(rk_.get());
  }

  // Reads what has arrived (waiting at most `wait` for the first record); true if anything did.
  bool drain(const std::string& delivery_topic, DemoSummary& summary, std::chrono::milliseconds wait) {
    bool any = false;
    for (int i = 0; i < 10'000; ++i) {
      kafka::MessagePtr msg(rd_kafka_consumer_poll(rk_.get(), i == 0 ? static_cast<int>(wait.count()) : 0));
      if (!msg) break;
      if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      any = true;
      std::string_view topic = rd_kafka_topic_name(msg->rkt);
      if (topic == delivery_topic) {
        v1::DeliveryEvent e;
        if (e.ParseFromArray(msg->payload, static_cast<int>(msg->len))) summary.count(e);
      } else {
        v1::ReminderOutcome o;
        if (o.ParseFromArray(msg->payload, static_cast<int>(msg->len))) summary.count(o);
      }
    }
    return any;
  }

 private:
  kafka::HandlePtr rk_;
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

void print_progress(int day, int days, const DemoSummary& s) {
  std::map<std::string, int> by_channel;
  for (const auto& [key, n] : s.sent) by_channel[key.first] += n;
  std::string channels;
  for (const auto& [channel, n] : by_channel) {
    channels += (channels.empty() ? "" : ", ") + std::to_string(n) + " " + lower(channel);
  }
  int paid = 0;
  for (const auto& [stage, n] : s.paid_after) paid += n;
  int suppressed = 0;
  for (const auto& [reason, n] : s.suppressed) suppressed += n;
  std::printf("day %2d/%d  %3d sent (%s)  %d suppressed  %d paid after reminders\n", day, days, s.total_sent(),
              channels.empty() ? "none yet" : channels.c_str(), suppressed, paid);
  std::fflush(stdout);
}

}  // namespace

void DemoSummary::count(const v1::DeliveryEvent& event) {
  switch (event.status()) {
    case v1::SENT:
      ++sent[{v1::Channel_Name(event.channel()), v1::Tone_Name(event.tone())}];
      if (event.channel() == v1::CALL_TASK) ++call_tasks;
      break;
    case v1::SUPPRESSED:
      ++suppressed[event.error_message().empty() ? std::string("unspecified") : event.error_message()];
      break;
    case v1::FAILED:
    case v1::OUTCOME_UNKNOWN:
      ++failed;
      break;
    default:
      break;  // later statuses of a message already counted
  }
}

void DemoSummary::count(const v1::ReminderOutcome& outcome) {
  if (outcome.resolution() == v1::ReminderOutcome::PAID) ++paid_after[outcome.last_stage()];
}

int DemoSummary::total_sent() const {
  int n = 0;
  for (const auto& [key, count] : sent) n += count;
  return n;
}

std::string DemoSummary::table() const {
  std::ostringstream out;
  std::set<std::string> channels;
  std::vector<std::string> tones{"FRIENDLY", "COURTEOUS", "FIRM", "FINAL"};
  for (const auto& [key, n] : sent) {
    channels.insert(key.first);
    if (std::find(tones.begin(), tones.end(), key.second) == tones.end()) tones.push_back(key.second);
  }
  out << "Sent, by channel and tone\n\n| channel |";
  for (const auto& tone : tones) out << ' ' << lower(tone) << " |";
  out << " total |\n|---|";
  for (std::size_t i = 0; i <= tones.size(); ++i) out << "---:|";
  out << '\n';
  for (const auto& channel : channels) {
    out << "| " << lower(channel) << " |";
    int total = 0;
    for (const auto& tone : tones) {
      auto it = sent.find({channel, tone});
      int n = it == sent.end() ? 0 : it->second;
      total += n;
      out << ' ' << n << " |";
    }
    out << ' ' << total << " |\n";
  }
  out << "\nCall tasks for the support team: " << call_tasks << "\n";
  out << "\nSuppressed (recorded, not sent)\n\n";
  if (suppressed.empty()) out << "none\n";
  for (const auto& [reason, n] : suppressed) out << "- " << n << " × " << reason << '\n';
  out << "\nPaid in full after reminders, by the last stage reached\n\n";
  if (paid_after.empty()) out << "none\n";
  for (const auto& [stage, n] : paid_after) out << "- " << stage << ": " << n << '\n';
  if (failed > 0) out << "\nFailed or unknown sends: " << failed << '\n';
  return out.str();
}

std::string DemoSummary::json() const {
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out;
  };
  std::ostringstream out;
  out << "{\"sent\": {";
  bool first = true;
  for (const auto& [key, n] : sent) {
    out << (first ? "" : ", ") << '"' << key.first << '/' << key.second << "\": " << n;
    first = false;
  }
  out << "}, \"suppressed\": {";
  first = true;
  for (const auto& [reason, n] : suppressed) {
    out << (first ? "" : ", ") << '"' << escape(reason) << "\": " << n;
    first = false;
  }
  out << "}, \"call_tasks\": " << call_tasks << ", \"paid_after\": {";
  first = true;
  for (const auto& [stage, n] : paid_after) {
    out << (first ? "" : ", ") << '"' << escape(stage) << "\": " << n;
    first = false;
  }
  out << "}, \"failed\": " << failed << "}\n";
  return out.str();
}

int run_demo(const DemoOptions& options) {
  auto events = scenario();
  auto env = config::process_environment();
  auto loaded = config::load_config("", env);
  auto& config = loaded.config;
  fs::remove_all(options.data_dir);
  fs::create_directories(options.data_dir);
  auto dir = fs::path(options.data_dir);
  config.mutable_store()->set_path((dir / "store").string());
  config.mutable_channels()->mutable_capture()->set_dir((dir / "outbox").string());
  config.mutable_kafka()->mutable_embedded()->set_bootstrap_file((dir / "kafka-bootstrap").string());
  config.mutable_http()->set_listen(options.listen);
  render::TemplateLibrary::install(render::TemplateLibrary::load(config));

  // Frozen until the gateway is ready: the group's first assignment takes about a second, a
  // day and a half of simulated time at the default speed.
  auto start = demo_start();
  auto clock = std::make_shared<SimulatedClock>(start, 0.0);
  Gateway gateway(config, env, clock);
  gateway.start();
  HttpServer http(gateway, config);
  std::thread loop([&gateway] { gateway.run(); });
  struct StopAndJoin {
    Gateway& gateway;
    std::thread& loop;
    ~StopAndJoin() {
      gateway.request_stop();
      if (loop.joinable()) loop.join();
    }
  } stop_and_join{gateway, loop};

  std::atomic<bool> interrupted{false};
  StopSignals signals([&interrupted](int) { interrupted.store(true); });

  auto deadline = Steady::now() + std::chrono::seconds(120);
  while (!gateway.not_ready_reason().empty()) {
    if (Steady::now() > deadline || interrupted.load()) {
      std::cerr << "relance demo: the gateway did not become ready: " << gateway.not_ready_reason() << "\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto& kc = config.kafka();
  kafka::Producer producer({{"bootstrap.servers", gateway.bootstrap_servers()}, {"enable.idempotence", "true"}});
  Observer observer(gateway.bootstrap_servers(), {kc.delivery_topic(), kc.outcome_topic()}, producer);

  auto end = start + std::chrono::days(options.days);
  std::printf("Relance demo: %zu events for 8 customers over %d simulated days, %.0f× real time.\n"
              "Console: http://%s/  (captured messages in %s)\n\n",
              events.size(), options.days, options.speed, options.listen.c_str(), (dir / "outbox").c_str());
  std::fflush(stdout);
  clock->set_speed(options.speed);

  DemoSummary summary;
  std::size_t next = 0;
  int reported_day = 0;
  while (!interrupted.load()) {
    auto now = clock->now();
    bool published = false;
    while (next < events.size() && events[next].at <= std::min(now, end)) {
      producer.produce(kc.input_topic(), events[next].key, events[next].bytes,
                       {{"content-type", "application/x-protobuf"}});
      ++next;
      published = true;
    }
    if (published && !producer.flush(std::chrono::seconds(10))) {
      std::cerr << "relance demo: the embedded cluster did not acknowledge an event\n";
      return 1;
    }
    observer.drain(kc.delivery_topic(), summary, std::chrono::milliseconds(10));
    int day = static_cast<int>(std::chrono::duration_cast<std::chrono::hours>(std::min(now, end) - start).count() / 24);
    if (day / 7 > reported_day / 7 || (now >= end && reported_day < options.days)) {
      reported_day = now >= end ? options.days : day;
      print_progress(reported_day, options.days, summary);
    }
    if (now >= end) break;
  }
  // Frozen at the end of the window; what was due before it settles, then the figures are read.
  clock->set(end);
  clock->set_speed(0);
  auto quiet_since = Steady::now();
  auto give_up = Steady::now() + std::chrono::seconds(30);
  while (!interrupted.load() && Steady::now() < give_up) {
    if (observer.drain(kc.delivery_topic(), summary, std::chrono::milliseconds(100))) quiet_since = Steady::now();
    bool settled = gateway.metrics().sends_in_flight.load() == 0;
    if (settled && Steady::now() - quiet_since > std::chrono::milliseconds(1500)) break;
  }

  std::printf("\n%s", summary.table().c_str());
  if (!options.summary_json.empty()) std::ofstream(options.summary_json) << summary.json();
  if (options.exit_when_done || interrupted.load()) return 0;
  std::printf("\nThe console stays up at http://%s/ — Ctrl-C to stop.\n", options.listen.c_str());
  std::fflush(stdout);
  while (!interrupted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace relance::app
