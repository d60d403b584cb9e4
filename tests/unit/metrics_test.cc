#include "app/metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace relance::app {
namespace {

using namespace std::chrono_literals;

TEST(LabelledFamily, WritesOneSampleALabelSetWithItsValuesEscaped) {
  LabelledFamily family("relance_test_total", "A test family.", LabelledFamily::Type::kCounter, {"reason", "stage"});
  family.add({"undecodable", "first"});
  family.add({"undecodable", "first"}, 2);
  family.add({"quote\"back\\slash\nline", "x"});
  std::ostringstream out;
  family.write(out);
  EXPECT_EQ(out.str(),
            "# HELP relance_test_total A test family.\n"
            "# TYPE relance_test_total counter\n"
            "relance_test_total{reason=\"quote\\\"back\\\\slash\\nline\",stage=\"x\"} 1\n"
            "relance_test_total{reason=\"undecodable\",stage=\"first\"} 3\n");
  EXPECT_EQ(family.value({"undecodable", "first"}), 3);
  EXPECT_EQ(family.value({"absent", "first"}), 0);
}

TEST(LabelledFamily, AGaugeIsSetAndCleared) {
  LabelledFamily lag("relance_test_lag", "Lag.", LabelledFamily::Type::kGauge, {"partition"});
  lag.set({"0"}, 12);
  lag.set({"0"}, 3);
  EXPECT_EQ(lag.value({"0"}), 3);
  lag.clear();
  std::ostringstream out;
  lag.write(out);
  EXPECT_EQ(out.str(), "# HELP relance_test_lag Lag.\n# TYPE relance_test_lag gauge\n");
}

TEST(LabelledHistogram, BucketsAreCumulativeWithSumAndCount) {
  LabelledHistogram h("relance_test_seconds", "Latency.", {"channel"}, {0.01, 0.1, 1});
  h.observe({"SMS"}, 5ms);
  h.observe({"SMS"}, 10ms);  // on a bound: counted in that bucket (le means <=)
  h.observe({"SMS"}, 500ms);
  h.observe({"SMS"}, 3s);
  std::ostringstream out;
  h.write(out);
  EXPECT_EQ(out.str(),
            "# HELP relance_test_seconds Latency.\n"
            "# TYPE relance_test_seconds histogram\n"
            "relance_test_seconds_bucket{channel=\"SMS\",le=\"0.01\"} 2\n"
            "relance_test_seconds_bucket{channel=\"SMS\",le=\"0.1\"} 2\n"
            "relance_test_seconds_bucket{channel=\"SMS\",le=\"1\"} 3\n"
            "relance_test_seconds_bucket{channel=\"SMS\",le=\"+Inf\"} 4\n"
            "relance_test_seconds_sum{channel=\"SMS\"} 3.515\n"
            "relance_test_seconds_count{channel=\"SMS\"} 4\n");
}

// The Grafana dashboard shipped in deploy/ only queries metrics the gateway exports.
TEST(GrafanaDashboard, QueriesOnlyMetricsTheGatewayExports) {
  std::ifstream file(std::string(RELANCE_SOURCE_DIR) + "/deploy/grafana/relance-dashboard.json");
  ASSERT_TRUE(file) << "deploy/grafana/relance-dashboard.json is missing";
  std::stringstream dashboard;
  dashboard << file.rdbuf();
  Metrics metrics;
  auto text = metrics.prometheus_text();
  std::set<std::string> exported;
  std::regex type_line(R"(# TYPE (relance_[a-z_]+) )");
  for (std::sregex_iterator it(text.begin(), text.end(), type_line), end; it != end; ++it) exported.insert((*it)[1]);
  EXPECT_GE(exported.size(), 30u);

  auto body = dashboard.str();
  std::regex name(R"(relance_[a-z_]+)");
  std::set<std::string> queried;
  for (std::sregex_iterator it(body.begin(), body.end(), name), end; it != end; ++it) {
    auto metric = it->str();
    if (metric == "relance_gateway") continue;  // the dashboard's uid
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s(suffix);
      if (metric.size() > s.size() && metric.compare(metric.size() - s.size(), s.size(), s) == 0 &&
          exported.count(metric.substr(0, metric.size() - s.size()))) {
        metric = metric.substr(0, metric.size() - s.size());
      }
    }
    queried.insert(metric);
    EXPECT_TRUE(exported.count(metric)) << "the dashboard queries " << metric << ", which the gateway does not export";
  }
  // Every labelled family the issue asked for is on the dashboard.
  for (const char* wanted : {"relance_events_rejected_total", "relance_decisions_total", "relance_sends_total",
                             "relance_delivery_statuses_total", "relance_provider_latency_seconds",
                             "relance_rate_limit_waits_total", "relance_consumer_lag", "relance_scheduled_timelines",
                             "relance_outbox_records_total", "relance_store_bytes", "relance_reminders_retried_total"}) {
    EXPECT_TRUE(queried.count(wanted)) << wanted << " is not on the dashboard";
  }
}

}  // namespace
}  // namespace relance::app
