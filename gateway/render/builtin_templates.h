#pragma once

#include <string_view>
#include <vector>

namespace relance::render {

struct BuiltinTemplate {
  std::string_view path;  // relative to deploy/templates/
  std::string_view text;
};

// deploy/templates/ as built into the binary.
const std::vector<BuiltinTemplate>& builtin_templates();

}  // namespace relance::render
