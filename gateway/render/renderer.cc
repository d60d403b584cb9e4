#include "render/renderer.h"

#include "common/link_token.h"

#include <algorithm>

#include "common/dates.h"
#include "render/money_format.h"
#include "render/sms_segments.h"

namespace relance::render {

namespace v1 = relance::v1;
using kainjow::mustache::data;

namespace {

bool is_french(const std::string& locale) { return locale.rfind("fr", 0) == 0; }

std::string invoice_label(const std::string& number, const std::string& id) { return number.empty() ? id : number; }

// Everything a template can name (see template_variables()). Templates test flags rather than
// strings: in mustache an empty string still opens a section.
Result<data> variables(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                       const v1::PolicyConfig& policy, const std::string& locale, const std::string& public_url) {
  const auto& customer = ledger.customer;
  bool french = is_french(locale);
  data vars;
  vars.set("customer_name",
           customer.name().empty() ? std::string(french ? "Madame, Monsieur" : "customer") : customer.name());
  vars.set("company_name", policy.company_name());
  vars.set("company_contact", policy.messages().company_contact());
  vars.set("has_company_contact", !policy.messages().company_contact().empty());
  vars.set("stage", decision.stage);
  auto tone = tone_name(decision.tone);
  vars.set("tone", tone);
  for (const char* t : {"friendly", "courteous", "firm", "final"}) vars.set(std::string("tone_") + t, tone == t);
  vars.set("offer_payment_plan", decision.offer_payment_plan);
  vars.set("mention_late_terms", decision.mention_late_terms);
  vars.set("recurring_late_payer", decision.recurring_late_payer);
  vars.set("escalation", decision.kind == rules::ActionKind::kEscalation);
  auto unsubscribe = public_url.empty() ? std::string()
                                        : public_url + "/v1/unsubscribe/" + make_link_token(ledger.key, decision.channel);
  vars.set("unsubscribe_url", unsubscribe);
  vars.set("has_unsubscribe", !unsubscribe.empty());

  kainjow::mustache::list invoices;
  std::string numbers;
  if (decision.kind == rules::ActionKind::kThankYou) {
    auto it = ledger.invoices.find(decision.invoice_ids.empty() ? std::string() : decision.invoice_ids.front());
    if (it == ledger.invoices.end()) return Error{"render_failed", "invoice not in the ledger", false};
    const auto& invoice = it->second.invoice;
    numbers = invoice_label(invoice.number(), invoice.invoice_id());
    auto amount = format_money(invoice.amount_total(), locale);
    data line;
    line.set("number", numbers);
    line.set("amount_due", amount);
    line.set("due_date", format_date(invoice.due_on(), locale));
    line.set("days_overdue", std::string("0"));
    line.set("payment_link", invoice.payment_link());
    invoices.push_back(line);
    vars.set("amount_due", amount);
    vars.set("amount_paid", amount);
    vars.set("total_due", amount);
    vars.set("due_date", format_date(invoice.due_on(), locale));
    vars.set("days_overdue", std::string("0"));
    vars.set("overdue", false);
    vars.set("payment_link", invoice.payment_link());
  } else {
    if (decision.items.empty()) return Error{"render_failed", "decision names no invoice", false};
    std::string earliest_due = decision.items.front().due_on;
    int most_overdue = 0;
    for (const auto& item : decision.items) {
      auto number = invoice_label(item.number, item.invoice_id);
      numbers += (numbers.empty() ? "" : ", ") + number;
      data line;
      line.set("number", number);
      line.set("amount_due", format_money(item.amount_due, locale));
      line.set("due_date", format_date(item.due_on, locale));
      line.set("days_overdue", std::to_string(item.days_overdue));
      line.set("payment_link", item.payment_link);
      invoices.push_back(line);
      earliest_due = std::min(earliest_due, item.due_on);
      most_overdue = std::max(most_overdue, item.days_overdue);
    }
    auto total = format_money(decision.total_due, locale);
    vars.set("amount_due", total);
    vars.set("amount_paid", total);
    vars.set("total_due", total);
    vars.set("due_date", format_date(earliest_due, locale));
    vars.set("days_overdue", std::to_string(most_overdue));
    vars.set("overdue", most_overdue > 0);
    // One link for the message: the first invoice's (a grouped message lists each one's too).
    vars.set("payment_link", decision.items.front().payment_link);
  }
  vars.set("invoice_count", std::to_string(invoices.size()));
  vars.set("grouped", invoices.size() > 1);
  vars.set("invoice_number", numbers);
  vars.set("invoices", invoices);
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
  auto vars = variables(decision, ledger, policy, locale, library_->public_url());
  if (!vars) return vars.error();

  auto channel = channel_folder(decision.channel);
  if (channel.empty()) return Error{"render_failed", "no template for this channel", false};
  const auto& catalog = library_->catalog_for(policy);
  auto tone = tone_name(decision.tone);
  // "base" names the template's own files, which every lookup ends with anyway.
  const std::string& wanted = variant == kBaseVariant ? std::string() : variant;
  bool variant_used = false;
  auto part = [&](const std::string& name) -> Result<std::string> {
    const auto* entry =
        catalog.find(locale, policy.default_locale(), channel, decision.template_name, tone, name, wanted);
    if (entry != nullptr && !entry->variant.empty()) variant_used = true;
    if (entry == nullptr) {
      return Error{"template_missing",
                   "no template " + decision.template_name + " (" + channel + ", " + name + ") for " + locale, false};
    }
    return entry->render(vars.value());
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
        msg.unsubscribe_url = library_->public_url() + "/v1/unsubscribe/" + make_link_token(ledger.key, decision.channel);
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
          const auto* value = vars.value().get(mapping->variables(i));
          if (value == nullptr || !value->is_string()) {
            return Error{"render_failed",
                         "whatsapp template variable '" + mapping->variables(i) + "' has no text value", false};
          }
          json += (i == 0 ? "" : ",") + json_string(std::to_string(i + 1)) + ":" + json_string(value->string_value());
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
