#pragma once

#include <map>
#include <set>

#include "channels/channel.h"
#include "channels/http/transfer_loop.h"
#include "config/config_loader.h"
#include "kafka/kafka_client.h"
#include "relance/v1/config.pb.h"

namespace relance::channels {

using ChannelMap = std::map<relance::v1::Channel, ChannelAdapterPtr>;

// Builds the adapters the configuration asks for. With no provider configured at all, every
// channel goes to the capture adapter, so a fresh install shows what it would send.
// With a producer, call tasks go to the call-task topic (in the embedded default too). Network
// adapters make progress on `loop`, which the caller drives.
ChannelMap make_channels(const relance::v1::Config& config, const config::Environment& env, kafka::Producer* producer,
                         http::TransferLoop& loop);

// The channels make_channels would serve, without constructing any adapter (nothing is
// connected or created): for decisions made without side effects, as in `relance preview`.
std::set<relance::v1::Channel> available_channels(const relance::v1::Config& config);

}  // namespace relance::channels
