#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "relance/v1/common.pb.h"

namespace relance {

// Opaque, unforgeable tokens for links in messages (one-click unsubscribe): they name a timeline
// and a channel, signed with HMAC-SHA256 under the gateway's link secret, so a link works on
// every instance and after restarts, and cannot be made up for another customer.
void set_link_secret(std::string secret);
std::string make_link_token(std::string_view timeline_key, relance::v1::Channel channel);
std::optional<std::pair<std::string, relance::v1::Channel>> verify_link_token(std::string_view token);

}  // namespace relance
