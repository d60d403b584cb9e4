#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "relance/v1/events.pb.h"

namespace relance::ledger {

// What the gateway knows about one invoice.
struct InvoiceState {
  relance::v1::Invoice invoice;
  bool cancelled = false;
  bool disputed = false;
  std::string promised_on;  // YYYY-MM-DD while a promise to pay is open

  bool open() const { return !cancelled && invoice.amount_due().minor_units() > 0; }
};

// One reminder timeline: everything the rules need to decide, keyed by the timeline key (the
// customer id when producers key by customer, as they should).
struct CustomerLedger {
  std::string key;
  std::string tenant_id;
  relance::v1::Customer customer;
  std::map<std::string, InvoiceState> invoices;
};

enum class ApplyOutcome { kApplied, kDuplicate };

// The ledger behind the scheduler and the rules. The in-memory one serves the skeleton and the
// embedded default; a durable store implements the same interface.
class Ledger {
 public:
  virtual ~Ledger() = default;
  // Applies one validated event to the timeline `key`; each event id is applied once.
  virtual ApplyOutcome apply(const std::string& key, const relance::v1::InvoiceEvent& event) = 0;
  virtual const CustomerLedger* find(const std::string& key) const = 0;
};
using LedgerPtr = std::unique_ptr<Ledger>;

LedgerPtr make_in_memory_ledger(std::size_t dedup_window = 1'000'000);

}  // namespace relance::ledger
