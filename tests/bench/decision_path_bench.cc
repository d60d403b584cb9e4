// The decision path without I/O, event by event, as a partition's worker runs it: decode the
// Kafka record value (binary protobuf), validate it, apply it to its customer's ledger, plan
// with the default policy, and render every message due. Each thread owns its own customers
// (as a partition does) and its own events; the clock is fixed, so the work is the same in
// every run.
//
//   relance_decision_path_bench --customers 200000 --threads 1 --repeat 5
//
// The stream per customer: an invoice issued (70% due in the future: nothing to send; 20%
// already overdue: a reminder is decided and rendered at once; 10% large and overdue: a call
// task beside an email), then for a third of them a payment of that invoice (a thank-you is
// decided and rendered when a reminder went out). Reports events/s per thread, the latency of
// one event (p50, p99, p99.9, max) and, as the ceiling measured in the same run, decoding
// alone. Prints one `key=value` line per round and a summary line.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/dates.h"
#include "config/config_loader.h"
#include "decode/event_decoder.h"
#include "ledger/ledger.h"
#include "render/renderer.h"
#include "render/template_catalog.h"
#include "rules/reminder_rules.h"
#include "support/sample_events.h"

namespace {

namespace v1 = relance::v1;
using Steady = std::chrono::steady_clock;
using relance::Instant;

struct Engine {
  v1::PolicyConfig policy;
  relance::rules::ReminderRules rules;
  relance::render::Renderer renderer;
};

Engine make_engine() {
  auto config = relance::config::default_config();
  config.mutable_http()->set_public_url("https://relance.example.com");
  auto policy = config.policy();
  policy.mutable_messages()->set_company_contact("01 23 45 67 89, compta@example.com");
  relance::rules::ReminderRules rules(policy, {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK});
  return Engine{policy, std::move(rules),
                relance::render::Renderer(relance::render::TemplateLibrary::load(config))};
}

// A Kafka record as the worker sees it: the key (the customer) and the serialized value.
struct Record {
  std::string key;
  std::string value;
};

// One thread's share of the stream.
std::vector<Record> make_stream(long first, long customers) {
  std::vector<Record> issued, paid;
  issued.reserve(static_cast<size_t>(customers));
  for (long i = first; i < first + customers; ++i) {
    auto spec = relance::testing::numbered_invoice(i);
    const long kind = i % 10;
    spec.due_on = kind < 7 ? "2026-12-20" : "2026-11-10";
    spec.amount_due = kind == 9 ? 620'000 : 12'000 + i % 1000;
    // Every customer has a number of their own: libphonenumber's answers cannot come from a
    // cache on their first invoice.
    auto event = relance::testing::with_sms_consent(relance::testing::invoice_issued(spec),
                                                    "+336" + std::to_string(10'000'000 + i % 90'000'000));
    issued.push_back({spec.customer_id, event.SerializeAsString()});
    if (i % 3 == 0) {
      auto payment = relance::testing::payment_received("paid-" + std::to_string(i), spec.invoice_id, spec.amount_due);
      paid.push_back({spec.customer_id, payment.SerializeAsString()});
    }
  }
  issued.insert(issued.end(), paid.begin(), paid.end());
  return issued;
}

struct Round {
  double seconds = 0;
  long events = 0;
  long rendered = 0;
  long errors = 0;
  std::vector<float> latency_ns;
};

Round run_path(const Engine& engine, const std::vector<Record>& stream, Instant now) {
  Round round;
  round.latency_ns.reserve(stream.size());
  std::unordered_map<std::string, relance::ledger::CustomerLedger> ledgers;
  ledgers.reserve(stream.size());
  const auto start = Steady::now();
  for (const auto& record : stream) {
    const auto t0 = Steady::now();
    auto event = relance::decode::decode_event(record.value, relance::decode::ContentType::kProtobuf);
    if (!event || !relance::decode::validate_event(event.value())) {
      ++round.errors;
      continue;
    }
    // Events that name no customer (payments) belong to the record's key, as in the gateway.
    auto key = relance::decode::subject_key(event.value());
    if (key.empty()) key = record.key;
    auto& ledger = ledgers[key];
    if (ledger.key.empty()) ledger.key = key;
    relance::ledger::apply_event(ledger, event.value());
    auto plan = engine.rules.plan(ledger, now);
    for (const auto& decision : plan.now) {
      auto message = engine.renderer.render(decision, ledger, engine.policy);
      if (message) {
        ++round.rendered;
      } else {
        ++round.errors;
      }
    }
    round.latency_ns.push_back(static_cast<float>(std::chrono::duration<double, std::nano>(Steady::now() - t0).count()));
    ++round.events;
  }
  round.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  return round;
}

// The ceiling: what decoding the same records alone costs on the same thread.
double run_decode_only(const std::vector<Record>& stream) {
  long ok = 0;
  const auto start = Steady::now();
  for (const auto& record : stream) {
    auto event = relance::decode::decode_event(record.value, relance::decode::ContentType::kProtobuf);
    ok += event.ok();
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  return static_cast<double>(ok) / seconds;
}

double percentile(std::vector<float>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The decision path (decode, ledger, rules, render) without I/O"};
  long customers = 200'000;
  int threads = 1;
  int repeat = 5;
  app.add_option("--customers", customers, "customers per thread")->capture_default_str()->check(CLI::Range(1000L, 10'000'000L));
  app.add_option("--threads", threads, "worker threads, each with its own customers")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--repeat", repeat, "rounds; the summary is their median")->capture_default_str()->check(CLI::Range(1, 50));
  CLI11_PARSE(app, argc, argv);

  const auto engine = make_engine();
  const Instant now = *relance::parse_rfc3339("2026-11-23T09:30:00Z");
  std::vector<std::vector<Record>> streams;
  for (int t = 0; t < threads; ++t) streams.push_back(make_stream(t * customers, customers));

  std::vector<double> rates, per_thread, p50s, p99s, p999s, maxes, ceilings;
  for (int r = 0; r < repeat; ++r) {
    std::vector<Round> rounds(static_cast<size_t>(threads));
    std::vector<std::thread> workers;
    const auto start = Steady::now();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] { rounds[static_cast<size_t>(t)] = run_path(engine, streams[static_cast<size_t>(t)], now); });
    }
    for (auto& w : workers) w.join();
    const double wall = std::chrono::duration<double>(Steady::now() - start).count();
    long events = 0, rendered = 0, errors = 0;
    std::vector<float> all;
    double slowest_thread = 0;
    for (auto& round : rounds) {
      events += round.events;
      rendered += round.rendered;
      errors += round.errors;
      slowest_thread = std::max(slowest_thread, round.seconds);
      all.insert(all.end(), round.latency_ns.begin(), round.latency_ns.end());
    }
    std::sort(all.begin(), all.end());
    const double rate = static_cast<double>(events) / wall;
    const double ceiling = run_decode_only(streams[0]);
    rates.push_back(rate);
    per_thread.push_back(rate / threads);
    p50s.push_back(percentile(all, 0.50));
    p99s.push_back(percentile(all, 0.99));
    p999s.push_back(percentile(all, 0.999));
    maxes.push_back(all.empty() ? 0 : all.back());
    ceilings.push_back(ceiling);
    std::printf("round=%d threads=%d events=%ld rendered=%ld errors=%ld events_per_s=%.0f per_thread=%.0f "
                "p50_ns=%.0f p99_ns=%.0f p999_ns=%.0f max_ns=%.0f decode_only_per_s=%.0f slowest_thread_s=%.3f\n",
                r + 1, threads, events, rendered, errors, rate, rate / threads, p50s.back(), p99s.back(),
                p999s.back(), maxes.back(), ceiling, slowest_thread);
    std::fflush(stdout);
    if (errors != 0) return 1;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto low = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  auto high = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  std::printf("summary threads=%d events_per_s=%.0f min=%.0f max=%.0f per_thread=%.0f p50_ns=%.0f p99_ns=%.0f "
              "p99_min=%.0f p99_max=%.0f p999_ns=%.0f decode_only_per_s=%.0f\n",
              threads, median(rates), low(rates), high(rates), median(per_thread), median(p50s), median(p99s),
              low(p99s), high(p99s), median(p999s), median(ceilings));
  return 0;
}
