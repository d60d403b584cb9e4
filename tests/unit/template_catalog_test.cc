#include "render/template_catalog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config_loader.h"
#include "render/renderer.h"
#include "render/sample_messages.h"

namespace relance::render {
namespace {

namespace fs = std::filesystem;

class TenantFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("relance_catalog_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& relative, const std::string& text) {
    fs::create_directories((dir_ / relative).parent_path());
    std::ofstream(dir_ / relative) << text;
  }
  fs::path dir_;
};

TEST(LocaleChain, FallsBackToTheLanguageThenTheDefaultLocale) {
  EXPECT_EQ(locale_chain("fr-CA", "en-US"), (std::vector<std::string>{"fr-CA", "fr", "en-US", "en"}));
  EXPECT_EQ(locale_chain("fr_FR", "fr-FR"), (std::vector<std::string>{"fr-FR", "fr"}));
  EXPECT_EQ(locale_chain("", "fr-FR"), (std::vector<std::string>{"fr-FR", "fr"}));
}

TEST(TemplateCatalog, TheBuiltInSetIsEmbedded) {
  auto catalog = TemplateCatalog::load("");
  EXPECT_EQ(catalog->locales(), (std::vector<std::string>{"en", "fr"}));
  const auto* e = catalog->find("fr-CA", "en-US", "email", "first_reminder", "firm", "subject");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->origin, "built-in:fr/email/first_reminder.subject.mustache");
  // German falls back to the default locale.
  e = catalog->find("de-DE", "en-US", "sms", "final_notice", "final", "text");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->locale, "en");
  EXPECT_EQ(catalog->find("de-DE", "de-DE", "sms", "final_notice", "final", "text"), nullptr);
}

TEST_F(TenantFolder, OverridesWinFileByFileAndToneFilesBeforeToneLessOnes) {
  write("fr/email/first_reminder.subject.mustache", "Tenant : {{invoice_number}}");
  write("fr/email/first_reminder.firm.subject.mustache", "Tenant ferme : {{invoice_number}}");
  write("fr-CA/sms/first_reminder.text.mustache", "Québec {{amount_due}} {{due_date}} {{payment_link}}");
  auto catalog = TemplateCatalog::load(dir_.string());
  EXPECT_EQ(catalog->find("fr-FR", "fr-FR", "email", "first_reminder", "courteous", "subject")->source,
            "Tenant : {{invoice_number}}");
  EXPECT_EQ(catalog->find("fr-FR", "fr-FR", "email", "first_reminder", "firm", "subject")->source,
            "Tenant ferme : {{invoice_number}}");
  // Parts the tenant did not write come from the built-in set.
  EXPECT_FALSE(catalog->find("fr-FR", "fr-FR", "email", "first_reminder", "firm", "text")->overrides);
  EXPECT_TRUE(catalog->find("fr-CA", "fr-FR", "sms", "first_reminder", "firm", "text")->overrides);
  EXPECT_FALSE(catalog->find("fr-FR", "fr-FR", "sms", "first_reminder", "firm", "text")->overrides);
}

TEST_F(TenantFolder, BadFilesAreRefusedWithTheirPath) {
  write("fr/email/first_reminder.angry.text.mustache", "x");
  EXPECT_THROW(
      {
        try {
          TemplateCatalog::load(dir_.string());
        } catch (const TemplateLoadError& e) {
          EXPECT_NE(std::string(e.what()).find("first_reminder.angry.text.mustache"), std::string::npos);
          EXPECT_NE(std::string(e.what()).find("unknown tone"), std::string::npos);
          throw;
        }
      },
      TemplateLoadError);
  fs::remove_all(dir_);
  write("en/sms/first_reminder.text.mustache", "{{#grouped}}unclosed");
  EXPECT_THROW(TemplateCatalog::load(dir_.string()), TemplateLoadError);
  EXPECT_THROW(TemplateCatalog::load((dir_ / "missing").string()), TemplateLoadError);
}

TEST(Renderer, TextIsNotEscapedAndHtmlIs) {
  auto config = config::default_config();
  auto policy = config.policy();
  policy.set_company_name("Dupont & Fils <SARL>");
  MessageSlot slot;
  slot.stage = slot.template_name = "first_reminder";
  slot.stage_index = 1;
  slot.channel = v1::EMAIL;
  slot.tone = v1::COURTEOUS;
  auto sample = sample_message(slot, "en-US", SampleKind::kTypical);
  sample.ledger.customer.set_name("O'Brien & Co");
  auto message = Renderer(TemplateLibrary::builtin()).render(sample.decision, sample.ledger, policy);
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_NE(message->text.find("Dear O'Brien & Co,"), std::string::npos) << message->text;
  EXPECT_NE(message->text.find("Dupont & Fils <SARL>"), std::string::npos);
  EXPECT_NE(message->html.find("O&apos;Brien &amp; Co"), std::string::npos) << message->html;
  EXPECT_NE(message->html.find("Dupont &amp; Fils &lt;SARL&gt;"), std::string::npos);
  EXPECT_EQ(message->subject, "Payment reminder: invoice F-2026-001");
}

TEST(Renderer, UnsubscribeLinkComesFromThePublicUrl) {
  auto config = config::default_config();
  config.mutable_http()->set_public_url("https://relance.example.com");
  auto library = TemplateLibrary::load(config);
  MessageSlot slot;
  slot.stage = slot.template_name = "courtesy";
  slot.stage_index = 0;
  slot.channel = v1::EMAIL;
  slot.tone = v1::FRIENDLY;
  auto sample = sample_message(slot, "fr-FR", SampleKind::kTypical);
  auto message = Renderer(library).render(sample.decision, sample.ledger, config.policy());
  ASSERT_TRUE(message.ok());
  EXPECT_NE(message->text.find("https://relance.example.com/v1/unsubscribe/"), std::string::npos);
}

TEST(Renderer, SmsHasPlainSpacesAndCanBeTransliterated) {
  auto policy = config::default_config().policy();
  MessageSlot slot;
  slot.stage = slot.template_name = "second_reminder";
  slot.stage_index = 2;
  slot.channel = v1::SMS;
  slot.tone = v1::FIRM;
  slot.offer_payment_plan = true;
  auto sample = sample_message(slot, "fr-FR", SampleKind::kTypical);
  auto message = Renderer(TemplateLibrary::builtin()).render(sample.decision, sample.ledger, policy);
  ASSERT_TRUE(message.ok());
  EXPECT_NE(message->text.find("120,00 €"), std::string::npos) << message->text;
  EXPECT_EQ(message->text.find("F-2026-001"), message->text.find("https://pay.example.com/F-2026-001") + 24);
  policy.mutable_messages()->set_sms_transliterate(true);
  sample.ledger.customer.set_locale("fr-FR");
  message = Renderer(TemplateLibrary::builtin()).render(sample.decision, sample.ledger, policy);
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(message->text.find("ç"), std::string::npos);
}

TEST(Renderer, WhatsAppUsesTheApprovedTemplateMappedForTheLocaleAndTone) {
  auto policy = config::default_config().policy();
  auto* any_tone = policy.mutable_messages()->add_whatsapp_templates();
  any_tone->set_locale("fr");
  any_tone->set_template_("first_reminder");
  any_tone->set_content_sid("HXfr");
  auto* firm = policy.mutable_messages()->add_whatsapp_templates();
  *firm = *any_tone;
  firm->set_tone(v1::FIRM);
  firm->set_content_sid("HXfrfirm");
  firm->add_variables("amount_due");
  firm->add_variables("payment_link");
  MessageSlot slot;
  slot.stage = slot.template_name = "first_reminder";
  slot.stage_index = 1;
  slot.channel = v1::WHATSAPP;
  slot.tone = v1::FIRM;
  auto sample = sample_message(slot, "fr-CA", SampleKind::kTypical);
  Renderer renderer(TemplateLibrary::builtin());
  auto message = renderer.render(sample.decision, sample.ledger, policy);
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_EQ(message->content_sid, "HXfrfirm");
  EXPECT_EQ(message->content_variables, "{\"1\":\"120,00\u00a0€\",\"2\":\"https://pay.example.com/F-2026-001\"}");
  EXPECT_NE(message->text.find("120,00"), std::string::npos);  // the free-form body, for the 24-hour window
  sample.decision.tone = v1::COURTEOUS;
  EXPECT_EQ(renderer.render(sample.decision, sample.ledger, policy)->content_sid, "HXfr");
  sample.ledger.customer.set_locale("en-US");
  EXPECT_EQ(renderer.render(sample.decision, sample.ledger, policy)->content_sid, "HXfr");  // default locale fr-FR
}

}  // namespace
}  // namespace relance::render
