// `relance preview` and `POST /v1/preview`: the planned timelines of the shipped example events,
// compared byte for byte with a golden file, and the ways input is refused.
#include "app/preview.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "app/http_server.h"
#include "channels/channel_registry.h"
#include "common/dates.h"
#include "config/config_loader.h"
#include "support/gateway_process.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;

fs::path events_file() { return fs::path(RELANCE_SOURCE_DIR) / "deploy/examples/events.jsonl"; }
fs::path golden_file() { return fs::path(RELANCE_SOURCE_DIR) / "tests/golden/preview_default.json"; }
constexpr const char* kFrom = "2026-11-01T00:00:00Z";

std::string regenerate_hint() {
  return "\nIf the change in the timelines is intended, read the new output, check it still makes sense for the "
         "practice, and regenerate the golden file from the source directory:\n"
         "  build/debug/relance preview --from 2026-11-01T00:00:00Z --days 90 < deploy/examples/events.jsonl "
         "> tests/golden/preview_default.json\n";
}

// "line N: expected ... got ...", for the first line where `actual` leaves `expected`.
std::string first_difference(const std::string& expected, const std::string& actual) {
  std::istringstream e(expected), a(actual);
  std::string el, al;
  for (int line = 1;; ++line) {
    bool more_e = static_cast<bool>(std::getline(e, el));
    bool more_a = static_cast<bool>(std::getline(a, al));
    if (!more_e && !more_a) return "no difference line by line (line endings?)";
    if (more_e != more_a || el != al) {
      return "first difference at line " + std::to_string(line) + ":\n  golden: " + (more_e ? el : "(end)") +
             "\n  output: " + (more_a ? al : "(end)");
    }
  }
}

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() / ("relance-" + name + "-" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---- The command line ----

class PreviewCli : public ::testing::Test {
 protected:
  struct Outcome {
    std::optional<int> status;
    std::string stdout_text;
    std::string stderr_text;
  };

  // Runs `relance preview ARGS < input` in an empty directory, stdout and stderr apart.
  Outcome run(std::vector<std::string> args, const fs::path& input) {
    args.insert(args.begin(), {RELANCE_BINARY, "preview"});
    auto out = io_.path() / "stdout";
    auto err = io_.path() / "stderr";
    fs::remove(err);
    GatewayProcess process(args, {}, work_.path(), err, {input, out});
    eventually(20s, [&] { return !process.running(); });
    auto status = process.stop(1s);
    return {status, read_file(out), read_file(err)};
  }

  fs::path write_input(const std::string& text) {
    auto file = io_.path() / "input.jsonl";
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

  TempDir work_{"preview-work"};
  TempDir io_{"preview-io"};
};

TEST_F(PreviewCli, ExampleEventsGiveTheGoldenTimelines) {
  ASSERT_TRUE(fs::exists(golden_file())) << golden_file() << " is missing." << regenerate_hint();
  auto outcome = run({"--from", kFrom, "--days", "90"}, events_file());
  ASSERT_EQ(outcome.status, 0) << outcome.stderr_text;
  auto golden = read_file(golden_file());
  EXPECT_TRUE(outcome.stdout_text == golden)
      << "`relance preview` of deploy/examples/events.jsonl differs from " << golden_file() << "; "
      << first_difference(golden, outcome.stdout_text) << regenerate_hint();
  // Nothing written: no capture folder, no bootstrap file, nothing at all in the working directory.
  EXPECT_TRUE(fs::is_empty(work_.path())) << "preview wrote into its working directory";
}

TEST_F(PreviewCli, ABadLineIsNamedAndNothingIsPrinted) {
  auto events = read_file(events_file());
  auto first_line = events.substr(0, events.find('\n') + 1);
  auto input =
      write_input(first_line + "\n" + R"({"key": "cus_1", "event": {"occurredAt": "2026-11-02T10:00:00Z"}})" + "\n");
  auto outcome = run({}, input);
  EXPECT_EQ(outcome.status, 2) << outcome.stderr_text;
  EXPECT_EQ(outcome.stdout_text, "");
  EXPECT_NE(outcome.stderr_text.find("line 3: event_id is required"), std::string::npos) << outcome.stderr_text;
}

TEST_F(PreviewCli, ABadFromIsRefused) {
  auto outcome = run({"--from", "next tuesday"}, events_file());
  EXPECT_EQ(outcome.status, 2) << outcome.stderr_text;
  EXPECT_EQ(outcome.stdout_text, "");
  EXPECT_NE(outcome.stderr_text.find("--from"), std::string::npos) << outcome.stderr_text;
}

// ---- The function behind both ----

std::string issued_line(const std::string& event_id, const std::string& customer_id, const std::string& invoice_id,
                        const std::string& due_on, const std::string& occurred_at, const std::string& tenant = "") {
  return R"({"eventId": ")" + event_id + R"(", "occurredAt": ")" + occurred_at + R"(", "tenantId": ")" + tenant +
         R"(", "invoiceIssued": {"invoice": {"invoiceId": ")" + invoice_id + R"(", "number": "F-1", "customerId": ")" +
         customer_id + R"(", "amountDue": {"currency": "EUR", "minorUnits": "12000"}, "dueOn": ")" + due_on +
         R"("}, "customer": {"customerId": ")" + customer_id +
         R"(", "email": "a@example.fr", "timeZone": "Europe/Paris", "country": "FR"}}})";
}

std::string paid_line(const std::string& key, const std::string& event_id, const std::string& invoice_id,
                      const std::string& occurred_at) {
  return R"({"key": ")" + key + R"(", "event": {"eventId": ")" + event_id + R"(", "occurredAt": ")" + occurred_at +
         R"(", "paymentReceived": {"invoiceId": ")" + invoice_id +
         R"(", "amount": {"currency": "EUR", "minorUnits": "12000"}}}})";
}

struct Refused {
  std::string code;
  std::string message;
  int line = 0;
};

Refused refuse(const std::string& input, std::optional<Instant> from = std::nullopt, int days = 90) {
  int line = -1;
  auto result = app::preview(config::default_config(), input, from, days, &line);
  if (result) return {"(accepted)", "", line};
  return {result.error().code, result.error().message, line};
}

TEST(PreviewFunction, ABareEventIsKeyedByItsCustomer) {
  auto result =
      app::preview(config::default_config(),
                   issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z") + "\n", std::nullopt, 30);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->from(), "2026-11-02T10:00:00Z");  // the earliest event
  EXPECT_EQ(result->until(), "2026-12-02T10:00:00Z");
  ASSERT_EQ(result->timelines_size(), 1);
  const auto& timeline = result->timelines(0);
  EXPECT_EQ(timeline.key(), "cus_7");
  EXPECT_EQ(timeline.customer_id(), "cus_7");
  ASSERT_GE(timeline.actions_size(), 1);
  const auto& courtesy = timeline.actions(0);
  EXPECT_EQ(courtesy.kind(), v1::PlannedAction::REMINDER);
  EXPECT_EQ(courtesy.stage(), "courtesy");
  EXPECT_EQ(courtesy.at(), "2026-11-17T08:00:00Z");
  EXPECT_EQ(courtesy.local_time(), "2026-11-17T09:00:00+01:00");
  EXPECT_EQ(courtesy.time_zone(), "Europe/Paris");
  EXPECT_EQ(courtesy.channel(), v1::EMAIL);
  EXPECT_EQ(courtesy.total_due().minor_units(), 12000);
}

TEST(PreviewFunction, EventsApplyInTimeOrderWhateverTheLineOrder) {
  // The payment is listed first but happens after the courtesy notice: a thank-you follows it.
  auto input = paid_line("cus_7", "e2", "inv_1", "2026-11-18T13:00:00Z") + "\n" +
               issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z") + "\n";
  auto result = app::preview(config::default_config(), input, std::nullopt, 90);
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->timelines_size(), 1);
  const auto& actions = result->timelines(0).actions();
  ASSERT_EQ(actions.size(), 2);
  EXPECT_EQ(actions[0].stage(), "courtesy");
  EXPECT_EQ(actions[1].kind(), v1::PlannedAction::THANK_YOU);
  EXPECT_EQ(actions[1].at(), "2026-11-18T13:00:00Z");
}

TEST(PreviewFunction, ARepeatedEventIdIsAppliedOnce) {
  auto line = issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z") + "\n";
  auto once = app::preview(config::default_config(), line, std::nullopt, 90);
  auto twice = app::preview(config::default_config(), line + line, std::nullopt, 90);
  ASSERT_TRUE(once && twice);
  EXPECT_EQ(app::preview_json(once.value()), app::preview_json(twice.value()));
}

TEST(PreviewFunction, TheTenantPolicyApplies) {
  auto config = config::default_config();
  auto& policy = (*config.mutable_tenant_policies())["acme"];
  policy = config.policy();
  policy.clear_stages();
  auto* stage = policy.add_stages();
  stage->set_name("acme_only");
  stage->set_offset_days(1);
  stage->set_tone(v1::COURTEOUS);
  stage->mutable_channels()->add_minor(v1::EMAIL);
  auto input = issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z", "acme") + "\n" +
               issued_line("e2", "cus_8", "inv_2", "2026-11-20", "2026-11-02T10:00:00Z") + "\n";
  auto result = app::preview(config, input, std::nullopt, 90);
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->timelines_size(), 2);
  EXPECT_EQ(result->timelines(0).tenant_id(), "acme");
  ASSERT_EQ(result->timelines(0).actions_size(), 1);
  EXPECT_EQ(result->timelines(0).actions(0).stage(), "acme_only");
  EXPECT_EQ(result->timelines(1).actions(0).stage(), "courtesy");
}

TEST(PreviewFunction, RefusesBadLinesByNumber) {
  auto good = issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z") + "\n";

  auto not_json = refuse(good + "{not json\n");
  EXPECT_EQ(not_json.code, "undecodable");
  EXPECT_EQ(not_json.line, 2);
  EXPECT_EQ(not_json.message.rfind("line 2: ", 0), 0u) << not_json.message;

  // A payment names no customer: without a key it belongs to no timeline.
  auto no_key =
      refuse(good + "\n" + R"({"eventId": "e2", "occurredAt": "2026-11-03T10:00:00Z",)" +
             R"( "paymentReceived": {"invoiceId": "inv_1", "amount": {"currency": "EUR", "minorUnits": "1"}}})");
  EXPECT_EQ(no_key.code, "missing_key");
  EXPECT_EQ(no_key.line, 3);

  auto no_time = refuse(
      issued_line("e1", "cus_7", "inv_1", "2026-11-20", "2026-11-02T10:00:00Z") + "\n" +
      R"({"key": "cus_7", "event": {"eventId": "e3", "invoiceCancelled": {"invoiceId": "inv_1", "reason": "CANCELLED"}}})");
  EXPECT_EQ(no_time.code, "missing_occurred_at");
  EXPECT_EQ(no_time.line, 2);

  auto invalid = refuse(issued_line("e1", "cus_7", "inv_1", "2026-13-40", "2026-11-02T10:00:00Z"));
  EXPECT_EQ(invalid.code, "invalid_date");
  EXPECT_EQ(invalid.line, 1);

  auto key_only = refuse(R"({"key": "cus_7"})");
  EXPECT_EQ(key_only.code, "missing_field");
  EXPECT_EQ(key_only.line, 1);

  auto days = refuse(good, std::nullopt, 0);
  EXPECT_EQ(days.code, "invalid_days");
  EXPECT_EQ(days.line, 0);
}

TEST(PreviewFunction, EmptyInputIsAnEmptyPreview) {
  auto result = app::preview(config::default_config(), "\n  \n", parse_rfc3339(kFrom), 10);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->from(), kFrom);
  EXPECT_EQ(result->until(), "2026-11-11T00:00:00Z");
  EXPECT_EQ(result->timelines_size(), 0);
}

TEST(PreviewFunction, ErrorJsonEscapesAndNamesTheLine) {
  EXPECT_EQ(app::preview_error_json(Error{"undecodable", "line 4: bad \"quote\"\n", false}, 4),
            "{\"error\": \"line 4: bad \\\"quote\\\"\\n\", \"code\": \"undecodable\", \"line\": 4}\n");
  EXPECT_EQ(app::preview_error_json(Error{"invalid_days", "days", false}, 0),
            "{\"error\": \"days\", \"code\": \"invalid_days\"}\n");
}

TEST(PreviewFunction, AvailableChannelsAreThoseTheGatewayBuilds) {
  TempDir dir("preview-channels");
  auto keys = [](const channels::ChannelMap& map) {
    std::set<v1::Channel> out;
    for (const auto& [channel, adapter] : map) out.insert(channel);
    return out;
  };
  // The gateway always has a producer: call tasks go to their topic. This one never connects.
  kafka::Producer producer(kafka::Properties{{"bootstrap.servers", "127.0.0.1:1"}});
  channels::http::TransferLoop loop;
  auto config = config::default_config();
  config.mutable_channels()->mutable_capture()->set_dir((dir.path() / "outbox").string());
  EXPECT_EQ(channels::available_channels(config), keys(channels::make_channels(config, {}, &producer, loop)));

  config.mutable_channels()->mutable_email()->set_smtp_url("smtp://127.0.0.1:2525");
  config.mutable_channels()->mutable_email()->set_from("billing@example.fr");
  EXPECT_EQ(channels::available_channels(config), (std::set<v1::Channel>{v1::EMAIL, v1::CALL_TASK}));
  EXPECT_EQ(channels::available_channels(config), keys(channels::make_channels(config, {}, &producer, loop)));

  // SMS through a Twilio-compatible provider; no WhatsApp sender, so no WhatsApp.
  config.mutable_channels()->mutable_twilio()->set_account_sid("AC00000000000000000000000000000000");
  config.mutable_channels()->mutable_twilio()->set_sms_from("+15005550006");
  EXPECT_EQ(channels::available_channels(config), (std::set<v1::Channel>{v1::EMAIL, v1::SMS, v1::CALL_TASK}));
  EXPECT_EQ(channels::available_channels(config), keys(channels::make_channels(config, {}, &producer, loop)));

  config.mutable_channels()->mutable_capture()->set_always(true);
  EXPECT_EQ(channels::available_channels(config), keys(channels::make_channels(config, {}, &producer, loop)));
}

// ---- Over HTTP ----

TEST(PreviewHttp, ServesTheSameDocumentAndRefusesBadInput) {
  TempDir work("preview-http");
  GatewayProcess gateway({RELANCE_BINARY, "run"}, {{"RELANCE_HTTP__LISTEN", "127.0.0.1:0"}}, work.path(),
                         work.path() / "gateway.log");
  int port = 0;
  ASSERT_TRUE(eventually(30s, [&] {
    std::smatch m;
    auto log = gateway.log();
    if (!std::regex_search(log, m, std::regex("HTTP on 127\\.0\\.0\\.1:(\\d+)"))) return false;
    port = std::stoi(m[1]);
    return true;
  })) << gateway.log();

  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  auto ok =
      client.Post("/v1/preview?from=2026-11-01T00:00:00Z&days=90", read_file(events_file()), "application/x-ndjson");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(ok->get_header_value("Content-Type"), "application/json");
  auto golden = read_file(golden_file());
  EXPECT_TRUE(ok->body == golden) << "POST /v1/preview differs from " << golden_file() << "; "
                                  << first_difference(golden, ok->body) << regenerate_hint();

  auto bad = client.Post("/v1/preview", "\n{\"key\": \"cus_1\"}\n", "application/x-ndjson");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("\"line\": 2"), std::string::npos) << bad->body;

  auto bad_days = client.Post("/v1/preview?days=ninety", read_file(events_file()), "application/x-ndjson");
  ASSERT_TRUE(bad_days);
  EXPECT_EQ(bad_days->status, 400) << bad_days->body;

  auto large =
      client.Post("/v1/preview", std::string(app::HttpServer::kMaxPreviewBody + 1, '\n'), "application/x-ndjson");
  ASSERT_TRUE(large) << httplib::to_string(large.error());
  EXPECT_EQ(large->status, 413);

  EXPECT_EQ(gateway.stop(), 0) << gateway.log();
}

}  // namespace
}  // namespace relance::testing
