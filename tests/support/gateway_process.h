#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace relance::testing {

// Where the child's standard streams go besides the log file.
struct ProcessStreams {
  std::filesystem::path stdin_file;   // read as standard input; empty: inherited
  std::filesystem::path stdout_file;  // standard output alone; empty: into the log with stderr
};

// The real `relance` binary run as a child process, as an operator would run it.
class GatewayProcess {
 public:
  GatewayProcess(std::vector<std::string> args, std::map<std::string, std::string> env,
                 std::filesystem::path working_dir, std::filesystem::path log_file, ProcessStreams streams = {});
  ~GatewayProcess();

  // Sends SIGTERM (unless it has exited already) and waits; the exit status, or nullopt if it
  // had to be killed.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(30));
  // SIGKILL, as a crash or an OOM kill: nothing is flushed or committed.
  void crash();
  bool running();
  std::string log() const;
  pid_t pid() const { return pid_; }

 private:
  // Collects the child's exit status if it has ended; true when it has.
  bool reap(int waitpid_flags);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::filesystem::path log_file_;
};

// Reads KEY=VALUE lines (the rig's rig.env).
std::map<std::string, std::string> read_env_file(const std::filesystem::path& file);

// A TCP port on 127.0.0.1 free at the time of the call.
int free_port();

// Polls `condition` every 100 ms until it holds or `timeout` passes.
template <typename F>
bool eventually(std::chrono::milliseconds timeout, F&& condition);

std::string read_file(const std::filesystem::path& file);

}  // namespace relance::testing

#include <thread>

template <typename F>
bool relance::testing::eventually(std::chrono::milliseconds timeout, F&& condition) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}
