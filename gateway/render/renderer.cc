#include "render/renderer.h"

#include <kainjow/mustache.hpp>

#include "common/dates.h"
#include "render/money_format.h"

namespace relance::render {

namespace v1 = relance::v1;
using kainjow::mustache::data;
using kainjow::mustache::mustache;

namespace {

struct TemplateSet {
  const char* subject;
  const char* text;
  const char* html;
  const char* short_text;  // SMS, WhatsApp, call-task summary
  const char* thanks_subject;
  const char* thanks_text;
  const char* thanks_html;
  const char* thanks_short;
};

// Factual wording: the amount, the invoice, the due date and the way to pay; never an
// accusation.
const TemplateSet kEnglish{
    "Payment reminder: invoice {{invoice_number}}",
    "Hello {{customer_name}},\n\n"
    "We have not yet received your payment of {{amount_due}} for invoice {{invoice_number}}, "
    "due on {{due_date}}.\n\n"
    "You can pay it here: {{payment_link}}\n\n"
    "If you have already paid, thank you, and please disregard this message. If something is "
    "wrong with the invoice, just reply and we will look into it.\n\n"
    "Kind regards,\n{{company_name}}\n",
    "<p>Hello {{customer_name}},</p>"
    "<p>We have not yet received your payment of <strong>{{amount_due}}</strong> for invoice "
    "{{invoice_number}}, due on {{due_date}}.</p>"
    "<p><a href=\"{{payment_link}}\">Pay invoice {{invoice_number}}</a></p>"
    "<p>If you have already paid, thank you, and please disregard this message.</p>"
    "<p>Kind regards,<br>{{company_name}}</p>",
    "{{company_name}}: amount due {{amount_due}}, due {{due_date}}. Pay: {{payment_link}}",
    "Thank you: invoice {{invoice_number}} is paid",
    "Hello {{customer_name}},\n\nWe have received your payment for invoice {{invoice_number}} "
    "({{amount_due}}). Thank you.\n\nKind regards,\n{{company_name}}\n",
    "<p>Hello {{customer_name}},</p><p>We have received your payment for invoice {{invoice_number}} "
    "({{amount_due}}). Thank you.</p><p>Kind regards,<br>{{company_name}}</p>",
    "{{company_name}}: payment for invoice {{invoice_number}} received. Thank you.",
};

const TemplateSet kFrench{
    "Rappel de paiement : facture {{invoice_number}}",
    "Bonjour {{customer_name}},\n\n"
    "Sauf erreur de notre part, nous n'avons pas encore reçu votre règlement de {{amount_due}} "
    "pour la facture {{invoice_number}}, échue le {{due_date}}.\n\n"
    "Vous pouvez la régler ici : {{payment_link}}\n\n"
    "Si vous avez déjà effectué le paiement, merci et veuillez ne pas tenir compte de ce message. "
    "Pour toute question sur cette facture, répondez simplement à ce message.\n\n"
    "Cordialement,\n{{company_name}}\n",
    "<p>Bonjour {{customer_name}},</p>"
    "<p>Sauf erreur de notre part, nous n'avons pas encore reçu votre règlement de "
    "<strong>{{amount_due}}</strong> pour la facture {{invoice_number}}, échue le {{due_date}}.</p>"
    "<p><a href=\"{{payment_link}}\">Régler la facture {{invoice_number}}</a></p>"
    "<p>Si vous avez déjà effectué le paiement, merci et veuillez ne pas tenir compte de ce message.</p>"
    "<p>Cordialement,<br>{{company_name}}</p>",
    "{{company_name}} : montant dû {{amount_due}}, échéance {{due_date}}. Régler : {{payment_link}}",
    "Merci : la facture {{invoice_number}} est réglée",
    "Bonjour {{customer_name}},\n\nNous avons bien reçu votre règlement pour la facture {{invoice_number}} "
    "({{amount_due}}). Merci.\n\nCordialement,\n{{company_name}}\n",
    "<p>Bonjour {{customer_name}},</p><p>Nous avons bien reçu votre règlement pour la facture "
    "{{invoice_number}} ({{amount_due}}). Merci.</p><p>Cordialement,<br>{{company_name}}</p>",
    "{{company_name}} : règlement de la facture {{invoice_number}} reçu. Merci.",
};

const TemplateSet& templates_for(const std::string& locale) {
  if (locale.rfind("fr", 0) == 0) return kFrench;
  return kEnglish;
}

Result<std::string> render_one(const std::string& source, const data& vars, bool html) {
  mustache tmpl(source);
  if (!tmpl.is_valid()) return Error{"template_invalid", tmpl.error_message(), false};
  if (!html) tmpl.set_custom_escape([](const std::string& s) { return s; });
  return tmpl.render(vars);
}

}  // namespace

Result<RenderedMessage> Renderer::render(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                         const v1::PolicyConfig& policy) const {
  const auto& customer = ledger.customer;
  auto locale = customer.locale().empty() ? policy.default_locale() : customer.locale();
  bool french = locale.rfind("fr", 0) == 0;

  data vars;
  vars.set("customer_name", customer.name().empty() ? std::string(french ? "Madame, Monsieur" : "customer") : customer.name());
  vars.set("company_name", policy.company_name());
  if (decision.kind == rules::ActionKind::kThankYou) {
    auto it = ledger.invoices.find(decision.invoice_ids.empty() ? std::string() : decision.invoice_ids.front());
    if (it == ledger.invoices.end()) return Error{"render_failed", "invoice not in the ledger", false};
    vars.set("invoice_number", it->second.invoice.number().empty() ? it->second.invoice.invoice_id() : it->second.invoice.number());
    vars.set("amount_due", format_money(it->second.invoice.amount_total(), locale));
    vars.set("due_date", format_date(it->second.invoice.due_on(), locale));
    vars.set("payment_link", it->second.invoice.payment_link());
  } else {
    if (decision.items.empty()) return Error{"render_failed", "decision names no invoice", false};
    const auto& first = decision.items.front();
    std::string numbers;
    kainjow::mustache::list invoices;
    std::string earliest_due = first.due_on;
    for (const auto& item : decision.items) {
      auto number = item.number.empty() ? item.invoice_id : item.number;
      numbers += (numbers.empty() ? "" : ", ") + number;
      data line;
      line.set("number", number);
      line.set("amount_due", format_money(item.amount_due, locale));
      line.set("due_date", format_date(item.due_on, locale));
      invoices.push_back(line);
      earliest_due = std::min(earliest_due, item.due_on);
    }
    vars.set("invoice_number", numbers);
    vars.set("invoices", invoices);
    vars.set("amount_due", format_money(decision.total_due, locale));
    vars.set("due_date", format_date(earliest_due, locale));
    vars.set("days_overdue", std::to_string(first.days_overdue));
    vars.set("payment_link", first.payment_link);
  }

  const auto& set = templates_for(locale);
  RenderedMessage msg;
  msg.reminder_id = decision.reminder_id;
  msg.channel = decision.channel;
  msg.customer_id = customer.customer_id().empty() ? ledger.key : customer.customer_id();
  msg.to_name = customer.name();
  msg.locale = locale;
  bool thanks = decision.kind == rules::ActionKind::kThankYou;
  switch (decision.channel) {
    case v1::EMAIL: {
      msg.to = customer.email();
      auto subject = render_one(thanks ? set.thanks_subject : set.subject, vars, false);
      auto text = render_one(thanks ? set.thanks_text : set.text, vars, false);
      auto html = render_one(thanks ? set.thanks_html : set.html, vars, true);
      if (!subject) return subject.error();
      if (!text) return text.error();
      if (!html) return html.error();
      msg.subject = std::move(subject).value();
      msg.text = std::move(text).value();
      msg.html = std::move(html).value();
      break;
    }
    case v1::WHATSAPP:
      msg.to = customer.whatsapp().empty() ? customer.phone() : customer.whatsapp();
      [[fallthrough]];
    case v1::SMS:
    case v1::CALL_TASK: {
      if (msg.to.empty()) msg.to = customer.phone();
      auto text = render_one(thanks ? set.thanks_short : set.short_text, vars, false);
      if (!text) return text.error();
      msg.text = std::move(text).value();
      break;
    }
    default:
      return Error{"render_failed", "no template for this channel", false};
  }
  return msg;
}

}  // namespace relance::render
