// Ten thousand seeded random customers over 90 days under the default policy: every planned
// action is checked against the promises the policy makes to customers.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "common/dates.h"
#include "config/config_loader.h"
#include "rules/business_calendar.h"
#include "rules/timeline_simulator.h"

namespace relance::rules {
namespace {

namespace v1 = relance::v1;
using std::chrono::days;
using std::chrono::hours;

constexpr int kCustomers = 10'000;
constexpr int kHorizonDays = 90;

struct TimedEvent {
  Instant at;
  v1::InvoiceEvent event;
};

struct Zone {
  const char* tz;
  const char* country;
  const char* locale;
};
constexpr Zone kZones[] = {{"Europe/Paris", "FR", "fr-FR"},
                           {"America/New_York", "US", "en-US"},
                           {"Europe/London", "GB", "en-GB"},
                           {"Asia/Tokyo", "JP", "en-US"}};

std::string iso_day(Instant t) { return format_iso_date(std::chrono::year_month_day{std::chrono::floor<days>(t)}); }

// A random but reproducible history for one customer: invoices, payments, disputes, promises,
// cancellations, plans and contact changes, in time order.
std::vector<TimedEvent> random_history(std::mt19937_64& rng, int customer, Instant start) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto chance = [&](int percent) { return pick(100) < percent; };
  auto when = [&](int from_day, int to_day) {
    return start + days(from_day + pick(std::max(1, to_day - from_day))) + std::chrono::minutes(pick(24 * 60));
  };
  std::vector<TimedEvent> out;
  int seq = 0;
  auto next_id = [&] { return "c" + std::to_string(customer) + "-e" + std::to_string(seq++); };
  const auto& zone = kZones[pick(4)];
  v1::Customer c;
  c.set_customer_id("c" + std::to_string(customer));
  c.set_name("Customer " + std::to_string(customer));
  if (!chance(5)) c.set_email("c" + std::to_string(customer) + "@example.com");
  if (chance(60)) c.set_phone(chance(80) ? "+3361234" + std::to_string(1000 + customer % 9000) : "+33142685300");
  c.set_locale(zone.locale);
  c.set_time_zone(zone.tz);
  c.set_country(zone.country);
  for (auto channel : {v1::EMAIL, v1::SMS, v1::WHATSAPP}) {
    if (chance(30)) {
      auto* consent = c.add_consents();
      consent->set_channel(channel);
      consent->set_granted(chance(70));
    }
  }
  if (chance(20)) c.add_preferred_channels(chance(50) ? v1::WHATSAPP : v1::SMS);

  int invoices = 1 + pick(4);
  for (int i = 0; i < invoices; ++i) {
    auto issued = when(-40, 60);
    TimedEvent e{issued, {}};
    e.event.set_event_id(next_id());
    auto* inv = e.event.mutable_invoice_issued()->mutable_invoice();
    inv->set_invoice_id("c" + std::to_string(customer) + "-i" + std::to_string(i));
    inv->set_number("F-" + std::to_string(customer) + "-" + std::to_string(i));
    inv->set_customer_id(c.customer_id());
    const char* currency = chance(70) ? "EUR" : "USD";
    static constexpr int64_t kAmounts[] = {4'500, 12'000, 35'000, 90'000, 720'000};
    auto amount = kAmounts[pick(5)];
    inv->mutable_amount_due()->set_currency(currency);
    inv->mutable_amount_due()->set_minor_units(amount);
    *inv->mutable_amount_total() = inv->amount_due();
    inv->set_issued_on(iso_day(issued));
    inv->set_due_on(iso_day(issued + days(chance(50) ? 14 : 30)));
    inv->set_payment_link("https://pay.example.com/" + inv->invoice_id());
    *e.event.mutable_invoice_issued()->mutable_customer() = c;
    out.push_back(e);

    auto after = [&](int lo, int hi) { return issued + days(lo + pick(std::max(1, hi - lo))) + std::chrono::minutes(pick(1440)); };
    auto event_at = [&](Instant at) {
      TimedEvent t{at, {}};
      t.event.set_event_id(next_id());
      return t;
    };
    if (chance(50)) {
      auto p = event_at(after(5, 80));
      p.event.mutable_payment_received()->set_invoice_id(inv->invoice_id());
      p.event.mutable_payment_received()->mutable_amount()->set_currency(currency);
      p.event.mutable_payment_received()->mutable_amount()->set_minor_units(chance(70) ? amount : amount / 2);
      p.event.mutable_payment_received()->mutable_paid_at()->set_seconds(
          std::chrono::duration_cast<std::chrono::seconds>(p.at.time_since_epoch()).count());
      out.push_back(p);
    }
    if (chance(15)) {
      auto opened = event_at(after(10, 50));
      opened.event.mutable_dispute_opened()->set_invoice_id(inv->invoice_id());
      out.push_back(opened);
      if (chance(60)) {
        auto resolved = event_at(opened.at + days(3 + pick(20)));
        resolved.event.mutable_dispute_resolved()->set_invoice_id(inv->invoice_id());
        resolved.event.mutable_dispute_resolved()->set_outcome(chance(50) ? v1::DisputeResolved::REJECTED
                                                                         : v1::DisputeResolved::UPHELD);
        out.push_back(resolved);
      }
    }
    if (chance(15)) {
      auto promise = event_at(after(20, 50));
      promise.event.mutable_promise_to_pay()->add_invoice_ids(inv->invoice_id());
      promise.event.mutable_promise_to_pay()->set_promised_on(iso_day(promise.at + days(2 + pick(10))));
      out.push_back(promise);
    }
    if (chance(5)) {
      auto cancel = event_at(after(1, 60));
      cancel.event.mutable_invoice_cancelled()->set_invoice_id(inv->invoice_id());
      cancel.event.mutable_invoice_cancelled()->set_reason(v1::InvoiceCancelled::WRITTEN_OFF);
      out.push_back(cancel);
    }
    if (chance(5)) {
      auto plan = event_at(after(25, 45));
      auto* p = plan.event.mutable_payment_plan_agreed();
      p->set_plan_id(inv->invoice_id() + "-plan");
      p->add_invoice_ids(inv->invoice_id());
      for (int k = 0; k < 3; ++k) {
        auto* inst = p->add_installments();
        inst->set_due_on(iso_day(plan.at + days(15 + 30 * k)));
        inst->mutable_amount()->set_currency(currency);
        inst->mutable_amount()->set_minor_units(amount / 3 + (k == 0 ? amount % 3 : 0));
      }
      out.push_back(plan);
    }
  }
  if (chance(10)) {
    // Consent withdrawn part-way: nothing may go to that channel afterwards.
    auto update = TimedEvent{when(0, 80), {}};
    update.event.set_event_id(next_id());
    auto* updated = update.event.mutable_customer_updated()->mutable_customer();
    *updated = c;
    auto* consent = updated->add_consents();
    consent->set_channel(v1::EMAIL);
    consent->set_granted(false);
    out.push_back(update);
  }
  std::stable_sort(out.begin(), out.end(), [](const TimedEvent& a, const TimedEvent& b) { return a.at < b.at; });
  return out;
}

bool consent_allows(const v1::Customer& c, v1::Channel channel, const std::set<v1::Channel>& required) {
  std::optional<bool> granted;
  for (const auto& consent : c.consents()) {
    if (consent.channel() == channel) granted = consent.granted();
  }
  if (granted.has_value()) return *granted;
  return !required.count(channel);
}

TEST(PolicySimulation, TenThousandCustomersOverNinetyDaysKeepEveryPromise) {
  auto policy = config::default_config().policy();
  ReminderRules rules(policy, {v1::EMAIL, v1::SMS, v1::WHATSAPP, v1::CALL_TASK});
  TimelineSimulator sim(rules);
  BusinessCalendar calendar(policy.calendar());
  std::set<v1::Channel> consent_required;
  for (auto c : policy.consent_required()) consent_required.insert(static_cast<v1::Channel>(c));

  std::mt19937_64 rng(20261122);
  auto start = *parse_rfc3339("2026-11-01T00:00:00Z");
  auto end = start + days(kHorizonDays);
  std::size_t actions_checked = 0, sends = 0, suppressed = 0, thank_yous = 0, escalations = 0;
  int failures = 0;
  auto fail = [&](const std::string& customer, const SimulatedAction& a, const std::string& what) {
    if (++failures <= 20) {
      ADD_FAILURE() << customer << " at " << format_rfc3339(a.at) << " stage " << a.decision.stage << " channel "
                    << v1::Channel_Name(a.decision.channel) << ": " << what;
    }
  };

  for (int customer = 0; customer < kCustomers; ++customer) {
    auto history = random_history(rng, customer, start);
    ledger::CustomerLedger ledger;
    ledger.key = "c" + std::to_string(customer);
    std::map<std::string, std::pair<int, std::string>> last_stage;  // subject → (stage, stage key)
    std::vector<Instant> contacts;
    Instant cursor = start;

    auto check = [&](const std::vector<SimulatedAction>& actions) {
      for (const auto& a : actions) {
        ++actions_checked;
        const auto& d = a.decision;
        const auto& cust = ledger.customer;
        const auto& tz = cust.time_zone();
        for (const auto& item : d.items) {
          auto [it, inserted] = last_stage.emplace(item.subject_id, std::pair{item.stage_index, d.stage_key});
          if (inserted) continue;
          // The same decision on a second channel (the email alongside a call) is not a repeat.
          bool same_decision = it->second.second == d.stage_key;
          if (!same_decision && item.stage_index <= it->second.first) {
            fail(ledger.key, a, "stage went backwards or repeated for " + item.subject_id);
          }
          it->second = {item.stage_index, d.stage_key};
        }
        if (d.suppressed) {
          ++suppressed;
          continue;
        }
        if (!calendar.is_open(a.at, d.channel, tz, cust.country())) fail(ledger.key, a, "inside quiet hours");
        if (d.kind != ActionKind::kEscalation && !consent_allows(cust, d.channel, consent_required)) {
          fail(ledger.key, a, "no consent for the channel");
        }
        if (d.kind == ActionKind::kThankYou) {
          ++thank_yous;
          continue;
        }
        if (d.kind == ActionKind::kEscalation) ++escalations;
        for (const auto& id : d.invoice_ids) {
          const auto& inv = ledger.invoices.at(id);
          if (!inv.open()) fail(ledger.key, a, "invoice " + id + " is paid or cancelled");
          if (inv.disputed) fail(ledger.key, a, "invoice " + id + " is disputed");
          if (!inv.promised_on.empty()) {
            auto resume = std::chrono::sys_days{*parse_iso_date(inv.promised_on)} + days(policy.promise_grace_days() + 1);
            if (std::chrono::sys_days{local_date(a.at, tz)} < resume) fail(ledger.key, a, "promise to pay pending");
          }
        }
        if (d.kind == ActionKind::kReminder) {
          ++sends;
          if (contacts.empty() || contacts.back() != a.at) contacts.push_back(a.at);
        }
      }
    };

    for (const auto& e : history) {
      auto at = std::max(e.at, cursor);
      if (at > end) break;
      check(sim.run(ledger, cursor, at));
      cursor = at;
      ledger::apply_event(ledger, e.event);
    }
    check(sim.run(ledger, cursor, end));

    // The cap, over the whole horizon: one contact a day, three in any seven days.
    for (std::size_t i = 1; i < contacts.size(); ++i) {
      if (contacts[i] - contacts[i - 1] < hours(24)) {
        ADD_FAILURE() << ledger.key << ": two contacts within a day at " << format_rfc3339(contacts[i]);
        ++failures;
      }
      if (i >= 3 && contacts[i] - contacts[i - 3] < hours(24 * 7)) {
        ADD_FAILURE() << ledger.key << ": four contacts within seven days at " << format_rfc3339(contacts[i]);
        ++failures;
      }
    }
    if (failures > 50) break;
  }
  EXPECT_EQ(failures, 0);
  // The simulation must have exercised the policy, not passed vacuously.
  EXPECT_GT(sends, 10'000u);
  EXPECT_GT(suppressed, 100u);
  EXPECT_GT(thank_yous, 1'000u);
  EXPECT_GT(escalations, 100u);
  RecordProperty("actions_checked", static_cast<int>(actions_checked));
  std::cout << "checked " << actions_checked << " actions: " << sends << " reminders, " << escalations
            << " escalations, " << thank_yous << " thank-yous, " << suppressed << " suppressed\n";
}

}  // namespace
}  // namespace relance::rules
