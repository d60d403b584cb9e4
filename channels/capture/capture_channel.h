#pragma once

#include <filesystem>
#include <string>

#include "channels/channel.h"

namespace relance::channels::capture {

// Writes each message to a file named after its reminder id instead of sending it: what the
// embedded default and dry runs use. Writing is atomic (temporary file, then rename), so a
// reader never sees half a message.
class CaptureChannel final : public ChannelAdapter {
 public:
  explicit CaptureChannel(std::filesystem::path dir);
  std::string_view provider() const override { return "capture"; }
  void send(Outgoing outgoing) override;

 private:
  std::filesystem::path dir_;
};

}  // namespace relance::channels::capture
