#include "channels/capture/capture_channel.h"

#include <fstream>
#include <system_error>

#include "relance/v1/common.pb.h"

namespace relance::channels::capture {

CaptureChannel::CaptureChannel(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
}

void CaptureChannel::send(Outgoing outgoing) {
  const auto& message = outgoing.message;
  auto& done = outgoing.done;
  auto channel = relance::v1::Channel_Name(message.channel);
  auto name = message.reminder_id + "." + channel + ".txt";
  auto tmp = dir_ / ("." + name + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << "Reminder-Id: " << message.reminder_id << "\n"
        << "Channel: " << channel << "\n"
        << "Customer-Id: " << message.customer_id << "\n"
        << "To: " << message.to << "\n"
        << "Locale: " << message.locale << "\n";
    if (!message.subject.empty()) out << "Subject: " << message.subject << "\n";
    out << "\n" << message.text;
    if (!message.html.empty()) out << "\n--- html ---\n" << message.html << "\n";
    if (!out.flush()) {
      done({SendResult::Kind::kRetriable, "", "io", "cannot write to the capture folder", "", std::chrono::seconds(5)});
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir_ / name, ec);
  if (ec) {
    done({SendResult::Kind::kRetriable, "", "io", ec.message(), "", std::chrono::seconds(5)});
    return;
  }
  done({SendResult::Kind::kAccepted, name, "", "", "captured", {}});
}

}  // namespace relance::channels::capture
