// Bad configuration stops start-up with every error and its field path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/gateway_process.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ConfigErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() / ("relance-config-" + std::to_string(getpid()));
    fs::create_directories(work_);
  }
  void TearDown() override { fs::remove_all(work_); }

  // Runs the binary to completion; returns its exit status and output.
  std::pair<std::optional<int>, std::string> run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), RELANCE_BINARY);
    auto log = work_ / "out.log";
    fs::remove(log);
    GatewayProcess process(args, env, work_, log);
    eventually(20s, [&] { return !process.running(); });
    auto status = process.stop(1s);
    return {status, read_file(log)};
  }

  fs::path work_;
};

TEST_F(ConfigErrors, RunRefusesToStartAndNamesEveryField) {
  std::ofstream(work_ / "bad.yaml") << "kafka:\n  group_id: ''\n  brokerz: x\nclock:\n  mode: sundial\n";
  auto [status, out] = run({"run", "--config", (work_ / "bad.yaml").string()});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("kafka.brokerz: unknown field"), std::string::npos) << out;
  EXPECT_NE(out.find("clock.mode: must be one of: system, simulated"), std::string::npos) << out;
}

TEST_F(ConfigErrors, ErrorsNameTheFileAndLineOfTheField) {
  std::ofstream(work_ / "lines.yaml") << "kafka:\n  group_id: relance\n  brokerz: x\npolicy:\n  stages:\n"
                                         "    - name: a\n      offset_days: 3\n      channels: {minor: [email]}\n";
  auto file = (work_ / "lines.yaml").string();
  auto [status, out] = run({"check-config", "--config", file});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find(file + ":3: kafka.brokerz: unknown field"), std::string::npos) << out;

  std::ofstream(work_ / "lines.yaml") << "policy:\n  stages:\n    - name: a\n      offset_days: 3\n"
                                         "      channels: {minor: [email]}\n";
  auto [status2, out2] = run({"check-config", "--config", file});
  EXPECT_EQ(status2, 2) << out2;
  // A field left out is placed at the nearest field the file writes: the stage itself.
  EXPECT_NE(out2.find(file + ":3: policy.stages[0].tone: must be set"), std::string::npos) << out2;
}

TEST_F(ConfigErrors, CommandLineConventions) {
  auto [status, out] = run({"--version"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("relance "), std::string::npos) << out;
  for (std::string sub : {"run", "check-config", "preview", "render", "version"}) {
    auto [help_status, help] = run({sub, "--help"});
    EXPECT_EQ(help_status, 0) << sub << ": " << help;
    EXPECT_NE(help.find("--help"), std::string::npos) << sub << ": " << help;
  }
  auto [none_status, none] = run({});
  EXPECT_EQ(none_status, 64) << none;
  auto [unknown_status, unknown] = run({"check-config", "--no-such-flag"});
  EXPECT_EQ(unknown_status, 64) << unknown;
  auto [missing_status, missing] = run({"check-config", "--config", (work_ / "absent.yaml").string()});
  EXPECT_EQ(missing_status, 2) << missing;
}

TEST_F(ConfigErrors, CheckConfigReportsSemanticErrorsAndEnvironmentTypos) {
  std::ofstream(work_ / "bad.yaml") << "channels:\n  email:\n    smtp_url: smtp://mail:25\n    from: nobody\n";
  auto [status, out] = run({"check-config", "--config", (work_ / "bad.yaml").string()},
                           {{"RELANCE_HTTP__LISTN", "x"}});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("RELANCE_HTTP__LISTN: does not name a configuration field"), std::string::npos) << out;

  auto [status2, out2] = run({"check-config", "--config", (work_ / "bad.yaml").string()});
  EXPECT_EQ(status2, 2) << out2;
  EXPECT_NE(out2.find("channels.email.from: must be an email address"), std::string::npos) << out2;
}

TEST_F(ConfigErrors, BadTemplatesStopCheckConfigAndRunWithTheirPath) {
  fs::create_directories(work_ / "templates/fr/email");
  auto bad = work_ / "templates/fr/email/first_reminder.text.mustache";
  std::ofstream(bad) << "Votre dette de {{amount_due}} est échue depuis le {{due_date}}.";
  std::ofstream(work_ / "tenant.yaml") << "policy:\n  messages:\n    templates_dir: " << (work_ / "templates").string()
                                       << "\n";
  for (const char* command : {"check-config", "run"}) {
    auto [status, out] = run({command, "--config", (work_ / "tenant.yaml").string()});
    EXPECT_EQ(status, 2) << command << "\n" << out;
    EXPECT_NE(out.find(bad.string() + ": contains the forbidden word 'dette'"), std::string::npos) << out;
    EXPECT_NE(out.find(bad.string() + ": does not give the payment link"), std::string::npos) << out;
  }
}

TEST_F(ConfigErrors, TheShippedExampleIsValid) {
  auto [status, out] = run({"check-config", "--config", fs::path(RELANCE_SOURCE_DIR) / "deploy/relance.example.yaml"},
                           {{"RELANCE_SMTP_PASSWORD", "from-a-secret-store"},
                            {"RELANCE_TWILIO_SECRET", "from-a-secret-store"},
                            {"RELANCE_TWILIO_AUTH_TOKEN", "from-a-secret-store"},
                            {"RELANCE_LINK_SECRET", "from-a-secret-store-0123456789"},
                            {"RELANCE_ADMIN_TOKEN", "from-a-secret-store-0123456789"},
                            {"RELANCE_CALL_TASK_WEBHOOK_SECRET", "from-a-secret-store-0123456789"}});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("configuration is valid"), std::string::npos) << out;
}

}  // namespace
}  // namespace relance::testing
