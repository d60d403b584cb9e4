#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relance::channels::twilio {

// Form fields in wire order. A vector rather than a map because Twilio repeats names
// (MediaUrl, ...) and the signature must cover every occurrence.
using Params = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded: RFC 3986 unreserved characters kept, space as '+',
// every other byte as upper-case %XX; pairs joined with '&' in the given order.
std::string form_encode(const Params& params);

// Inverse of form_encode: '+' is a space, %XX a byte (either hex case). Repeated names are
// kept in order, a name without '=' gets an empty value, empty segments ("a=1&&b=2") are
// skipped. nullopt when a '%' is not followed by two hex digits.
std::optional<Params> form_decode(std::string_view body);

// Percent-encodes one query-string component: like form_encode but space becomes %20.
std::string url_encode(std::string_view component);

}  // namespace relance::channels::twilio
