#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "relance/v1/delivery.pb.h"
#include "relance/v1/events.pb.h"

namespace relance::ledger {

// Contact data checked once when a customer snapshot arrives, so decisions only read flags.
struct ContactValidity {
  bool email = false;
  bool phone = false;      // a valid number in E.164 or for the customer's country
  bool mobile = false;     // ... that can receive SMS
  bool whatsapp = false;
};

// One installment of an agreed payment plan.
struct Installment {
  std::string due_on;  // YYYY-MM-DD
  int64_t amount = 0;  // minor units
  int64_t paid = 0;
  bool settled() const { return paid >= amount; }
};

struct PaymentPlanState {
  std::string plan_id;
  std::string currency;
  std::vector<std::string> invoice_ids;
  std::vector<Installment> installments;
};

// What the gateway knows about one invoice.
struct InvoiceState {
  relance::v1::Invoice invoice;
  bool cancelled = false;
  bool disputed = false;
  std::string promised_on;  // YYYY-MM-DD of the latest promise, empty when none (or once broken)
  // After a pause ends (a dispute rejected or settled), reminders resume no earlier than the
  // morning of this day (YYYY-MM-DD), so the customer is not reminded the minute it ends.
  std::string resume_on;
  std::string plan_id;      // set while a payment plan covers the invoice
  int reminders_sent = 0;
  Instant first_reminder_at{};
  Instant last_reminder_at{};
  relance::v1::Channel last_channel = relance::v1::CHANNEL_UNSPECIFIED;
  bool thanked = false;
  relance::v1::InvoiceCancelled::Reason cancel_reason = relance::v1::InvoiceCancelled::REASON_UNSPECIFIED;
  // The last reminder, for outcomes.
  std::string last_stage_name;
  relance::v1::Tone last_tone = relance::v1::TONE_UNSPECIFIED;
  std::string last_template;
  std::string last_variant;
  // The invoice was fully paid after at least one reminder: a thank-you may be owed.
  bool paid_after_reminders = false;

  bool paid() const { return !cancelled && invoice.amount_due().minor_units() <= 0; }
  bool open() const { return !cancelled && invoice.amount_due().minor_units() > 0; }
};

// One action the gateway carried out, fed back so later decisions see it.
struct ActionRecord {
  enum class Kind { kReminder, kThankYou, kEscalation };
  Kind kind = Kind::kReminder;
  // Subject ids (an invoice id, or "plan#k" for installment k) with the stage each reached.
  std::vector<std::pair<std::string, int>> subjects;
  std::vector<std::string> invoice_ids;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  std::string stage;
  relance::v1::Tone tone = relance::v1::TONE_UNSPECIFIED;
  std::string template_name;
  std::string template_variant;
  Instant at{};
  bool contacted = false;           // the customer was actually reached (counts towards caps)
  bool channel_failed_permanently = false;
  bool overdue = false;             // the reminder was sent after the due date
  bool broken_promise = false;      // it followed a broken promise, which is now closed
  // The customer told the provider to stop on this channel (an SMS STOP seen by the provider).
  bool opted_out = false;
  // For a message handed to a provider: what later delivery reports refer to.
  std::string reminder_id;
  std::string stage_key;
  std::string provider_message_id;
  // The provider will report delivery; without a report the reminder may fall back.
  bool awaiting_confirmation = false;
  // For the written trail (set by the gateway, not by simulations): why the decision was made,
  // and what the customer received (subject and text part, cut at kTrailTextLimit bytes).
  std::vector<std::string> explanation;
  std::string subject;
  std::string text;
};
inline constexpr std::size_t kTrailTextLimit = 2048;

// A message handed to a provider, kept while its invoices are open so that delivery reports,
// fallbacks and call outcomes can refer to it.
struct SentReminder {
  std::string stage_key;
  relance::v1::Channel channel = relance::v1::CHANNEL_UNSPECIFIED;
  // Subjects with the stage this reminder reached and the stage they had before, so that a
  // message that did not arrive reopens its stage for the next channel.
  std::vector<std::pair<std::string, int>> reached;
  std::vector<std::pair<std::string, int>> before;
  std::vector<std::string> invoice_ids;
  std::string stage;
  relance::v1::Tone tone = relance::v1::TONE_UNSPECIFIED;
  Instant sent_at{};
  relance::v1::DeliveryStatus status = relance::v1::SENT;  // the furthest reported
  bool awaiting_confirmation = false;
  bool fell_back = false;
  std::string provider_message_id;
  // For a call task: the outcome support recorded ("reached", "promise_to_pay", ...); empty
  // while the task is open.
  std::string call_outcome;
  // The written trail: the decision's reasons and what was sent (see ActionRecord).
  std::vector<std::string> explanation;
  std::string subject;
  std::string text;
};

// One reminder timeline: everything the rules need to decide, keyed by the timeline key (the
// customer id when producers key by customer, as they should).
struct CustomerLedger {
  std::string key;
  std::string tenant_id;
  relance::v1::Customer customer;
  ContactValidity contacts;
  std::map<std::string, InvoiceState> invoices;
  std::map<std::string, PaymentPlanState> plans;
  // Highest stage index acted on per subject; stages never go backwards.
  std::map<std::string, int> last_stage;
  // Instants at which the customer was contacted, newest last (pruned to the cap's window).
  std::vector<Instant> contacts_made;
  std::set<relance::v1::Channel> failed_channels;
  // Channels the customer opted out of themselves (unsubscribe link, STOP reply).
  std::set<relance::v1::Channel> opted_out;
  // Invoices that were ever late, with the day they became so (YYYY-MM-DD).
  std::map<std::string, std::string> late_invoices;
  // Messages handed to providers, by reminder id (and call tasks, by task id).
  std::map<std::string, SentReminder> reminders;
  // Channels that did not deliver a stage's message, by stage key: the stage moves on to the
  // next channel.
  std::map<std::string, std::set<relance::v1::Channel>> stage_failed_channels;

  // Where the timeline is kept: the input partition that carries its events, the offset of the
  // last event applied from it (a redelivered record at or below it is a repeat), the ids of
  // its most recent events (a producer's duplicate under a new offset), and the instant it is
  // scheduled for.
  int32_t partition = -1;
  int64_t applied_offset = -1;
  std::vector<std::string> recent_event_ids;  // oldest first, at most kRecentEventIds
  std::optional<Instant> next_due;
};
inline constexpr std::size_t kRecentEventIds = 32;

// What applying one event changed beyond the invoices.
struct EventEffects {
  // A delivery report moved a reminder's status forward (publish it); repeats and reports
  // that arrive after a later status do not.
  bool status_changed = false;
  // A report of non-delivery reopened the reminder's stage for the next channel.
  bool fell_back = false;
};

struct ApplyResult {
  bool duplicate = false;
  // Invoices this event closed (paid in full, cancelled) that had received reminders.
  std::vector<std::string> resolved_after_reminders;
  EventEffects effects;
};

// The state transitions themselves, shared by every Ledger implementation.
// Returns the invoices the event closed after they had received reminders.
std::vector<std::string> apply_event(CustomerLedger& ledger, const relance::v1::InvoiceEvent& event,
                                     EventEffects* effects = nullptr);
// Treats a reminder as not delivered: reopens its stage for the next channel and forgets the
// contact. False when it was already delivered, already fell back, or is unknown.
bool fall_back(CustomerLedger& ledger, const std::string& reminder_id);
// How far along a delivery status is; a report never moves a reminder backwards.
int delivery_rank(relance::v1::DeliveryStatus status);
void apply_action(CustomerLedger& ledger, const ActionRecord& action);
ContactValidity check_contacts(const relance::v1::Customer& customer);
// Replaces the ledger's customer and its contacts' validity, checking the phone numbers again
// only when they or the country changed.
void set_customer(CustomerLedger& ledger, const relance::v1::Customer& customer);

}  // namespace relance::ledger
