// The decision function on one core: ReminderRules::plan with the default policy compiled once
// and every channel available, on ledgers built from relance.v1 events and played forward with
// the timeline simulator, as the scheduler would see them when a timer fires.
//
//   cmake --preset release && cmake --build build/release --target relance_benchmarks
//   ./build/release/tests/bench/relance_benchmarks --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The Ceiling_* benchmarks only walk or copy the same ledgers' invoices: they bound what any
// plan() could cost and put the plan figures in proportion on the machine at hand.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/dates.h"
#include "config/config_loader.h"
#include "ledger/ledger.h"
#include "rules/business_calendar.h"
#include "rules/reminder_rules.h"
#include "rules/timeline_simulator.h"
#include "support/sample_events.h"

namespace relance::rules {
namespace {

namespace v1 = relance::v1;

Instant at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

const ReminderRules& rules() {
  static const ReminderRules compiled(config::default_config().policy(),
                                      {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK});
  return compiled;
}

struct InvoiceFixture {
  const char* id;
  const char* due_on;
  int64_t amount;  // EUR minor units
};

// A customer in Paris with a valid email and mobile number and SMS consent, as the billing system
// sends it with each invoice.
ledger::CustomerLedger customer_with(const std::vector<InvoiceFixture>& invoices) {
  ledger::CustomerLedger ledger;
  ledger.key = "cust-42";
  for (const auto& inv : invoices) {
    relance::testing::InvoiceSpec spec;
    spec.event_id = std::string("issued-") + inv.id;
    spec.customer_id = "cust-42";
    spec.invoice_id = inv.id;
    spec.number = std::string("F-2026-") + inv.id;
    spec.due_on = inv.due_on;
    spec.amount_due = inv.amount;
    spec.locale = "fr-FR";
    spec.time_zone = "Europe/Paris";
    spec.payment_link = std::string("https://pay.example.com/") + inv.id;
    auto event = relance::testing::invoice_issued(spec);
    auto* customer = event.mutable_invoice_issued()->mutable_customer();
    customer->set_country("FR");
    customer->set_phone("+33612345678");
    auto* consent = customer->add_consents();
    consent->set_channel(v1::SMS);
    consent->set_granted(true);
    ledger::apply_event(ledger, event);
  }
  return ledger;
}

// The ledger after the gateway acted on everything due in [from, until): the history a timer
// check sees.
ledger::CustomerLedger played_until(ledger::CustomerLedger ledger, const char* from, const char* until) {
  TimelineSimulator(rules()).run(ledger, at(from), at(until));
  return ledger;
}

// One open minor invoice (120.00 EUR due Friday 2026-11-20); the courtesy notice went out on the
// 17th. The next stage is first_reminder on Monday the 23rd at 09:00 Paris.
const ledger::CustomerLedger& one_invoice() {
  static const auto ledger =
      played_until(customer_with({{"A", "2026-11-20", 12'000}}), "2026-11-01T00:00:00Z", "2026-11-18T10:00:00Z");
  return ledger;
}

// Five invoices of every tier at different points of their timelines.
const ledger::CustomerLedger& five_invoices() {
  static const auto ledger = played_until(customer_with({{"A", "2026-10-05", 12'000},
                                                         {"B", "2026-10-20", 35'000},
                                                         {"C", "2026-11-05", 8'000},
                                                         {"D", "2026-11-20", 620'000},
                                                         {"E", "2026-12-15", 4'500}}),
                                          "2026-09-01T00:00:00Z", "2026-11-18T10:00:00Z");
  return ledger;
}

// Refuses to time a scenario that does not do what its name says.
bool expect(benchmark::State& state, const ledger::CustomerLedger& ledger, Instant now, bool decisions) {
  auto plan = rules().plan(ledger, now);
  if (plan.now.empty() == decisions) {
    state.SkipWithError(decisions ? "nothing due at this instant" : "something due at this instant");
    return false;
  }
  return true;
}

void run_plan(benchmark::State& state, const ledger::CustomerLedger& ledger, Instant now, bool decisions) {
  if (!expect(state, ledger, now, decisions)) return;
  const auto& compiled = rules();
  // Decisions in each plan: a reminder may go out on two channels at once.
  auto actions = static_cast<double>(compiled.plan(ledger, now).now.size());
  for (auto _ : state) {
    auto plan = compiled.plan(ledger, now);
    benchmark::DoNotOptimize(plan);
  }
  state.counters["actions"] = actions;
  state.counters["decisions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// (a) The common case: a timer check on a customer with one open invoice, nothing due.
void BM_Plan_OneInvoice_NothingDue(benchmark::State& state) {
  run_plan(state, one_invoice(), at("2026-11-18T10:00:00Z"), false);
}
BENCHMARK(BM_Plan_OneInvoice_NothingDue);

// (b) The first reminder is due: a Decision with its ids, channel choice and explanation.
void BM_Plan_OneInvoice_ReminderDue(benchmark::State& state) {
  run_plan(state, one_invoice(), at("2026-11-23T08:00:00Z"), true);
}
BENCHMARK(BM_Plan_OneInvoice_ReminderDue);

// (c) Five invoices: a timer check with nothing due, and the next instant with something due
// (grouped with whatever falls within the grouping window).
void BM_Plan_FiveInvoices_NothingDue(benchmark::State& state) {
  run_plan(state, five_invoices(), at("2026-11-18T10:00:00Z"), false);
}
BENCHMARK(BM_Plan_FiveInvoices_NothingDue);

void BM_Plan_FiveInvoices_ReminderDue(benchmark::State& state) {
  auto next = rules().plan(five_invoices(), at("2026-11-18T10:00:00Z")).next_at;
  if (!next) {
    state.SkipWithError("no next instant");
    return;
  }
  run_plan(state, five_invoices(), *next, true);
}
BENCHMARK(BM_Plan_FiveInvoices_ReminderDue);

// (d) The business calendar on its own: SMS on a Saturday afternoon waits for Monday 09:00, and
// an instant already open is returned as is.
void run_next_open(benchmark::State& state, Instant from) {
  const BusinessCalendar calendar(rules().policy().calendar());
  const std::string zone = "Europe/Paris", country = "FR";
  for (auto _ : state) {
    auto open = calendar.next_open(from, v1::SMS, zone, country);
    benchmark::DoNotOptimize(open);
  }
  state.counters["calls/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_BusinessCalendar_NextOpen_Closed(benchmark::State& state) { run_next_open(state, at("2026-11-21T15:00:00Z")); }
BENCHMARK(BM_BusinessCalendar_NextOpen_Closed);

void BM_BusinessCalendar_NextOpen_Open(benchmark::State& state) { run_next_open(state, at("2026-11-23T10:00:00Z")); }
BENCHMARK(BM_BusinessCalendar_NextOpen_Open);

// The wall-clock conversions plan() makes for every stage it looks at.
void BM_Dates_LocalTimeToInstant(benchmark::State& state) {
  const std::string zone = "Europe/Paris";
  auto day = *parse_iso_date("2026-11-23");
  for (auto _ : state) {
    auto t = local_time_to_instant(day, 9 * 60, zone);
    benchmark::DoNotOptimize(t);
  }
  state.counters["calls/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Dates_LocalTimeToInstant);

void BM_Dates_LocalDate(benchmark::State& state) {
  const std::string zone = "Europe/Paris";
  auto now = at("2026-11-23T08:00:00Z");
  for (auto _ : state) {
    auto day = local_date(now, zone);
    benchmark::DoNotOptimize(day);
  }
  state.counters["calls/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Dates_LocalDate);

// Ceilings. Walking the invoices and reading what plan() reads first (state flags, amount,
// due date) is a floor no decision can go under; copying the invoice map (what a plan() that
// took its input by value would pay) is a yardstick for "one allocation per invoice".
void run_walk(benchmark::State& state, const ledger::CustomerLedger& ledger) {
  for (auto _ : state) {
    int64_t sum = 0;
    for (const auto& [id, inv] : ledger.invoices) {
      if (inv.open() && !inv.disputed && inv.plan_id.empty()) sum += inv.invoice.amount_due().minor_units();
      sum += static_cast<int64_t>(inv.invoice.due_on().size());
    }
    benchmark::DoNotOptimize(sum);
  }
  state.counters["decisions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void run_copy(benchmark::State& state, const ledger::CustomerLedger& ledger) {
  for (auto _ : state) {
    auto copy = ledger.invoices;
    benchmark::DoNotOptimize(copy);
  }
  state.counters["decisions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Ceiling_WalkInvoices_One(benchmark::State& state) { run_walk(state, one_invoice()); }
BENCHMARK(BM_Ceiling_WalkInvoices_One);
void BM_Ceiling_WalkInvoices_Five(benchmark::State& state) { run_walk(state, five_invoices()); }
BENCHMARK(BM_Ceiling_WalkInvoices_Five);
void BM_Ceiling_CopyInvoiceMap_One(benchmark::State& state) { run_copy(state, one_invoice()); }
BENCHMARK(BM_Ceiling_CopyInvoiceMap_One);
void BM_Ceiling_CopyInvoiceMap_Five(benchmark::State& state) { run_copy(state, five_invoices()); }
BENCHMARK(BM_Ceiling_CopyInvoiceMap_Five);

}  // namespace
}  // namespace relance::rules

BENCHMARK_MAIN();
