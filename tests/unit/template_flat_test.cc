// The flat compiler of TemplateCatalog: templates of literal text, {{name}} variables, sections
// on flags and the {{#invoices}} list render from plain values, byte for byte as kainjow renders
// them (blank lines around section tags included); anything else stays with kainjow.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "render/template_catalog.h"

namespace relance::render {
namespace {

TemplateValues sample_values() {
  TemplateValues values;
  values.set(variable_bit("company_name"), "Dupont & Fils <SARL>");
  values.set(variable_bit("amount_due"), "1\u202f234,50\u00a0€");
  values.set(variable_bit("due_date"), "5 mars 2026");
  values.set(variable_bit("payment_link"), "https://pay.example.com/i?a=1&b=\"2\"");
  values.set(variable_bit("customer_name"), "O'Brien");
  values.set_flag(variable_bit("grouped"), false);
  values.set_flag(variable_bit("tone_courteous"), true);
  values.invoices.push_back({"F-1", "10 €", "1 mars", "3", "https://pay/1"});
  values.invoices_set = true;
  return values;
}

TEST(TemplateFlat, CompilesTextAndVariables) {
  std::vector<TemplatePiece> pieces;
  ASSERT_TRUE(compile_flat("{{company_name}} : {{amount_due}}, le {{due_date}}.\n", pieces));
  ASSERT_EQ(pieces.size(), 7u);
  EXPECT_EQ(pieces[0].kind, TemplatePiece::kVariable);
  EXPECT_EQ(pieces[0].variable, 1);
  EXPECT_EQ(pieces[1].text, " : ");
  EXPECT_EQ(pieces[5].text, ".");
  EXPECT_EQ(pieces[6].kind, TemplatePiece::kNewline);
  ASSERT_TRUE(compile_flat("a{{#grouped}}b{{^tone_firm}}c{{/tone_firm}}{{/grouped}}d", pieces));
  ASSERT_EQ(pieces.size(), 6u);
  EXPECT_EQ(pieces[1].kind, TemplatePiece::kSection);
  EXPECT_EQ(pieces[1].end, 5u);
  EXPECT_EQ(pieces[3].kind, TemplatePiece::kInverted);
  EXPECT_EQ(pieces[3].end, 5u);
  EXPECT_TRUE(compile_flat("", pieces));
  EXPECT_TRUE(pieces.empty());
  EXPECT_TRUE(compile_flat("no tags at all", pieces));
  EXPECT_EQ(pieces.size(), 1u);
}

TEST(TemplateFlat, LeavesEverythingElseToKainjow) {
  std::vector<TemplatePiece> pieces;
  for (const char* source :
       {"{{^invoices}}x{{/invoices}}", "{{#invoices}}{{#invoices}}x{{/invoices}}{{/invoices}}",
        "{{#invoices}}{{#number}}x{{/number}}{{/invoices}}", "{{#company_name}}x{{/company_name}}", "{{#grouped}}x",
        "{{#grouped}}x{{/tone_firm}}", "x{{/grouped}}", "{{! note }}", "{{> part}}", "{{=<% %>=}}",
        "{{{company_name}}}", "{{&company_name}}", "{{ company_name }}", "{{grouped}}", "{{invoices}}", "{{number}}",
        "{{unknown}}", "{{company_name", "{{company_name.x}}"}) {
    EXPECT_FALSE(compile_flat(source, pieces)) << source;
  }
}

// Every built-in template the flat compiler takes renders as kainjow renders it, escaped (html)
// or not, with variables set, unset and empty.
TEST(TemplateFlat, RendersAsKainjowDoes) {
  auto catalog = TemplateCatalog::load("");
  std::size_t flat = 0;
  auto full = sample_values();
  TemplateValues none;
  auto empty = sample_values();
  for (auto& t : empty.text) t.clear();
  for (const auto& entry : catalog->entries()) {
    if (!entry.flat) continue;
    ++flat;
    for (const auto* values : {&full, &none, &empty}) {
      EXPECT_EQ(entry.render_flat(*values), entry.render(values->to_data())) << entry.origin;
    }
    // Flags: all set, in a few patterns (each bit of kTemplateVariables, true or false).
    uint64_t pattern = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 24; ++i) {
      auto values = sample_values();
      pattern = pattern * 6364136223846793005u + 1442695040888963407u;
      int b = 20;
      for (auto name :
           {"has_company_contact", "tone_friendly", "tone_courteous", "tone_firm", "tone_final", "offer_payment_plan",
            "mention_late_terms", "recurring_late_payer", "escalation", "has_unsubscribe", "overdue", "grouped"}) {
        uint64_t bit = 0;
        for (std::size_t k = 0; k < kTemplateVariables.size(); ++k) {
          if (kTemplateVariables[k] == name) bit = uint64_t{1} << k;
        }
        values.set_flag(bit, ((pattern >> b++) & 1) != 0);
      }
      if (i == 0) values.flags = 0;
      if (i == 1) values.flags = values.flags_set;
      EXPECT_EQ(entry.render_flat(values), entry.render(values.to_data())) << entry.origin << " / " << i;
    }
  }
  EXPECT_GT(flat, 0u) << flat << " of " << catalog->entries().size();
  // Every SMS template of the built-in set is flat (the rendering the benchmark measures).
  for (const auto& entry : catalog->entries()) {
    if (entry.channel == "sms") {
      EXPECT_TRUE(entry.flat) << entry.origin;
    }
  }
}

// kainjow's blank-line behaviour: a line where a section was rendered and that holds only spaces
// and tabs is dropped, whatever the flags (set true, set false, unset).
TEST(TemplateFlat, DropsBlankSectionLinesAsKainjowDoes) {
  const std::vector<std::string> sources{
      "Bonjour {{customer_name}},\n\n{{#grouped}}\nA {{amount_due}}\n{{/grouped}}\n{{^grouped}}B\n{{/grouped}}Fin\n",
      "  {{#tone_firm}}  \n\tx\n  {{/tone_firm}}\t\r\n{{^tone_firm}}\r\n{{/tone_firm}}\ry\r\n",
      "{{#grouped}}{{company_contact}}{{/grouped}}\n{{#grouped}} "
      "{{/grouped}}\n{{#tone_firm}}{{^grouped}}\n\n{{/grouped}}"
      "{{/tone_firm}}z",
      "{{company_name}}{{#has_company_contact}}\nContact : {{company_contact}}{{/has_company_contact}}"
      "{{#has_unsubscribe}}\n\nStop : {{unsubscribe_url}}{{/has_unsubscribe}}",
      "\n\n  \n{{#grouped}}{{/grouped}}",
      "{{^grouped}}{{/grouped}}  ",
      "Total {{amount_due}} :{{#invoices}}\n- {{number}} : {{amount_due}}, {{due_date}}{{#grouped}} {{company_name}}"
      "{{/grouped}}{{/invoices}}\n\n{{#grouped}}x{{/grouped}}",
      "{{#invoices}}{{^tone_firm}}{{number}}{{#grouped}} {{amount_due}}{{/grouped}}{{/tone_firm}}\n{{/invoices}}",
      "<ul>\n{{#invoices}}<li>{{number}} {{payment_link}} {{days_overdue}}</li>\n{{/invoices}}</ul>\n"
      "{{#invoices}}\n  {{#tone_firm}}\n{{/tone_firm}}\n{{/invoices}}\n",
  };
  const std::vector<uint64_t> flags{variable_bit("grouped"), variable_bit("tone_firm"),
                                    variable_bit("has_company_contact"), variable_bit("has_unsubscribe")};
  for (const auto& source : sources) {
    TemplateEntry entry;
    entry.source = source;
    entry.part = "text";
    entry.compiled = std::make_shared<kainjow::mustache::basic_mustache<std::string>>(entry.source);
    entry.compiled->set_custom_escape([](const std::string& s) { return s; });
    ASSERT_TRUE(entry.compiled->is_valid()) << source;
    ASSERT_TRUE(compile_flat(entry.source, entry.pieces)) << source;
    entry.flat = true;
    // Each flag unset, false or true; text values set, empty or unset.
    for (int combo = 0; combo < 81 * 243; ++combo) {
      TemplateValues values;
      int c = combo;
      for (auto bit : flags) {
        if (c % 3 > 0) values.set_flag(bit, c % 3 == 2);
        c /= 3;
      }
      if (combo % 4 == 2) values.invoices = {{"F-1", "10", "1 mars", "3", "https://p/1"}};
      if (combo % 4 == 3) {
        values.invoices = {{"F-1", "10", "1 mars", "3", "https://p/1"}, {"", "", "", "", ""}};
      }
      values.invoices_set = combo % 4 != 0;
      for (auto bit : {variable_bit("customer_name"), variable_bit("amount_due"), variable_bit("company_contact"),
                       variable_bit("company_name"), variable_bit("unsubscribe_url")}) {
        if (c % 3 > 0) values.set(bit, c % 3 == 2 ? std::string("v") : std::string());
        c /= 3;
      }
      EXPECT_EQ(entry.render_flat(values), entry.render(values.to_data())) << source << " / " << combo;
    }
  }
}

TEST(TemplateFlat, EscapesHtmlPartsAsKainjowDoes) {
  TemplateEntry entry;
  entry.source = "<p>{{company_name}} {{payment_link}} {{customer_name}} {{stage}}</p>\n";
  entry.part = "html";
  entry.compiled = std::make_shared<kainjow::mustache::basic_mustache<std::string>>(entry.source);
  ASSERT_TRUE(compile_flat(entry.source, entry.pieces));
  for (auto& piece : entry.pieces) piece.escaped = piece.kind == TemplatePiece::kVariable;
  entry.flat = true;
  auto values = sample_values();
  EXPECT_EQ(entry.render_flat(values), entry.render(values.to_data()));
  EXPECT_EQ(entry.render_flat(values),
            "<p>Dupont &amp; Fils &lt;SARL&gt; https://pay.example.com/i?a=1&amp;b=&quot;2&quot; O&apos;Brien </p>\n");
}

}  // namespace
}  // namespace relance::render
