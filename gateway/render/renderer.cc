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

Renderer::Renderer(v1::PolicyConfig policy) : policy_(std::move(policy)) {}

Result<RenderedMessage> Renderer::render(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                         Instant now) const {
  const auto& customer = ledger.customer;
  auto locale = customer.locale().empty() ? policy_.default_locale() : customer.locale();
  if (decision.invoice_ids.empty()) return Error{"render_failed", "decision names no invoice", false};
  auto it = ledger.invoices.find(decision.invoice_ids.front());
  if (it == ledger.invoices.end()) return Error{"render_failed", "invoice not in the ledger", false};
  const auto& invoice = it->second.invoice;

  auto tz = customer.time_zone().empty() ? policy_.default_time_zone() : customer.time_zone();
  auto today = std::chrono::sys_days{local_date(now, tz)};
  auto due = parse_iso_date(invoice.due_on());
  auto days_overdue = due ? (today - std::chrono::sys_days{*due}).count() : 0;

  data vars;
  vars.set("customer_name", customer.name().empty() ? std::string("customer") : customer.name());
  vars.set("invoice_number", invoice.number().empty() ? invoice.invoice_id() : invoice.number());
  vars.set("amount_due", format_money(invoice.amount_due(), locale));
  vars.set("due_date", format_date(invoice.due_on(), locale));
  vars.set("days_overdue", std::to_string(std::max<long>(0, static_cast<long>(days_overdue))));
  vars.set("payment_link", invoice.payment_link());
  vars.set("company_name", policy_.company_name());

  const auto& set = templates_for(locale);
  RenderedMessage msg;
  msg.reminder_id = decision.reminder_id;
  msg.channel = decision.channel;
  msg.customer_id = customer.customer_id().empty() ? ledger.key : customer.customer_id();
  msg.to_name = customer.name();
  msg.locale = locale;
  switch (decision.channel) {
    case v1::EMAIL: {
      msg.to = customer.email();
      auto subject = render_one(set.subject, vars, false);
      auto text = render_one(set.text, vars, false);
      auto html = render_one(set.html, vars, true);
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
      auto text = render_one(set.short_text, vars, false);
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
