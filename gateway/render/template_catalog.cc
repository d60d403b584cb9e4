#include "render/template_catalog.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>

#include <openssl/sha.h>

#include "render/builtin_templates.h"

namespace relance::render {

namespace fs = std::filesystem;
namespace v1 = relance::v1;

namespace {

const std::set<std::string> kChannels{"email", "sms", "whatsapp", "call_task"};
const std::set<std::string> kTones{"friendly", "courteous", "firm", "final"};
const std::set<std::string> kParts{"subject", "text", "html", "talking_points"};
constexpr std::string_view kSuffix = ".mustache";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string normalise_locale(std::string locale) {
  std::replace(locale.begin(), locale.end(), '_', '-');
  return locale;
}

// Parses "fr/email/first_reminder.firm.text.mustache" into an entry (no source yet).
TemplateEntry parse_path(const std::string& relative, const std::string& origin) {
  auto fail = [&](const std::string& why) {
    return TemplateLoadError(origin + ": " + why +
                             " (expected <locale>/<channel>/<template>[@<variant>][.<tone>].<part>.mustache)");
  };
  auto folders = split(relative, '/');
  if (folders.size() != 3) throw fail("not two folders deep");
  auto file = folders[2];
  if (file.size() <= kSuffix.size() || file.substr(file.size() - kSuffix.size()) != kSuffix)
    throw fail("not .mustache");
  auto pieces = split(file.substr(0, file.size() - kSuffix.size()), '.');
  if (pieces.size() != 2 && pieces.size() != 3) throw fail("unexpected dots in the file name");
  TemplateEntry e;
  e.origin = origin;
  e.locale = normalise_locale(folders[0]);
  e.channel = folders[1];
  e.name = pieces[0];
  if (auto at = e.name.find('@'); at != std::string::npos) {
    e.variant = e.name.substr(at + 1);
    e.name.resize(at);
    if (!valid_variant_name(e.variant) || e.variant == kBaseVariant) {
      throw fail("variant '" + e.variant + "' is not a variant name ([a-z0-9_-]+, not 'base')");
    }
  }
  e.part = pieces.back();
  if (pieces.size() == 3) e.tone = pieces[1];
  if (e.locale.empty() || e.name.empty()) throw fail("empty locale or template name");
  if (!kChannels.contains(e.channel)) throw fail("unknown channel folder '" + e.channel + "'");
  if (!e.tone.empty() && !kTones.contains(e.tone)) throw fail("unknown tone '" + e.tone + "'");
  if (!kParts.contains(e.part)) throw fail("unknown part '" + e.part + "'");
  const auto& allowed = channel_parts(e.channel);
  if (std::find(allowed.begin(), allowed.end(), e.part) == allowed.end()) {
    throw fail("a " + e.channel + " message has no part '" + e.part + "'");
  }
  return e;
}

void compile(TemplateEntry& e) {
  auto compiled = std::make_shared<kainjow::mustache::mustache>(e.source);
  if (!compiled->is_valid()) throw TemplateLoadError(e.origin + ": " + compiled->error_message());
  if (e.part != "html") compiled->set_custom_escape([](const std::string& s) { return s; });
  e.compiled = std::move(compiled);
  e.used_variables = variables_used(e.source);
  e.flat = compile_flat(e.source, e.pieces);
  if (!e.flat) e.pieces.clear();
  for (auto& piece : e.pieces) piece.escaped = piece.kind == TemplatePiece::kVariable && e.part == "html";
}

constexpr uint64_t kFlagVariables =
    variable_bit("has_company_contact") | variable_bit("tone_friendly") | variable_bit("tone_courteous") |
    variable_bit("tone_firm") | variable_bit("tone_final") | variable_bit("offer_payment_plan") |
    variable_bit("mention_late_terms") | variable_bit("recurring_late_payer") | variable_bit("escalation") |
    variable_bit("has_unsubscribe") | variable_bit("overdue") | variable_bit("grouped");
constexpr uint64_t kTextVariables =
    ((uint64_t{1} << kTemplateVariables.size()) - 1) & ~kFlagVariables & ~variable_bit("invoices");
constexpr std::array<std::string_view, 5> kInvoiceFields{"number", "amount_due", "due_date", "days_overdue",
                                                         "payment_link"};

}  // namespace

uint64_t variables_used(const std::string& source) {
  constexpr uint64_t kAll = ~uint64_t{0};
  if (source.find("{{=") != std::string::npos) return kAll;
  uint64_t used = 0;
  std::size_t pos = 0;
  while ((pos = source.find("{{", pos)) != std::string::npos) {
    auto close = source.find("}}", pos + 2);
    if (close == std::string::npos) return kAll;
    std::string_view tag(source.data() + pos + 2, close - pos - 2);
    pos = close + 2;
    // Whatever kainjow trims from a tag (std::isspace: line breaks too), or a tag written over
    // two lines would render a variable this did not report as used, and so left unset.
    auto trim = [](std::string_view t) {
      auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
      while (!t.empty() && space(t.front())) t.remove_prefix(1);
      while (!t.empty() && space(t.back())) t.remove_suffix(1);
      return t;
    };
    tag = trim(tag);
    if (!tag.empty() && tag.front() == '!') continue;
    if (!tag.empty() && (tag.front() == '#' || tag.front() == '^' || tag.front() == '/' || tag.front() == '&' ||
                         tag.front() == '{' || tag.front() == '>')) {
      tag = trim(tag.substr(1));
    }
    // A dotted name is looked up from its first segment.
    tag = tag.substr(0, tag.find('.'));
    for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
      if (kTemplateVariables[i] == tag) used |= uint64_t{1} << i;
    }
  }
  return used;
}

bool compile_flat(const std::string& source, std::vector<TemplatePiece>& pieces) {
  pieces.clear();
  std::vector<std::size_t> open_sections;  // indices of the section pieces still open
  std::size_t pos = 0;
  auto add_text = [&pieces](std::string_view text) {
    // Line breaks apart, as kainjow's parser makes them components of their own.
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size();) {
      std::size_t n = text.compare(i, 2, "\r\n") == 0 ? 2 : (text[i] == '\n' || text[i] == '\r') ? 1 : 0;
      if (n == 0) {
        ++i;
        continue;
      }
      if (i > start) pieces.push_back(TemplatePiece{TemplatePiece::kText, std::string(text.substr(start, i - start))});
      pieces.push_back(TemplatePiece{TemplatePiece::kNewline, std::string(text.substr(i, n))});
      i += n;
      start = i;
    }
    if (start < text.size()) pieces.push_back(TemplatePiece{TemplatePiece::kText, std::string(text.substr(start))});
  };
  while (pos < source.size()) {
    auto open = source.find("{{", pos);
    if (open == std::string::npos) open = source.size();
    if (open > pos) add_text(std::string_view(source).substr(pos, open - pos));
    if (open == source.size()) break;
    auto close = source.find("}}", open + 2);
    if (close == std::string::npos) return false;
    std::string_view name(source.data() + open + 2, close - open - 2);
    pos = close + 2;
    char sigil = name.empty() ? '\0' : name.front();
    if (sigil == '#' || sigil == '^' || sigil == '/') name.remove_prefix(1);
    // Only a bare name, [a-z_]+: anything else goes through kainjow.
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) {
      return false;
    }
    bool in_invoices = std::any_of(open_sections.begin(), open_sections.end(),
                                   [&pieces](std::size_t s) { return pieces[s].kind == TemplatePiece::kInvoices; });
    int index = -1;
    for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
      if (kTemplateVariables[i] == name) index = static_cast<int>(i);
    }
    // Inside {{#invoices}}, an invoice line's own field before the message's variable.
    if (in_invoices && sigil != '/') {
      for (std::size_t f = 0; f < kInvoiceFields.size(); ++f) {
        if (kInvoiceFields[f] == name) index = TemplatePiece::kInvoiceField + static_cast<int>(f);
      }
      if (index >= TemplatePiece::kInvoiceField) {
        if (sigil == '#' || sigil == '^') return false;
        TemplatePiece piece;
        piece.kind = TemplatePiece::kVariable;
        piece.variable = index;
        pieces.push_back(std::move(piece));
        continue;
      }
    }
    if (index < 0) return false;
    auto bit = uint64_t{1} << index;
    if (sigil == '#' && bit == variable_bit("invoices") && !in_invoices) {
      open_sections.push_back(pieces.size());
      TemplatePiece piece;
      piece.kind = TemplatePiece::kInvoices;
      piece.variable = index;
      pieces.push_back(std::move(piece));
      continue;
    }
    if (sigil == '#' || sigil == '^') {
      if ((bit & kFlagVariables) == 0) return false;
      open_sections.push_back(pieces.size());
      TemplatePiece piece;
      piece.kind = sigil == '#' ? TemplatePiece::kSection : TemplatePiece::kInverted;
      piece.variable = index;
      pieces.push_back(std::move(piece));
    } else if (sigil == '/') {
      if (open_sections.empty() || pieces[open_sections.back()].variable != index) return false;
      pieces[open_sections.back()].end = pieces.size();
      open_sections.pop_back();
    } else {
      if ((bit & kTextVariables) == 0) return false;
      TemplatePiece piece;
      piece.kind = TemplatePiece::kVariable;
      piece.variable = index;
      pieces.push_back(std::move(piece));
    }
  }
  return open_sections.empty();
}

namespace {

// kainjow's line buffer: a line is written out at its line break (or at the end), unless a
// section was rendered in it and it holds nothing but spaces and tabs.
struct FlatRender {
  const TemplateValues& values;
  const std::vector<TemplatePiece>& pieces;
  std::string out;
  std::string line;
  bool contained_section = false;
  const std::array<std::string, 5>* invoice = nullptr;  // the invoice line being rendered

  void end_line(const std::string* newline) {
    bool blank = std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
    if (!(contained_section && blank)) {
      out += line;
      if (newline != nullptr) out += *newline;
    }
    line.clear();
    contained_section = false;
  }

  void run(std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end;) {
      const auto& piece = pieces[i];
      auto v = static_cast<std::size_t>(piece.variable);
      switch (piece.kind) {
        case TemplatePiece::kText:
          line += piece.text;
          ++i;
          break;
        case TemplatePiece::kNewline:
          end_line(&piece.text);
          ++i;
          break;
        case TemplatePiece::kVariable:
          if (piece.variable >= TemplatePiece::kInvoiceField) {
            const auto& field = (*invoice)[v - TemplatePiece::kInvoiceField];
            if (piece.escaped) {
              line += kainjow::mustache::html_escape<std::string>(field);
            } else {
              line += field;
            }
          } else if ((values.text_set >> v) & 1) {
            if (piece.escaped) {
              line += kainjow::mustache::html_escape<std::string>(values.text[v]);
            } else {
              line += values.text[v];
            }
          }
          ++i;
          break;
        case TemplatePiece::kSection:
        case TemplatePiece::kInverted: {
          // An unset flag is no value: its section is skipped, its inverted section rendered.
          bool truthy = ((values.flags_set >> v) & 1) != 0 && ((values.flags >> v) & 1) != 0;
          if (truthy == (piece.kind == TemplatePiece::kSection)) {
            contained_section = true;
            run(i + 1, piece.end);
            contained_section = true;
          }
          i = piece.end;
          break;
        }
        case TemplatePiece::kInvoices:
          // A list section: rendered once per line, skipped for no list or an empty one.
          if (values.invoices_set) {
            for (const auto& line_values : values.invoices) {
              invoice = &line_values;
              contained_section = true;
              run(i + 1, piece.end);
              contained_section = true;
            }
            invoice = nullptr;
          }
          i = piece.end;
          break;
      }
    }
  }
};

}  // namespace

const std::string* TemplateValues::find_text(std::string_view name) const {
  for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
    if (kTemplateVariables[i] == name) return (text_set >> i) & 1 ? &text[i] : nullptr;
  }
  return nullptr;
}

MustacheData TemplateValues::to_data() const {
  MustacheData vars;
  for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
    std::string name(kTemplateVariables[i]);
    if ((text_set >> i) & 1) vars.set(name, text[i]);
    if ((flags_set >> i) & 1) vars.set(name, ((flags >> i) & 1) != 0);
  }
  if (invoices_set) {
    kainjow::mustache::list lines;
    for (const auto& invoice : invoices) {
      MustacheData line;
      for (std::size_t f = 0; f < kInvoiceFields.size(); ++f) line.set(std::string(kInvoiceFields[f]), invoice[f]);
      lines.push_back(line);
    }
    vars.set("invoices", lines);
  }
  return vars;
}

std::string TemplateEntry::render_flat(const TemplateValues& values) const {
  FlatRender r{values, pieces, {}, {}, false, nullptr};
  r.out.reserve(source.size() + source.size() / 2);
  r.run(0, pieces.size());
  r.end_line(nullptr);
  return std::move(r.out);
}

std::string TemplateEntry::render(const MustacheData& data) const {
  // kainjow's render keeps its state in a per-call context and leaves the parsed tree as it is,
  // so one parsed template serves every thread. Appended to one string rather than through the
  // ostringstream of render(data), which costs more than a short template's whole rendering.
  std::string out;
  out.reserve(source.size() + source.size() / 2);
  compiled->render(data, [&out](const std::string& chunk) { out += chunk; });
  return out;
}

std::shared_ptr<const TemplateCatalog> TemplateCatalog::load(const std::string& override_dir) {
  static std::atomic<uint64_t> next_id{1};
  auto catalog = std::make_shared<TemplateCatalog>();
  catalog->id_ = next_id++;
  auto add = [&](TemplateEntry e) {
    compile(e);
    auto key = std::make_tuple(e.overrides ? 0 : 1, e.locale, e.channel, e.name, e.variant, e.tone, e.part);
    if (catalog->index_.contains(key)) throw TemplateLoadError(e.origin + ": defined twice");
    catalog->index_[key] = catalog->entries_.size();
    catalog->entries_.push_back(std::move(e));
  };
  for (const auto& builtin : builtin_templates()) {
    auto e = parse_path(std::string(builtin.path), "built-in:" + std::string(builtin.path));
    e.source = std::string(builtin.text);
    add(std::move(e));
  }
  if (!override_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(override_dir, ec)) throw TemplateLoadError(override_dir + ": not a readable folder");
    std::vector<fs::path> files;
    for (const auto& item : fs::recursive_directory_iterator(override_dir, ec)) {
      if (item.is_regular_file() && item.path().extension() == ".mustache") files.push_back(item.path());
    }
    if (ec) throw TemplateLoadError(override_dir + ": " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      auto e = parse_path(fs::relative(path, override_dir).generic_string(), path.string());
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in) throw TemplateLoadError(path.string() + ": cannot be read");
      e.source = text.str();
      e.overrides = true;
      add(std::move(e));
    }
  }
  return catalog;
}

const TemplateEntry* TemplateCatalog::find(const std::string& locale, const std::string& default_locale,
                                           const std::string& channel, const std::string& name, const std::string& tone,
                                           const std::string& part, const std::string& variant) const {
  // Each thread remembers the lookups it made (a bounded number): the chain walk costs more than
  // the rest of an SMS's lookup-free work. Keyed by the catalog's id, never by its address.
  thread_local std::unordered_map<std::string, const TemplateEntry*> memo;
  thread_local std::string key;
  key.clear();
  key.append(reinterpret_cast<const char*>(&id_), sizeof id_);
  for (const auto* s : {&locale, &default_locale, &channel, &name, &tone, &part, &variant}) {
    key += '\x1f';
    key += *s;
  }
  if (auto it = memo.find(key); it != memo.end()) return it->second;
  const auto* entry = find_uncached(locale, default_locale, channel, name, tone, part, variant);
  if (memo.size() >= 4096) memo.clear();
  memo.emplace(key, entry);
  return entry;
}

const TemplateEntry* TemplateCatalog::find_uncached(const std::string& locale, const std::string& default_locale,
                                                    const std::string& channel, const std::string& name,
                                                    const std::string& tone, const std::string& part,
                                                    const std::string& variant) const {
  using Key = std::tuple<int, std::string_view, std::string_view, std::string_view, std::string_view,
                         std::string_view, std::string_view>;
  for (const auto& candidate : locale_chain(locale, default_locale)) {
    for (int layer : {0, 1}) {
      for (std::string_view v : {std::string_view(variant), std::string_view()}) {
        for (std::string_view t : {std::string_view(tone), std::string_view()}) {
          auto it = index_.find(Key(layer, candidate, channel, name, v, t, part));
          if (it != index_.end()) return &entries_[it->second];
          if (tone.empty()) break;
        }
        if (variant.empty()) break;
      }
    }
  }
  return nullptr;
}

bool TemplateCatalog::has_variant(const std::string& name, const std::string& variant) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const TemplateEntry& e) { return e.name == name && e.variant == variant; });
}

bool valid_variant_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::vector<std::string> TemplateCatalog::locales() const {
  std::set<std::string> out;
  for (const auto& e : entries_) out.insert(e.locale);
  return {out.begin(), out.end()};
}

std::vector<std::string> TemplateCatalog::names() const {
  std::set<std::string> out;
  for (const auto& e : entries_) out.insert(e.name);
  return {out.begin(), out.end()};
}

std::vector<std::string> locale_chain(const std::string& locale, const std::string& default_locale) {
  std::vector<std::string> chain;
  auto push = [&chain](const std::string& l) {
    if (!l.empty() && std::find(chain.begin(), chain.end(), l) == chain.end()) chain.push_back(l);
  };
  for (const auto& raw : {locale, default_locale}) {
    auto l = normalise_locale(raw);
    push(l);
    auto dash = l.find('-');
    if (dash != std::string::npos) push(l.substr(0, dash));
  }
  return chain;
}

const std::vector<std::string>& channel_parts(const std::string& channel) {
  static const std::vector<std::string> email{"subject", "text", "html"};
  static const std::vector<std::string> text{"text"};
  static const std::vector<std::string> call{"talking_points"};
  static const std::vector<std::string> none;
  if (channel == "email") return email;
  if (channel == "sms" || channel == "whatsapp") return text;
  if (channel == "call_task") return call;
  return none;
}

std::string channel_folder(v1::Channel channel) {
  switch (channel) {
    case v1::EMAIL:
      return "email";
    case v1::SMS:
      return "sms";
    case v1::WHATSAPP:
      return "whatsapp";
    case v1::CALL_TASK:
      return "call_task";
    default:
      return "";
  }
}

std::string tone_name(v1::Tone tone) {
  switch (tone) {
    case v1::FRIENDLY:
      return "friendly";
    case v1::COURTEOUS:
      return "courteous";
    case v1::FIRM:
      return "firm";
    case v1::FINAL:
      return "final";
    default:
      return "";
  }
}

uint64_t variant_hash(std::string_view tenant_id, std::string_view customer_id) {
  std::string key;
  key.reserve(tenant_id.size() + 1 + customer_id.size());
  key.append(tenant_id);
  key.push_back('\0');
  key.append(customer_id);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h = (h << 8) | digest[i];
  return h;
}

std::string assign_variant(const v1::PolicyConfig& policy, const std::string& template_name,
                           std::string_view tenant_id, std::string_view customer_id) {
  uint64_t total = 0;
  for (const auto& v : policy.messages().variants()) {
    if (v.template_() == template_name && v.weight() > 0) total += static_cast<uint64_t>(v.weight());
  }
  if (total == 0) return {};
  auto bucket = variant_hash(tenant_id, customer_id) % total;
  for (const auto& v : policy.messages().variants()) {
    if (v.template_() != template_name || v.weight() <= 0) continue;
    auto w = static_cast<uint64_t>(v.weight());
    if (bucket < w) return v.name();
    bucket -= w;
  }
  return {};  // unreachable: bucket < total
}

std::shared_ptr<const TemplateLibrary> TemplateLibrary::load(const v1::Config& config) {
  auto library = std::make_shared<TemplateLibrary>();
  library->public_url_ = config.http().public_url();
  auto add = [&](const v1::PolicyConfig& policy) {
    const auto& dir = policy.messages().templates_dir();
    if (!library->by_dir_.contains(dir)) library->by_dir_[dir] = TemplateCatalog::load(dir);
  };
  add(v1::PolicyConfig());
  add(config.policy());
  for (const auto& [tenant, policy] : config.tenant_policies()) add(policy);
  return library;
}

std::shared_ptr<const TemplateLibrary> TemplateLibrary::builtin() {
  static const auto library = [] {
    auto l = std::make_shared<TemplateLibrary>();
    l->by_dir_[""] = TemplateCatalog::load("");
    return std::shared_ptr<const TemplateLibrary>(l);
  }();
  return library;
}

const TemplateCatalog& TemplateLibrary::catalog_for(const v1::PolicyConfig& policy) const {
  auto it = by_dir_.find(policy.messages().templates_dir());
  if (it == by_dir_.end()) it = by_dir_.find("");
  return *it->second;
}

namespace {
std::mutex installed_mutex;
std::shared_ptr<const TemplateLibrary> installed_library;
}  // namespace

void TemplateLibrary::install(std::shared_ptr<const TemplateLibrary> library) {
  std::lock_guard lock(installed_mutex);
  installed_library = std::move(library);
}

std::shared_ptr<const TemplateLibrary> TemplateLibrary::installed() {
  {
    std::lock_guard lock(installed_mutex);
    if (installed_library) return installed_library;
  }
  return builtin();
}

}  // namespace relance::render
