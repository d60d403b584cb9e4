#pragma once

#include <set>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "ledger/ledger.h"
#include "relance/v1/config.pb.h"
#include "render/rendered_message.h"
#include "render/template_catalog.h"
#include "rules/reminder_rules.h"

namespace relance::render {

// Turns a decision into the words the customer reads, in their language, with money and dates
// formatted for their locale, from templates parsed at start-up (see TemplateCatalog).
class Renderer {
 public:
  // Uses the library installed at start-up (TemplateLibrary::installed()).
  Renderer();
  explicit Renderer(TemplateLibraryPtr library);

  // `policy` is the policy the decision was made under (the tenant's, or the default one).
  Result<RenderedMessage> render(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                 const relance::v1::PolicyConfig& policy) const;
  // As render(), with the variant of the decision's template given rather than assigned from
  // (ledger.tenant_id, customer id): "" for none, "base" for the template's own files, else a
  // name from policy.messages.variants. For the lint and previews.
  Result<RenderedMessage> render_variant(const rules::Decision& decision, const ledger::CustomerLedger& ledger,
                                         const relance::v1::PolicyConfig& policy, const std::string& variant) const;

 private:
  TemplateLibraryPtr library_;
};

// The variables a template may use at the top level, and inside {{#invoices}}...{{/invoices}}.
const std::set<std::string>& template_variables();
const std::set<std::string>& invoice_variables();
// The variables with a text value, which an approved WhatsApp template can take.
const std::set<std::string>& whatsapp_template_variables();

}  // namespace relance::render
