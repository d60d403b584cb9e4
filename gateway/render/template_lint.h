#pragma once

#include <string>
#include <vector>

#include "relance/v1/config.pb.h"
#include "render/template_catalog.h"

namespace relance::render {

// One problem with a template, named by the file it is in.
struct LintProblem {
  std::string where;  // a file path, "built-in:<path>", or the policy field
  std::string message;
};

// The words no message may contain in `language` ("fr", "en"): the policy's list for that
// language when it gives one, else the built-in list.
std::vector<std::string> forbidden_words(const relance::v1::PolicyConfig& policy, const std::string& language);

// Checks one template on its own: syntax the renderer does not support, unknown variables,
// forbidden words, and (for message bodies) the amount, the due date and the payment link.
std::vector<LintProblem> lint_template(const TemplateEntry& entry, const relance::v1::PolicyConfig& policy);

// Checks every template of the policy's catalog, that every message the policy can send has a
// template in every locale the catalog has, that each renders, and that SMS stay within
// messages.sms_max_segments for worst-case variables.
std::vector<LintProblem> lint_policy_templates(const TemplateLibraryPtr& library,
                                               const relance::v1::PolicyConfig& policy);

// The budget when the policy sets none.
inline constexpr int kDefaultSmsMaxSegments = 2;

}  // namespace relance::render
