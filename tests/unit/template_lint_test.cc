#include "render/template_lint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "config/config_loader.h"

namespace relance::render {
namespace {

TemplateEntry entry(const std::string& locale, const std::string& channel, const std::string& name,
                    const std::string& part, const std::string& source) {
  TemplateEntry e;
  e.origin = "test:" + locale + "/" + channel + "/" + name + "." + part + ".mustache";
  e.locale = locale;
  e.channel = channel;
  e.name = name;
  e.part = part;
  e.source = source;
  return e;
}

bool mentions(const std::vector<LintProblem>& problems, const std::string& text) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const LintProblem& p) { return p.message.find(text) != std::string::npos; });
}

const relance::v1::PolicyConfig& default_policy() {
  static const auto config = config::default_config();
  return config.policy();
}

constexpr const char* kGoodFrench =
    "Nous n'avons pas encore reçu votre règlement de {{amount_due}}, échu le {{due_date}} : {{payment_link}}";

TEST(TemplateLint, AcceptsAFactualTemplate) {
  EXPECT_TRUE(lint_template(entry("fr", "email", "first_reminder", "text", kGoodFrench), default_policy()).empty());
}

TEST(TemplateLint, RejectsForbiddenWordsPerLanguage) {
  auto fr = lint_template(
      entry("fr", "email", "first_reminder", "text", std::string(kGoodFrench) + " Votre DETTE sera transmise."),
      default_policy());
  EXPECT_TRUE(mentions(fr, "forbidden word 'dette'"));
  auto en = lint_template(entry("en", "sms", "first_reminder", "text",
                                "Your debt of {{amount_due}} was due on {{due_date}}: {{payment_link}}"),
                          default_policy());
  EXPECT_TRUE(mentions(en, "forbidden word 'debt'"));
  // Whole words only: "indebted" is not "debt", and a variable's name is not text.
  auto words = lint_template(entry("en", "email", "first_reminder", "subject", "Courtesy note {{invoice_number}}"),
                             default_policy());
  EXPECT_TRUE(words.empty());
}

TEST(TemplateLint, TheForbiddenListIsConfigurable) {
  auto policy = default_policy();
  auto* list = policy.mutable_messages()->add_forbidden_words();
  list->set_language("fr");
  list->add_words("relance");
  auto problems =
      lint_template(entry("fr", "email", "first_reminder", "text", std::string("Relance : ") + kGoodFrench), policy);
  EXPECT_TRUE(mentions(problems, "forbidden word 'relance'"));
}

TEST(TemplateLint, RejectsATemplateWithoutThePaymentLink) {
  auto problems = lint_template(
      entry("en", "email", "first_reminder", "text", "Your payment of {{amount_due}} was due on {{due_date}}."),
      default_policy());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(mentions(problems, "payment link"));
  EXPECT_EQ(problems[0].where, "test:en/email/first_reminder.text.mustache");
  auto no_amount = lint_template(entry("en", "sms", "first_reminder", "text", "Due on {{due_date}}: {{payment_link}}"),
                                 default_policy());
  EXPECT_TRUE(mentions(no_amount, "amount due"));
  // A thank-you needs the amount, not a link; a subject needs none of them.
  EXPECT_TRUE(lint_template(entry("en", "email", "thank_you", "text", "We received {{amount_paid}}."), default_policy())
                  .empty());
  EXPECT_TRUE(
      lint_template(entry("en", "email", "first_reminder", "subject", "Invoice {{invoice_number}}"), default_policy())
          .empty());
}

TEST(TemplateLint, RejectsUnknownVariablesAndUnescapedHtml) {
  auto unknown = lint_template(
      entry("en", "email", "first_reminder", "text", "{{amount_due}} {{due_date}} {{payment_link}} {{amount_owed}}"),
      default_policy());
  EXPECT_TRUE(mentions(unknown, "unknown variable 'amount_owed'"));
  // Item variables exist only inside the invoice list.
  auto outside = lint_template(
      entry("en", "email", "first_reminder", "text", "{{amount_due}} {{due_date}} {{payment_link}} {{number}}"),
      default_policy());
  EXPECT_TRUE(mentions(outside, "unknown variable 'number'"));
  auto inside = lint_template(entry("en", "email", "first_reminder", "text",
                                    "{{amount_due}} {{due_date}} {{payment_link}}{{#invoices}}{{number}}{{/invoices}}"),
                              default_policy());
  EXPECT_TRUE(inside.empty());
  auto html =
      lint_template(entry("en", "email", "first_reminder", "html", "{{{amount_due}}} {{due_date}} {{payment_link}}"),
                    default_policy());
  EXPECT_TRUE(mentions(html, "must escape"));
}

TEST(TemplateLint, AnSmsNamesNoInvoice) {
  auto problems = lint_template(entry("en", "sms", "first_reminder", "text",
                                      "Invoice {{invoice_number}}: {{amount_due}}, {{due_date}}, {{payment_link}}"),
                                default_policy());
  EXPECT_TRUE(mentions(problems, "SMS names no invoice"));
}

TEST(TemplateLint, TheShippedTemplatesPassForTheDefaultPolicy) {
  auto problems = lint_policy_templates(TemplateLibrary::builtin(), default_policy());
  for (const auto& p : problems) ADD_FAILURE() << p.where << ": " << p.message;
}

TEST(TemplateLint, AnSmsOverBudgetFailsWithWorstCaseVariables) {
  auto dir = std::filesystem::temp_directory_path() / "relance_lint_sms_budget";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "en" / "sms");
  std::ofstream(dir / "en" / "sms" / "first_reminder.text.mustache")
      << "{{company_name}}: we have not yet received your payment of {{amount_due}}, which was due on {{due_date}}. "
         "You can pay it online, in a few clicks, at any time of the day or night, with the following secure link: "
         "{{payment_link}} If you have already paid, thank you very much, and please disregard this message.";
  relance::v1::Config config = config::default_config();
  config.mutable_policy()->mutable_messages()->set_templates_dir(dir.string());
  auto library = TemplateLibrary::load(config);
  auto problems = lint_policy_templates(library, config.policy());
  EXPECT_TRUE(mentions(problems, "takes 3 SMS segments")) << (problems.empty() ? "" : problems[0].message);
  config.mutable_policy()->mutable_messages()->set_sms_max_segments(3);
  EXPECT_TRUE(lint_policy_templates(library, config.policy()).empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace relance::render
