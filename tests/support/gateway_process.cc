#include "support/gateway_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace relance::testing {

GatewayProcess::GatewayProcess(std::vector<std::string> args, std::map<std::string, std::string> env,
                               std::filesystem::path working_dir, std::filesystem::path log_file,
                               ProcessStreams streams)
    : log_file_(std::move(log_file)) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    auto name = entry.substr(0, entry.find('='));
    if (!env.count(name)) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    if (!streams.stdout_file.empty()) {
      int out = open(streams.stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0) _exit(125);
      dup2(out, STDOUT_FILENO);
      close(out);
    }
    if (!streams.stdin_file.empty()) {
      int in = open(streams.stdin_file.c_str(), O_RDONLY);
      if (in < 0) _exit(125);
      dup2(in, STDIN_FILENO);
      close(in);
    }
    if (chdir(working_dir.c_str()) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0) stop(std::chrono::seconds(10));
  // Kept for the log scan after the run (tests/logs/scan.sh), which looks for personal data and
  // secrets in everything the gateway wrote, however the test ended.
  if (const char* dir = std::getenv("RELANCE_TEST_LOG_DIR"); dir != nullptr && *dir != '\0') {
    static std::atomic<int> copies{0};
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    auto name = std::to_string(getpid()) + "-" + std::to_string(copies++) + "-" + log_file_.filename().string();
    std::filesystem::copy_file(log_file_, std::filesystem::path(dir) / name,
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
}

bool GatewayProcess::reap(int flags) {
  if (pid_ <= 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, flags) != pid_) return false;
  pid_ = -1;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool GatewayProcess::running() { return !reap(WNOHANG); }

std::optional<int> GatewayProcess::stop(std::chrono::milliseconds grace) {
  if (reap(WNOHANG)) return exit_status_;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reap(WNOHANG)) return exit_status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  reap(0);
  return std::nullopt;
}

void GatewayProcess::crash() {
  if (reap(WNOHANG)) return;
  kill(pid_, SIGKILL);
  reap(0);
}

std::string GatewayProcess::log() const { return read_file(log_file_); }

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::string> read_env_file(const std::filesystem::path& file) {
  std::map<std::string, std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

}  // namespace relance::testing

namespace relance::testing {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace relance::testing
