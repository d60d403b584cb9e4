// The durable ledger over a real RocksDB store: what survives a clean stop, what a crash
// drops (timelines, restored from the changelog) and keeps (the outbox), the schedule index,
// dedup by offset and event id, and restore from changelog records.
#include "ledger/durable_ledger.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "ledger/snapshot.h"

namespace relance::ledger {
namespace {

using namespace std::chrono_literals;
namespace v1 = relance::v1;

class DurableLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("relance-ledger-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static v1::InvoiceEvent issued(const std::string& event_id, const std::string& invoice_id) {
    v1::InvoiceEvent e;
    e.set_event_id(event_id);
    auto* inv = e.mutable_invoice_issued()->mutable_invoice();
    inv->set_invoice_id(invoice_id);
    inv->mutable_amount_due()->set_currency("EUR");
    inv->mutable_amount_due()->set_minor_units(12'000);
    inv->mutable_amount_total()->set_currency("EUR");
    inv->mutable_amount_total()->set_minor_units(12'000);
    inv->set_due_on("2026-11-20");
    e.mutable_invoice_issued()->mutable_customer()->set_customer_id("c1");
    return e;
  }

  // Writes what the ledger gathered, as the gateway's commit point does.
  static std::vector<store::ChangelogRecord> commit(store::StateStore& store, DurableLedger& ledger) {
    store::StateStore::Batch batch(store);
    std::vector<store::ChangelogRecord> changelog;
    ledger.collect(batch, changelog);
    store.write(batch, false);
    return changelog;
  }

  using Records = std::vector<store::ChangelogRecord>;
  // The changelog a ledger writes over `steps`, each followed by a commit point, in a scratch
  // store of its own (removed after).
  Records changelog_of(const std::vector<std::function<void(DurableLedger&)>>& steps) const {
    Records changelog;
    auto scratch = dir_.string() + "-a";
    {
      store::StateStore store(scratch);
      DurableLedger ledger(store);
      for (const auto& step : steps) {
        step(ledger);
        auto records = commit(store, ledger);
        changelog.insert(changelog.end(), records.begin(), records.end());
      }
    }
    std::filesystem::remove_all(scratch);
    return changelog;
  }

  // Hands changelog records to the ledger's restore, as the gateway does with what it reads.
  static void restore(DurableLedger& ledger, store::StateStore::Batch& batch, Records::const_iterator begin,
                      Records::const_iterator end) {
    for (auto it = begin; it != end; ++it) {
      std::optional<std::string_view> value;
      if (it->value) value = *it->value;
      ledger.restore(it->partition, it->key, value, batch);
    }
  }

  std::filesystem::path dir_;
  const Instant t0_ = Instant{} + std::chrono::hours(24 * 365 * 56);
};

TEST_F(DurableLedgerTest, TimelinesAndScheduleSurviveACleanStop) {
  {
    store::StateStore store(dir_.string());
    EXPECT_FALSE(store.was_clean());  // a new store has nothing to trust
    DurableLedger ledger(store);
    EXPECT_FALSE(ledger.apply("c1", 2, 10, issued("e1", "inv-1")).duplicate);
    ledger.schedule("c1", t0_ + 1h);
    auto changelog = commit(store, ledger);
    ASSERT_EQ(changelog.size(), 1u);
    EXPECT_EQ(changelog[0].partition, 2);
    EXPECT_EQ(changelog[0].key, "t/c1");
    store.mark_clean();
  }
  store::StateStore store(dir_.string());
  EXPECT_TRUE(store.was_clean());
  DurableLedger ledger(store);
  const auto* found = ledger.find("c1");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->invoices.count("inv-1"), 1u);
  EXPECT_EQ(found->partition, 2);
  EXPECT_EQ(found->applied_offset, 10);
  EXPECT_EQ(ledger.next_due(2), t0_ + 1h);
  EXPECT_FALSE(ledger.next_due(1));
  EXPECT_TRUE(ledger.take_due(2, t0_, 10).empty());
  EXPECT_EQ(ledger.take_due(2, t0_ + 1h, 10), std::vector<std::string>{"c1"});
  // Taken off the schedule at once, before the store catches up at the next commit.
  EXPECT_TRUE(ledger.take_due(2, t0_ + 1h, 10).empty());
  commit(store, ledger);
  EXPECT_FALSE(ledger.next_due(2));
}

TEST_F(DurableLedgerTest, ACrashDropsTimelinesButKeepsTheOutbox) {
  {
    store::StateStore store(dir_.string());
    DurableLedger ledger(store);
    ledger.apply("c1", 0, 1, issued("e1", "inv-1"));
    EXPECT_TRUE(ledger.begin("rem-1", 0, "c1"));
    EXPECT_FALSE(ledger.begin("rem-1", 0, "c1"));
    EXPECT_TRUE(ledger.begin("rem-2", 0, "c1"));
    ledger.release("rem-2", 0);  // provably not sent
    commit(store, ledger);
    // No mark_clean(): the process dies here.
  }
  store::StateStore store(dir_.string());
  EXPECT_FALSE(store.was_clean());
  DurableLedger ledger(store);
  EXPECT_EQ(ledger.find("c1"), nullptr);  // restored from the changelog instead
  EXPECT_EQ(ledger.outbox_state("rem-1"), outbox::ReminderState::kSending);
  EXPECT_FALSE(ledger.outbox_state("rem-2"));
  EXPECT_FALSE(ledger.begin("rem-1", 0, "c1"));
  EXPECT_EQ(ledger.sending_timelines(0), std::vector<std::string>{"c1"});
  ledger.finish("rem-1", 0, "c1", outbox::ReminderState::kUnknown);
  commit(store, ledger);
  EXPECT_TRUE(ledger.sending_timelines(0).empty());
}

TEST_F(DurableLedgerTest, RepeatsByOffsetOrEventIdAreNotAppliedTwice) {
  store::StateStore store(dir_.string());
  DurableLedger ledger(store);
  EXPECT_FALSE(ledger.apply("c1", 0, 5, issued("e1", "inv-1")).duplicate);
  EXPECT_TRUE(ledger.apply("c1", 0, 5, issued("e1", "inv-1")).duplicate);   // read again
  EXPECT_TRUE(ledger.apply("c1", 0, 4, issued("e0", "inv-0")).duplicate);   // behind the state
  EXPECT_TRUE(ledger.apply("c1", 0, 9, issued("e1", "inv-1")).duplicate);   // published twice
  EXPECT_FALSE(ledger.apply("c1", 0, 10, issued("e2", "inv-2")).duplicate);
  EXPECT_EQ(ledger.find("c1")->invoices.size(), 2u);
  EXPECT_EQ(ledger.find("c1")->applied_offset, 10);
}

TEST_F(DurableLedgerTest, ChangelogRecordsRestoreTimelinesScheduleAndOutbox) {
  auto changelog = changelog_of({[&](DurableLedger& ledger) {
                                   ledger.apply("c1", 1, 1, issued("e1", "inv-1"));
                                   ledger.schedule("c1", t0_ + 2h);
                                   ledger.begin("rem-1", 1, "c1");
                                 },
                                 [&](DurableLedger& ledger) {
                                   // Moved later: the restored schedule has only this.
                                   ledger.schedule("c1", t0_ + 3h);
                                 }});
  store::StateStore store(dir_.string());
  DurableLedger ledger(store);
  store::StateStore::Batch batch(store);
  restore(ledger, batch, changelog.begin(), changelog.end());
  store.write(batch, true);
  ledger.restored();
  ASSERT_NE(ledger.find("c1"), nullptr);
  EXPECT_EQ(ledger.find("c1")->invoices.count("inv-1"), 1u);
  EXPECT_EQ(ledger.next_due(1), t0_ + 3h);
  EXPECT_EQ(store.count_due(1, t0_ + 10h, 100), 1u);
  EXPECT_EQ(ledger.outbox_state("rem-1"), outbox::ReminderState::kSending);
  EXPECT_EQ(ledger.sending_timelines(1), std::vector<std::string>{"c1"});
}

TEST_F(DurableLedgerTest, ARestoreWrittenInChunksSortedAndWithoutTheLogSurvivesACleanStop) {
  auto changelog = changelog_of({[&](DurableLedger& ledger) {
                                   for (int i = 0; i < 50; ++i) {
                                     auto key = "c" + std::to_string(49 - i);  // written in reverse key order
                                     ledger.apply(key, 1, i, issued("e" + std::to_string(i), "inv-" + std::to_string(i)));
                                     ledger.schedule(key, t0_ + std::chrono::minutes(i));
                                   }
                                   ledger.begin("rem-1", 1, "c7");
                                 },
                                 [&](DurableLedger& ledger) {
                                   // Moved: only this entry may remain in the schedule.
                                   ledger.schedule("c7", t0_ + 5h);
                                   ledger.finish("rem-1", 1, "c7", outbox::ReminderState::kAccepted);
                                 }});
  {
    store::StateStore store(dir_.string());
    DurableLedger ledger(store);
    // Two chunks, as the gateway writes them: the second one changes what the first wrote.
    std::size_t half = changelog.size() / 2;
    for (auto [from, to] : {std::pair{std::size_t{0}, half}, std::pair{half, changelog.size()}}) {
      store::StateStore::Batch batch(store);
      auto begin = changelog.begin();
      restore(ledger, batch, begin + static_cast<std::ptrdiff_t>(from), begin + static_cast<std::ptrdiff_t>(to));
      store.write_restored(batch);
    }
    ledger.restored();
    store.mark_clean();
  }
  store::StateStore store(dir_.string());
  ASSERT_TRUE(store.was_clean());
  DurableLedger ledger(store);
  EXPECT_EQ(store.count_due(1, t0_ + 10h, 100), 50u);
  EXPECT_EQ(ledger.find("c7")->next_due, t0_ + 5h);
  EXPECT_EQ(ledger.find("c0")->next_due, t0_ + 49min);
  EXPECT_EQ(ledger.outbox_state("rem-1"), outbox::ReminderState::kAccepted);
  EXPECT_TRUE(ledger.sending_timelines(1).empty());
}

TEST_F(DurableLedgerTest, ARestoreOverAKeptStoreReplacesTheScheduleEntriesTheStoreHeld) {
  // The store kept c1 (partition 1) due in 1 h; the changelog
  // then says c1 is due in 3 h and c2 in 4 h. Partition 1 is restored into a store that holds
  // its old entry (read back to be replaced); the store held nothing of partition 2, whose
  // restore reads nothing back and only adds.
  {
    store::StateStore store(dir_.string());
    DurableLedger ledger(store);
    ledger.apply("c1", 1, 1, issued("e1", "inv-1"));
    ledger.schedule("c1", t0_ + 1h);
    commit(store, ledger);
    store.mark_clean();
  }
  auto changelog = changelog_of({[&](DurableLedger& ledger) {
    ledger.apply("c1", 1, 1, issued("e1", "inv-1"));
    ledger.schedule("c1", t0_ + 3h);
    ledger.apply("c2", 2, 1, issued("e2", "inv-2"));
    ledger.schedule("c2", t0_ + 4h);
  }});
  store::StateStore store(dir_.string());
  ASSERT_TRUE(store.was_clean());
  DurableLedger ledger(store);
  ledger.forget_partition(1);
  store::StateStore::Batch batch(store);
  restore(ledger, batch, changelog.begin(), changelog.end());
  store.write_restored(batch);
  ledger.restored();
  EXPECT_EQ(store.count_due(1, t0_ + 10h, 100), 1u) << "the kept entry in 1 h was not replaced";
  EXPECT_EQ(store.first_due(1), t0_ + 3h);
  EXPECT_EQ(store.count_due(2, t0_ + 10h, 100), 1u);
  EXPECT_EQ(store.first_due(2), t0_ + 4h);
}

TEST_F(DurableLedgerTest, TheCacheStaysWithinItsCapacityAndReadsBackFromTheStore) {
  store::StateStore store(dir_.string());
  DurableLedger ledger(store, 16);
  for (int i = 0; i < 100; ++i) {
    auto key = "c" + std::to_string(i);
    ledger.apply(key, 0, i, issued("e" + std::to_string(i), "inv-" + std::to_string(i)));
    ledger.schedule(key, t0_ + std::chrono::minutes(i));
  }
  commit(store, ledger);
  ledger.trim();
  EXPECT_LE(ledger.cached(), 16u);
  for (int i = 0; i < 100; ++i) {
    const auto* found = ledger.find("c" + std::to_string(i));
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->next_due, t0_ + std::chrono::minutes(i));
  }
  auto due = ledger.take_due(0, t0_ + 9min, 100);
  EXPECT_EQ(due.size(), 10u);
  EXPECT_EQ(due.front(), "c0");
}

}  // namespace
}  // namespace relance::ledger
