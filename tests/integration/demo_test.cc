// `relance demo` end to end: the real binary on its embedded cluster, checked against the same
// scenario played by the preview (the rules alone, no Kafka, no clock): what the live gateway
// sent, suppressed and saw paid must be exactly what the scenario asks for.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "app/demo.h"
#include "app/preview.h"
#include "config/config_loader.h"
#include "support/gateway_process.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;

struct Tally {
  std::map<std::string, int> sent;  // "CHANNEL/TONE"
  std::map<std::string, int> suppressed;
  int call_tasks = 0;
  std::map<std::string, int> paid_after;
};

// What the preview of the scenario over the demo's window says the gateway does.
Tally expected_from_preview() {
  auto config = config::load_config("", {}).config;
  auto result = app::preview(config, app::demo_events_jsonl(), app::demo_start(), 90);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  Tally t;
  if (!result.ok()) return t;
  for (const auto& timeline : result.value().timelines()) {
    std::map<std::string, std::string> last_stage;  // invoice → the last stage a message reached
    for (const auto& a : timeline.actions()) {
      if (a.suppressed()) {
        ++t.suppressed[a.suppression_reason()];
        continue;
      }
      ++t.sent[v1::Channel_Name(a.channel()) + "/" + v1::Tone_Name(a.tone())];
      if (a.channel() == v1::CALL_TASK) ++t.call_tasks;
      if (a.kind() == v1::PlannedAction::THANK_YOU) {
        for (const auto& id : a.invoice_ids()) ++t.paid_after[last_stage[id]];
      } else {
        for (const auto& id : a.invoice_ids()) last_stage[id] = a.stage();
      }
    }
  }
  return t;
}

std::map<std::string, int> counts(const google::protobuf::Struct& s, const char* field) {
  std::map<std::string, int> out;
  auto it = s.fields().find(field);
  if (it == s.fields().end()) return out;
  for (const auto& [k, v] : it->second.struct_value().fields()) out[k] = static_cast<int>(v.number_value());
  return out;
}

TEST(DemoTest, FinishesInUnderThreeMinutesAndItsSummaryMatchesTheScenario) {
  auto work = fs::temp_directory_path() / ("relance-demo-" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  auto started = std::chrono::steady_clock::now();
  GatewayProcess demo({RELANCE_BINARY, "demo", "--exit", "--listen", "127.0.0.1:" + std::to_string(free_port()),
                       "--data-dir", (work / "demo").string(), "--summary-json", (work / "summary.json").string()},
                      {}, work, work / "demo.log", ProcessStreams{{}, work / "demo.out"});
  ASSERT_TRUE(eventually(180s, [&] { return !demo.running(); })) << "the demo took more than 3 minutes\n"
                                                                 << read_file(work / "demo.out") << demo.log();
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("[ demo     ] 90 simulated days in %.1f s\n", seconds);
  ASSERT_EQ(demo.stop(), 0) << read_file(work / "demo.out") << demo.log();

  auto out = read_file(work / "demo.out");
  EXPECT_NE(out.find("day 90/90"), std::string::npos) << out;
  EXPECT_NE(out.find("Sent, by channel and tone"), std::string::npos) << out;
  EXPECT_NE(out.find("Paid in full after reminders, by the last stage reached"), std::string::npos) << out;

  google::protobuf::Struct summary;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(read_file(work / "summary.json"), &summary).ok())
      << read_file(work / "summary.json");
  auto expected = expected_from_preview();
  EXPECT_EQ(counts(summary, "sent"), expected.sent) << out;
  EXPECT_EQ(counts(summary, "suppressed"), expected.suppressed) << out;
  EXPECT_EQ(static_cast<int>(summary.fields().at("call_tasks").number_value()), expected.call_tasks) << out;
  EXPECT_EQ(counts(summary, "paid_after"), expected.paid_after) << out;
  EXPECT_EQ(summary.fields().at("failed").number_value(), 0) << out;

  // The scenario's own promises, so that a change to it that empties a case is noticed: every
  // channel and tone family shows up, call tasks reach support, payments follow reminders.
  EXPECT_GE(expected.sent["SMS/FRIENDLY"], 1);
  EXPECT_GE(expected.sent["EMAIL/FIRM"], 1);
  EXPECT_GE(expected.call_tasks, 3);
  EXPECT_GE(expected.paid_after["second_reminder"], 1);
  EXPECT_GE(expected.paid_after.size(), 3u);
  if (!HasFailure()) fs::remove_all(work);
}

}  // namespace
}  // namespace relance::testing
