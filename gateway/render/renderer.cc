#include "render/renderer.h"

#include "common/link_token.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "common/dates.h"
#include "render/money_format.h"
#include "render/sms_segments.h"

namespace relance::render {

namespace v1 = relance::v1;

namespace {

bool is_french(const std::string& locale) { return locale.rfind("fr", 0) == 0; }

std::string invoice_label(const std::string& number, const std::string& id) { return number.empty() ? id : number; }

// Everything a template can name (see template_variables()), or only what `used` names
// (template_variable_bit): a value no part of the message uses is neither computed nor set, so
// an SMS formats no per-invoice lines and signs no unsubscribe link. Templates test flags rather
// than strings: in mustache an empty string still opens a section.
Result<TemplateValues> variables(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                 const v1::PolicyConfig& policy, const std::string& locale,
                                 const std::string& unsubscribe, uint64_t used = ~uint64_t{0}) {
  const auto& customer = ledger.customer;
  auto want = [used](uint64_t bit) { return (used & bit) != 0; };
  bool french = is_french(locale);
  TemplateValues vars;
  if (want(variable_bit("customer_name"))) {
    vars.set(variable_bit("customer_name"),
             customer.name().empty() ? std::string(french ? "Madame, Monsieur" : "customer") : customer.name());
  }
  if (want(variable_bit("company_name"))) vars.set(variable_bit("company_name"), policy.company_name());
  if (want(variable_bit("company_contact")))
    vars.set(variable_bit("company_contact"), policy.messages().company_contact());
  if (want(variable_bit("has_company_contact"))) {
    vars.set_flag(variable_bit("has_company_contact"), !policy.messages().company_contact().empty());
  }
  if (want(variable_bit("stage"))) vars.set(variable_bit("stage"), decision.stage);
  auto tone = tone_name(decision.tone);
  if (want(variable_bit("tone"))) vars.set(variable_bit("tone"), tone);
  if (want(variable_bit("tone_friendly"))) vars.set_flag(variable_bit("tone_friendly"), tone == "friendly");
  if (want(variable_bit("tone_courteous"))) vars.set_flag(variable_bit("tone_courteous"), tone == "courteous");
  if (want(variable_bit("tone_firm"))) vars.set_flag(variable_bit("tone_firm"), tone == "firm");
  if (want(variable_bit("tone_final"))) vars.set_flag(variable_bit("tone_final"), tone == "final");
  if (want(variable_bit("offer_payment_plan")))
    vars.set_flag(variable_bit("offer_payment_plan"), decision.offer_payment_plan);
  if (want(variable_bit("mention_late_terms")))
    vars.set_flag(variable_bit("mention_late_terms"), decision.mention_late_terms);
  if (want(variable_bit("recurring_late_payer")))
    vars.set_flag(variable_bit("recurring_late_payer"), decision.recurring_late_payer);
  if (want(variable_bit("escalation")))
    vars.set_flag(variable_bit("escalation"), decision.kind == rules::ActionKind::kEscalation);
  if (want(variable_bit("unsubscribe_url"))) vars.set(variable_bit("unsubscribe_url"), unsubscribe);
  if (want(variable_bit("has_unsubscribe"))) vars.set_flag(variable_bit("has_unsubscribe"), !unsubscribe.empty());

  bool lines = want(variable_bit("invoices"));
  bool money = want(variable_bit("amount_due") | variable_bit("amount_paid") | variable_bit("total_due"));
  bool dates = want(variable_bit("due_date"));
  std::string numbers;
  std::size_t count = 0;
  if (decision.kind == rules::ActionKind::kThankYou) {
    auto it = ledger.invoices.find(decision.invoice_ids.empty() ? std::string() : decision.invoice_ids.front());
    if (it == ledger.invoices.end()) return Error{"render_failed", "invoice not in the ledger", false};
    const auto& invoice = it->second.invoice;
    numbers = invoice_label(invoice.number(), invoice.invoice_id());
    count = 1;
    auto amount = money || lines ? format_money(invoice.amount_total(), locale) : std::string();
    if (lines) {
      vars.invoices.push_back(
          {numbers, amount, format_date(invoice.due_on(), locale), std::string("0"), invoice.payment_link()});
    }
    if (want(variable_bit("amount_due"))) vars.set(variable_bit("amount_due"), amount);
    if (want(variable_bit("amount_paid"))) vars.set(variable_bit("amount_paid"), amount);
    if (want(variable_bit("total_due"))) vars.set(variable_bit("total_due"), amount);
    if (dates) vars.set(variable_bit("due_date"), format_date(invoice.due_on(), locale));
    if (want(variable_bit("days_overdue"))) vars.set(variable_bit("days_overdue"), std::string("0"));
    if (want(variable_bit("overdue"))) vars.set_flag(variable_bit("overdue"), false);
    if (want(variable_bit("payment_link"))) vars.set(variable_bit("payment_link"), invoice.payment_link());
  } else {
    if (decision.items.empty()) return Error{"render_failed", "decision names no invoice", false};
    std::string earliest_due = decision.items.front().due_on;
    int most_overdue = 0;
    for (const auto& item : decision.items) {
      auto number = invoice_label(item.number, item.invoice_id);
      numbers += (numbers.empty() ? "" : ", ") + number;
      ++count;
      if (lines) {
        vars.invoices.push_back({number, format_money(item.amount_due, locale), format_date(item.due_on, locale),
                                 std::to_string(item.days_overdue), item.payment_link});
      }
      earliest_due = std::min(earliest_due, item.due_on);
      most_overdue = std::max(most_overdue, item.days_overdue);
    }
    if (money) {
      auto total = format_money(decision.total_due, locale);
      if (want(variable_bit("amount_due"))) vars.set(variable_bit("amount_due"), total);
      if (want(variable_bit("amount_paid"))) vars.set(variable_bit("amount_paid"), total);
      if (want(variable_bit("total_due"))) vars.set(variable_bit("total_due"), total);
    }
    if (dates) vars.set(variable_bit("due_date"), format_date(earliest_due, locale));
    if (want(variable_bit("days_overdue"))) vars.set(variable_bit("days_overdue"), std::to_string(most_overdue));
    if (want(variable_bit("overdue"))) vars.set_flag(variable_bit("overdue"), most_overdue > 0);
    // One link for the message: the first invoice's (a grouped message lists each one's too).
    if (want(variable_bit("payment_link"))) vars.set(variable_bit("payment_link"), decision.items.front().payment_link);
  }
  if (want(variable_bit("invoice_count"))) vars.set(variable_bit("invoice_count"), std::to_string(count));
  if (want(variable_bit("grouped"))) vars.set_flag(variable_bit("grouped"), count > 1);
  if (want(variable_bit("invoice_number"))) vars.set(variable_bit("invoice_number"), numbers);
  vars.invoices_set = lines;
  return vars;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The approved template mapped for this message: along the locale chain, the tone's own entry
// before a tone-less one.
const v1::WhatsAppTemplate* whatsapp_template(const v1::PolicyConfig& policy, const std::string& locale,
                                              const std::string& name, v1::Tone tone) {
  for (const auto& candidate : locale_chain(locale, policy.default_locale())) {
    for (auto t : {tone, v1::TONE_UNSPECIFIED}) {
      for (const auto& mapping : policy.messages().whatsapp_templates()) {
        if (mapping.locale() == candidate && mapping.template_() == name && mapping.tone() == t) return &mapping;
      }
    }
  }
  return nullptr;
}

}  // namespace

const std::set<std::string>& whatsapp_template_variables() {
  static const std::set<std::string> names{"customer_name", "company_name",    "company_contact", "stage",
                                           "tone",          "unsubscribe_url", "amount_due",      "amount_paid",
                                           "total_due",     "due_date",        "days_overdue",    "payment_link",
                                           "invoice_count", "invoice_number"};
  return names;
}

const std::set<std::string>& template_variables() {
  static const std::set<std::string> names{"customer_name",
                                           "company_name",
                                           "company_contact",
                                           "has_company_contact",
                                           "stage",
                                           "tone",
                                           "tone_friendly",
                                           "tone_courteous",
                                           "tone_firm",
                                           "tone_final",
                                           "offer_payment_plan",
                                           "mention_late_terms",
                                           "recurring_late_payer",
                                           "escalation",
                                           "unsubscribe_url",
                                           "has_unsubscribe",
                                           "amount_due",
                                           "amount_paid",
                                           "total_due",
                                           "due_date",
                                           "days_overdue",
                                           "overdue",
                                           "payment_link",
                                           "invoice_count",
                                           "grouped",
                                           "invoice_number",
                                           "invoices"};
  return names;
}

const std::set<std::string>& invoice_variables() {
  static const std::set<std::string> names{"number", "amount_due", "due_date", "days_overdue", "payment_link"};
  return names;
}

Renderer::Renderer() : library_(TemplateLibrary::installed()) {}

Renderer::Renderer(TemplateLibraryPtr library) : library_(std::move(library)) {}

Result<RenderedMessage> Renderer::render(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                         const v1::PolicyConfig& policy) const {
  std::string variant;
  if (!policy.messages().variants().empty()) {
    const auto& id = ledger.customer.customer_id().empty() ? ledger.key : ledger.customer.customer_id();
    variant = assign_variant(policy, decision.template_name, ledger.tenant_id, id);
  }
  return render_variant(decision, ledger, policy, variant);
}

Result<RenderedMessage> Renderer::render_variant(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                                 const v1::PolicyConfig& policy, const std::string& variant) const {
  const auto& customer = ledger.customer;
  auto locale = customer.locale().empty() ? policy.default_locale() : customer.locale();
  auto channel = channel_folder(decision.channel);
  const auto& catalog = library_->catalog_for(policy);
  auto tone = tone_name(decision.tone);
  // "base" names the template's own files, which every lookup ends with anyway.
  const std::string& wanted = variant == kBaseVariant ? std::string() : variant;
  // The message's parts first, to compute only the variables they use (an approved WhatsApp
  // template may name any of them).
  const auto& parts = channel_parts(channel);
  std::array<const TemplateEntry*, 3> entries{};
  uint64_t used = decision.channel == v1::WHATSAPP ? ~uint64_t{0} : 0;
  for (std::size_t i = 0; i < parts.size() && i < entries.size(); ++i) {
    entries[i] = catalog.find(locale, policy.default_locale(), channel, decision.template_name, tone, parts[i], wanted);
    if (entries[i] != nullptr) used |= entries[i]->used_variables;
  }
  // The one-click unsubscribe link, signed once (HMAC) for the template and the email headers.
  std::string unsubscribe;
  if (!library_->public_url().empty() &&
      (decision.channel == v1::EMAIL || (used & (variable_bit("unsubscribe_url") | variable_bit("has_unsubscribe"))))) {
    unsubscribe = library_->public_url() + "/v1/unsubscribe/" + make_link_token(ledger.key, decision.channel);
  }
  auto vars = variables(decision, ledger, policy, locale, unsubscribe, used);
  if (!vars) return vars.error();

  if (channel.empty()) return Error{"render_failed", "no template for this channel", false};
  bool variant_used = false;
  std::optional<MustacheData> data;  // built once, for the first part outside the flat subset
  auto part = [&](const std::string& name) -> Result<std::string> {
    const TemplateEntry* entry = nullptr;
    for (std::size_t i = 0; i < parts.size() && i < entries.size(); ++i) {
      if (parts[i] == name) entry = entries[i];
    }
    if (entry != nullptr && !entry->variant.empty()) variant_used = true;
    if (entry == nullptr) {
      return Error{"template_missing",
                   "no template " + decision.template_name + " (" + channel + ", " + name + ") for " + locale, false};
    }
    if (entry->flat) return entry->render_flat(vars.value());
    if (!data) data = vars.value().to_data();
    return entry->render(*data);
  };

  RenderedMessage msg;
  msg.reminder_id = decision.reminder_id;
  msg.channel = decision.channel;
  msg.customer_id = customer.customer_id().empty() ? ledger.key : customer.customer_id();
  msg.to_name = customer.name();
  msg.locale = locale;
  switch (decision.channel) {
    case v1::EMAIL: {
      msg.to = customer.email();
      auto subject = part("subject");
      if (!subject) return subject.error();
      auto text = part("text");
      if (!text) return text.error();
      auto html = part("html");
      if (!html) return html.error();
      // A subject is one line whatever the template's trailing newline.
      auto s = std::move(subject).value();
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      msg.subject = std::move(s);
      msg.text = std::move(text).value();
      msg.html = std::move(html).value();
      if (!library_->public_url().empty()) {
        msg.unsubscribe_url = unsubscribe;
      }
      break;
    }
    case v1::SMS: {
      msg.to = customer.phone();
      auto text = part("text");
      if (!text) return text.error();
      auto body = plain_spaces(text.value());
      if (policy.messages().sms_transliterate()) body = transliterate_to_gsm7(body);
      while (!body.empty() && body.back() == '\n') body.pop_back();
      msg.text = std::move(body);
      break;
    }
    case v1::WHATSAPP: {
      msg.to = customer.whatsapp().empty() ? customer.phone() : customer.whatsapp();
      auto text = part("text");
      if (!text) return text.error();
      msg.text = std::move(text).value();
      if (const auto* mapping = whatsapp_template(policy, locale, decision.template_name, decision.tone)) {
        msg.content_sid = mapping->content_sid();
        std::string json = "{";
        for (int i = 0; i < mapping->variables_size(); ++i) {
          const auto* value = vars.value().find_text(mapping->variables(i));
          if (value == nullptr) {
            return Error{"render_failed",
                         "whatsapp template variable '" + mapping->variables(i) + "' has no text value", false};
          }
          json += (i == 0 ? "" : ",") + json_string(std::to_string(i + 1)) + ":" + json_string(*value);
        }
        msg.content_variables = json + "}";
      }
      break;
    }
    case v1::CALL_TASK: {
      msg.to = customer.phone();
      auto text = part("talking_points");
      if (!text) return text.error();
      msg.text = std::move(text).value();
      break;
    }
    default:
      return Error{"render_failed", "no template for this channel", false};
  }
  // What the customer actually read: the variant if any part of it exists for their locale,
  // else the base wording.
  if (!variant.empty()) msg.template_variant = variant_used ? variant : std::string(kBaseVariant);
  return msg;
}

}  // namespace relance::render
