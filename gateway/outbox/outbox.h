#pragma once

#include <optional>

namespace relance::outbox {

// Where a reminder id stands. Every reminder is recorded before its provider is called, so a
// reminder id is sent at most once; the states are kept in the state store and its changelog.
enum class ReminderState { kSending, kAccepted, kFailed, kUnknown, kSuppressed };

// Handed to an adapter that records "sending" only as the message leaves: not a state of the
// outbox (nothing has left), but the timeline is looked at again after a crash.
inline constexpr char kQueuedCode = 'q';

// One byte per state in the store and the changelog.
constexpr char code_of(ReminderState state) {
  switch (state) {
    case ReminderState::kSending:
      return 's';
    case ReminderState::kAccepted:
      return 'a';
    case ReminderState::kFailed:
      return 'f';
    case ReminderState::kUnknown:
      return 'u';
    case ReminderState::kSuppressed:
      return 'x';
  }
  return 's';
}

constexpr std::optional<ReminderState> state_of(char code) {
  switch (code) {
    case 's':
      return ReminderState::kSending;
    case 'a':
      return ReminderState::kAccepted;
    case 'f':
      return ReminderState::kFailed;
    case 'u':
      return ReminderState::kUnknown;
    case 'x':
      return ReminderState::kSuppressed;
    default:
      return std::nullopt;
  }
}

}  // namespace relance::outbox
