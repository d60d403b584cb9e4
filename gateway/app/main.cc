#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#ifdef RELANCE_MIMALLOC
#include <mimalloc.h>
#endif
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "app/demo.h"
#include "app/gateway.h"
#include "app/http_server.h"
#include "app/preview.h"
#include "app/stop_signals.h"
#include "common/dates.h"
#include "common/link_token.h"
#include "common/logging.h"
#include "config/config_loader.h"
#include "render/renderer.h"
#include "render/sample_messages.h"
#include "render/sms_segments.h"
#include "render/template_catalog.h"
#include "render/template_lint.h"

namespace {

using relance::config::ConfigException;

relance::config::LoadedConfig load(const std::string& path, const relance::config::Environment& env) {
  return path.empty() ? relance::config::load_config("", env) : relance::config::load_config_file(path, env);
}

// Loads every policy's templates and lints them; prints each problem with its template and
// returns nullptr when there is any.
relance::render::TemplateLibraryPtr load_templates(const relance::v1::Config& config) {
  relance::render::TemplateLibraryPtr library;
  try {
    library = relance::render::TemplateLibrary::load(config);
  } catch (const relance::render::TemplateLoadError& e) {
    std::cerr << "templates: " << e.what() << "\n";
    return nullptr;
  }
  std::vector<std::pair<std::string, const relance::v1::PolicyConfig*>> policies{{"policy", &config.policy()}};
  for (const auto& [tenant, policy] : config.tenant_policies()) {
    policies.emplace_back("tenant_policies." + tenant, &policy);
  }
  bool ok = true;
  for (const auto& [name, policy] : policies) {
    for (const auto& problem : relance::render::lint_policy_templates(library, *policy)) {
      std::cerr << "templates (" << name << "): " << problem.where << ": " << problem.message << "\n";
      ok = false;
    }
  }
  return ok ? library : nullptr;
}

relance::ClockPtr make_clock(const relance::v1::ClockConfig& c) {
  if (c.mode() == relance::v1::SIMULATED) {
    auto start = c.simulated_start().empty() ? std::chrono::system_clock::now()
                                             : *relance::parse_rfc3339(c.simulated_start());
    return std::make_shared<relance::SimulatedClock>(start, c.speed());
  }
  return std::make_shared<relance::SystemClock>();
}

// `relance run --clock simulated --clock-start ... --clock-speed N` overrides `clock:`, and
// `--log-format` overrides `logging.format`.
struct ClockFlags {
  std::string mode;
  std::string start;
  std::optional<double> speed;
  std::string log_format;
};

void setup_logging(const relance::v1::LoggingConfig& config, const std::string& flag) {
  bool text = flag.empty() ? config.format() == relance::v1::TEXT : flag == "text";
  relance::setup_logging(text ? relance::LogFormat::kText : relance::LogFormat::kJson);
  spdlog::set_level(spdlog::level::from_str(config.level()));
}

int run(const std::string& config_path, const ClockFlags& clock_flags) {
  auto env = relance::config::process_environment();
  auto loaded = load(config_path, env);
  auto* clock = loaded.config.mutable_clock();
  if (clock_flags.mode == "simulated") clock->set_mode(relance::v1::SIMULATED);
  if (clock_flags.mode == "system") clock->set_mode(relance::v1::SYSTEM);
  if (!clock_flags.start.empty()) clock->set_simulated_start(clock_flags.start);
  if (clock_flags.speed) clock->set_speed(*clock_flags.speed);
  setup_logging(loaded.config.logging(), clock_flags.log_format);
  spdlog::info("relance starting with {}", config_path.empty() ? std::string("built-in defaults") : config_path);
  for (const auto& o : loaded.overrides) spdlog::info("override from environment: {}", o);
#ifdef RELANCE_MIMALLOC
  // The partitions' restore threads end once their changelog is read: what they allocated is
  // given back to the system rather than kept for a thread that is gone.
  mi_option_enable(mi_option_abandoned_page_decommit);
  spdlog::info("memory allocator: mimalloc {}.{}.{}", mi_version() / 100, mi_version() / 10 % 10, mi_version() % 10);
#endif
  auto templates = load_templates(loaded.config);
  if (!templates) {
    spdlog::critical("refusing to start: the templates have problems (listed above)");
    return 2;
  }
  relance::render::TemplateLibrary::install(templates);

  // The environment as loaded: it also holds what the secret files named by the configuration hold.
  relance::app::Gateway gateway(loaded.config, loaded.environment, make_clock(loaded.config.clock()));

  // Signals are turned into a stop request; the gateway then drains and commits before exiting.
  relance::app::StopSignals signals([&gateway](int signo) {
    spdlog::info("signal {} received", signo);
    gateway.request_stop();
  });

  const auto& http_config = loaded.config.http();
  if (auto link_secret = relance::config::secret(loaded.environment, http_config.link_secret_env(),
                                                 http_config.link_secret_file());
      !link_secret.empty()) {
    relance::set_link_secret(link_secret);
  } else if (!http_config.public_url().empty()) {
    spdlog::warn("http.link_secret_env (or _file) is not set: unsubscribe links stop working when this process restarts");
  }
  gateway.start();
  std::unique_ptr<relance::app::HttpServer> http;
  if (!loaded.config.http().listen().empty()) {
    http = std::make_unique<relance::app::HttpServer>(gateway, loaded.config);
  }
  gateway.run();
  return 0;
}

int check_config(const std::string& path) {
  auto loaded = load(path, relance::config::process_environment());
  if (!load_templates(loaded.config)) return 2;
  std::cout << "configuration is valid";
  if (!loaded.overrides.empty()) std::cout << " (" << loaded.overrides.size() << " environment overrides)";
  std::cout << "\n";
  return 0;
}

// Every message each policy can send, rendered with made-up data into files for a person to
// read: <out>/<policy>/<locale>/<channel>/<template>.<tone>[.grouped].<part>.
int render_samples(const std::string& config_path, const std::string& out_dir) {
  namespace fs = std::filesystem;
  namespace r = relance::render;
  auto loaded = load(config_path, relance::config::process_environment());
  auto library = load_templates(loaded.config);
  if (!library) return 2;
  std::vector<std::pair<std::string, const relance::v1::PolicyConfig*>> policies{{"default", &loaded.config.policy()}};
  for (const auto& [tenant, policy] : loaded.config.tenant_policies()) policies.emplace_back(tenant, &policy);
  r::Renderer renderer(library);
  int written = 0;
  fs::create_directories(out_dir);
  // How long each SMS is, for the reviewer (sample data; check-config checks the worst case).
  std::ofstream index(fs::path(out_dir) / "sms-segments.txt");
  for (const auto& [name, policy] : policies) {
    for (const auto& locale : library->catalog_for(*policy).locales()) {
      for (const auto& slot : r::message_slots(*policy)) {
        for (auto kind : {r::SampleKind::kTypical, r::SampleKind::kGrouped}) {
          if (kind == r::SampleKind::kGrouped && slot.kind == relance::rules::ActionKind::kThankYou) continue;
          auto sample = r::sample_message(slot, locale, kind);
          auto message = renderer.render(sample.decision, sample.ledger, *policy);
          auto channel = r::channel_folder(slot.channel);
          auto dir = fs::path(out_dir) / name / locale / channel;
          auto stem =
              slot.template_name + "." + r::tone_name(slot.tone) + (kind == r::SampleKind::kGrouped ? ".grouped" : "");
          fs::create_directories(dir);
          auto write = [&](const std::string& part, const std::string& text) {
            std::ofstream(dir / (stem + "." + part)) << text;
            ++written;
          };
          if (!message) {
            write("error.txt", message.error().message + "\n");
            continue;
          }
          if (slot.channel == relance::v1::EMAIL) {
            write("subject.txt", message->subject + "\n");
            write("html", message->html);
          }
          write("txt", message->text);
          if (slot.channel == relance::v1::SMS) {
            auto size = r::count_sms_segments(message->text);
            index << (fs::path(name) / locale / channel / (stem + ".txt")).generic_string() << ": "
                  << (size.encoding == r::SmsEncoding::kGsm7 ? "GSM-7, " : "UCS-2, ") << size.units << " units, "
                  << size.segments << " segment(s)\n";
          }
        }
      }
    }
  }
  std::cout << written << " files written to " << out_dir << "\n";
  return 0;
}

// Events as JSON lines on stdin, the planned timelines as JSON on stdout; nothing else is
// touched. Problems go to stderr with exit code 2, and then stdout stays empty.
int preview(const std::string& config_path, const std::string& from_text, int days) {
  auto loaded = load(config_path, relance::config::process_environment());
  spdlog::set_level(spdlog::level::from_str(loaded.config.logging().level()));
  std::optional<relance::Instant> from;
  if (!from_text.empty()) {
    from = relance::parse_rfc3339(from_text);
    if (!from) {
      std::cerr << "relance preview: --from: must be an RFC 3339 time such as 2026-11-01T00:00:00Z\n";
      return 2;
    }
  }
  std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  auto result = relance::app::preview(loaded.config, input, from, days);
  if (!result) {
    std::cerr << "relance preview: " << result.error().message << " (" << result.error().code << ")\n";
    return 2;
  }
  std::cout << relance::app::preview_json(result.value()) << std::flush;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  relance::setup_logging(relance::LogFormat::kText);
  CLI::App app{"Relance: payment reminders from Kafka invoice events"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("relance ") + RELANCE_VERSION);
  std::string config_path;

  auto* run_cmd = app.add_subcommand("run", "Run the gateway");
  run_cmd->add_option("-c,--config", config_path, "YAML configuration file (default: built-in embedded setup)");
  ClockFlags clock_flags;
  run_cmd->add_option("--clock", clock_flags.mode, "system, or simulated (tests, demos; set it with POST /v1/admin/clock)")
      ->check(CLI::IsMember({"system", "simulated"}));
  run_cmd
      ->add_option("--clock-start", clock_flags.start, "RFC 3339 start of the simulated clock (default: now)")
      ->check([](const std::string& text) {
        return relance::parse_rfc3339(text) ? std::string() : std::string("not an RFC 3339 instant: ") + text;
      });
  run_cmd->add_option("--clock-speed", clock_flags.speed, "simulated seconds per real second (0: only moved by the admin endpoint)")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--log-format", clock_flags.log_format, "json (one object per line) or text (default: logging.format, json)")
      ->check(CLI::IsMember({"json", "text"}));
  auto* check_cmd = app.add_subcommand("check-config", "Validate a configuration file and exit");
  check_cmd->add_option("-c,--config", config_path, "YAML configuration file")->required();
  auto* preview_cmd = app.add_subcommand(
      "preview",
      "Print, as JSON, what the gateway would do with the events on stdin (JSON lines), without side effects");
  preview_cmd->add_option("-c,--config", config_path, "YAML configuration file (default: built-in defaults)");
  std::string preview_from;
  int preview_days = relance::app::kDefaultPreviewDays;
  preview_cmd->add_option("--from", preview_from, "RFC 3339 start of the preview (default: the earliest event)");
  preview_cmd->add_option("--days", preview_days, "how many days to play forward")->capture_default_str();
  auto* render_cmd = app.add_subcommand(
      "render", "Render every template with sample data (locales x channels x stages x tones) into a folder");
  render_cmd->add_option("-c,--config", config_path, "YAML configuration file (default: built-in defaults)");
  std::string render_out;
  render_cmd->add_option("-o,--out", render_out, "folder to write the rendered messages into")->required();
  auto* demo_cmd = app.add_subcommand(
      "demo", "Play a built-in scenario (8 customers, 90 days) on the embedded gateway in about a minute, with the console");
  relance::app::DemoOptions demo;
  std::string demo_log_format = "text";
  demo_cmd->add_option("--speed", demo.speed, "simulated seconds per real second")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  demo_cmd->add_option("--days", demo.days, "simulated days to play")->capture_default_str()->check(CLI::Range(1, 365));
  demo_cmd->add_option("--listen", demo.listen, "the console's address")->capture_default_str();
  demo_cmd->add_option("--data-dir", demo.data_dir, "the demo's folder, emptied at start")->capture_default_str();
  demo_cmd->add_flag("--exit", demo.exit_when_done, "stop after the summary instead of keeping the console up");
  demo_cmd->add_option("--summary-json", demo.summary_json, "also write the summary as JSON to this file");
  demo_cmd->add_option("--log-format", demo_log_format, "json or text (warnings and errors only)")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "text"}));
  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any other command-line mistake is a usage error (sysexits'
    // EX_USAGE), told apart from a bad configuration (2) and a failure while running (1).
    return app.exit(e) == 0 ? 0 : 64;
  }
  try {
    if (run_cmd->parsed()) return run(config_path, clock_flags);
    if (demo_cmd->parsed()) {
      relance::setup_logging(demo_log_format == "json" ? relance::LogFormat::kJson : relance::LogFormat::kText);
      spdlog::set_level(spdlog::level::warn);
      return relance::app::run_demo(demo);
    }
    if (check_cmd->parsed()) return check_config(config_path);
    if (preview_cmd->parsed()) return preview(config_path, preview_from, preview_days);
    if (render_cmd->parsed()) return render_samples(config_path, render_out);
    std::cout << "relance " << RELANCE_VERSION << "\n";
    return 0;
  } catch (const ConfigException& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
