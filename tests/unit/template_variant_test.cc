// Weighted template variants (policy.messages.variants, files <template>@<name>...): stable
// assignment per customer, shares that follow the weights, fallback to the base wording where a
// variant has no file, and the lint a variant goes through.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "config/config_loader.h"
#include "render/renderer.h"
#include "render/sample_messages.h"
#include "render/template_catalog.h"
#include "render/template_lint.h"

namespace relance::render {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;

void add_variant(v1::PolicyConfig& policy, const std::string& template_name, const std::string& name, int weight) {
  auto* v = policy.mutable_messages()->add_variants();
  v->set_template_(template_name);
  v->set_name(name);
  v->set_weight(weight);
}

MessageSlot first_reminder_sms() {
  MessageSlot slot;
  slot.stage = slot.template_name = "first_reminder";
  slot.stage_index = 1;
  slot.channel = v1::SMS;
  slot.tone = v1::COURTEOUS;
  return slot;
}

bool mentions(const std::vector<LintProblem>& problems, const std::string& where, const std::string& text) {
  for (const auto& p : problems) {
    if (p.where.find(where) != std::string::npos && p.message.find(text) != std::string::npos) return true;
  }
  return false;
}

class VariantFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("relance_variants_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    config_ = config::default_config();
    config_.mutable_policy()->mutable_messages()->set_templates_dir(dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& relative, const std::string& text) {
    fs::create_directories((dir_ / relative).parent_path());
    std::ofstream(dir_ / relative) << text;
  }
  v1::PolicyConfig& policy() { return *config_.mutable_policy(); }
  fs::path dir_;
  v1::Config config_;
};

TEST(TemplateVariant, TheHashIsStableAcrossBuildsAndMachines) {
  // SHA-256("tenant-a\0cus_1"), first 8 bytes big-endian: pinned so that a change of hash, which
  // would move customers between variants mid-experiment, cannot go unnoticed.
  EXPECT_EQ(variant_hash("tenant-a", "cus_1"), 5693597629156746639ULL);
  EXPECT_EQ(variant_hash("", "cus_1"), 4405377365678607475ULL);
  // The separator keeps (tenant, customer) pairs apart.
  EXPECT_NE(variant_hash("ab", "c"), variant_hash("a", "bc"));
}

TEST(TemplateVariant, TheWeightsComeFromThePolicyYaml) {
  auto loaded = config::load_config(R"(
policy:
  messages:
    variants:
      - {template: first_reminder, name: base, weight: 1}
      - {template: first_reminder, name: b, weight: 3}
)",
                                    {});
  const auto& variants = loaded.config.policy().messages().variants();
  ASSERT_EQ(variants.size(), 2);
  EXPECT_EQ(variants[1].template_(), "first_reminder");
  EXPECT_EQ(variants[1].name(), "b");
  EXPECT_EQ(variants[1].weight(), 3);
}

TEST(TemplateVariant, AssignmentIsDeterministicPerTenantAndCustomer) {
  auto policy = config::default_config().policy();
  EXPECT_EQ(assign_variant(policy, "first_reminder", "t", "cus_1"), "");  // no variants: none
  add_variant(policy, "first_reminder", "base", 1);
  add_variant(policy, "first_reminder", "b", 1);
  add_variant(policy, "second_reminder", "short", 1);
  for (int i = 0; i < 100; ++i) {
    auto id = "cus_" + std::to_string(i);
    auto first = assign_variant(policy, "first_reminder", "tenant-a", id);
    EXPECT_TRUE(first == "base" || first == "b") << first;
    EXPECT_EQ(assign_variant(policy, "first_reminder", "tenant-a", id), first);
    // A template with a single variant sends it to everyone.
    EXPECT_EQ(assign_variant(policy, "second_reminder", "tenant-a", id), "short");
    EXPECT_EQ(assign_variant(policy, "final_notice", "tenant-a", id), "");
  }
  // The bucket is the hash modulo the total weight, walked in the listed order.
  EXPECT_EQ(assign_variant(policy, "first_reminder", "tenant-a", "cus_1"),
            variant_hash("tenant-a", "cus_1") % 2 == 0 ? "base" : "b");
  // The tenant takes part: the same customer id in two tenants is two customers.
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    auto id = "cus_" + std::to_string(i);
    differ += assign_variant(policy, "first_reminder", "tenant-a", id) !=
              assign_variant(policy, "first_reminder", "tenant-b", id);
  }
  EXPECT_GT(differ, 20);
}

TEST(TemplateVariant, SharesFollowTheWeightsOverTenThousandCustomers) {
  auto policy = config::default_config().policy();
  add_variant(policy, "first_reminder", "base", 1);
  add_variant(policy, "first_reminder", "b", 3);
  add_variant(policy, "first_reminder", "c", 6);
  std::map<std::string, int> counts;
  for (int i = 0; i < 10'000; ++i) ++counts[assign_variant(policy, "first_reminder", "tenant-a", "cus_" + std::to_string(i))];
  EXPECT_EQ(counts.size(), 3u);
  // Expected 1,000 / 3,000 / 6,000; a binomial's standard deviation here is at most ~50.
  EXPECT_NEAR(counts["base"], 1000, 200);
  EXPECT_NEAR(counts["b"], 3000, 300);
  EXPECT_NEAR(counts["c"], 6000, 300);
}

TEST_F(VariantFolder, TheAssignedVariantIsRenderedAndNamedOnTheMessage) {
  write("fr/sms/first_reminder@b.text.mustache",
        "{{company_name}} : variante B, {{amount_due}} attendu le {{due_date}}. {{payment_link}}");
  add_variant(policy(), "first_reminder", "b", 1);
  Renderer renderer(TemplateLibrary::load(config_));
  auto sample = sample_message(first_reminder_sms(), "fr-FR", SampleKind::kTypical);
  sample.ledger.tenant_id = "tenant-a";
  auto message = renderer.render(sample.decision, sample.ledger, policy());
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_EQ(message->template_variant, "b");
  EXPECT_NE(message->text.find("variante B, 120,00 € attendu le 15 novembre 2026."), std::string::npos)
      << message->text;

  // "base" is the template's own wording.
  auto base = renderer.render_variant(sample.decision, sample.ledger, policy(), "base");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->template_variant, "base");
  EXPECT_EQ(base->text.find("variante B"), std::string::npos);

  // Without variants in the policy the message names none, and the variant file is not used.
  auto plain = renderer.render(sample.decision, sample.ledger, config::default_config().policy());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->template_variant, "");
  EXPECT_EQ(plain->text, base->text);
}

TEST_F(VariantFolder, ALocaleWithoutTheVariantGetsItsOwnBaseWording) {
  // Only French has variant b: an English customer assigned b reads the English base template,
  // not the French variant further down the locale chain (en-US → en → fr-FR → fr).
  write("fr/sms/first_reminder@b.text.mustache",
        "{{company_name}} : variante B, {{amount_due}} attendu le {{due_date}}. {{payment_link}}");
  add_variant(policy(), "first_reminder", "b", 1);
  Renderer renderer(TemplateLibrary::load(config_));
  auto sample = sample_message(first_reminder_sms(), "en-US", SampleKind::kTypical);
  auto message = renderer.render(sample.decision, sample.ledger, policy());
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_EQ(message->template_variant, "base");
  auto base = renderer.render_variant(sample.decision, sample.ledger, policy(), "");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(message->text, base->text);
  EXPECT_EQ(message->text.find("variante"), std::string::npos) << message->text;
}

TEST_F(VariantFolder, AVariantMayRewordSomePartsOnly) {
  write("en/email/first_reminder@b.subject.mustache", "Variant B: {{invoice_number}}");
  add_variant(policy(), "first_reminder", "b", 1);
  Renderer renderer(TemplateLibrary::load(config_));
  auto slot = first_reminder_sms();
  slot.channel = v1::EMAIL;
  auto sample = sample_message(slot, "en-US", SampleKind::kTypical);
  auto message = renderer.render(sample.decision, sample.ledger, policy());
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_EQ(message->template_variant, "b");
  EXPECT_EQ(message->subject, "Variant B: F-2026-001");
  auto base = renderer.render_variant(sample.decision, sample.ledger, policy(), "base");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(message->text, base->text);
  EXPECT_NE(message->subject, base->subject);
}

TEST_F(VariantFolder, CatalogPrefersTheVariantAtEachLocaleAndToneLevel) {
  write("fr/sms/first_reminder@b.text.mustache", "B {{amount_due}} {{due_date}} {{payment_link}}");
  write("fr/sms/first_reminder@b.firm.text.mustache", "B ferme {{amount_due}} {{due_date}} {{payment_link}}");
  auto catalog = TemplateCatalog::load(dir_.string());
  EXPECT_EQ(catalog->find("fr-FR", "fr-FR", "sms", "first_reminder", "firm", "text", "b")->source,
            "B ferme {{amount_due}} {{due_date}} {{payment_link}}");
  const auto* e = catalog->find("fr-FR", "fr-FR", "sms", "first_reminder", "courteous", "text", "b");
  EXPECT_EQ(e->variant, "b");
  EXPECT_EQ(e->name, "first_reminder");
  // Without a variant, or with one that has no file, the base file.
  EXPECT_TRUE(catalog->find("fr-FR", "fr-FR", "sms", "first_reminder", "firm", "text")->variant.empty());
  EXPECT_TRUE(catalog->find("fr-FR", "fr-FR", "sms", "first_reminder", "firm", "text", "zz")->variant.empty());
  EXPECT_TRUE(catalog->has_variant("first_reminder", "b"));
  EXPECT_FALSE(catalog->has_variant("first_reminder", "c"));
}

TEST_F(VariantFolder, BadVariantFileNamesAreRefused) {
  write("fr/sms/first_reminder@B.text.mustache", "x");
  EXPECT_THROW(TemplateCatalog::load(dir_.string()), TemplateLoadError);
  fs::remove_all(dir_);
  write("fr/sms/first_reminder@base.text.mustache", "x");
  EXPECT_THROW(TemplateCatalog::load(dir_.string()), TemplateLoadError);
  fs::remove_all(dir_);
  write("fr/sms/first_reminder@.text.mustache", "x");
  EXPECT_THROW(TemplateCatalog::load(dir_.string()), TemplateLoadError);
}

TEST_F(VariantFolder, TheLintChecksVariantsLikeTheirBaseTemplate) {
  write("fr/sms/first_reminder@b.text.mustache",
        "{{company_name}} : variante B, {{amount_due}} attendu le {{due_date}}. {{payment_link}}");
  add_variant(policy(), "first_reminder", "base", 1);
  add_variant(policy(), "first_reminder", "b", 1);
  EXPECT_TRUE(lint_policy_templates(TemplateLibrary::load(config_), policy()).empty());

  // A weight must be positive, a named variant must have files, a name must be well-formed.
  add_variant(policy(), "first_reminder", "c", 0);
  add_variant(policy(), "second_reminder", "short", 2);
  add_variant(policy(), "second_reminder", "Bad Name", 1);
  auto problems = lint_policy_templates(TemplateLibrary::load(config_), policy());
  EXPECT_TRUE(mentions(problems, "messages.variants[2].weight", "more than 0"));
  EXPECT_TRUE(mentions(problems, "messages.variants[3]", "no template file second_reminder@short"));
  EXPECT_TRUE(mentions(problems, "messages.variants[4].name", "not a variant name"));

  // A variant file goes through the same lint as its base: forbidden words, the payment link,
  // the SMS budget with worst-case values.
  policy().mutable_messages()->clear_variants();
  add_variant(policy(), "first_reminder", "b", 1);
  write("fr/sms/first_reminder@b.text.mustache",
        "Votre dette de {{amount_due}} attendue le {{due_date}}. {{payment_link}}");
  write("en/sms/first_reminder@b.text.mustache", "{{company_name}}: {{amount_due}} was due on {{due_date}}.");
  problems = lint_policy_templates(TemplateLibrary::load(config_), policy());
  EXPECT_TRUE(mentions(problems, "fr/sms/first_reminder@b.text.mustache", "forbidden word 'dette'"));
  EXPECT_TRUE(mentions(problems, "en/sms/first_reminder@b.text.mustache", "payment link"));
  write("en/sms/first_reminder@b.text.mustache",
        "{{company_name}}: we have not yet received your payment of {{amount_due}}, which was due on {{due_date}}. "
        "You can pay it online, in a few clicks, at any time of the day or night, with the following secure link: "
        "{{payment_link}} If you have already paid, thank you very much, and please disregard this message.");
  problems = lint_policy_templates(TemplateLibrary::load(config_), policy());
  EXPECT_TRUE(mentions(problems, "en/sms/first_reminder@b.text.mustache", "takes 3 SMS segments"));
}

}  // namespace
}  // namespace relance::render
