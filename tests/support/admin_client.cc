#include "support/admin_client.h"

#include <httplib.h>

#include <sstream>
#include <thread>

namespace relance::testing {

namespace {

std::unique_ptr<httplib::Client> client_on(int port) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
  // A gateway that was just killed or is still starting refuses or never answers: fail fast
  // and let the caller poll again.
  client->set_connection_timeout(std::chrono::seconds(2));
  client->set_read_timeout(std::chrono::seconds(10));
  return client;
}

HttpAnswer answer_of(const httplib::Result& result) {
  if (!result) return {};
  return {result->status, result->body};
}

}  // namespace

AdminClient::AdminClient(int port, std::string token) : port_(port), token_(std::move(token)) {}

HttpAnswer AdminClient::readiness() const { return answer_of(client_on(port_)->Get("/readyz")); }

bool AdminClient::wait_ready(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (readiness().status == 200) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

HttpAnswer AdminClient::set_clock(const std::string& now_rfc3339) const {
  return post_clock_raw("Bearer " + token_, "{\"now\":\"" + now_rfc3339 + "\"}");
}

HttpAnswer AdminClient::post_clock_raw(const std::string& authorization, const std::string& body) const {
  httplib::Headers headers;
  if (!authorization.empty()) headers.emplace("Authorization", authorization);
  return answer_of(client_on(port_)->Post("/v1/admin/clock", headers, body, "application/json"));
}

std::optional<double> AdminClient::metric(const std::string& name) const {
  auto answer = answer_of(client_on(port_)->Get("/metrics"));
  if (answer.status != 200) return std::nullopt;
  std::istringstream lines(answer.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return std::nullopt;
}

double AdminClient::metric_sum(const std::string& prefix) const {
  auto answer = answer_of(client_on(port_)->Get("/metrics"));
  double sum = 0;
  std::istringstream lines(answer.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    auto space = line.rfind(' ');
    if (space != std::string::npos) sum += std::stod(line.substr(space + 1));
  }
  return sum;
}

}  // namespace relance::testing
