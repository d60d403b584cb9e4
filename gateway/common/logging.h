#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class formatter;
}

namespace relance {

enum class LogFormat { kJson, kText };

// Installs the process's logger on stderr: JSON lines (time, level, logger, message, and the
// event and reminder ids of the current LogContext) or plain text. In both, every message goes
// through mask_personal_data() first.
void setup_logging(LogFormat format);
// The formatter setup_logging() installs, for a sink of one's own.
std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format);

// Email addresses and phone numbers replaced by a mask that keeps what helps an operator
// (the email's domain, the phone's last two digits): "j***@example.com", "+33*******78".
// Names and message bodies are never passed to the logger in the first place.
std::string mask_personal_data(std::string_view text);

// What the current thread is working on, added to every JSON log line it writes while the
// context lives (nested contexts replace the fields they set and restore them on exit).
class LogContext {
 public:
  LogContext(std::string_view event_id, std::string_view reminder_id);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

  static const std::string& event_id();
  static const std::string& reminder_id();

 private:
  std::string previous_event_;
  std::string previous_reminder_;
};

}  // namespace relance
