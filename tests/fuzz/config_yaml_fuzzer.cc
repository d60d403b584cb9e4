// The configuration file as an operator writes it: any text must come back either as a loaded
// configuration or as a ConfigException listing the errors, never as another exception (which
// `relance run` and `relance check-config` would report without field paths) or a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>

#include "config/config_loader.h"

namespace {

// The secrets the example configuration names, set so that a valid file loads all the way
// through validation instead of stopping at a missing variable.
const relance::config::Environment& environment() {
  static const relance::config::Environment env{
      {"RELANCE_SMTP_PASSWORD", "smtp-password-for-fuzzing"},
      {"RELANCE_TWILIO_SECRET", "twilio-secret-for-fuzzing"},
      {"RELANCE_TWILIO_AUTH_TOKEN", "twilio-auth-token-for-fuzzing"},
      {"RELANCE_CALL_TASK_WEBHOOK_SECRET", "call-task-secret-for-fuzzing"},
      {"RELANCE_LINK_SECRET", "link-secret-for-fuzzing-0123"},
      {"RELANCE_ADMIN_TOKEN", "admin-token-for-fuzzing-0123"}};
  return env;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string yaml(reinterpret_cast<const char*>(data), size);
  try {
    auto loaded = relance::config::load_config(yaml, environment());
    // What load_config accepted must also pass validate on its own.
    if (!relance::config::validate(loaded.config, environment()).empty()) std::abort();
  } catch (const relance::config::ConfigException& e) {
    if (e.errors().empty()) std::abort();  // a refusal must say why
  }
  return 0;
}
