#pragma once

#include <string>
#include <string_view>

namespace relance {

// Appends `text` as the inside of a JSON string: quotes, backslashes and control characters
// escaped, everything else (UTF-8 included) as it is.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace relance
