#include "common/logging.h"

#include <spdlog/details/fmt_helper.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "common/json_text.h"

namespace relance {

namespace {

thread_local std::string current_event;
thread_local std::string current_reminder;

bool is_local_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool is_domain_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '.' || c == '-';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One JSON object per line; the message masked, then escaped.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(160 + msg.payload.size());
    auto time = std::chrono::system_clock::to_time_t(msg.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&time, &utc);
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
    line += R"({"time":")";
    line += stamp;
    line += R"(","level":")";
    auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += R"(","logger":")";
    append_json_escaped(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += R"(","message":")";
    append_json_escaped(line, mask_personal_data(std::string_view(msg.payload.data(), msg.payload.size())));
    line += '"';
    if (!current_event.empty()) {
      line += R"(,"event_id":")";
      append_json_escaped(line, current_event);
      line += '"';
    }
    if (!current_reminder.empty()) {
      line += R"(,"reminder_id":")";
      append_json_escaped(line, current_reminder);
      line += '"';
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// spdlog's text pattern, with the message masked.
class MaskedTextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto masked = mask_personal_data(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy(msg.time, msg.source, msg.logger_name, msg.level, masked);
    copy.thread_id = msg.thread_id;
    copy.color_range_start = 0;
    copy.color_range_end = 0;
    inner_.format(copy, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<MaskedTextFormatter>(); }

 private:
  spdlog::pattern_formatter inner_{"[%Y-%m-%d %H:%M:%S.%e] [%l] %v"};
};

}  // namespace

std::string mask_personal_data(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '@') {
      // An email: the local part already copied is replaced by its first character and ***.
      std::size_t local_start = out.size();
      while (local_start > 0 && is_local_char(out[local_start - 1])) --local_start;
      std::size_t domain_end = i + 1;
      while (domain_end < text.size() && is_domain_char(text[domain_end])) ++domain_end;
      auto domain = text.substr(i + 1, domain_end - i - 1);
      if (local_start < out.size() && domain.find('.') != std::string_view::npos) {
        out.resize(local_start + 1);
        out += "***@";
        out.append(domain.data(), domain.size());
        i = domain_end;
        continue;
      }
    }
    if ((c == '+' || is_digit(c)) && (i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) != 0 ||
                                                  text[i - 1] == '_' || text[i - 1] == '-'))) {
      // A phone number: "+" and 8 to 15 digits (E.164), spaces, dots and dashes allowed between
      // digit groups. Plain numbers without "+" (offsets, counts, ids) are left alone.
      if (c == '+') {
        std::size_t j = i + 1;
        std::size_t digits = 0;
        std::size_t last_digit = i;
        while (j < text.size() && (is_digit(text[j]) || ((text[j] == ' ' || text[j] == '.' || text[j] == '-') &&
                                                         j + 1 < text.size() && is_digit(text[j + 1])))) {
          if (is_digit(text[j])) {
            ++digits;
            last_digit = j;
          }
          ++j;
        }
        bool glued = last_digit + 1 < text.size() && std::isalnum(static_cast<unsigned char>(text[last_digit + 1])) != 0;
        if (digits >= 8 && digits <= 15 && !glued) {
          std::string kept;
          for (std::size_t k = last_digit + 1; k-- > i + 1 && kept.size() < 2;) {
            if (is_digit(text[k])) kept.insert(kept.begin(), text[k]);
          }
          out += '+';
          out += text[i + 1];
          out.append(digits - 3, '*');
          out += kept;
          i = last_digit + 1;
          continue;
        }
      }
    }
    out += c;
    ++i;
  }
  return out;
}

LogContext::LogContext(std::string_view event_id, std::string_view reminder_id)
    : previous_event_(current_event), previous_reminder_(current_reminder) {
  if (!event_id.empty()) current_event.assign(event_id);
  if (!reminder_id.empty()) current_reminder.assign(reminder_id);
}

LogContext::~LogContext() {
  current_event = std::move(previous_event_);
  current_reminder = std::move(previous_reminder_);
}

const std::string& LogContext::event_id() { return current_event; }
const std::string& LogContext::reminder_id() { return current_reminder; }

void setup_logging(LogFormat format) {
  spdlog::drop("relance");
  auto logger = spdlog::stderr_color_mt("relance");
  logger->set_formatter(make_log_formatter(format));
  spdlog::set_default_logger(std::move(logger));
}

std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>();
  return std::make_unique<MaskedTextFormatter>();
}

}  // namespace relance
