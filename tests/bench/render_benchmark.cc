// Rendering on one core: Renderer::render with the default policy's templates compiled once (the
// built-in set, as `relance run` loads it at start-up), for a typical French reminder.
//
//   cmake --preset release && cmake --build build/release --target relance_benchmarks
//   ./build/release/tests/bench/relance_benchmarks --benchmark_filter=Render
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Goal: rendering is never the bottleneck of the decision path, ≥500,000 SMS renders/s/core.
// The Render_Ceiling_* benchmarks bound what any renderer could cost on the machine at hand:
// formatting the amount alone (ICU, cached formatter) and copying a finished message.
#include <benchmark/benchmark.h>

#include <string>

#include "config/config_loader.h"
#include "render/money_format.h"
#include "render/renderer.h"
#include "render/sample_messages.h"

namespace relance::render {
namespace {

namespace v1 = relance::v1;

struct Fixture {
  v1::PolicyConfig policy;
  Renderer renderer;
  SampleMessage email;
  SampleMessage sms;
};

MessageSlot first_reminder(v1::Channel channel) {
  MessageSlot slot;
  slot.stage = "first_reminder";
  slot.stage_index = 1;
  slot.template_name = "first_reminder";
  slot.channel = channel;
  slot.tone = v1::COURTEOUS;
  return slot;
}

const Fixture& fixture() {
  static const Fixture f = [] {
    auto config = config::default_config();
    config.mutable_http()->set_public_url("https://relance.example.com");
    auto policy = config.policy();
    policy.mutable_messages()->set_company_contact("01 23 45 67 89, compta@example.com");
    return Fixture{policy, Renderer(TemplateLibrary::load(config)),
                   sample_message(first_reminder(v1::EMAIL), "fr-FR", SampleKind::kTypical),
                   sample_message(first_reminder(v1::SMS), "fr-FR", SampleKind::kTypical)};
  }();
  return f;
}

void rate(benchmark::State& state, const char* name) {
  state.counters[name] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void render(benchmark::State& state, const SampleMessage& sample) {
  const auto& f = fixture();
  auto check = f.renderer.render(sample.decision, sample.ledger, f.policy);
  if (!check) {
    state.SkipWithError(check.error().message.c_str());
    return;
  }
  state.counters["bytes"] = static_cast<double>(check->subject.size() + check->text.size() + check->html.size());
  for (auto _ : state) {
    auto message = f.renderer.render(sample.decision, sample.ledger, f.policy);
    benchmark::DoNotOptimize(message);
  }
  rate(state, "renders/s");
}

// A first reminder by SMS in French: one part, money and date formatted, no-break spaces made plain.
void BM_Render_Sms_FrFR(benchmark::State& state) { render(state, fixture().sms); }
BENCHMARK(BM_Render_Sms_FrFR);

// The same reminder by email: subject, text and HTML (escaped) parts.
void BM_Render_Email_FrFR(benchmark::State& state) { render(state, fixture().email); }
BENCHMARK(BM_Render_Email_FrFR);

// Ceiling: the one ICU call every reminder needs, the amount in the customer's locale.
void BM_Render_Ceiling_FormatMoney_FrFR(benchmark::State& state) {
  const auto& amount = fixture().sms.decision.total_due;
  for (auto _ : state) {
    auto text = format_money(amount, "fr-FR");
    benchmark::DoNotOptimize(text);
  }
  rate(state, "calls/s");
}
BENCHMARK(BM_Render_Ceiling_FormatMoney_FrFR);

// Ceiling: copying a finished SMS message (its strings), the least a render returns.
void BM_Render_Ceiling_CopySms(benchmark::State& state) {
  const auto& f = fixture();
  auto message = f.renderer.render(f.sms.decision, f.sms.ledger, f.policy).value();
  for (auto _ : state) {
    auto copy = message;
    benchmark::DoNotOptimize(copy);
  }
  rate(state, "copies/s");
}
BENCHMARK(BM_Render_Ceiling_CopySms);

}  // namespace
}  // namespace relance::render
