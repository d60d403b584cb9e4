#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace relance::testing {

// An HTTP answer as a test looks at it; status 0 when no connection could be made.
struct HttpAnswer {
  int status = 0;
  std::string body;
};

// The gateway's own HTTP surface on 127.0.0.1:<port>, as an operator's scripts use it.
class AdminClient {
 public:
  AdminClient(int port, std::string token);

  // GET /readyz.
  HttpAnswer readiness() const;
  // Polls /readyz until it answers 200 or `timeout` passes.
  bool wait_ready(std::chrono::milliseconds timeout) const;

  // POST /v1/admin/clock {"now": now_rfc3339} with the bearer token given at construction.
  HttpAnswer set_clock(const std::string& now_rfc3339) const;
  // The same request with an Authorization header of the caller's choosing (empty: none) and a
  // raw body, for the refusals.
  HttpAnswer post_clock_raw(const std::string& authorization, const std::string& body) const;

  // A sample's value from GET /metrics (the Prometheus text), or nullopt when absent.
  std::optional<double> metric(const std::string& name) const;
  // The sum of the samples whose line starts with `prefix` (a name and the first labels,
  // `relance_sends_total{channel="EMAIL"`), 0 when none.
  double metric_sum(const std::string& prefix) const;

 private:
  int port_;
  std::string token_;
};

}  // namespace relance::testing
