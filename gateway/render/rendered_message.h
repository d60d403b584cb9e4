#pragma once

#include <map>
#include <string>
#include <vector>

#include "relance/v1/common.pb.h"

namespace relance {

// A message ready for a channel: addressed, worded and formatted. Channels add nothing to the
// wording; they only encode and deliver it.
struct RenderedMessage {
  std::string reminder_id;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  std::string customer_id;
  // The timeline (Kafka record key) the message belongs to: provider callbacks about it are
  // published back under this key.
  std::string timeline_key;
  std::string to;        // an email address or an E.164 number
  std::string to_name;
  std::string locale;
  std::string subject;   // email only
  std::string text;
  std::string html;      // email only
  // The wording of the template this customer was assigned (policy.messages.variants): the
  // variant's name, or "base" for the template's own files; empty when the template has none.
  // Recorded as DeliveryEvent.template_variant.
  std::string template_variant;
  // One-click unsubscribe (RFC 8058) for this customer and channel; empty when the gateway has
  // no public URL.
  std::string unsubscribe_url;
  // A structured message for channels that carry one (a serialized relance.v1.CallTask).
  std::string payload;
  // WhatsApp outside the 24-hour window: the approved template and its variables as a JSON
  // object ({"1": "...", "2": "..."}); empty when policy.messages maps none.
  std::string content_sid;
  std::string content_variables;
};

}  // namespace relance
