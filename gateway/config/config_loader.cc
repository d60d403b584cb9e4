#include "config/config_loader.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/time_util.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "common/dates.h"
#include "rules/business_calendar.h"
#include "relance/v1/options.pb.h"

extern char** environ;

namespace relance::config {

namespace pb = google::protobuf;
using relance::v1::Config;

ConfigException::ConfigException(std::vector<ConfigError> errors)
    : std::runtime_error([&] {
        std::ostringstream out;
        out << "invalid configuration:";
        for (const auto& e : errors) {
          out << "\n  ";
          if (!e.file.empty()) out << e.file << ":" << (e.line > 0 ? std::to_string(e.line) + ": " : " ");
          if (e.file.empty() && e.line > 0) out << "line " << e.line << ": ";
          out << e.path << ": " << e.message;
        }
        return out.str();
      }()),
      errors_(std::move(errors)) {}

Environment process_environment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

std::string lookup(const Environment& env, const std::string& name) {
  for (const auto& [k, v] : env) {
    if (k == name) return v;
  }
  return {};
}

namespace {

// A secret file's content travels in the environment under a name that no variable can have
// (it starts with a NUL), so that what reads secrets needs nothing besides the environment.
std::string secret_file_key(const std::string& path) { return std::string(1, '\0') + path; }

// Larger than any token, password or key a secret file is meant to hold.
constexpr off_t kMaxSecretFileBytes = 64 * 1024;

}  // namespace

std::string secret(const Environment& env, const std::string& variable, const std::string& file) {
  if (!variable.empty()) return lookup(env, variable);
  if (!file.empty()) return lookup(env, secret_file_key(file));
  return {};
}

std::optional<std::string> read_secret_file(const std::string& path, std::string& why) {
  // The checks are made on the opened file, so the file read is the file checked.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    why = "cannot open " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    why = "cannot stat " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    why = path + " is not a regular file";
    return std::nullopt;
  }
  if (st.st_uid != ::geteuid()) {
    why = path + " is owned by uid " + std::to_string(st.st_uid) + ", not by the user the gateway runs as (uid " +
          std::to_string(::geteuid()) + ")";
    return std::nullopt;
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = path + " is open to group or others (mode " + mode + "); make it readable by its owner only (chmod 600)";
    return std::nullopt;
  }
  if (st.st_size > kMaxSecretFileBytes) {
    why = path + " is larger than 64 KiB, too large for a secret";
    return std::nullopt;
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    auto n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = "cannot read " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    if (content.size() > static_cast<std::size_t>(kMaxSecretFileBytes)) {
      why = path + " is larger than 64 KiB, too large for a secret";
      return std::nullopt;
    }
  }
  // Editors and `echo` end files with a line break that is no part of the secret.
  if (!content.empty() && content.back() == '\n') content.pop_back();
  if (!content.empty() && content.back() == '\r') content.pop_back();
  if (content.empty()) {
    why = path + " is empty";
    return std::nullopt;
  }
  return content;
}

namespace {

constexpr std::string_view kEnvPrefix = "RELANCE_";

std::string join(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool is_secret(const pb::FieldDescriptor* field) {
  return field->options().GetExtension(relance::v1::secret);
}

std::optional<pb::Duration> parse_duration(const std::string& text) {
  static const std::pair<std::string_view, double> units[] = {
      {"ms", 1e-3}, {"s", 1.0}, {"m", 60.0}, {"h", 3600.0}, {"d", 86400.0}};
  for (const auto& [suffix, seconds] : units) {
    if (text.size() <= suffix.size() || text.compare(text.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string number = text.substr(0, text.size() - suffix.size());
    // "5ms" must not be read as 5 m + "s".
    if (!number.empty() && !std::isdigit(static_cast<unsigned char>(number.back())) && number.back() != '.') continue;
    double value = 0;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || ptr != number.data() + number.size() || value < 0 || !std::isfinite(value)) {
      return std::nullopt;
    }
    auto nanos = static_cast<int64_t>(std::llround(value * seconds * 1e9));
    return pb::util::TimeUtil::NanosecondsToDuration(nanos);
  }
  return std::nullopt;
}

// A mapping's key as text (yaml-cpp reads a null key as "null"); nullopt for a key that is a
// list or a mapping ("? [a, b]"), which as<std::string>() would throw on.
std::optional<std::string> key_text(const YAML::Node& key) {
  if (key.IsSequence() || key.IsMap()) return std::nullopt;
  return key.as<std::string>();
}

// Field path → the 1-based line where the file writes it.
using SourceLines = std::map<std::string, int>;

void note_line(SourceLines* lines, const std::string& path, const YAML::Node& node) {
  if (lines != nullptr && node.Mark().line >= 0) lines->emplace(path, node.Mark().line + 1);
}

class YamlToProto {
 public:
  explicit YamlToProto(std::vector<ConfigError>& errors, SourceLines* lines = nullptr) : errors_(errors), lines_(lines) {}

  void merge_message(const YAML::Node& node, pb::Message& msg, const std::string& path) {
    if (node.IsNull()) return;
    if (!node.IsMap()) {
      fail(path, "expected a mapping");
      return;
    }
    const auto* desc = msg.GetDescriptor();
    for (const auto& kv : node) {
      auto key_or_none = key_text(kv.first);
      if (!key_or_none) {
        fail(path, "a key must be a name, not a list or a mapping");
        continue;
      }
      const auto& key = *key_or_none;
      auto field_path = join(path, key);
      note_line(lines_, field_path, kv.first);
      const auto* field = desc->FindFieldByName(key);
      if (field == nullptr) {
        fail(field_path, "unknown field");
        continue;
      }
      if (field->is_map()) {
        merge_map(kv.second, msg, field, field_path);
      } else if (field->is_repeated()) {
        merge_repeated(kv.second, msg, field, field_path);
      } else {
        set_single(kv.second, msg, field, field_path);
      }
    }
  }

 private:
  void fail(const std::string& path, std::string message) { errors_.push_back({path, std::move(message)}); }

  void merge_map(const YAML::Node& node, pb::Message& msg, const pb::FieldDescriptor* field, const std::string& path) {
    if (node.IsNull()) return;
    if (!node.IsMap()) {
      fail(path, "expected a mapping");
      return;
    }
    const auto* refl = msg.GetReflection();
    const auto* key_field = field->message_type()->map_key();
    const auto* value_field = field->message_type()->map_value();
    // Later keys replace earlier ones, including those from the defaults.
    std::vector<std::unique_ptr<pb::Message>> kept;
    for (int i = 0; i < refl->FieldSize(msg, field); ++i) {
      const auto& entry = refl->GetRepeatedMessage(msg, field, i);
      bool replaced = false;
      for (const auto& kv : node) {
        if (entry.GetReflection()->GetString(entry, key_field) == key_text(kv.first)) replaced = true;
      }
      if (!replaced) kept.emplace_back(entry.New())->CopyFrom(entry);
    }
    refl->ClearField(&msg, field);
    for (auto& entry : kept) refl->AddMessage(&msg, field)->CopyFrom(*entry);
    for (const auto& kv : node) {
      auto key_or_none = key_text(kv.first);
      if (!key_or_none) {
        fail(path, "a key must be a name, not a list or a mapping");
        continue;
      }
      const auto& key = *key_or_none;
      auto* entry = refl->AddMessage(&msg, field);
      note_line(lines_, join(path, key), kv.first);
      entry->GetReflection()->SetString(entry, key_field, key);
      set_single(kv.second, *entry, value_field, join(path, key));
    }
  }

  void merge_repeated(const YAML::Node& node, pb::Message& msg, const pb::FieldDescriptor* field,
                      const std::string& path) {
    const auto* refl = msg.GetReflection();
    refl->ClearField(&msg, field);  // A list in the file replaces the default list.
    if (node.IsNull()) return;
    if (node.IsScalar() && field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      // "EMAIL,SMS" from an environment override.
      std::stringstream items(node.as<std::string>());
      std::string item;
      int i = 0;
      while (std::getline(items, item, ',')) {
        add_scalar(YAML::Node(item), msg, field, path + "[" + std::to_string(i++) + "]");
      }
      return;
    }
    if (!node.IsSequence()) {
      fail(path, "expected a list");
      return;
    }
    for (std::size_t i = 0; i < node.size(); ++i) {
      auto item_path = path + "[" + std::to_string(i) + "]";
      note_line(lines_, item_path, node[i]);
      if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        merge_message(node[i], *refl->AddMessage(&msg, field), item_path);
      } else {
        add_scalar(node[i], msg, field, item_path);
      }
    }
  }

  void add_scalar(const YAML::Node& node, pb::Message& msg, const pb::FieldDescriptor* field,
                  const std::string& path) {
    if (!node.IsScalar()) {
      fail(path, "expected a single value");
      return;
    }
    const auto* refl = msg.GetReflection();
    auto text = node.Scalar();
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        if (auto v = parse_enum(text, field, path)) refl->AddEnum(&msg, field, v);
        break;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        refl->AddString(&msg, field, text);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32: {
        int32_t v = 0;
        if (parse_number(text, v, path)) refl->AddInt32(&msg, field, v);
        break;
      }
      default:
        fail(path, "lists of this type are not supported");
    }
  }

  const pb::EnumValueDescriptor* parse_enum(std::string text, const pb::FieldDescriptor* field,
                                            const std::string& path) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    const auto* value = field->enum_type()->FindValueByName(text);
    if (value == nullptr || value->number() == 0) {
      std::string allowed;
      for (int i = 1; i < field->enum_type()->value_count(); ++i) {
        allowed += (i > 1 ? ", " : "") + lower(field->enum_type()->value(i)->name());
      }
      fail(path, "must be one of: " + allowed);
      return nullptr;
    }
    return value;
  }

  template <typename T>
  bool parse_number(const std::string& text, T& out, const std::string& path) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      fail(path, "expected a number, got '" + text + "'");
      return false;
    }
    return true;
  }

  void set_single(const YAML::Node& node, pb::Message& msg, const pb::FieldDescriptor* field,
                  const std::string& path) {
    const auto* refl = msg.GetReflection();
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->message_type()->full_name() == "google.protobuf.Duration") {
        if (!node.IsScalar()) {
          fail(path, "expected a duration such as 500ms, 30s, 5m");
          return;
        }
        auto d = parse_duration(node.Scalar());
        if (!d) {
          fail(path, "expected a duration such as 500ms, 30s, 5m, got '" + node.Scalar() + "'");
          return;
        }
        refl->MutableMessage(&msg, field)->CopyFrom(*d);
        return;
      }
      merge_message(node, *refl->MutableMessage(&msg, field), path);
      return;
    }
    if (!node.IsScalar()) {
      fail(path, "expected a single value");
      return;
    }
    const auto& text = node.Scalar();
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        refl->SetString(&msg, field, text);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32: {
        int32_t v = 0;
        if (parse_number(text, v, path)) refl->SetInt32(&msg, field, v);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_INT64: {
        int64_t v = 0;
        if (parse_number(text, v, path)) refl->SetInt64(&msg, field, v);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v = 0;
        if (parse_number(text, v, path)) refl->SetUInt32(&msg, field, v);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v = 0;
        if (parse_number(text, v, path)) refl->SetUInt64(&msg, field, v);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      case pb::FieldDescriptor::CPPTYPE_FLOAT: {
        double v = 0;
        if (!parse_number(text, v, path)) break;
        if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_DOUBLE) {
          refl->SetDouble(&msg, field, v);
        } else {
          refl->SetFloat(&msg, field, static_cast<float>(v));
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_BOOL: {
        auto v = lower(text);
        if (v == "true" || v == "yes" || v == "on" || v == "1") {
          refl->SetBool(&msg, field, true);
        } else if (v == "false" || v == "no" || v == "off" || v == "0") {
          refl->SetBool(&msg, field, false);
        } else {
          fail(path, "expected true or false, got '" + text + "'");
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        if (auto v = parse_enum(text, field, path)) refl->SetEnum(&msg, field, v);
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }

  std::vector<ConfigError>& errors_;
  SourceLines* lines_;
};

// Turns RELANCE_KAFKA__BROKERS=x into yaml["kafka"]["brokers"] = "x", checking each step
// against the schema so that a misspelt variable is reported rather than ignored.
void apply_env_overrides(const Environment& env, YAML::Node& root, std::vector<std::string>& applied,
                         std::vector<ConfigError>& errors) {
  for (const auto& [name, value] : env) {
    if (name.rfind(kEnvPrefix, 0) != 0 || name.find("__") == std::string::npos) continue;
    std::vector<std::string> segments;
    std::string rest = name.substr(kEnvPrefix.size());
    for (std::size_t pos = 0;;) {
      auto next = rest.find("__", pos);
      segments.push_back(lower(rest.substr(pos, next == std::string::npos ? std::string::npos : next - pos)));
      if (next == std::string::npos) break;
      pos = next + 2;
    }
    const pb::Descriptor* desc = Config::descriptor();
    std::vector<std::string> keys;
    bool secret = false;
    std::string path;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (desc == nullptr) {
        ok = false;
        break;
      }
      const auto* field = desc->FindFieldByName(segments[i]);
      if (field == nullptr) {
        ok = false;
        break;
      }
      secret = secret || is_secret(field);
      keys.push_back(segments[i]);
      path = join(path, segments[i]);
      if (field->is_map()) {
        if (i + 2 != segments.size()) {
          ok = false;
          break;
        }
        std::string key = segments[i + 1];
        std::replace(key.begin(), key.end(), '_', '.');
        keys.push_back(key);
        path = join(path, key);
        desc = nullptr;
        break;
      }
      desc = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
                     field->message_type()->full_name() != "google.protobuf.Duration"
                 ? field->message_type()
                 : nullptr;
      if (desc != nullptr && i + 1 == segments.size()) ok = false;  // a whole message cannot be set
    }
    if (!ok || (desc != nullptr)) {
      errors.push_back({name, "does not name a configuration field"});
      continue;
    }
    // yaml-cpp's operator[] returns proxies that must be reassigned step by step.
    std::vector<YAML::Node> chain{root};
    for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
      YAML::Node child = chain.back()[keys[i]];
      if (!child.IsMap()) {
        child = YAML::Node(YAML::NodeType::Map);
        chain.back()[keys[i]] = child;
      }
      chain.push_back(child);
    }
    chain.back()[keys.back()] = value;
    applied.push_back(path + " = " + (secret ? std::string("****") : value));
  }
}

void add_error(std::vector<ConfigError>& errors, std::string path, std::string message) {
  errors.push_back({std::move(path), std::move(message)});
}

// Reads the secret file named at `field_path` into `env` (once per file) and returns its
// content; empty after recording why it cannot be used.
std::string read_secret_into(const std::string& field_path, const std::string& file, Environment& env,
                             std::vector<ConfigError>& errors) {
  auto key = secret_file_key(file);
  for (const auto& [name, value] : env) {
    if (name == key) return value;
  }
  std::string why;
  auto value = read_secret_file(file, why);
  if (!value) {
    add_error(errors, field_path, why);
    return {};
  }
  env.emplace_back(key, *value);
  return *value;
}

// One secret given by `<field>_env` or `<field>_file` (at most one of them): its value, or
// empty when neither is set or it is unusable (the reason is among `errors`). A value shorter
// than `min_length` is refused; `what` names it in that message ("a token").
std::string check_secret(const std::string& field, const std::string& variable, const std::string& file,
                         std::size_t min_length, const char* what, Environment& env,
                         std::vector<ConfigError>& errors) {
  auto leaf = field.substr(field.rfind('.') + 1);
  if (!variable.empty() && !file.empty()) {
    add_error(errors, field + "_file", "set " + leaf + "_env or " + leaf + "_file, not both");
    return {};
  }
  std::string value;
  std::string source;
  if (!variable.empty()) {
    value = lookup(env, variable);
    source = "environment variable " + variable;
    if (value.empty()) {
      add_error(errors, field + "_env", source + " is not set");
      return {};
    }
  } else if (!file.empty()) {
    value = read_secret_into(field + "_file", file, env, errors);
    source = file;
    if (value.empty()) return {};
  } else {
    return {};
  }
  if (value.size() < min_length) {
    add_error(errors, field + (variable.empty() ? "_file" : "_env"),
              source + " must hold " + what + " of at least " + std::to_string(min_length) + " characters");
    return {};
  }
  return value;
}

// librdkafka properties that hold a secret: never written in the configuration file.
bool is_secret_property(const std::string& name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("password") || ends_with("secret") || name == "ssl.key.pem";
}

void validate_http_tls(const relance::v1::HttpConfig& http, std::vector<ConfigError>& errors) {
  if (http.tls_cert().empty() && http.tls_key().empty()) return;
  if (http.tls_cert().empty() || http.tls_key().empty()) {
    add_error(errors, http.tls_cert().empty() ? "http.tls_cert" : "http.tls_key",
              "set both http.tls_cert and http.tls_key, or neither");
    return;
  }
  std::ifstream cert(http.tls_cert());
  std::stringstream pem;
  pem << cert.rdbuf();
  if (!cert) {
    add_error(errors, "http.tls_cert", "cannot read " + http.tls_cert());
  } else if (pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    add_error(errors, "http.tls_cert", http.tls_cert() + " holds no PEM certificate");
  }
  std::string why;
  auto key = read_secret_file(http.tls_key(), why);
  if (!key) {
    add_error(errors, "http.tls_key", why);
  } else if (key->find("PRIVATE KEY-----") == std::string::npos) {
    add_error(errors, "http.tls_key", http.tls_key() + " holds no PEM private key");
  }
}

bool valid_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = 0;
  auto digits = text.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  return ec == std::errc() && ptr == digits.data() + digits.size() && port >= 0 && port <= 65535;
}

bool is_currency_code(const std::string& code) {
  return code.size() == 3 && std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

void validate_policy(const relance::v1::PolicyConfig& policy, const std::string& prefix, std::vector<ConfigError>& errors) {
  if (policy.stages().empty()) add_error(errors, prefix + ".stages", "needs at least one stage");
  std::set<std::string> stage_names;
  for (int i = 0; i < policy.stages_size(); ++i) {
    const auto& s = policy.stages(i);
    auto path = prefix + ".stages[" + std::to_string(i) + "]";
    if (s.name().empty()) add_error(errors, path + ".name", "must not be empty");
    if (!s.name().empty() && !stage_names.insert(s.name()).second) {
      add_error(errors, path + ".name", "'" + s.name() + "' is used by another stage");
    }
    if (s.name() == "thank_you") add_error(errors, path + ".name", "'thank_you' is reserved for the thank-you message");
    if (s.tone() == relance::v1::TONE_UNSPECIFIED) add_error(errors, path + ".tone", "must be set");
    if (s.channels().minor().empty() && s.channels().middle().empty() && s.channels().large().empty()) {
      add_error(errors, path + ".channels", "needs a channel for at least one amount tier");
    }
    if (s.action() == relance::v1::ESCALATE && i + 1 != policy.stages_size()) {
      add_error(errors, path + ".action", "escalate must be the last stage");
    }
  }
  for (int i = 1; i < policy.stages_size(); ++i) {
    if (policy.stages(i).offset_days() <= policy.stages(i - 1).offset_days()) {
      add_error(errors, prefix + ".stages[" + std::to_string(i) + "].offset_days",
                "must be after the previous stage's offset (stages are listed in order)");
    }
  }
  for (int i = 0; i < policy.amount_tiers_size(); ++i) {
    const auto& t = policy.amount_tiers(i);
    auto path = prefix + ".amount_tiers[" + std::to_string(i) + "]";
    if (!is_currency_code(t.currency())) add_error(errors, path + ".currency", "must be an ISO 4217 code such as EUR");
    if (t.middle_from() < 0) add_error(errors, path + ".middle_from", "must not be negative");
    if (t.large_from() < t.middle_from()) add_error(errors, path + ".large_from", "must not be below middle_from");
  }
  if (!parse_time_of_day(policy.send_at())) add_error(errors, prefix + ".send_at", "must be a time of day HH:MM");
  if (!is_known_time_zone(policy.default_time_zone())) {
    add_error(errors, prefix + ".default_time_zone", "unknown IANA time zone '" + policy.default_time_zone() + "'");
  }
  if (policy.segments().recurring_late_count() < 0) add_error(errors, prefix + ".segments.recurring_late_count", "must not be negative");
  if (policy.segments().lookback_days() < 0) add_error(errors, prefix + ".segments.lookback_days", "must not be negative");
  if (policy.contact_cap().per_day() < 0) add_error(errors, prefix + ".contact_cap.per_day", "must not be negative");
  if (policy.contact_cap().per_7_days() < 0) add_error(errors, prefix + ".contact_cap.per_7_days", "must not be negative");
  if (policy.grouping_window_days() < 0) add_error(errors, prefix + ".grouping_window_days", "must not be negative");
  if (policy.promise_grace_days() < 0) add_error(errors, prefix + ".promise_grace_days", "must not be negative");
  for (auto& [path, message] : relance::rules::validate_calendar(policy.calendar(), prefix + ".calendar")) {
    add_error(errors, path, message);
  }
}

bool is_http_url(const std::string& url) { return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0; }

bool is_messaging_service(const std::string& from) {
  if (from.size() != 34 || from.rfind("MG", 0) != 0) return false;
  return std::all_of(from.begin() + 2, from.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

void check_sender(const std::string& path, const std::string& from, std::vector<ConfigError>& errors) {
  if (from.rfind("MG", 0) == 0) {
    if (!is_messaging_service(from)) add_error(errors, path, "a Messaging Service sid is MG followed by 32 hex digits");
    return;
  }
  auto number = from.rfind("whatsapp:", 0) == 0 ? from.substr(9) : from;
  bool e164 = number.size() >= 8 && number.size() <= 16 && number[0] == '+' &&
              std::all_of(number.begin() + 1, number.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (!e164) add_error(errors, path, "must be an E.164 number (+33612345678) or a Messaging Service (MG...)");
}

void validate_twilio(const Config& c, Environment& env, std::vector<ConfigError>& errors) {
  const auto& t = c.channels().twilio();
  if (t.account_sid().empty()) return;
  if (!is_http_url(t.base_url())) add_error(errors, "channels.twilio.base_url", "must start with http:// or https://");
  if (t.auth_token_env().empty() && t.auth_token_file().empty()) {
    add_error(errors, "channels.twilio.auth_token_env",
              "must name the variable holding the auth token (or set auth_token_file)");
  }
  check_secret("channels.twilio.auth_token", t.auth_token_env(), t.auth_token_file(), 1, "a token", env, errors);
  check_secret("channels.twilio.signing_secret", t.signing_secret_env(), t.signing_secret_file(), 1, "a secret", env,
               errors);
  if (!t.sms_from().empty()) check_sender("channels.twilio.sms_from", t.sms_from(), errors);
  if (!t.whatsapp_from().empty()) check_sender("channels.twilio.whatsapp_from", t.whatsapp_from(), errors);
  for (int i = 0; i < t.senders_size(); ++i) {
    const auto& s = t.senders(i);
    auto path = "channels.twilio.senders[" + std::to_string(i) + "]";
    if (s.channel() != relance::v1::SMS && s.channel() != relance::v1::WHATSAPP) {
      add_error(errors, path + ".channel", "must be SMS or WHATSAPP");
    }
    check_sender(path + ".from", s.from(), errors);
    if (s.mps() < 0) add_error(errors, path + ".mps", "must not be negative");
  }
  if (t.sms_from().empty() && t.whatsapp_from().empty() && t.senders().empty()) {
    add_error(errors, "channels.twilio.sms_from", "set a sender (sms_from, whatsapp_from or senders)");
  }
  if (t.max_in_flight() <= 0) add_error(errors, "channels.twilio.max_in_flight", "must be positive");
  if (t.default_mps() < 0) add_error(errors, "channels.twilio.default_mps", "must not be negative");
  if (pb::util::TimeUtil::DurationToMilliseconds(t.timeout()) <= 0) {
    add_error(errors, "channels.twilio.timeout", "must be positive");
  }
  for (int code : t.success_codes()) {
    if (code < 200 || code > 299) add_error(errors, "channels.twilio.success_codes", "must be 2xx statuses");
  }
  if (t.validity_period() < 0 || t.validity_period() > 36000) {
    add_error(errors, "channels.twilio.validity_period", "must be between 1 and 36000 seconds (0: the provider's default)");
  }
  if (c.http().public_url().empty()) {
    add_error(errors, "http.public_url", "must be set with channels.twilio: providers send delivery reports to it");
  }
}

}  // namespace

Config default_config() {
  Config c;
  auto* kafka = c.mutable_kafka();
  kafka->set_group_id("relance");
  kafka->set_input_topic("billing.invoice-events");
  kafka->set_delivery_topic("relance.delivery-events");
  kafka->set_dlq_topic("relance.dlq");
  kafka->set_call_task_topic("relance.call-tasks");
  kafka->set_outcome_topic("relance.reminder-outcomes");
  kafka->set_inbound_topic("relance.inbound-replies");
  kafka->set_changelog_topic("relance.changelog");
  *kafka->mutable_commit_interval() = pb::util::TimeUtil::MillisecondsToDuration(1000);
  kafka->mutable_embedded()->set_bootstrap_file("relance-data/kafka-bootstrap");
  kafka->mutable_embedded()->set_partitions(3);

  auto* email = c.mutable_channels()->mutable_email();
  email->set_from_name("Accounts receivable");
  *email->mutable_timeout() = pb::util::TimeUtil::SecondsToDuration(30);
  c.mutable_channels()->mutable_capture()->set_dir("relance-data/outbox");
  c.mutable_store()->set_path("relance-data/store");
  c.mutable_store()->set_interrupted_sends(relance::v1::REPORT);
  auto* catch_up = c.mutable_scheduler()->mutable_catch_up();
  catch_up->set_policy(relance::v1::LATEST_STAGE);
  *catch_up->mutable_max_lateness() = pb::util::TimeUtil::HoursToDuration(48);
  auto* twilio = c.mutable_channels()->mutable_twilio();
  twilio->set_base_url("https://api.twilio.com");
  twilio->set_signature_header("X-Twilio-Signature");
  twilio->set_provider_name("twilio");
  twilio->set_max_in_flight(16);
  *twilio->mutable_timeout() = pb::util::TimeUtil::SecondsToDuration(10);
  auto* call_task = c.mutable_channels()->mutable_call_task();
  *call_task->mutable_timeout() = pb::util::TimeUtil::SecondsToDuration(10);
  call_task->set_max_attempts(8);

  std::vector<ConfigError> errors;
  YamlToProto(errors).merge_message(YAML::Load(default_policy_yaml()), *c.mutable_policy(), "policy");
  if (!errors.empty()) throw ConfigException(std::move(errors));  // a broken build, caught by tests

  c.mutable_http()->set_listen("127.0.0.1:8080");
  c.mutable_clock()->set_mode(relance::v1::SYSTEM);
  c.mutable_clock()->set_speed(1.0);
  c.mutable_logging()->set_level("info");
  return c;
}

namespace {

// validate(), adding the content of the secret files it reads to `env`.
std::vector<ConfigError> validate_and_read_secrets(const Config& c, Environment& env) {
  std::vector<ConfigError> errors;
  const auto& kafka = c.kafka();
  if (kafka.group_id().empty()) add_error(errors, "kafka.group_id", "must not be empty");
  std::set<std::string> topics;
  for (const auto& [path, topic] : {std::pair{"kafka.input_topic", &kafka.input_topic()},
                                    std::pair{"kafka.delivery_topic", &kafka.delivery_topic()},
                                    std::pair{"kafka.dlq_topic", &kafka.dlq_topic()},
                                    std::pair{"kafka.call_task_topic", &kafka.call_task_topic()},
                                    std::pair{"kafka.outcome_topic", &kafka.outcome_topic()},
                                    std::pair{"kafka.inbound_topic", &kafka.inbound_topic()},
                                    std::pair{"kafka.changelog_topic", &kafka.changelog_topic()}}) {
    if (topic->empty()) {
      add_error(errors, path, "must not be empty");
    } else if (!topics.insert(*topic).second) {
      add_error(errors, path, "'" + *topic + "' is already used by another topic setting");
    }
  }
  if (pb::util::TimeUtil::DurationToMilliseconds(kafka.commit_interval()) <= 0) {
    add_error(errors, "kafka.commit_interval", "must be positive");
  }
  if (kafka.brokers().empty() && kafka.embedded().partitions() <= 0) {
    add_error(errors, "kafka.embedded.partitions", "must be positive");
  }

  const auto& email = c.channels().email();
  if (!email.smtp_url().empty()) {
    if (email.smtp_url().rfind("smtp://", 0) != 0 && email.smtp_url().rfind("smtps://", 0) != 0) {
      add_error(errors, "channels.email.smtp_url", "must start with smtp:// or smtps://");
    }
    if (email.from().find('@') == std::string::npos) {
      add_error(errors, "channels.email.from", "must be an email address when smtp_url is set");
    }
    check_secret("channels.email.password", email.password_env(), email.password_file(), 1, "a password", env, errors);
    if (pb::util::TimeUtil::DurationToMilliseconds(email.timeout()) <= 0) {
      add_error(errors, "channels.email.timeout", "must be positive");
    }
  }
  if (c.channels().capture().dir().empty()) add_error(errors, "channels.capture.dir", "must not be empty");
  if (c.store().path().empty()) add_error(errors, "store.path", "must not be empty");
  const auto& catch_up = c.scheduler().catch_up();
  if (catch_up.max_per_second() < 0) add_error(errors, "scheduler.catch_up.max_per_second", "must not be negative");
  if (catch_up.policy() == relance::v1::SKIP_STALE && pb::util::TimeUtil::DurationToSeconds(catch_up.max_lateness()) <= 0) {
    add_error(errors, "scheduler.catch_up.max_lateness", "must be positive with policy skip_stale");
  }
  validate_twilio(c, env, errors);
  const auto& call_task = c.channels().call_task();
  if (!call_task.webhook_url().empty()) {
    if (!is_http_url(call_task.webhook_url())) {
      add_error(errors, "channels.call_task.webhook_url", "must start with http:// or https://");
    }
    if (call_task.secret_env().empty() && call_task.secret_file().empty()) {
      add_error(errors, "channels.call_task.secret_env",
                "must name the variable holding the webhook's signing secret (or set secret_file)");
    }
    check_secret("channels.call_task.secret", call_task.secret_env(), call_task.secret_file(), 16, "a secret", env,
                 errors);
    if (call_task.max_attempts() <= 0) add_error(errors, "channels.call_task.max_attempts", "must be positive");
  }
  if (pb::util::TimeUtil::DurationToMilliseconds(c.channels().fallback().confirm_within()) < 0) {
    add_error(errors, "channels.fallback.confirm_within", "must not be negative");
  }
  check_secret("http.admin_token", c.http().admin_token_env(), c.http().admin_token_file(), 16, "a token", env, errors);
  validate_http_tls(c.http(), errors);
  for (const auto& [name, file] : kafka.property_files()) {
    auto path = "kafka.property_files." + name;
    if (kafka.properties().count(name)) {
      add_error(errors, path, "kafka.properties." + name + " is set too; give the property once");
    } else if (file.empty()) {
      add_error(errors, path, "must name a file");
    } else {
      read_secret_into(path, file, env, errors);
    }
  }
  if (!c.http().public_url().empty()) {
    const auto& url = c.http().public_url();
    if (!is_http_url(url)) {
      add_error(errors, "http.public_url", "must start with http:// or https://");
    } else if (auto host = url.substr(url.find("//") + 2, url.find_first_of(":/", url.find("//") + 2) - url.find("//") - 2);
               host.find('_') != std::string::npos) {
      add_error(errors, "http.public_url", "the host name must not contain '_' (providers refuse such callback URLs)");
    }
  }

  validate_policy(c.policy(), "policy", errors);
  for (const auto& [tenant, policy] : c.tenant_policies()) {
    if (tenant.empty()) add_error(errors, "tenant_policies", "a tenant id must not be empty");
    validate_policy(policy, "tenant_policies." + tenant, errors);
  }

  check_secret("http.link_secret", c.http().link_secret_env(), c.http().link_secret_file(), 16, "a secret", env,
               errors);
  if (!c.http().listen().empty() && !valid_host_port(c.http().listen())) {
    add_error(errors, "http.listen", "must be host:port");
  }
  if (c.clock().mode() == relance::v1::CLOCK_MODE_UNSPECIFIED) add_error(errors, "clock.mode", "must be set");
  if (!c.clock().simulated_start().empty() && !parse_rfc3339(c.clock().simulated_start())) {
    add_error(errors, "clock.simulated_start", "must be an RFC 3339 timestamp");
  }
  if (c.clock().speed() < 0) add_error(errors, "clock.speed", "must not be negative");
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.logging().level())) {
    add_error(errors, "logging.level", "must be one of trace, debug, info, warn, error");
  }
  return errors;
}

// Secrets are given by variable or file, never in the file: a librdkafka property that holds
// one and is written there is refused (an environment override of it is fine).
void refuse_written_secret_properties(const YAML::Node& root, std::vector<ConfigError>& errors) {
  if (!root.IsMap() || !root["kafka"] || !root["kafka"].IsMap()) return;
  auto properties = root["kafka"]["properties"];
  if (!properties || !properties.IsMap()) return;
  for (const auto& kv : properties) {
    auto name = key_text(kv.first).value_or(std::string());  // a key that is not a name is reported later
    if (!is_secret_property(name)) continue;
    auto variable = name;
    std::transform(variable.begin(), variable.end(), variable.begin(),
                   [](unsigned char ch) { return ch == '.' ? '_' : static_cast<char>(std::toupper(ch)); });
    add_error(errors, "kafka.properties." + name,
              "a secret is not written in the configuration file: set RELANCE_KAFKA__PROPERTIES__" + variable +
                  " or kafka.property_files." + name);
  }
}

}  // namespace

std::vector<ConfigError> validate(const Config& c, const Environment& env) {
  auto with_secrets = env;
  return validate_and_read_secrets(c, with_secrets);
}

LoadedConfig load_config(const std::string& yaml_text, const Environment& env) {
  std::vector<ConfigError> errors;
  YAML::Node root;
  try {
    root = yaml_text.empty() ? YAML::Node(YAML::NodeType::Map) : YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigException({{"(file)", "not valid YAML: " + e.msg + " at line " + std::to_string(e.mark.line + 1)}});
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  // A lone word or a list at the top is not a configuration; the lookups below would throw
  // yaml-cpp's own exception, without a line, on anything but a mapping.
  if (!root.IsMap()) {
    throw ConfigException({{"(file)", "expected a mapping of settings (kafka:, channels:, policy:, ...) at the top",
                            {}, root.Mark().line + 1}});
  }
  LoadedConfig loaded;
  loaded.config = default_config();
  refuse_written_secret_properties(root, errors);
  apply_env_overrides(env, root, loaded.overrides, errors);
  SourceLines lines;
  YamlToProto(errors, &lines).merge_message(root, loaded.config, "");
  // A tenant's policy is the default policy with the tenant's fields written over it.
  if (auto tenants = root["tenant_policies"]; tenants && tenants.IsMap()) {
    for (const auto& kv : tenants) {
      auto tenant_or_none = key_text(kv.first);
      if (!tenant_or_none) continue;  // reported when tenant_policies was read as a map
      const auto& tenant = *tenant_or_none;
      relance::v1::PolicyConfig merged = loaded.config.policy();
      YamlToProto(errors, &lines).merge_message(kv.second, merged, "tenant_policies." + tenant);
      (*loaded.config.mutable_tenant_policies())[tenant] = std::move(merged);
    }
  }
  loaded.environment = env;
  if (errors.empty()) errors = validate_and_read_secrets(loaded.config, loaded.environment);
  if (!errors.empty()) {
    // The line of the field, or of the nearest enclosing field the file writes ("policy.stages[0]"
    // for a tone left out of that stage).
    for (auto& e : errors) {
      for (auto p = e.path; !p.empty();) {
        if (auto found = lines.find(p); found != lines.end()) {
          e.line = found->second;
          break;
        }
        auto cut = p.find_last_of(".[");
        p = cut == std::string::npos ? std::string() : p.substr(0, cut);
      }
    }
    throw ConfigException(std::move(errors));
  }
  // librdkafka is handed the properties read from files like any other.
  auto* properties = loaded.config.mutable_kafka()->mutable_properties();
  for (const auto& [name, file] : loaded.config.kafka().property_files()) {
    (*properties)[name] = secret(loaded.environment, "", file);
  }
  return loaded;
}

LoadedConfig load_config_file(const std::string& path, const Environment& env) {
  std::ifstream in(path);
  if (!in) throw ConfigException({{"(file)", "cannot read " + path}});
  std::stringstream text;
  text << in.rdbuf();
  try {
    return load_config(text.str(), env);
  } catch (const ConfigException& e) {
    auto errors = e.errors();
    for (auto& error : errors) error.file = path;
    throw ConfigException(std::move(errors));
  }
}

}  // namespace relance::config
