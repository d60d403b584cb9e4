#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
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
};

struct ApplyResult {
  bool duplicate = false;
  // Invoices this event closed (paid in full, cancelled) that had received reminders.
  std::vector<std::string> resolved_after_reminders;
};

// The ledger behind the scheduler and the rules. The in-memory one serves the skeleton and the
// embedded default; a durable store implements the same interface.
class Ledger {
 public:
  virtual ~Ledger() = default;
  // Applies one validated event to the timeline `key`; each event id is applied once.
  virtual ApplyResult apply(const std::string& key, const relance::v1::InvoiceEvent& event) = 0;
  virtual void record(const std::string& key, const ActionRecord& action) = 0;
  virtual const CustomerLedger* find(const std::string& key) const = 0;
};
using LedgerPtr = std::unique_ptr<Ledger>;

LedgerPtr make_in_memory_ledger(std::size_t dedup_window = 1'000'000);

// The state transitions themselves, shared by every Ledger implementation.
// Returns the invoices the event closed after they had received reminders.
std::vector<std::string> apply_event(CustomerLedger& ledger, const relance::v1::InvoiceEvent& event);
void apply_action(CustomerLedger& ledger, const ActionRecord& action);
ContactValidity check_contacts(const relance::v1::Customer& customer);

}  // namespace relance::ledger
