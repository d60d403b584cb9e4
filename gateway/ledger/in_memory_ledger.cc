#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "ledger/ledger.h"

namespace relance::ledger {

namespace v1 = relance::v1;

namespace {

class InMemoryLedger final : public Ledger {
 public:
  explicit InMemoryLedger(std::size_t dedup_window) : dedup_window_(dedup_window) {}

  ApplyOutcome apply(const std::string& key, const v1::InvoiceEvent& event) override {
    if (!remember(event.event_id())) return ApplyOutcome::kDuplicate;
    auto& c = customers_[key];
    c.key = key;
    if (!event.tenant_id().empty()) c.tenant_id = event.tenant_id();
    switch (event.kind_case()) {
      case v1::InvoiceEvent::kInvoiceIssued: {
        const auto& k = event.invoice_issued();
        c.customer = k.customer();
        c.invoices[k.invoice().invoice_id()].invoice = k.invoice();
        break;
      }
      case v1::InvoiceEvent::kInvoiceUpdated: {
        const auto& inv = event.invoice_updated().invoice();
        c.invoices[inv.invoice_id()].invoice = inv;
        break;
      }
      case v1::InvoiceEvent::kPaymentReceived: {
        const auto& k = event.payment_received();
        if (auto it = c.invoices.find(k.invoice_id()); it != c.invoices.end()) {
          auto* due = it->second.invoice.mutable_amount_due();
          due->set_minor_units(std::max<int64_t>(0, due->minor_units() - k.amount().minor_units()));
        }
        break;
      }
      case v1::InvoiceEvent::kPromiseToPay:
        for (const auto& id : event.promise_to_pay().invoice_ids()) {
          if (auto it = c.invoices.find(id); it != c.invoices.end()) {
            it->second.promised_on = event.promise_to_pay().promised_on();
          }
        }
        break;
      case v1::InvoiceEvent::kDisputeOpened:
        if (auto it = c.invoices.find(event.dispute_opened().invoice_id()); it != c.invoices.end()) {
          it->second.disputed = true;
        }
        break;
      case v1::InvoiceEvent::kDisputeResolved:
        if (auto it = c.invoices.find(event.dispute_resolved().invoice_id()); it != c.invoices.end()) {
          it->second.disputed = false;
          if (event.dispute_resolved().outcome() == v1::DisputeResolved::UPHELD) it->second.cancelled = true;
        }
        break;
      case v1::InvoiceEvent::kInvoiceCancelled:
        if (auto it = c.invoices.find(event.invoice_cancelled().invoice_id()); it != c.invoices.end()) {
          it->second.cancelled = true;
        }
        break;
      case v1::InvoiceEvent::kCustomerUpdated:
        c.customer = event.customer_updated().customer();
        break;
      case v1::InvoiceEvent::kPaymentPlanAgreed:
      case v1::InvoiceEvent::KIND_NOT_SET:
        break;
    }
    return ApplyOutcome::kApplied;
  }

  const CustomerLedger* find(const std::string& key) const override {
    auto it = customers_.find(key);
    return it == customers_.end() ? nullptr : &it->second;
  }

 private:
  // A bounded window of recent event ids: redeliveries arrive soon after the original.
  bool remember(const std::string& event_id) {
    if (!seen_.insert(event_id).second) return false;
    order_.push_back(event_id);
    if (order_.size() > dedup_window_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }

  std::size_t dedup_window_;
  std::unordered_set<std::string> seen_;
  std::deque<std::string> order_;
  std::unordered_map<std::string, CustomerLedger> customers_;
};

}  // namespace

LedgerPtr make_in_memory_ledger(std::size_t dedup_window) { return std::make_unique<InMemoryLedger>(dedup_window); }

}  // namespace relance::ledger
