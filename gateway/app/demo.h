#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "common/clock.h"
#include "relance/v1/delivery.pb.h"

namespace relance::app {

// The scenario of `relance demo` (deploy/examples/demo-events.jsonl), built into the binary.
const char* demo_events_jsonl();
// Where the demo's simulated clock starts (a Tuesday morning before the first event).
Instant demo_start();

// What a demo run did, tallied from the delivery events and reminder outcomes it published.
struct DemoSummary {
  // Messages handed to a channel, by channel and tone (thank-yous and call tasks included).
  std::map<std::pair<std::string, std::string>, int> sent;
  // Reminders recorded but not sent, by reason.
  std::map<std::string, int> suppressed;
  int call_tasks = 0;
  // Invoices paid in full after at least one reminder, by the last stage they had reached.
  std::map<std::string, int> paid_after;
  int failed = 0;

  void count(const relance::v1::DeliveryEvent& event);
  void count(const relance::v1::ReminderOutcome& outcome);
  int total_sent() const;
  // The summary table printed at the end of the demo.
  std::string table() const;
  // The same figures as JSON ({"sent": {"EMAIL/FRIENDLY": n, ...}, "suppressed": {...},
  // "call_tasks": n, "paid_after": {...}, "failed": n}).
  std::string json() const;
};

struct DemoOptions {
  // Simulated seconds per real second: 90 days in about a minute by default.
  double speed = 90.0 * 86400.0 / 60.0;
  int days = 90;
  std::string listen = "127.0.0.1:8080";
  // The demo's own folder (store, captured messages, bootstrap file), emptied at start.
  std::string data_dir = "relance-data/demo";
  // Stop once the summary is printed instead of keeping the console up.
  bool exit_when_done = false;
  // Also write the summary as JSON to this file.
  std::string summary_json;
};

// Runs the embedded gateway with the built-in scenario on a simulated clock, printing progress
// and the closing summary on stdout; the console stays up until SIGINT/SIGTERM unless
// exit_when_done. Returns the process exit code.
int run_demo(const DemoOptions& options);

}  // namespace relance::app
