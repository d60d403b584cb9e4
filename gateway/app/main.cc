#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <iostream>
#include <thread>

#include "app/gateway.h"
#include "app/http_server.h"
#include "common/dates.h"
#include "config/config_loader.h"

namespace {

using relance::config::ConfigException;

relance::config::LoadedConfig load(const std::string& path, const relance::config::Environment& env) {
  return path.empty() ? relance::config::load_config("", env) : relance::config::load_config_file(path, env);
}

relance::ClockPtr make_clock(const relance::v1::ClockConfig& c) {
  if (c.mode() == relance::v1::SIMULATED) {
    auto start = c.simulated_start().empty() ? std::chrono::system_clock::now()
                                             : *relance::parse_rfc3339(c.simulated_start());
    return std::make_shared<relance::SimulatedClock>(start, c.speed());
  }
  return std::make_shared<relance::SystemClock>();
}

int run(const std::string& config_path) {
  auto env = relance::config::process_environment();
  auto loaded = load(config_path, env);
  spdlog::set_level(spdlog::level::from_str(loaded.config.logging().level()));
  spdlog::info("relance starting with {}", config_path.empty() ? std::string("built-in defaults") : config_path);
  for (const auto& o : loaded.overrides) spdlog::info("override from environment: {}", o);

  relance::app::Gateway gateway(loaded.config, env, make_clock(loaded.config.clock()));

  // Signals are turned into a stop request; the gateway then drains and commits before exiting.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&gateway](const std::error_code& ec, int signo) {
    if (!ec) {
      spdlog::info("signal {} received", signo);
      gateway.request_stop();
    }
  });
  std::thread signal_thread([&io] { io.run(); });
  struct Join {
    asio::io_context& io;
    std::thread& t;
    ~Join() {
      io.stop();
      t.join();
    }
  } join{io, signal_thread};

  gateway.start();
  std::unique_ptr<relance::app::HttpServer> http;
  if (!loaded.config.http().listen().empty()) {
    http = std::make_unique<relance::app::HttpServer>(gateway, loaded.config.http().listen());
  }
  gateway.run();
  return 0;
}

int check_config(const std::string& path) {
  auto loaded = load(path, relance::config::process_environment());
  std::cout << "configuration is valid";
  if (!loaded.overrides.empty()) std::cout << " (" << loaded.overrides.size() << " environment overrides)";
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("relance"));
  CLI::App app{"Relance: payment reminders from Kafka invoice events"};
  app.require_subcommand(1);
  std::string config_path;

  auto* run_cmd = app.add_subcommand("run", "Run the gateway");
  run_cmd->add_option("-c,--config", config_path, "YAML configuration file (default: built-in embedded setup)");
  auto* check_cmd = app.add_subcommand("check-config", "Validate a configuration file and exit");
  check_cmd->add_option("-c,--config", config_path, "YAML configuration file")->required();
  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);
  try {
    if (run_cmd->parsed()) return run(config_path);
    if (check_cmd->parsed()) return check_config(config_path);
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
