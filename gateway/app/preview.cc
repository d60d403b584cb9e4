#include "app/preview.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <unicode/timezone.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "channels/channel_registry.h"
#include "common/dates.h"
#include "common/json_text.h"
#include "decode/event_decoder.h"
#include "ledger/ledger.h"
#include "rules/reminder_rules.h"
#include "rules/timeline_simulator.h"

namespace relance::app {

namespace v1 = relance::v1;
namespace pbu = google::protobuf::util;

namespace {

// Instants are nanosecond counts: keep event times well inside what they can hold.
constexpr int64_t kEarliestSeconds = -2'208'988'800;  // 1900-01-01T00:00:00Z
constexpr int64_t kLatestSeconds = 7'258'118'400;     // 2200-01-01T00:00:00Z

struct TimedEvent {
  int line = 0;
  Instant at;
  std::string key;
  v1::InvoiceEvent event;
};

Error line_error(int line, std::string code, const std::string& message, int* error_line) {
  if (error_line != nullptr) *error_line = line;
  return Error{std::move(code), "line " + std::to_string(line) + ": " + message, false};
}

bool in_range(int64_t seconds) { return seconds >= kEarliestSeconds && seconds < kLatestSeconds; }

// One input line as an event with its timeline key and time, or why it cannot be used.
Result<TimedEvent> read_line(std::string_view text, int line, int* error_line) {
  pbu::JsonParseOptions options;
  // As on Kafka: fields added by newer producers must not stop an older gateway.
  options.ignore_unknown_fields = true;
  v1::PreviewEvent wrapper;
  auto status = pbu::JsonStringToMessage(google::protobuf::StringPiece(text.data(), text.size()), &wrapper, options);
  if (!status.ok()) return line_error(line, "undecodable", "invalid protobuf JSON: " + status.ToString(), error_line);

  TimedEvent out;
  out.line = line;
  if (wrapper.has_event()) {
    out.key = wrapper.key();
    out.event = std::move(*wrapper.mutable_event());
  } else if (!wrapper.key().empty()) {
    return line_error(line, "missing_field", "a line with a key needs an event", error_line);
  } else {
    auto event = decode::decode_event(text, decode::ContentType::kJson);
    if (!event) return line_error(line, event.error().code, event.error().message, error_line);
    out.event = std::move(event).value();
  }
  if (auto valid = decode::validate_event(out.event); !valid) {
    return line_error(line, valid.error().code, valid.error().message, error_line);
  }
  if (!out.event.has_occurred_at()) {
    return line_error(line, "missing_occurred_at", "occurred_at is required: events are applied at that time",
                      error_line);
  }
  const auto& ts = out.event.occurred_at();
  if (!in_range(ts.seconds())) {
    return line_error(line, "invalid_date", "occurred_at must be between 1900 and 2200", error_line);
  }
  out.at = Instant{
      std::chrono::duration_cast<Duration>(std::chrono::seconds(ts.seconds()) + std::chrono::nanoseconds(ts.nanos()))};
  if (out.key.empty()) out.key = decode::subject_key(out.event);
  if (out.key.empty()) {
    return line_error(line, "missing_key", "no key, and the event names no customer to key it by", error_line);
  }
  return out;
}

Result<std::vector<TimedEvent>> read_events(std::string_view text, int* error_line) {
  std::vector<TimedEvent> events;
  std::set<std::string> seen;
  int line = 0;
  while (!text.empty()) {
    ++line;
    auto end = text.find('\n');
    auto current = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (current.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto event = read_line(current, line, error_line);
    if (!event) return event.error();
    // The gateway applies each event id once; a repeated line is a redelivery.
    if (!seen.insert(event->event.event_id()).second) continue;
    events.push_back(std::move(event).value());
  }
  std::stable_sort(events.begin(), events.end(), [](const TimedEvent& a, const TimedEvent& b) { return a.at < b.at; });
  return events;
}

// Reads instants on customers' wall clocks; ICU zones are costly to build, so each is built once.
class WallClock {
 public:
  // "2026-11-17T09:00:00+01:00"
  std::string format(Instant at, const std::string& time_zone) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    int32_t raw = 0, dst = 0;
    UErrorCode status = U_ZERO_ERROR;
    zone(time_zone).getOffset(static_cast<UDate>(ms), false, raw, dst, status);
    auto offset_minutes = U_SUCCESS(status) ? (raw + dst) / 60'000 : 0;
    auto wall = std::chrono::floor<std::chrono::seconds>(at) + std::chrono::minutes(offset_minutes);
    auto day = std::chrono::floor<std::chrono::days>(wall);
    std::chrono::year_month_day date{day};
    std::chrono::hh_mm_ss time{wall - day};
    auto abs_offset = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%sT%02d:%02d:%02d%c%02d:%02d", format_iso_date(date).c_str(),
                  static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()), offset_minutes < 0 ? '-' : '+', abs_offset / 60,
                  abs_offset % 60);
    return buf;
  }

 private:
  const icu::TimeZone& zone(const std::string& id) {
    auto it = zones_.find(id);
    if (it == zones_.end()) {
      std::unique_ptr<icu::TimeZone> tz(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(id)));
      // As the rules do: an unknown zone reads as UTC.
      if (*tz == icu::TimeZone::getUnknown()) tz.reset(icu::TimeZone::createTimeZone("UTC"));
      it = zones_.emplace(id, std::move(tz)).first;
    }
    return *it->second;
  }

  std::map<std::string, std::unique_ptr<icu::TimeZone>> zones_;
};

v1::PlannedAction::Kind kind_of(rules::ActionKind kind) {
  switch (kind) {
    case rules::ActionKind::kReminder:
      return v1::PlannedAction::REMINDER;
    case rules::ActionKind::kThankYou:
      return v1::PlannedAction::THANK_YOU;
    case rules::ActionKind::kEscalation:
      return v1::PlannedAction::ESCALATION;
  }
  return v1::PlannedAction::KIND_UNSPECIFIED;
}

void add_action(google::protobuf::RepeatedPtrField<v1::PlannedAction>& actions, const rules::SimulatedAction& action,
                const std::string& time_zone, WallClock& wall) {
  const auto& d = action.decision;
  auto* out = actions.Add();
  out->set_at(format_rfc3339(action.at));
  out->set_local_time(wall.format(action.at, time_zone));
  out->set_time_zone(time_zone);
  out->set_kind(kind_of(d.kind));
  out->set_stage(d.stage);
  out->set_channel(d.channel);
  out->set_tone(d.tone);
  out->set_template_(d.template_name);
  for (const auto& id : d.invoice_ids) out->add_invoice_ids(id);
  *out->mutable_total_due() = d.total_due;
  out->set_reminder_id(d.reminder_id);
  out->set_suppressed(d.suppressed);
  out->set_suppression_reason(d.suppression_reason);
  for (const auto& line : d.explanation) out->add_explanation(line);
}

}  // namespace

Result<v1::PreviewResult> preview(const v1::Config& config, std::string_view json_lines, std::optional<Instant> from,
                                  int days, int* error_line) {
  if (error_line != nullptr) *error_line = 0;
  if (days < 1 || days > kMaxPreviewDays) {
    return Error{"invalid_days", "days must be between 1 and " + std::to_string(kMaxPreviewDays), false};
  }
  if (from && !in_range(std::chrono::floor<std::chrono::seconds>(*from).time_since_epoch().count())) {
    return Error{"invalid_date", "from must be between 1900 and 2200", false};
  }
  auto events = read_events(json_lines, error_line);
  if (!events) return events.error();

  v1::PreviewResult result;
  if (!from && events->empty()) return result;  // nothing to preview, not even a window
  Instant start = from ? *from : events->front().at;
  Instant until = start + std::chrono::days(days);
  result.set_from(format_rfc3339(start));
  result.set_until(format_rfc3339(until));

  // The same rules the gateway would build, over the channels it would set up, minus the adapters.
  auto available = channels::available_channels(config);
  rules::ReminderRules default_rules(config.policy(), available);
  std::map<std::string, std::unique_ptr<rules::ReminderRules>> tenant_rules;
  for (const auto& [tenant, policy] : config.tenant_policies()) {
    tenant_rules[tenant] = std::make_unique<rules::ReminderRules>(policy, available);
  }
  auto rules_for = [&](const ledger::CustomerLedger& ledger) -> const rules::ReminderRules& {
    if (auto it = tenant_rules.find(ledger.tenant_id); it != tenant_rules.end()) return *it->second;
    return default_rules;
  };

  std::map<std::string, std::vector<const TimedEvent*>> by_key;  // sorted by key, events in time order
  for (const auto& e : events.value()) by_key[e.key].push_back(&e);

  WallClock wall;
  for (const auto& [key, timeline_events] : by_key) {
    ledger::CustomerLedger ledger;
    ledger.key = key;
    v1::TimelinePreview timeline;
    timeline.set_key(key);
    Instant cursor = start;
    // Acts on what falls due in [cursor, to), as the gateway's timers would.
    auto play = [&](Instant to) {
      if (to <= cursor) return;
      const auto& rules = rules_for(ledger);
      auto actions = rules::TimelineSimulator(rules).run(ledger, cursor, to);
      // Read now: a later event may move the customer to another zone.
      const auto& tz =
          ledger.customer.time_zone().empty() ? rules.policy().default_time_zone() : ledger.customer.time_zone();
      for (const auto& action : actions) add_action(*timeline.mutable_actions(), action, tz, wall);
      cursor = to;
    };
    for (const auto* e : timeline_events) {
      if (e->at >= until) break;
      play(e->at);
      ledger::apply_event(ledger, e->event);
    }
    play(until);
    timeline.set_customer_id(ledger.customer.customer_id());
    timeline.set_tenant_id(ledger.tenant_id);
    *result.add_timelines() = std::move(timeline);
  }
  return result;
}

void append_planned_actions(google::protobuf::RepeatedPtrField<v1::PlannedAction>& out,
                            const std::vector<rules::SimulatedAction>& actions, const std::string& time_zone) {
  WallClock wall;
  for (const auto& action : actions) add_action(out, action, time_zone, wall);
}

std::string preview_json(const v1::PreviewResult& result) {
  pbu::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = pbu::MessageToJsonString(result, &out, options);
  // Printing a message that was just built cannot fail short of a broken protobuf library.
  if (!status.ok()) throw std::runtime_error("cannot print the preview as JSON: " + status.ToString());
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

std::string preview_error_json(const Error& error, int line) {
  std::string out = "{\"error\": \"";
  append_json_escaped(out, error.message);
  out += "\", \"code\": \"";
  append_json_escaped(out, error.code);
  out += "\"";
  if (line > 0) out += ", \"line\": " + std::to_string(line);
  out += "}\n";
  return out;
}

}  // namespace relance::app
