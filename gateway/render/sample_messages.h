#pragma once

#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "relance/v1/config.pb.h"
#include "rules/reminder_rules.h"

namespace relance::render {

// One kind of message a policy can send: a template on a channel in a tone.
struct MessageSlot {
  rules::ActionKind kind = rules::ActionKind::kReminder;
  std::string stage;
  int stage_index = -1;
  std::string template_name;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  relance::v1::Tone tone = relance::v1::TONE_UNSPECIFIED;
  bool offer_payment_plan = false;
  bool mention_late_terms = false;
};

// Every stage × channel it may use (any tier, alongside or not) × every tone (a customer's
// history moves the tone a step either way), then the thank-you on every channel.
std::vector<MessageSlot> message_slots(const relance::v1::PolicyConfig& policy);

enum class SampleKind {
  kTypical,    // one invoice, a plain name
  kGrouped,    // three invoices in one message
  kWorstCase,  // the longest plausible values: a 40-character name, 999 999,99, a 60-character link
};

struct SampleMessage {
  rules::Decision decision;
  ledger::CustomerLedger ledger;
};

// Made-up data for a slot, for review (relance render), golden tests and the SMS budget check.
SampleMessage sample_message(const MessageSlot& slot, const std::string& locale, SampleKind kind);

}  // namespace relance::render
