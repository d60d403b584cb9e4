#include "render/template_lint.h"

#include <unicode/unistr.h>

#include <algorithm>
#include <map>
#include <set>

#include "render/renderer.h"
#include "render/sample_messages.h"
#include "render/sms_segments.h"

namespace relance::render {

namespace v1 = relance::v1;

namespace {

const std::map<std::string, std::vector<std::string>>& builtin_forbidden() {
  // Words that accuse, threaten or name the customer as a debtor; the practice says "amount
  // due" and states facts.
  static const std::map<std::string, std::vector<std::string>> words{
      {"fr",
       {"dette", "dettes", "débiteur", "débitrice", "débiteurs", "contentieux", "huissier", "huissiers", "poursuite",
        "poursuites", "tribunal", "injonction", "mauvais payeur", "recouvrement judiciaire", "sanction", "sanctions"}},
      {"en",
       {"debt", "debts", "debtor", "debtors", "collection agency", "collections agency", "debt collector",
        "legal action", "lawsuit", "sue", "court", "bailiff", "delinquent", "you failed", "failure to pay", "penalty",
        "penalties"}},
  };
  return words;
}

std::string fold(const std::string& s) {
  std::string out;
  icu::UnicodeString::fromUTF8(s).foldCase().toUTF8String(out);
  return out;
}

bool is_word_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) != 0;
}

// Whole-word (or whole-phrase) occurrence of `word` in `text`, both case-folded.
bool contains_word(const std::string& text, const std::string& word) {
  for (auto pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + 1)) {
    bool start = pos == 0 || !is_word_byte(text[pos - 1]);
    auto end = pos + word.size();
    bool finish = end >= text.size() || !is_word_byte(text[end]);
    if (start && finish) return true;
  }
  return false;
}

struct Scan {
  std::string text;            // the template with its tags removed
  std::set<std::string> used;  // variable and section names
  std::vector<std::string> problems;
};

Scan scan(const std::string& source, const std::string& part) {
  Scan s;
  std::vector<std::string> sections;
  std::size_t pos = 0;
  while (pos < source.size()) {
    auto open = source.find("{{", pos);
    if (open == std::string::npos) {
      s.text += source.substr(pos);
      break;
    }
    s.text += source.substr(pos, open - pos) + " ";
    bool triple = source.compare(open, 3, "{{{") == 0;
    auto close = source.find(triple ? "}}}" : "}}", open);
    if (close == std::string::npos) {
      s.problems.push_back("unclosed tag");
      break;
    }
    auto tag = source.substr(open + (triple ? 3 : 2), close - open - (triple ? 3 : 2));
    pos = close + (triple ? 3 : 2);
    auto trim = [](std::string t) {
      auto b = t.find_first_not_of(" \t");
      auto e = t.find_last_not_of(" \t");
      return b == std::string::npos ? std::string() : t.substr(b, e - b + 1);
    };
    tag = trim(tag);
    char sigil = tag.empty() ? '\0' : tag[0];
    if (sigil == '!') continue;
    if (sigil == '>' || sigil == '=') {
      s.problems.push_back("{{" + tag + "}}: partials and delimiter changes are not supported");
      continue;
    }
    bool unescaped = triple || sigil == '&';
    std::string name =
        trim(std::string(sigil == '#' || sigil == '^' || sigil == '/' || sigil == '&' ? tag.substr(1) : tag));
    if (unescaped && part == "html") {
      s.problems.push_back("{{{" + name + "}}}: HTML templates must escape every variable");
    }
    bool in_invoices = std::find(sections.begin(), sections.end(), "invoices") != sections.end();
    bool known = template_variables().contains(name) || (in_invoices && invoice_variables().contains(name));
    if (!known) s.problems.push_back("unknown variable '" + name + "'");
    if (sigil == '#' || sigil == '^') {
      sections.push_back(name);
    } else if (sigil == '/') {
      if (sections.empty() || sections.back() != name) {
        s.problems.push_back("{{/" + name + "}} closes no open section");
      } else {
        sections.pop_back();
      }
    }
    s.used.insert(name);
  }
  return s;
}

bool uses_any(const Scan& s, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return s.used.contains(n); });
}

std::string language_of(const std::string& locale) { return locale.substr(0, locale.find('-')); }

}  // namespace

std::vector<std::string> forbidden_words(const v1::PolicyConfig& policy, const std::string& language) {
  for (const auto& list : policy.messages().forbidden_words()) {
    if (list.language() == language) return {list.words().begin(), list.words().end()};
  }
  auto it = builtin_forbidden().find(language);
  return it == builtin_forbidden().end() ? std::vector<std::string>{} : it->second;
}

std::vector<LintProblem> lint_template(const TemplateEntry& entry, const v1::PolicyConfig& policy) {
  std::vector<LintProblem> out;
  auto add = [&](const std::string& message) { out.push_back({entry.origin, message}); };
  auto s = scan(entry.source, entry.part);
  for (const auto& p : s.problems) add(p);
  auto folded = fold(s.text);
  for (const auto& word : forbidden_words(policy, language_of(entry.locale))) {
    if (contains_word(folded, fold(word))) add("contains the forbidden word '" + word + "'");
  }
  if (entry.part == "subject") return out;
  if (entry.name == "thank_you") {
    if (!uses_any(s, {"amount_paid", "amount_due", "total_due"})) add("does not state the amount (amount_paid)");
    return out;
  }
  if (!uses_any(s, {"amount_due", "total_due"})) add("does not state the amount due (amount_due)");
  if (!uses_any(s, {"due_date"})) add("does not state the due date (due_date)");
  if (!uses_any(s, {"payment_link"})) add("does not give the payment link (payment_link)");
  if (entry.channel == "sms" && uses_any(s, {"invoice_number", "invoices"})) {
    add("an SMS names no invoice: only the amount, the date and the link");
  }
  return out;
}

std::vector<LintProblem> lint_policy_templates(const TemplateLibraryPtr& library, const v1::PolicyConfig& policy) {
  std::vector<LintProblem> out;
  const auto& catalog = library->catalog_for(policy);
  for (const auto& entry : catalog.entries()) {
    auto problems = lint_template(entry, policy);
    out.insert(out.end(), problems.begin(), problems.end());
  }
  if (policy.messages().sms_max_segments() < 0) {
    out.push_back({"messages.sms_max_segments", "must be 0 (the default, 2) or more"});
  }
  for (int i = 0; i < policy.messages().whatsapp_templates_size(); ++i) {
    const auto& mapping = policy.messages().whatsapp_templates(i);
    auto where = "messages.whatsapp_templates[" + std::to_string(i) + "]";
    if (mapping.content_sid().empty()) out.push_back({where + ".content_sid", "is required"});
    if (mapping.locale().empty()) out.push_back({where + ".locale", "is required"});
    for (const auto& name : mapping.variables()) {
      if (!whatsapp_template_variables().contains(name)) {
        out.push_back({where + ".variables", "unknown or non-text variable '" + name + "'"});
      }
    }
  }
  // Variants: well-formed, weighted, and with files for every one named.
  std::set<std::pair<std::string, std::string>> seen_variants;
  for (int i = 0; i < policy.messages().variants_size(); ++i) {
    const auto& v = policy.messages().variants(i);
    auto where = "messages.variants[" + std::to_string(i) + "]";
    if (v.template_().empty()) out.push_back({where + ".template", "is required"});
    if (!valid_variant_name(v.name())) {
      out.push_back({where + ".name", "'" + v.name() + "' is not a variant name ([a-z0-9_-]+)"});
    }
    if (v.weight() <= 0) out.push_back({where + ".weight", "must be more than 0"});
    if (!seen_variants.insert({v.template_(), v.name()}).second) {
      out.push_back({where, "variant '" + v.name() + "' of " + v.template_() + " is listed twice"});
    } else if (!v.template_().empty() && valid_variant_name(v.name()) && v.name() != kBaseVariant &&
               !catalog.has_variant(v.template_(), v.name())) {
      out.push_back({where, "no template file " + v.template_() + "@" + v.name() +
                                ".<part>.mustache (or with a tone) in any locale"});
    }
  }
  int budget = policy.messages().sms_max_segments() > 0 ? policy.messages().sms_max_segments() : kDefaultSmsMaxSegments;
  auto locales = catalog.locales();
  if (std::find(locales.begin(), locales.end(), policy.default_locale()) == locales.end()) {
    locales.push_back(policy.default_locale());
  }
  Renderer renderer(library);
  std::set<std::string> reported;
  for (const auto& locale : locales) {
    for (const auto& slot : message_slots(policy)) {
      auto channel = channel_folder(slot.channel);
      auto tone = tone_name(slot.tone);
      bool complete = true;
      for (const auto& part : channel_parts(channel)) {
        if (catalog.find(locale, policy.default_locale(), channel, slot.template_name, tone, part) == nullptr) {
          auto where = locale + "/" + channel + "/" + slot.template_name + "." + part + ".mustache";
          if (reported.insert(where).second) {
            out.push_back({where, "missing: stage " + slot.stage + " can send it (tone " + tone + ")"});
          }
          complete = false;
        }
      }
      if (!complete) continue;
      auto sample = sample_message(slot, locale, SampleKind::kWorstCase);
      // The base wording, then every variant the policy lists for this template: each must render
      // and keep within the SMS budget, as the base does.
      std::vector<std::string> variants{""};
      for (const auto& v : policy.messages().variants()) {
        if (v.template_() == slot.template_name && valid_variant_name(v.name()) && v.name() != kBaseVariant &&
            std::find(variants.begin(), variants.end(), v.name()) == variants.end()) {
          variants.push_back(v.name());
        }
      }
      for (const auto& variant : variants) {
        auto rendered = renderer.render_variant(sample.decision, sample.ledger, policy, variant);
        // The file named in a problem: the first part the lookup finds (the variant's, if any).
        const auto* first = catalog.find(locale, policy.default_locale(), channel, slot.template_name, tone,
                                         channel_parts(channel).front(), variant);
        for (const auto& p : channel_parts(channel)) {
          const auto* e = catalog.find(locale, policy.default_locale(), channel, slot.template_name, tone, p, variant);
          if (e != nullptr && e->variant == variant) {
            first = e;
            break;
          }
        }
        if (!rendered) {
          out.push_back({first->origin, "does not render: " + rendered.error().message});
          continue;
        }
        if (slot.channel != v1::SMS) continue;
        auto size = count_sms_segments(rendered->text);
        if (size.segments > budget && reported.insert(first->origin).second) {
          out.push_back({first->origin, "takes " + std::to_string(size.segments) + " SMS segments (" +
                                            std::to_string(size.units) +
                                            (size.encoding == SmsEncoding::kGsm7 ? " GSM-7 septets" : " UCS-2 units") +
                                            ") with worst-case variables; policy.messages.sms_max_segments is " +
                                            std::to_string(budget)});
        }
      }
    }
  }
  return out;
}

}  // namespace relance::render
