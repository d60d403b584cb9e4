// The durable ledger at scale, without Kafka: N timelines (one open invoice each) applied and
// scheduled over 90 days, the process's resident memory per open invoice, a clean reopen, and
// every timer taken in time order. Run: relance_state_bench --timelines 1000000.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "ledger/durable_ledger.h"
#include "store/state_store.h"

namespace {

using Steady = std::chrono::steady_clock;
namespace v1 = relance::v1;

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

v1::InvoiceEvent issued(long i) {
  v1::InvoiceEvent e;
  e.set_event_id("evt-" + std::to_string(i));
  auto* body = e.mutable_invoice_issued();
  auto* customer = body->mutable_customer();
  customer->set_customer_id("cust-" + std::to_string(i));
  customer->set_email("customer" + std::to_string(i) + "@example.com");
  customer->set_locale("fr-FR");
  customer->set_time_zone("Europe/Paris");
  auto* inv = body->mutable_invoice();
  inv->set_invoice_id("inv-" + std::to_string(i));
  inv->set_number("F-2026-" + std::to_string(i));
  inv->mutable_amount_due()->set_currency("EUR");
  inv->mutable_amount_due()->set_minor_units(12'000 + i % 1000);
  *inv->mutable_amount_total() = inv->amount_due();
  inv->set_due_on("2026-12-01");
  inv->set_payment_link("https://pay.example.com/inv-" + std::to_string(i));
  return e;
}

void commit(relance::store::StateStore& store, relance::ledger::DurableLedger& ledger, std::size_t& changelog_bytes) {
  relance::store::StateStore::Batch batch(store);
  std::vector<relance::store::ChangelogRecord> changelog;
  ledger.collect(batch, changelog);
  store.write(batch, false);
  for (const auto& r : changelog) changelog_bytes += r.key.size() + (r.value ? r.value->size() : 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Durable ledger at scale: memory per open invoice, reopen, timers in order");
  long timelines = 1'000'000;
  std::size_t cache = 10'000;
  int partitions = 6;
  std::string dir = (std::filesystem::temp_directory_path() / ("relance-state-bench-" + std::to_string(::getpid()))).string();
  app.add_option("--timelines", timelines, "open invoices, one per timeline")->capture_default_str();
  app.add_option("--cache", cache, "timelines kept decoded in memory")->capture_default_str();
  app.add_option("--partitions", partitions, "input partitions owned")->capture_default_str();
  app.add_option("--dir", dir, "store directory (removed at the end)");
  CLI11_PARSE(app, argc, argv);

  std::filesystem::remove_all(dir);
  const auto t0 = relance::Instant{std::chrono::seconds(1'796'112'000)};  // 2026-12-01
  std::mt19937_64 random(42);
  std::uniform_int_distribution<long> minutes(0, 90L * 24 * 60);
  std::size_t changelog_bytes = 0;
  long rss_before = 0;
  long rss_after = 0;
  double build_s = 0;
  {
    relance::store::StateStore store(dir);
    relance::ledger::DurableLedger ledger(store, cache);
    rss_before = rss_kib();
    auto start = Steady::now();
    for (long i = 0; i < timelines; ++i) {
      auto key = "cust-" + std::to_string(i);
      ledger.apply(key, static_cast<int32_t>(i % partitions), i / partitions, issued(i));
      ledger.schedule(key, t0 + std::chrono::minutes(minutes(random)));
      if (i % 10'000 == 9'999) {
        commit(store, ledger, changelog_bytes);
        ledger.trim();
      }
    }
    commit(store, ledger, changelog_bytes);
    ledger.trim();
    build_s = seconds_since(start);
    rss_after = rss_kib();
    std::printf("| timelines applied and scheduled | %ld in %.1f s (%.0f /s) |\n", timelines, build_s,
                static_cast<double>(timelines) / build_s);
    std::printf("| resident memory per open invoice | %.0f B (RSS %ld → %ld KiB, cache %zu timelines) |\n",
                static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(timelines), rss_before,
                rss_after, cache);
    std::printf("| changelog written | %.0f B per timeline |\n",
                static_cast<double>(changelog_bytes) / static_cast<double>(timelines));
    std::printf("| store on disk | %.0f MiB |\n", static_cast<double>(store.size_on_disk()) / (1 << 20));
    store.mark_clean();
  }

  auto reopen = Steady::now();
  relance::store::StateStore store(dir);
  relance::ledger::DurableLedger ledger(store, cache);
  std::optional<relance::Instant> first;
  for (int p = 0; p < partitions; ++p) {
    auto at = ledger.next_due(p);
    if (at && (!first || *at < *first)) first = at;
  }
  std::printf("| clean reopen to the first timer | %.0f ms (store kept: %s) |\n", seconds_since(reopen) * 1000,
              store.was_clean() ? "yes" : "no");

  // Every timer, in time order, as the gateway takes them: a day at a time, batches of 256.
  auto take = Steady::now();
  long taken = 0;
  std::size_t ignored = 0;
  for (auto now = t0; now <= t0 + std::chrono::hours(24 * 91); now += std::chrono::hours(24)) {
    for (int p = 0; p < partitions; ++p) {
      for (;;) {
        auto keys = ledger.take_due(p, now, 256);
        if (keys.empty()) break;
        taken += static_cast<long>(keys.size());
        commit(store, ledger, ignored);
        ledger.trim();
      }
    }
  }
  double take_s = seconds_since(take);
  std::printf("| timers taken, a day at a time | %ld of %ld in %.1f s (%.0f /s) |\n", taken, timelines, take_s,
              static_cast<double>(taken) / take_s);
  std::filesystem::remove_all(dir);
  return taken == timelines ? 0 : 1;
}
