// Every message of the default policy, rendered in French and English with sample data, compared
// byte for byte with tests/golden/templates/. After a deliberate wording change, regenerate with
//   RELANCE_UPDATE_GOLDEN=1 ./build/debug/tests/relance_unit_tests --gtest_filter='TemplateGolden*'
// and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/link_token.h"
#include "config/config_loader.h"
#include "render/renderer.h"
#include "render/sample_messages.h"

namespace relance::render {
namespace {

namespace fs = std::filesystem;

fs::path golden_dir() { return fs::path(__FILE__).parent_path().parent_path() / "golden" / "templates"; }

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(TemplateGolden, AllStagesTonesAndChannelsInFrenchAndEnglish) {
  // Unsubscribe links are signed: a fixed secret keeps them the same from run to run.
  set_link_secret("golden-test-link-secret");
  bool update = std::getenv("RELANCE_UPDATE_GOLDEN") != nullptr;
  auto config = config::default_config();
  config.mutable_http()->set_public_url("https://relance.example.com");
  auto policy = config.policy();
  policy.mutable_messages()->set_company_contact("01 23 45 67 89, compta@example.com");
  Renderer renderer(TemplateLibrary::load(config));
  std::set<fs::path> expected_files;
  int compared = 0;
  for (const char* locale : {"fr-FR", "en-US"}) {
    for (const auto& slot : message_slots(policy)) {
      for (auto kind : {SampleKind::kTypical, SampleKind::kGrouped}) {
        if (kind == SampleKind::kGrouped && slot.kind == rules::ActionKind::kThankYou) continue;
        auto sample = sample_message(slot, locale, kind);
        sample.decision.recurring_late_payer = kind == SampleKind::kGrouped;
        auto message = renderer.render(sample.decision, sample.ledger, policy);
        ASSERT_TRUE(message.ok()) << slot.template_name << ": " << message.error().message;
        auto stem =
            golden_dir() / locale / channel_folder(slot.channel) /
            (slot.template_name + "." + tone_name(slot.tone) + (kind == SampleKind::kGrouped ? ".grouped" : ""));
        std::vector<std::pair<std::string, std::string>> parts{{".txt", message->text}};
        if (slot.channel == v1::EMAIL) {
          parts.emplace_back(".subject.txt", message->subject + "\n");
          parts.emplace_back(".html", message->html);
        }
        for (const auto& [suffix, text] : parts) {
          fs::path file = stem.string() + suffix;
          expected_files.insert(file);
          if (update) {
            fs::create_directories(file.parent_path());
            std::ofstream(file, std::ios::binary) << text;
            continue;
          }
          ASSERT_TRUE(fs::exists(file)) << file << " is missing: regenerate with RELANCE_UPDATE_GOLDEN=1";
          EXPECT_EQ(read(file), text) << file;
          ++compared;
        }
      }
    }
  }
  // Goldens of messages the policy no longer sends are stale.
  for (const auto& item : fs::recursive_directory_iterator(golden_dir())) {
    if (item.is_regular_file()) {
      EXPECT_TRUE(expected_files.contains(item.path())) << item.path() << " is stale";
    }
  }
  if (!update) {
    EXPECT_GT(compared, 300);
  }
}

}  // namespace
}  // namespace relance::render
