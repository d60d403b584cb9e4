#pragma once

#include <kainjow/mustache.hpp>
#include <array>
#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "relance/v1/config.pb.h"

namespace relance::render {

using MustacheData = kainjow::mustache::basic_data<std::string>;

// The top-level variables a template may name (the renderer's template_variables()), one bit
// each, so that a message computes only the values its parts use.
inline constexpr std::array<std::string_view, 27> kTemplateVariables{
    "customer_name",   "company_name",       "company_contact",      "has_company_contact",
    "stage",           "tone",               "tone_friendly",        "tone_courteous",
    "tone_firm",       "tone_final",         "offer_payment_plan",   "mention_late_terms",
    "recurring_late_payer", "escalation",    "unsubscribe_url",      "has_unsubscribe",
    "amount_due",      "amount_paid",        "total_due",            "due_date",
    "days_overdue",    "overdue",            "payment_link",         "invoice_count",
    "grouped",         "invoice_number",     "invoices"};

// The bit of a variable named in the code (checked at compile time).
consteval uint64_t variable_bit(std::string_view name) {
  for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
    if (kTemplateVariables[i] == name) return uint64_t{1} << i;
  }
  throw "not a template variable";
}

// The variables a template source names, as bits; every bit when it cannot tell for sure (a
// delimiter change, an unclosed tag).
uint64_t variables_used(const std::string& source);

// The values of one message's variables, as plain strings and flags rather than a mustache
// data map: index i is kTemplateVariables[i]. Only the variables the message's parts name are set.
struct TemplateValues {
  std::array<std::string, kTemplateVariables.size()> text;  // the text variables
  uint64_t text_set = 0;                                    // which of `text` are set
  uint64_t flags = 0;                                       // the flag variables' values
  uint64_t flags_set = 0;                                   // which flag variables are set
  // {{#invoices}} lines: number, amount_due, due_date, days_overdue, payment_link.
  std::vector<std::array<std::string, 5>> invoices;
  bool invoices_set = false;

  void set(uint64_t bit, std::string value) {
    text[static_cast<std::size_t>(std::countr_zero(bit))] = std::move(value);
    text_set |= bit;
  }
  void set_flag(uint64_t bit, bool value) {
    flags_set |= bit;
    if (value) flags |= bit;
  }
  // The text value of a variable by name, or nullptr when it has none.
  const std::string* find_text(std::string_view name) const;
  // The same values as a mustache data map, for templates outside the flat subset.
  MustacheData to_data() const;
};

// A template made only of literal text, {{name}} variables of text values, sections
// ({{#flag}}, {{^flag}}) on flag values and the {{#invoices}} list section, not nested (no
// comment, partial, delimiter change or other tag), compiled to a list of pieces at load: what an SMS template usually
// is. Rendered as kainjow renders it, line by line: a line in which a section was rendered and which holds only spaces
// and tabs is dropped with its line break.
struct TemplatePiece {
  enum Kind : uint8_t { kText, kNewline, kVariable, kSection, kInverted, kInvoices };
  // kVariable inside {{#invoices}}: kInvoiceField + the field's index (number, amount_due,
  // due_date, days_overdue, payment_link) for the invoice line's own value.
  static constexpr int kInvoiceField = 64;
  Kind kind = kText;
  std::string text;      // kText, kNewline: the text ("\n", "\r\n" or "\r" for a line break)
  int variable = -1;     // kVariable, kSection, kInverted, kInvoices: index in kTemplateVariables
  bool escaped = false;  // kVariable: HTML-escaped (html parts)
  std::size_t end = 0;   // kSection, kInverted, kInvoices: index of the first piece after the section
};

// Compiles `source` into flat pieces; false when it uses anything outside the flat subset.
bool compile_flat(const std::string& source, std::vector<TemplatePiece>& pieces);

// One template file: <locale>/<channel>/<name>[@<variant>][.<tone>].<part>.mustache, parsed once.
struct TemplateEntry {
  std::string origin;  // where it came from, for messages: "built-in:fr/sms/x.text.mustache" or a file path
  std::string source;
  std::string locale;      // as the folder is named: "fr", "fr-CA"
  std::string channel;     // email, sms, whatsapp, call_task
  std::string name;        // the template name (a stage's template, or thank_you)
  std::string variant;     // "b" for first_reminder@b.text.mustache; empty for the template's own file
  std::string tone;        // empty for the tone-less file
  std::string part;        // subject, text, html, talking_points
  bool overrides = false;  // from the tenant's folder rather than the built-in set
  std::shared_ptr<kainjow::mustache::basic_mustache<std::string>> compiled;
  uint64_t used_variables = ~uint64_t{0};  // variables_used(source)
  bool flat = false;                       // compile_flat(source) succeeded: render from `pieces`
  std::vector<TemplatePiece> pieces;

  // Text parts are not HTML-escaped; html parts are.
  std::string render(const MustacheData& data) const;
  // Only when `flat`: the same output as render(values.to_data()).
  std::string render_flat(const TemplateValues& values) const;
};

class TemplateLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Every template a policy can use: the built-in set (deploy/templates/, compiled into the
// binary) under an optional override folder. Loaded and parsed at start-up; rendering never
// reads a file.
//
// Lookup for (locale, channel, name, tone, part): for each locale of the chain
// (fr-CA → fr → the policy's default locale → its language), the override folder then the
// built-in set, the tone's own file then the tone-less one. The first found wins.
//
// With a variant ("b"), each of those places offers first_reminder@b[.<tone>].<part> before the
// template's own files: a variant missing for a locale (or a part) falls back to the base
// wording of that same locale, never to a variant of another language.
class TemplateCatalog {
 public:
  // Throws TemplateLoadError naming the file on a malformed name or a mustache syntax error.
  static std::shared_ptr<const TemplateCatalog> load(const std::string& override_dir);

  const TemplateEntry* find(const std::string& locale, const std::string& default_locale, const std::string& channel,
                            const std::string& name, const std::string& tone, const std::string& part,
                            const std::string& variant = {}) const;
  // True when some file of `name` carries the variant (any locale, channel, tone or part).
  bool has_variant(const std::string& name, const std::string& variant) const;

  const std::vector<TemplateEntry>& entries() const { return entries_; }
  // Locale folders present in either layer ("en", "fr", ...), sorted.
  std::vector<std::string> locales() const;
  // Template names present in either layer.
  std::vector<std::string> names() const;

 private:
  const TemplateEntry* find_uncached(const std::string& locale, const std::string& default_locale,
                                     const std::string& channel, const std::string& name, const std::string& tone,
                                     const std::string& part, const std::string& variant) const;

  std::vector<TemplateEntry> entries_;
  // Never reused by another catalog: names this one in each thread's memo of lookups.
  uint64_t id_ = 0;
  // Orders stored keys (strings) and looked-up keys (string_views) alike, so that find() looks
  // up string_views without copying strings. Element by element as views rather than through
  // std::less<>: libstdc++ 12 offers no tuple<string...> < tuple<string_view...> under clang.
  struct KeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return as_views(a) < as_views(b);
    }
    template <typename Key>
    static auto as_views(const Key& key) {
      return std::apply([](int layer, const auto&... text) { return std::make_tuple(layer, std::string_view(text)...); },
                        key);
    }
  };
  // (overrides ? 0 : 1, locale, channel, name, variant, tone, part) → index in entries_.
  std::map<std::tuple<int, std::string, std::string, std::string, std::string, std::string, std::string>, std::size_t,
           KeyLess>
      index_;
};

using TemplateCatalogPtr = std::shared_ptr<const TemplateCatalog>;

// fr_CA / fr-CA → {"fr-CA", "fr"}, followed by the default locale's own chain; no repeats.
std::vector<std::string> locale_chain(const std::string& locale, const std::string& default_locale);

// The parts a channel's message is made of: email {subject, text, html}, sms and whatsapp
// {text}, call_task {talking_points}.
const std::vector<std::string>& channel_parts(const std::string& channel);
std::string channel_folder(relance::v1::Channel channel);
std::string tone_name(relance::v1::Tone tone);

// Variants (policy.messages.variants): the name that stands for a template's own files, and the
// shape of a variant name (the part after '@' in a file name).
inline constexpr std::string_view kBaseVariant = "base";
bool valid_variant_name(const std::string& name);

// A stable 64-bit hash of a customer for variant assignment: the first 8 bytes, big-endian, of
// SHA-256(tenant_id NUL customer_id). The same on every machine, build and restart.
uint64_t variant_hash(std::string_view tenant_id, std::string_view customer_id);

// The variant of `template_name` this customer gets: hash modulo the template's total weight,
// walked through the policy's variants of that template in their listed order. Empty when the
// policy lists no variant of that template (or none with a positive weight).
std::string assign_variant(const relance::v1::PolicyConfig& policy, const std::string& template_name,
                           std::string_view tenant_id, std::string_view customer_id);

// The catalogs of every policy of a configuration (one per distinct templates_dir) and what the
// renderer needs from outside the policy. Built once at start-up.
class TemplateLibrary {
 public:
  static std::shared_ptr<const TemplateLibrary> load(const relance::v1::Config& config);
  // The built-in set alone, with no public URL.
  static std::shared_ptr<const TemplateLibrary> builtin();

  const TemplateCatalog& catalog_for(const relance::v1::PolicyConfig& policy) const;
  const std::string& public_url() const { return public_url_; }

  // The library a default-constructed Renderer uses: set by `relance run` at start-up after
  // the lint passed; the built-in set until then.
  static void install(std::shared_ptr<const TemplateLibrary> library);
  static std::shared_ptr<const TemplateLibrary> installed();

 private:
  std::map<std::string, TemplateCatalogPtr> by_dir_;
  std::string public_url_;
};

using TemplateLibraryPtr = std::shared_ptr<const TemplateLibrary>;

}  // namespace relance::render
