#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "relance/v1/config.pb.h"

namespace relance::config {

// One problem found in the configuration, named by its field path ("kafka.group_id") and, when
// the field (or the nearest enclosing one) was written in the file, by its place there.
struct ConfigError {
  ConfigError(std::string path_in, std::string message_in, std::string file_in = {}, int line_in = 0)
      : path(std::move(path_in)), message(std::move(message_in)), file(std::move(file_in)), line(line_in) {}
  std::string path;
  std::string message;
  std::string file;  // empty for text not read from a file
  int line = 0;      // 1-based; 0 when not from the file (defaults, environment overrides)
};

using Environment = std::vector<std::pair<std::string, std::string>>;

// Thrown at start-up only: the gateway refuses to start and prints every error.
class ConfigException : public std::runtime_error {
 public:
  explicit ConfigException(std::vector<ConfigError> errors);
  const std::vector<ConfigError>& errors() const { return errors_; }

 private:
  std::vector<ConfigError> errors_;
};

struct LoadedConfig {
  relance::v1::Config config;
  // "path = value" for every environment override applied, secrets masked.
  std::vector<std::string> overrides;
  // The environment it was loaded with plus the content of every secret file it names, where
  // secret() finds them: what the gateway is given.
  Environment environment;
};

// The built-in defaults: the embedded Kafka cluster, the capture channel, and the default
// policy of deploy/policy/default.yaml.
relance::v1::Config default_config();

// deploy/policy/default.yaml as built into the binary.
const char* default_policy_yaml();

// Loads `yaml_text` (may be empty) over the defaults, applies RELANCE_* overrides from `env`,
// validates, and throws ConfigException listing every error with its field path.
LoadedConfig load_config(const std::string& yaml_text, const Environment& env);
LoadedConfig load_config_file(const std::string& path, const Environment& env);

// Also reads the secret files the configuration names, to check them.
std::vector<ConfigError> validate(const relance::v1::Config& config, const Environment& env);

Environment process_environment();

// Reads an environment variable from `env`; empty when absent.
std::string lookup(const Environment& env, const std::string& name);

// A secret given by its variable (a `*_env` field) or its file (the matching `*_file` field):
// its value, or empty when neither is set. A file's content is found only in the environment
// load_config returns (LoadedConfig::environment).
std::string secret(const Environment& env, const std::string& variable, const std::string& file);

// Reads a secret file, refusing one that is not a regular file owned by this process's user
// and closed to group and others; nullopt with the reason in `why` (which never quotes the
// content). One final line break is dropped.
std::optional<std::string> read_secret_file(const std::string& path, std::string& why);

}  // namespace relance::config
