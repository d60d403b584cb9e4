// The OpenAPI document (gateway/app/openapi.yaml) against the server: the routes the sources
// register are exactly the documented ones, and every documented operation is answered by a
// handler of the running gateway (not by the router's bare 404 or a 405).
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "support/gateway_process.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSource = RELANCE_SOURCE_DIR;

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// "POST /v1/call-tasks/{}/outcome" for every operation of the document.
std::set<std::string> documented_operations() {
  auto doc = YAML::LoadFile((kSource / "gateway/app/openapi.yaml").string());
  std::set<std::string> out;
  static const std::regex param(R"(\{[^}]*\})");
  for (const auto& path : doc["paths"]) {
    auto templ = std::regex_replace(path.first.as<std::string>(), param, "{}");
    for (const auto& op : path.second) {
      auto method = op.first.as<std::string>();
      if (method == "parameters") continue;
      out.insert(upper(method) + " " + templ);
    }
  }
  return out;
}

// A route pattern as registered ("/v1/call-tasks/([A-Za-z0-9_.:\-]{1,200})/outcome")
// in the document's form ("/v1/call-tasks/{}/outcome").
std::string as_template(const std::string& pattern) {
  std::string out;
  int depth = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      if (depth == 0) out += pattern[i + 1];
      ++i;
    } else if (c == '(') {
      if (depth++ == 0) out += "{}";
    } else if (c == ')') {
      --depth;
    } else if (depth == 0) {
      out += c;
    }
  }
  return out;
}

// Every Get/Post/Put/Patch/Delete registration in the gateway's sources. A pattern named by a
// constant is looked up in the same file.
std::set<std::string> registered_operations() {
  std::set<std::string> out;
  static const std::regex call(R"re(\broutes\.(Get|Post|Put|Patch|Delete)(?:Async)?\(\s*(R"\((.*?)\)"|"([^"]*)"|([A-Za-z_]\w*)))re");
  for (const auto& entry : fs::directory_iterator(kSource / "gateway/app")) {
    if (entry.path().extension() != ".cc") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    auto source = text.str();
    for (std::sregex_iterator it(source.begin(), source.end(), call), end; it != end; ++it) {
      const auto& m = *it;
      std::string pattern;
      if (m[3].matched) {
        pattern = m[3].str();
      } else if (m[4].matched) {
        pattern = m[4].str();
      } else {
        std::regex constant(m[5].str() + R"re(\s*=\s*R"\((.*?)\)")re");
        std::smatch found;
        if (!std::regex_search(source, found, constant)) {
          ADD_FAILURE() << entry.path() << ": cannot resolve the route constant " << m[5].str();
          continue;
        }
        pattern = found[1].str();
      }
      out.insert(upper(m[1].str()) + " " + as_template(pattern));
    }
  }
  return out;
}

TEST(HttpApi, TheDocumentListsExactlyTheRoutesTheServerRegisters) {
  auto documented = documented_operations();
  auto registered = registered_operations();
  ASSERT_GE(registered.size(), 10u);  // the scan finds the routes at all
  for (const auto& op : registered) EXPECT_TRUE(documented.count(op)) << "undocumented route: " << op;
  for (const auto& op : documented) EXPECT_TRUE(registered.count(op)) << "documented but not served: " << op;
}

TEST(HttpApi, EveryDocumentedOperationIsAnsweredByAHandler) {
  auto work = fs::temp_directory_path() / ("relance-http-api-" + std::to_string(getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  int port = free_port();
  GatewayProcess gateway({RELANCE_BINARY, "run"},
                         {{"RELANCE_HTTP__LISTEN", "127.0.0.1:" + std::to_string(port)},
                          {"RELANCE_HTTP__ADMIN_TOKEN_ENV", "RELANCE_TEST_ADMIN_TOKEN"},
                          {"RELANCE_TEST_ADMIN_TOKEN", "0123456789abcdef0123"},
                          // The provider routes are served when an SMS/WhatsApp provider is configured.
                          {"RELANCE_HTTP__PUBLIC_URL", "http://127.0.0.1:" + std::to_string(port)},
                          {"RELANCE_CHANNELS__TWILIO__ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"},
                          {"RELANCE_CHANNELS__TWILIO__AUTH_TOKEN_ENV", "RELANCE_TEST_TWILIO_TOKEN"},
                          {"RELANCE_TEST_TWILIO_TOKEN", "f00dfeedc0ffee0123456789abcdef01"},
                          {"RELANCE_CHANNELS__TWILIO__SMS_FROM", "+33757000000"}},
                         work, work / "gateway.log");
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2s);
  client.set_read_timeout(10s);
  ASSERT_TRUE(eventually(30s, [&] {
    auto res = client.Get("/healthz");
    return res && res->status == 200;
  })) << gateway.log();

  for (const auto& op : documented_operations()) {
    auto space = op.find(' ');
    auto method = op.substr(0, space);
    auto path = std::regex_replace(op.substr(space + 1), std::regex(R"(\{\})"), "x");
    httplib::Result res = method == "GET" ? client.Get(path.c_str())
                                          : client.Post(path.c_str(), "", "application/x-www-form-urlencoded");
    ASSERT_TRUE(res) << op << ": no answer";
    EXPECT_NE(res->status, 405) << op;
    // The router's own 404 has no body; the handlers' 404s (a damaged token, an unknown task) say why.
    EXPECT_FALSE(res->status == 404 && res->body.empty()) << op << ": no handler";
  }
  // And the check can fail: an undocumented path gets the router's bare 404.
  auto none = client.Get("/v1/no-such-route");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_TRUE(none->body.empty());
  gateway.stop(10s);
  fs::remove_all(work);
}

}  // namespace
}  // namespace relance::testing
