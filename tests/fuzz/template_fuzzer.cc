// A template from a tenant's override folder: any text. It must compile or be refused by
// kainjow without a crash, and what the catalog derives from it must agree with kainjow:
//  - variables_used() may over-approximate but never miss a variable kainjow would render
//    (the renderer computes only those values), so rendering with only those values set must
//    give the same text as rendering with every value set;
//  - a template compile_flat() accepts must render flat exactly as kainjow renders it;
//  - the lint reads it without a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "config/config_loader.h"
#include "render/template_catalog.h"
#include "render/template_lint.h"

namespace {

using relance::render::TemplateEntry;
using relance::render::TemplateValues;
using relance::render::kTemplateVariables;
using relance::render::variable_bit;

constexpr uint64_t kFlagVariables =
    variable_bit("has_company_contact") | variable_bit("tone_friendly") | variable_bit("tone_courteous") |
    variable_bit("tone_firm") | variable_bit("tone_final") | variable_bit("offer_payment_plan") |
    variable_bit("mention_late_terms") | variable_bit("recurring_late_payer") | variable_bit("escalation") |
    variable_bit("has_unsubscribe") | variable_bit("overdue") | variable_bit("grouped");

// Every variable set, with values that need escaping in html parts; flags from `flag_bits`.
TemplateValues every_value(uint64_t flag_bits) {
  TemplateValues values;
  for (std::size_t i = 0; i < kTemplateVariables.size(); ++i) {
    uint64_t bit = uint64_t{1} << i;
    if (bit == variable_bit("invoices")) continue;
    if (bit & kFlagVariables) {
      values.set_flag(bit, (flag_bits & bit) != 0);
    } else {
      values.set(bit, std::string(kTemplateVariables[i]) + " <&\"'> 1\u202f234,50\u00a0€");
    }
  }
  values.invoices.push_back({"F-1", "10 €", "1 mars", "3", "https://pay.example.com/1?a=1&b=2"});
  values.invoices.push_back({"F-2", "", "2 mars", "0", ""});
  values.invoices_set = true;
  return values;
}

// The same values restricted to what the renderer computes for a template using `used`.
TemplateValues only_used(TemplateValues values, uint64_t used) {
  values.text_set &= used;
  values.flags_set &= used;
  values.flags &= used;
  if (!(used & variable_bit("invoices"))) {
    values.invoices.clear();
    values.invoices_set = false;
  }
  return values;
}

const relance::v1::PolicyConfig& default_policy() {
  static const relance::v1::PolicyConfig policy = relance::config::default_config().policy();
  return policy;
}

uint64_t hash(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  TemplateEntry entry;
  entry.source.assign(reinterpret_cast<const char*>(data), size);
  // An html part escapes its variables, a text part does not: markup says which this one is.
  bool html = entry.source.find('<') != std::string::npos;
  entry.origin = "fuzz";
  entry.locale = "fr";
  entry.channel = html ? "email" : "sms";
  entry.name = "first_reminder";
  entry.part = html ? "html" : "text";

  // As TemplateCatalog compiles a file it loads.
  auto compiled = std::make_shared<kainjow::mustache::basic_mustache<std::string>>(entry.source);
  if (!compiled->is_valid()) {
    (void)compiled->error_message();
    return 0;
  }
  if (!html) compiled->set_custom_escape([](const std::string& s) { return s; });
  entry.compiled = compiled;
  entry.used_variables = relance::render::variables_used(entry.source);
  entry.flat = relance::render::compile_flat(entry.source, entry.pieces);
  if (!entry.flat) entry.pieces.clear();
  for (auto& piece : entry.pieces) {
    piece.escaped = piece.kind == relance::render::TemplatePiece::kVariable && html;
  }

  auto values = every_value(hash(entry.source));
  auto full = entry.render(values.to_data());
  auto used = only_used(values, entry.used_variables);
  if (entry.render(used.to_data()) != full) std::abort();  // variables_used missed a variable
  if (entry.flat && entry.render_flat(used) != full) std::abort();  // flat rendering differs
  if (entry.flat) {
    TemplateValues none;
    if (entry.render_flat(none) != entry.render(none.to_data())) std::abort();
  }

  (void)relance::render::lint_template(entry, default_policy());
  return 0;
}
