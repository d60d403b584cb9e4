// Faults injected around the real gateway binary: its Kafka broker down for 30 s and back, its
// mail server down and back, its SMS provider answering 500s and timing out for a minute, its
// store's disk full, and 10,000 malformed records among good ones. Every test counts reminders
// by id where they arrive (the mail's X-Relance-Reminder-Id, the provider's messages per number)
// and on the delivery topic: a lost or doubled reminder is a count that is not one.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "kafka/kafka_client.h"
#include "relance/v1/delivery.pb.h"
#include "rules/reminder_rules.h"
#include "support/admin_client.h"
#include "support/fake_twilio.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"
#include "support/sample_events.h"
#include "support/test_topics.h"
#include "support/topic_snapshot.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = relance::v1;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kAdminTokenEnv = "RELANCE_FAULT_ADMIN_TOKEN";
constexpr const char* kAdminToken = "fault-injection-admin-token-0123456789";
constexpr const char* kTwilioTokenEnv = "RELANCE_FAULT_TWILIO_TOKEN";
constexpr const char* kTwilioAuthToken = "fault-injection-twilio-token-0123456789";
constexpr const char* kAccountSid = "AC00000000000000000000000000fa017a";
constexpr const char* kSmsFrom = "+15005550006";
// Monday 2027-02-01, 11:00 in Paris. Invoices due 2027-01-27 have their first reminder due
// (the courtesy notice it overtook is not sent late); those due 2027-02-10 have nothing due
// until kLater, when their first reminder is.
const std::string kT0 = "2027-02-01T10:00:00Z";
const std::string kLater = "2027-02-14T12:00:00Z";
const std::string kOverdue = "2027-01-27";
const std::string kDueLater = "2027-02-10";

void note(const std::string& line) {
  std::printf("[   note   ] %s\n", line.c_str());
  std::fflush(stdout);
}

double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

std::string frozen_clock(const std::string& start) {
  // Time moves only when the test says so (POST /v1/admin/clock).
  return "clock:\n  mode: simulated\n  simulated_start: " + start + "\n  speed: 0\n";
}

std::string running_clock(const std::string& start) {
  // Real-time pace, so that the gateway's retry delays pass while the fault lasts.
  return "clock:\n  mode: simulated\n  simulated_start: " + start + "\n  speed: 1\n";
}

// An interpreter that can run aiosmtpd: the rig's choice, else the distribution's python3.
std::string smtp_python() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("RELANCE_RIG_PYTHON"); p != nullptr && *p != '\0') candidates.emplace_back(p);
  candidates.insert(candidates.end(), {"/usr/bin/python3", "/usr/local/bin/python3"});
  for (const auto& p : candidates) {
    if (fs::exists(p) && std::system((p + " -c 'import aiosmtpd' 2>/dev/null").c_str()) == 0) return p;
  }
  return {};
}

// A mail server of the test's own (aiosmtpd writing a Maildir), stopped and started again on the
// same port as the test says; the rig's server is shared by every test and stays up.
class PrivateSmtp {
 public:
  explicit PrivateSmtp(fs::path dir) : dir_(std::move(dir)), port_(free_port()) {
    for (const auto* sub : {"tmp", "new", "cur"}) fs::create_directories(dir_ / "maildir" / sub);
  }

  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  ::testing::AssertionResult start() {
    auto python = smtp_python();
    if (python.empty()) return ::testing::AssertionFailure() << "no python3 can import aiosmtpd";
    // -n: as root aiosmtpd would otherwise setuid to nobody and could no longer write the Maildir.
    process_ = std::make_unique<GatewayProcess>(
        std::vector<std::string>{python, "-u", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port_), "-c",
                                 "aiosmtpd.handlers.Mailbox", (dir_ / "maildir").string()},
        std::map<std::string, std::string>{}, dir_, dir_ / "smtp.log");
    // Serving once it greets.
    auto deadline = SteadyClock::now() + 30s;
    while (SteadyClock::now() < deadline) {
      if (!process_->running()) return ::testing::AssertionFailure() << "aiosmtpd exited:\n" << process_->log();
      if (greets()) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << "aiosmtpd not serving on port " << port_;
  }

  void stop() {
    if (process_) process_->stop(10s);
    process_.reset();
  }

  // Reminder id → mails received with it; mails without one count under "".
  std::map<std::string, int> by_reminder() const {
    std::map<std::string, int> out;
    for (const auto* sub : {"new", "cur"}) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir_ / "maildir" / sub, ec)) {
        std::istringstream mail(read_file(entry.path()));
        std::string id;
        for (std::string line; std::getline(mail, line) && line != "\r" && !line.empty();) {
          if (line.rfind("X-Relance-Reminder-Id:", 0) == 0) {
            id = line.substr(22);
            id.erase(0, id.find_first_not_of(' '));
            while (!id.empty() && (id.back() == '\r' || id.back() == ' ')) id.pop_back();
          }
        }
        ++out[id];
      }
    }
    return out;
  }

 private:
  bool greets() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      timeval two_seconds{2, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
      char greeting[4] = {};
      ok = ::recv(fd, greeting, 3, MSG_WAITALL) == 3 && std::string(greeting, 3) == "220";
    }
    ::close(fd);
    return ok;
  }

  fs::path dir_;
  int port_;
  std::unique_ptr<GatewayProcess> process_;
};

// A single-node Kafka of the test's own (tests/rig/broker.sh), to be killed and started again on
// the same port and data; stopping the rig's broker would break the other tests of the run.
class PrivateBroker {
 public:
  explicit PrivateBroker(fs::path dir) : dir_(std::move(dir)), port_(free_port()), controller_port_(free_port()) {}
  ~PrivateBroker() { script("stop"); }
  PrivateBroker(const PrivateBroker&) = delete;
  PrivateBroker& operator=(const PrivateBroker&) = delete;

  std::string bootstrap() const { return "127.0.0.1:" + std::to_string(port_); }
  bool start() { return script("start " + std::to_string(port_) + " " + std::to_string(controller_port_)); }
  // SIGKILL: down at once, nothing flushed or handed over; the data stays for the restart.
  bool kill() { return script("kill"); }

 private:
  bool script(const std::string& args) const {
    auto command = "bash " + std::string(RELANCE_SOURCE_DIR) + "/tests/rig/broker.sh " +
                   (args.rfind("start", 0) == 0 ? "start " + dir_.string() + args.substr(5) : args + " " + dir_.string());
    return std::system(command.c_str()) == 0;
  }

  fs::path dir_;
  int port_, controller_port_;
};

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_ = read_env_file(fs::path(RELANCE_RIG_DIR) / "rig.env");
    ASSERT_FALSE(rig_["KAFKA_BOOTSTRAP"].empty()) << "the rig is not running (rig.env missing)";
    bootstrap_ = rig_["KAFKA_BOOTSTRAP"];
    work_ = fs::temp_directory_path() / ("relance-fault-" + topics_.suffix);
    fs::create_directories(work_);
    http_port_ = free_port();
    started_ = SteadyClock::now();
  }

  void TearDown() override {
    if (gateway_) gateway_->crash();
    if (smtp_) smtp_->stop();
    broker_.reset();
    if (HasFailure()) {
      std::printf("----- last lines of %s -----\n%s\n", (work_ / "gateway.log").string().c_str(), log_tail(60).c_str());
    } else {
      fs::remove_all(work_);
    }
  }

  // `channels` is the YAML under channels:, `stages` the YAML under policy.stages (empty: the
  // default policy's stages).
  void write_config(const std::string& channels, const std::string& stages, const std::string& clock) {
    std::ofstream out(work_ / "relance.yaml");
    out << topics_.kafka_yaml()
        << "  properties:\n"
        // A short session, so that the group notices a vanished member quickly.
        << "    session.timeout.ms: \"6000\"\n"
        << "channels:\n"
        << channels
        << "policy:\n"
        << "  company_name: Example Ltd\n"
        // Any hour of any day and no contact cap: a reminder is due exactly at its stage's time.
        << "  calendar:\n"
        << "    windows: []\n"
        << "  contact_cap: {per_day: 0, per_7_days: 0}\n";
    if (!stages.empty()) out << "  stages:\n" << stages;
    out << "http:\n"
        << "  listen: 127.0.0.1:" << http_port_ << "\n"
        << "  public_url: http://127.0.0.1:" << http_port_ << "\n"
        << "  admin_token_env: " << kAdminTokenEnv << "\n"
        << clock
        << "store:\n"
        << "  path: " << (work_ / "store").string() << "\n"
        << "  interrupted_sends: report\n";
  }

  static std::string email_channel(const std::string& smtp_url) {
    return "  email:\n    smtp_url: " + smtp_url + "\n    from: billing@relance.test\n    from_name: Relance Billing\n";
  }

  void start_gateway(std::map<std::string, std::string> env = {}) {
    ++starts_;
    std::ofstream(work_ / "gateway.log", std::ios::app) << "===== test: start #" << starts_ << " =====\n";
    env["RELANCE_KAFKA__BROKERS"] = bootstrap_;
    env[kAdminTokenEnv] = kAdminToken;
    env[kTwilioTokenEnv] = kTwilioAuthToken;
    gateway_ = std::make_unique<GatewayProcess>(
        std::vector<std::string>{RELANCE_BINARY, "run", "--config", (work_ / "relance.yaml").string()}, env, work_,
        work_ / "gateway.log");
  }

  // The test's topics on the current broker, a mail server of its own and the gateway mailing
  // through it, ready.
  ::testing::AssertionResult start_mailing(const std::string& clock, std::map<std::string, std::string> env = {}) {
    topics_.create(bootstrap_, 2);
    smtp_ = std::make_unique<PrivateSmtp>(work_ / "smtp");
    if (auto up = smtp_->start(); !up) return up;
    write_config(email_channel(smtp_->url()), "", clock);
    start_gateway(std::move(env));
    return wait_ready();
  }

  std::optional<int> stop_gateway() {
    auto status = gateway_->stop(60s);
    std::ofstream(work_ / "gateway.log", std::ios::app) << "===== test: stopped =====\n";
    return status;
  }

  AdminClient admin() const { return AdminClient(http_port_, kAdminToken); }

  ::testing::AssertionResult wait_ready(std::chrono::milliseconds timeout = 90s) {
    auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      if (!gateway_->running()) return ::testing::AssertionFailure() << "the gateway exited:\n" << log_tail(40);
      if (admin().readiness().status == 200) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << "not ready (GET /readyz " << admin().readiness().body << ")\n"
                                         << log_tail(40);
  }

  ::testing::AssertionResult set_clock(const std::string& now) {
    auto answer = admin().set_clock(now);
    if (answer.status == 200) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "POST /v1/admin/clock " << now << " answered " << answer.status << " "
                                         << answer.body;
  }

  // Waits until the gateway has read `count` input records since it started.
  ::testing::AssertionResult consumed(double count, std::chrono::milliseconds timeout = 60s) {
    std::optional<double> seen;
    auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      seen = admin().metric("relance_records_consumed_total");
      if (seen && *seen >= count) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << "consumed " << (seen ? *seen : -1) << " of " << count << " records";
  }

  std::string log_tail(std::size_t lines) const {
    std::istringstream text(read_file(work_ / "gateway.log"));
    std::deque<std::string> last;
    for (std::string line; std::getline(text, line);) {
      last.push_back(std::move(line));
      if (last.size() > lines) last.pop_front();
    }
    std::string out;
    for (const auto& line : last) out += line + "\n";
    return out;
  }

  InvoiceSpec invoice_for(const std::string& who, const std::string& due_on) const {
    InvoiceSpec spec;
    spec.event_id = "evt-" + who + "-" + topics_.suffix;
    spec.customer_id = "cust-" + who + "-" + topics_.suffix;
    spec.invoice_id = "inv-" + who;
    spec.number = "F-2027-" + who;
    spec.email = who + "@customers.test";
    spec.payment_link = "https://pay.example.com/" + who;
    spec.amount_due = 12'000;  // 120.00 EUR: the minor tier, reminded by email
    spec.due_on = due_on;
    return spec;
  }

  // The default policy's first reminder (its second stage) by email.
  static std::string first_reminder_id(const InvoiceSpec& spec) {
    auto stage_key =
        rules::make_stage_key(spec.customer_id, {rules::subject_token(spec.invoice_id, 1)}, "first_reminder");
    return rules::make_reminder_id(stage_key, v1::EMAIL);
  }

  static std::set<std::string> ids_of(const std::vector<InvoiceSpec>& specs) {
    std::set<std::string> out;
    for (const auto& spec : specs) out.insert(first_reminder_id(spec));
    return out;
  }

  // `count` customers named "<prefix>NNNN", each with one invoice due on `due_on`.
  std::vector<InvoiceSpec> customers(const std::string& prefix, int count, const std::string& due_on) const {
    std::vector<InvoiceSpec> out;
    for (int i = 0; i < count; ++i) {
      char who[64];
      std::snprintf(who, sizeof who, "%s%04d", prefix.c_str(), i);
      out.push_back(invoice_for(who, due_on));
    }
    return out;
  }

  void produce_invoices(const std::vector<InvoiceSpec>& specs) {
    kafka::Producer producer({{"bootstrap.servers", bootstrap_}});
    for (const auto& spec : specs) {
      producer.produce(topics_.input, spec.customer_id, invoice_issued(spec).SerializeAsString(),
                       {{"content-type", "application/x-protobuf"}});
    }
    ASSERT_TRUE(producer.flush(60s)) << "input records not acknowledged";
  }

  std::vector<v1::DeliveryEvent> deliveries() const {
    std::vector<v1::DeliveryEvent> out;
    for (const auto& r : read_topic_to_end(bootstrap_, topics_.delivery, 60s)) {
      v1::DeliveryEvent e;
      EXPECT_TRUE(e.ParseFromString(r.value)) << "undecodable delivery event at offset " << r.offset;
      out.push_back(std::move(e));
    }
    return out;
  }

  // Waits until every id in `ids` has a SENT delivery event.
  bool wait_for_sent(const std::set<std::string>& ids, std::chrono::milliseconds timeout) const {
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      std::set<std::string> sent;
      for (const auto& e : deliveries()) {
        if (e.status() == v1::SENT && ids.count(e.reminder_id())) sent.insert(e.reminder_id());
      }
      if (sent.size() == ids.size()) return true;
      if (SteadyClock::now() >= deadline) {
        note("SENT events cover " + std::to_string(sent.size()) + " of " + std::to_string(ids.size()) + " reminders");
        return false;
      }
      std::this_thread::sleep_for(500ms);
    }
  }

  // Waits until every id in `ids` was mailed at least once to the test's own server.
  bool wait_for_mails(const std::set<std::string>& ids, std::chrono::milliseconds timeout) const {
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      auto mailed = smtp_->by_reminder();
      std::size_t n = 0;
      for (const auto& id : ids) n += mailed.count(id);
      if (n == ids.size()) return true;
      if (SteadyClock::now() >= deadline) {
        note("mailed " + std::to_string(n) + " of " + std::to_string(ids.size()) + " reminders");
        return false;
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  struct Tally {
    std::size_t mails = 0, lost = 0, doubled = 0, unexpected = 0, sent_events = 0, other_events = 0;
  };

  // Every id in `expected` mailed exactly once and reported SENT, and nothing else mailed or
  // reported; call once the gateway has stopped.
  Tally expect_each_mailed_once(const std::set<std::string>& expected) {
    Tally t;
    auto mailed = smtp_->by_reminder();
    for (const auto& [id, n] : mailed) {
      t.mails += static_cast<std::size_t>(n);
      if (!expected.count(id) && ++t.unexpected <= 20) ADD_FAILURE() << "unexpected mail, reminder id '" << id << "'";
    }
    for (const auto& id : expected) {
      auto it = mailed.find(id);
      int n = it == mailed.end() ? 0 : it->second;
      if (n == 0 && ++t.lost <= 20) ADD_FAILURE() << "reminder " << id << " never mailed";
      if (n > 1 && ++t.doubled <= 20) ADD_FAILURE() << "reminder " << id << " mailed " << n << " times";
    }
    std::set<std::string> sent;
    for (const auto& e : deliveries()) {
      if (e.status() == v1::SENT && expected.count(e.reminder_id())) {
        sent.insert(e.reminder_id());
        ++t.sent_events;
      } else if (++t.other_events <= 20) {
        ADD_FAILURE() << "unexpected delivery event " << v1::DeliveryStatus_Name(e.status()) << " " << e.reminder_id()
                      << " " << e.error_code() << " " << e.error_message();
      }
    }
    EXPECT_EQ(t.lost + t.doubled + t.unexpected + t.other_events, 0u);
    EXPECT_EQ(sent.size(), expected.size()) << "reminders without a SENT delivery event";
    EXPECT_EQ(t.mails, expected.size());
    return t;
  }

  // Waits for every reminder in `expected` to be mailed and reported SENT, leaves a moment for
  // a doubled one to show up, stops the gateway and counts.
  Tally finish_and_count(const std::set<std::string>& expected) {
    EXPECT_TRUE(wait_for_mails(expected, 180s));
    EXPECT_TRUE(wait_for_sent(expected, 60s));
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(gateway_->running()) << "the gateway exited on its own\n" << log_tail(40);
    EXPECT_EQ(stop_gateway(), 0) << "SIGTERM must drain, commit and exit 0";
    return expect_each_mailed_once(expected);
  }

  std::map<std::string, std::string> rig_;
  std::string bootstrap_;
  fs::path work_;
  TestTopics topics_;
  int http_port_ = 0;
  int starts_ = 0;
  SteadyClock::time_point started_;
  std::unique_ptr<PrivateBroker> broker_;
  std::unique_ptr<PrivateSmtp> smtp_;
  std::unique_ptr<GatewayProcess> gateway_;
};

// --- 1. The broker down for 30 s mid-stream ------------------------------------------------------

TEST_F(FaultInjectionTest, BrokerDownThirtySecondsMidStreamNeitherLosesNorDoubles) {
  constexpr int kCustomers = 900;
  constexpr auto kOutage = 30s;
  broker_ = std::make_unique<PrivateBroker>(work_ / "kafka");
  ASSERT_TRUE(broker_->start()) << "the test's own broker did not start";
  bootstrap_ = broker_->bootstrap();
  // A running clock: a send held back while the broker is down is tried again a second later.
  ASSERT_TRUE(start_mailing(running_clock(kT0)));

  // Billing publishes all along, about 20 invoices a second, overdue: each is reminded at once.
  auto specs = customers("b", kCustomers, kOverdue);
  std::atomic<int> produced{0};
  std::atomic<bool> producing_failed{false};
  std::thread producer([&] {
    try {
      kafka::Producer p({{"bootstrap.servers", bootstrap_}});
      for (const auto& spec : specs) {
        p.produce(topics_.input, spec.customer_id, invoice_issued(spec).SerializeAsString(),
                  {{"content-type", "application/x-protobuf"}});
        if (++produced % 20 == 0) {
          // While the broker is down nothing is acknowledged: the producer keeps the records.
          p.poll();
          std::this_thread::sleep_for(1s);
        }
      }
      if (!p.flush(120s)) producing_failed = true;
    } catch (const std::exception& e) {
      note(std::string("producer: ") + e.what());
      producing_failed = true;
    }
  });
  struct JoinOnExit {
    std::thread& thread;
    ~JoinOnExit() {
      if (thread.joinable()) thread.join();
    }
  } join_producer{producer};

  // Mid-stream: once a good share has been mailed.
  ASSERT_TRUE(eventually(60s, [&] { return smtp_->by_reminder().size() >= 150; })) << "the first reminders do not go out";
  auto mails_before = smtp_->by_reminder().size();
  ASSERT_TRUE(broker_->kill());
  auto down_at = SteadyClock::now();
  note("broker killed after " + std::to_string(produced.load()) + " invoices produced, " +
       std::to_string(mails_before) + " mailed");
  // The outage is the fault itself: it lasts its 30 seconds, with the gateway running throughout.
  std::this_thread::sleep_for(kOutage);
  ASSERT_TRUE(gateway_->running()) << "the gateway exited while the broker was down\n" << log_tail(40);
  auto mails_during = smtp_->by_reminder().size() - mails_before;
  ASSERT_TRUE(broker_->start()) << "the broker did not come back";
  note("broker back after " + std::to_string(seconds_since(down_at)) + " s; " + std::to_string(mails_during) +
       " mailed while it was down, " + std::to_string(produced.load()) + " invoices produced so far");

  producer.join();
  ASSERT_FALSE(producing_failed) << "input records not acknowledged after the broker came back";
  auto t = finish_and_count(ids_of(specs));
  auto dead = read_topic(bootstrap_, topics_.dlq, 1, 2s);
  EXPECT_TRUE(dead.empty()) << dead.size() << " records dead-lettered";

  std::printf("[ summary  ] broker down %lld s: %d invoices, %zu mailed before, %zu while down, %zu mails in all, "
              "%zu SENT events, %zu lost, %zu doubled, %.1f s\n",
              static_cast<long long>(kOutage.count()), kCustomers, mails_before, mails_during, t.mails,
              t.sent_events, t.lost, t.doubled, seconds_since(started_));
  std::fflush(stdout);
}

// --- 2. The mail server down, then back ----------------------------------------------------------

TEST_F(FaultInjectionTest, SmtpServerDownThenBackEveryEmailArrivesOnce) {
  constexpr int kCustomers = 120;
  ASSERT_TRUE(start_mailing(running_clock(kT0)));
  auto specs = customers("m", kCustomers, kDueLater);
  produce_invoices(specs);
  ASSERT_TRUE(consumed(kCustomers));
  ASSERT_TRUE(smtp_->by_reminder().empty()) << "nothing is due yet";

  // Down before the reminders come due: every one of them meets a closed port.
  smtp_->stop();
  auto down_at = SteadyClock::now();
  ASSERT_TRUE(set_clock(kLater));
  // Down until every reminder has been refused at least twice.
  ASSERT_TRUE(eventually(90s, [&] {
    return admin().metric("relance_reminders_retried_total").value_or(0) >= 2 * kCustomers;
  })) << "the sends were not retried: " << admin().metric("relance_reminders_retried_total").value_or(-1) << "\n"
      << log_tail(20);
  auto retried = admin().metric("relance_reminders_retried_total").value_or(0);
  auto failed_while_down = admin().metric("relance_reminders_failed_total").value_or(0);
  EXPECT_EQ(failed_while_down, 0) << "an outage of seconds must not give reminders up";
  ASSERT_TRUE(smtp_->start()) << "the mail server did not come back";
  // Retries back off exponentially; the clock jumps past the delay the outage reached.
  ASSERT_TRUE(set_clock("2027-02-14T12:15:00Z"));
  note("mail server back after " + std::to_string(seconds_since(down_at)) + " s, " +
       std::to_string(static_cast<long long>(retried)) + " refused sends retried");

  auto t = finish_and_count(ids_of(specs));

  std::printf("[ summary  ] smtp down %.0f s: %d reminders, %lld refused sends retried, %zu mails, %zu SENT events, "
              "%zu lost, %zu doubled, %.1f s\n",
              std::chrono::duration<double>(SteadyClock::now() - down_at).count(), kCustomers,
              static_cast<long long>(retried), t.mails, t.sent_events, t.lost, t.doubled, seconds_since(started_));
  std::fflush(stdout);
}

// --- 3. The SMS provider failing for a minute ----------------------------------------------------

// A mobile number libphonenumber accepts for France, unique per index.
std::string french_mobile(int index) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "+336%08d", 20'000'000 + index);
  return buffer;
}

TEST_F(FaultInjectionTest, ProviderFailingForAMinuteSendsEverySmsExactlyOnce) {
  constexpr int kCustomers = 60;
  constexpr auto kOutage = 60s;
  topics_.create(bootstrap_, 2);
  // Answers at once rather than relaying to Prism: the contract is checked by the Twilio tests.
  FakeTwilio provider(kAccountSid, kTwilioAuthToken);
  // The outage: 500s, some after the message was created, and answers that come after the
  // gateway's 2 s timeout although the message was created. Those two must be found by the
  // look-up and never sent again.
  std::vector<FakeResponse> outage;
  for (int i = 0; i < kCustomers / 2; ++i) {
    outage.push_back({.status = 500});
    outage.push_back({.status = 201, .delay = 3s, .create = true});
    outage.push_back({.status = 500, .create = true});
  }
  provider.script(outage);
  provider.set_default({.status = 500});
  write_config(email_channel(rig_["SMTP_URL"]) + "  twilio:\n    base_url: " + provider.base_url() +
                   "\n    account_sid: " + kAccountSid + "\n    auth_token_env: " + kTwilioTokenEnv +
                   "\n    sms_from: \"" + kSmsFrom + "\"\n    timeout: 2s\n",
               "    - {name: first_reminder, offset_days: 3, tone: courteous, channels: {minor: [sms], middle: [sms], "
               "large: [sms]}}\n",
               running_clock(kT0));
  start_gateway();
  ASSERT_TRUE(wait_ready());

  std::map<std::string, std::string> phone_of;  // customer id → number
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < kCustomers; ++i) {
    auto spec = invoice_for("s" + std::to_string(i), kOverdue);
    auto event = invoice_issued(spec);
    auto* customer = event.mutable_invoice_issued()->mutable_customer();
    customer->set_phone(french_mobile(i));
    customer->set_country("FR");
    auto* consent = customer->add_consents();
    consent->set_channel(v1::SMS);
    consent->set_granted(true);
    phone_of[spec.customer_id] = customer->phone();
    records.emplace_back(spec.customer_id, event.SerializeAsString());
  }
  auto failing_since = SteadyClock::now();
  {
    kafka::Producer producer({{"bootstrap.servers", bootstrap_}});
    for (const auto& [key, value] : records) producer.produce(topics_.input, key, value, {{"content-type", "application/x-protobuf"}});
    ASSERT_TRUE(producer.flush(30s));
  }
  // The outage lasts its minute whatever the gateway does meanwhile.
  std::this_thread::sleep_for(kOutage - (SteadyClock::now() - failing_since));
  ASSERT_TRUE(gateway_->running()) << log_tail(40);
  std::size_t created_during = provider.messages().size();
  std::size_t creates_during = 0;
  for (const auto& r : provider.requests()) creates_during += r.method == "POST" ? 1 : 0;
  provider.set_default({});
  // Retries back off exponentially; the clock jumps past the longest delay the outage reached,
  // as the minutes would pass in production.
  ASSERT_TRUE(set_clock("2027-02-01T10:15:00Z"));
  note("provider recovers after " + std::to_string(creates_during) + " create requests, " +
       std::to_string(created_during) + " of which created a message");

  auto all_sent = [&] {
    std::set<std::string> numbers;
    for (const auto& m : provider.messages()) numbers.insert(m.to);
    return numbers.size() >= static_cast<std::size_t>(kCustomers);
  };
  EXPECT_TRUE(eventually(150s, all_sent)) << provider.messages().size() << " messages\n" << log_tail(20);
  std::set<std::string> reminder_ids;
  EXPECT_TRUE(eventually(60s, [&] {
    reminder_ids.clear();
    for (const auto& e : deliveries()) {
      if (e.status() == v1::SENT) reminder_ids.insert(e.reminder_id());
    }
    return reminder_ids.size() >= static_cast<std::size_t>(kCustomers);
  }));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(stop_gateway(), 0) << "SIGTERM must drain, commit and exit 0";

  // At the provider: one message per customer, whatever the outage answered.
  std::map<std::string, int> per_number;
  for (const auto& m : provider.messages()) ++per_number[m.to];
  std::size_t lost = 0, doubled = 0;
  for (const auto& [customer, phone] : phone_of) {
    int n = per_number[phone];
    if (n == 0 && ++lost <= 20) ADD_FAILURE() << "no SMS for " << customer;
    if (n > 1 && ++doubled <= 20) {
      // What the provider saw for that number, to tell which answer led to the second message.
      std::string seen;
      for (const auto& r : provider.requests()) {
        auto to = std::find_if(r.form.begin(), r.form.end(), [](const auto& f) { return f.first == "To"; });
        bool mine = (to != r.form.end() && to->second == phone) || r.query.find(phone.substr(1)) != std::string::npos;
        if (!mine) continue;
        seen += "\n  " + r.method + " at +" +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(r.at - failing_since).count()) +
                " ms answered " + std::to_string(r.answered);
      }
      for (const auto& m : provider.messages()) {
        if (m.to == phone) seen += "\n  message " + m.sid;
      }
      ADD_FAILURE() << n << " SMS for " << customer << seen;
    }
  }
  EXPECT_EQ(provider.messages().size(), static_cast<std::size_t>(kCustomers));
  // On the delivery topic: one SENT per reminder, naming the message that exists, and nothing else.
  std::map<std::string, std::string> sid_to_number;
  for (const auto& m : provider.messages()) sid_to_number[m.sid] = m.to;
  std::map<std::string, int> sent_per_customer;
  std::size_t reconciled = 0, other = 0;
  for (const auto& e : deliveries()) {
    if (e.status() != v1::SENT) {
      if (++other <= 20) ADD_FAILURE() << "unexpected " << v1::DeliveryStatus_Name(e.status()) << " " << e.error_code();
      continue;
    }
    ++sent_per_customer[e.customer_id()];
    EXPECT_EQ(e.channel(), v1::SMS);
    EXPECT_EQ(sid_to_number[e.provider_message_id()], phone_of[e.customer_id()]) << e.reminder_id();
    reconciled += e.provider_response() == "reconciled" ? 1 : 0;
  }
  for (const auto& [customer, phone] : phone_of) EXPECT_EQ(sent_per_customer[customer], 1) << customer;
  EXPECT_GT(reconciled, 0u) << "no send was reconciled: the outage's timeouts after creation were not exercised";
  std::size_t creates = 0;
  for (const auto& r : provider.requests()) creates += r.method == "POST" ? 1 : 0;

  std::printf("[ summary  ] provider failing %lld s: %d SMS reminders, %zu create requests (%zu during the outage, "
              "%zu messages created then), %zu messages, %zu SENT (%zu reconciled after a timeout or 500), %zu lost, "
              "%zu doubled, %.1f s\n",
              static_cast<long long>(kOutage.count()), kCustomers, creates, creates_during, created_during,
              provider.messages().size(), reminder_ids.size(), reconciled, lost, doubled, seconds_since(started_));
  std::fflush(stdout);
}

// --- 4. The store's disk full ------------------------------------------------------------------

TEST_F(FaultInjectionTest, StoreDiskFullStopsConsumingSaysWhyAndLosesNothing) {
  constexpr int kCustomers = 150;
  // The store's writes fail with ENOSPC while the trigger file exists (tests/support/enospc_shim.cc).
  const auto store = work_ / "store";
  const auto full = work_ / "disk-full";
  fs::create_directories(store);
  std::map<std::string, std::string> env{{"LD_PRELOAD", RELANCE_ENOSPC_SHIM},
                                         {"RELANCE_ENOSPC_DIR", store.string()},
                                         {"RELANCE_ENOSPC_TRIGGER", full.string()}};
  // Sanitizer builds: their runtime need not come first when the shim is preloaded.
  const char* asan = std::getenv("ASAN_OPTIONS");
  env["ASAN_OPTIONS"] = std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "verify_asan_link_order=0";
  ASSERT_TRUE(start_mailing(frozen_clock(kT0), env));

  // Known before the disk fills; due once the clock moves.
  auto before = customers("d", kCustomers, kDueLater);
  produce_invoices(before);
  ASSERT_TRUE(consumed(kCustomers));
  std::ofstream(full) << "full\n";
  auto full_since = SteadyClock::now();
  ASSERT_TRUE(set_clock(kLater));
  // Published while the disk is full, due as well.
  auto during = customers("f", kCustomers, kDueLater);
  produce_invoices(during);

  // The gateway says why, in /readyz, the metrics and the log.
  HttpAnswer readiness;
  EXPECT_TRUE(eventually(30s, [&] {
    readiness = admin().readiness();
    return readiness.status == 503 && readiness.body.find("no space") != std::string::npos;
  })) << "GET /readyz: " << readiness.status << " " << readiness.body;
  EXPECT_EQ(admin().metric("relance_store_unwritable").value_or(-1), 1);
  EXPECT_GE(admin().metric("relance_store_write_failures_total").value_or(0), 1);
  EXPECT_NE(read_file(work_ / "gateway.log").find("store full"), std::string::npos) << log_tail(20);
  // And holds: nothing read, nothing sent, for as long as the disk stays full (a few seconds here).
  auto consumed_when_full = admin().metric("relance_records_consumed_total").value_or(-1);
  std::this_thread::sleep_for(5s);
  EXPECT_TRUE(gateway_->running()) << "the gateway exited on a full disk\n" << log_tail(40);
  EXPECT_EQ(admin().metric("relance_records_consumed_total").value_or(-1), consumed_when_full)
      << "records consumed while the store refused writes";
  EXPECT_LE(consumed_when_full, kCustomers + 500.0) << "at most one polling round read past the failure";
  auto mailed_while_full = smtp_->by_reminder().size();
  EXPECT_EQ(mailed_while_full, 0u) << "sent while its sending mark could not be recorded";
  note("held for " + std::to_string(seconds_since(full_since)) + " s: readyz '" + readiness.body.substr(0, 120) +
       "'");

  // Space comes back: it goes on by itself.
  fs::remove(full);
  ASSERT_TRUE(wait_ready(60s));
  auto expected = ids_of(before);
  for (const auto& id : ids_of(during)) expected.insert(id);
  EXPECT_TRUE(wait_for_mails(expected, 120s));
  EXPECT_TRUE(wait_for_sent(expected, 60s));
  EXPECT_EQ(admin().metric("relance_store_unwritable").value_or(-1), 0);

  // Full again, with more invoices due, and the gateway stopped while it is: nothing is
  // committed past what the store holds, so a restart with space sends them, and only them.
  std::ofstream(full) << "full\n";
  auto after_restart = customers("r", kCustomers / 3, kDueLater);
  produce_invoices(after_restart);
  EXPECT_TRUE(eventually(30s, [&] { return admin().readiness().status == 503; }));
  EXPECT_EQ(stop_gateway(), 0) << "SIGTERM must stop cleanly on a full disk too";
  fs::remove(full);
  start_gateway(env);
  ASSERT_TRUE(wait_ready());
  ASSERT_TRUE(set_clock(kLater));
  for (const auto& id : ids_of(after_restart)) expected.insert(id);
  auto t = finish_and_count(expected);

  std::printf("[ summary  ] store disk full: %zu reminders (%d due as it filled, %d published while full, %d while "
              "full again and restarted), %.0f records consumed when it held, %zu mails, %zu SENT events, %zu lost, "
              "%zu doubled, %.1f s\n",
              expected.size(), kCustomers, kCustomers, kCustomers / 3, consumed_when_full, t.mails, t.sent_events,
              t.lost, t.doubled, seconds_since(started_));
  std::fflush(stdout);
}

// --- 5. 10,000 malformed records among good ones -------------------------------------------------

TEST_F(FaultInjectionTest, TenThousandMalformedRecordsAllDeadLetteredWithAReasonAndEveryGoodOneProcessed) {
  constexpr int kMalformed = 10'000;
  constexpr int kGood = 200;
  ASSERT_TRUE(start_mailing(frozen_clock(kT0)));

  // Each malformed record is unique (it carries its number), so the dead-letter topic can be
  // matched against what was produced. The reason is known for most kinds; random bytes and a
  // cut protobuf may fail to decode or decode into something invalid.
  enum Kind { kGarbage, kTruncated, kBadJson, kNoEventId, kNoKind, kNegativeAmount, kBadDate, kUnknownType, kOversized };
  const char* const kKindNames[] = {"garbage bytes",  "truncated protobuf", "bad JSON",          "no event id",
                                    "no kind",        "negative amount",    "impossible date",   "unknown content type",
                                    "oversized (256 KiB)"};
  const std::map<Kind, std::string> kReason{{kBadJson, "undecodable"},         {kNoEventId, "missing_event_id"},
                                            {kNoKind, "missing_kind"},         {kNegativeAmount, "negative_amount"},
                                            {kBadDate, "invalid_date"},        {kUnknownType, "unsupported_content_type"},
                                            {kOversized, "undecodable"}};
  struct Bad {
    Kind kind;
    kafka::Headers headers;
  };
  std::mt19937 rng(20261207);
  std::map<std::string, Bad> bad;  // value → what it is
  auto binary = kafka::Headers{{"content-type", "application/x-protobuf"}};
  auto json = kafka::Headers{{"content-type", "application/json"}};
  for (int i = 0; bad.size() < static_cast<std::size_t>(kMalformed); ++i) {
    auto n = std::to_string(i);
    auto kind = i % 500 == 499 ? kOversized : static_cast<Kind>(i % 8);
    auto spec = invoice_for("bad" + n, kOverdue);
    auto event = invoice_issued(spec);
    std::string value;
    kafka::Headers headers = binary;
    switch (kind) {
      case kGarbage: {
        // 0xff 0xff...: a field number no protobuf accepts, so it never decodes by chance.
        value = "\xff\xff\xff\xff\x0f" + n;
        for (int b = 0; b < 24; ++b) value.push_back(static_cast<char>(rng() & 0xff));
        break;
      }
      case kTruncated:
        value = event.SerializeAsString();
        value.resize(value.size() / 2);
        break;
      case kBadJson:
        value = "{\"eventId\": \"bad-" + n + "\", \"invoiceIssued\": {";
        headers = json;
        break;
      case kNoEventId:
        event.clear_event_id();
        event.set_source("billing-" + n);
        value = event.SerializeAsString();
        break;
      case kNoKind:
        event.clear_invoice_issued();
        value = event.SerializeAsString();
        break;
      case kNegativeAmount:
        spec.amount_due = -500;
        value = invoice_issued(spec).SerializeAsString();
        break;
      case kBadDate:
        spec.due_on = "2027-02-30";
        value = invoice_issued(spec).SerializeAsString();
        break;
      case kUnknownType:
        value = event.SerializeAsString();
        headers = {{"content-type", "text/csv"}};
        break;
      case kOversized:
        value = "\xff\xff\xff\xff\x0f" + n + std::string(256 * 1024, 'x');
        break;
    }
    bad.emplace(value, Bad{kind, headers});
  }
  auto good = customers("g", kGood, kOverdue);

  // Interleaved at random: each good invoice among about fifty malformed records.
  std::vector<const std::pair<const std::string, Bad>*> order;
  for (const auto& entry : bad) order.push_back(&entry);
  std::vector<int> slots(order.size() + good.size(), -1);
  for (int i = 0; i < kGood; ++i) slots[static_cast<std::size_t>(i)] = i;
  std::shuffle(slots.begin(), slots.end(), rng);
  {
    kafka::Producer producer({{"bootstrap.servers", bootstrap_}});
    std::size_t next_bad = 0;
    for (auto slot : slots) {
      if (slot >= 0) {
        const auto& spec = good[static_cast<std::size_t>(slot)];
        producer.produce(topics_.input, spec.customer_id, invoice_issued(spec).SerializeAsString(), binary);
      } else {
        const auto& [value, what] = *order[next_bad];
        producer.produce(topics_.input, "bad-key-" + std::to_string(next_bad), value, what.headers);
        ++next_bad;
      }
      if ((next_bad + 1) % 1000 == 0) producer.poll();
    }
    ASSERT_TRUE(producer.flush(120s)) << "input records not acknowledged";
  }

  auto dead = read_topic(bootstrap_, topics_.dlq, kMalformed, 120s, 2s);
  auto t = finish_and_count(ids_of(good));

  EXPECT_EQ(dead.size(), static_cast<std::size_t>(kMalformed));
  std::map<std::string, int> dead_per_value;
  std::map<std::string, int> per_reason;
  std::map<Kind, int> per_kind;
  std::size_t unknown = 0, wrong_reason = 0, without_reason = 0;
  for (const auto& r : dead) {
    auto it = bad.find(r.value);
    if (it == bad.end()) {
      if (++unknown <= 20) ADD_FAILURE() << "dead-lettered a record that was not malformed, key " << r.key;
      continue;
    }
    ++dead_per_value[r.value];
    ++per_kind[it->second.kind];
    auto reason = r.header("relance-error");
    ++per_reason[reason];
    if ((reason.empty() || r.header("relance-error-message").empty()) && ++without_reason <= 20) {
      ADD_FAILURE() << kKindNames[it->second.kind] << " dead-lettered without a reason";
    }
    if (auto want = kReason.find(it->second.kind); want != kReason.end() && reason != want->second) {
      if (++wrong_reason <= 20) {
        ADD_FAILURE() << kKindNames[it->second.kind] << ": reason '" << reason << "', expected '" << want->second
                      << "' (" << r.header("relance-error-message") << ")";
      }
    }
    EXPECT_EQ(r.header("relance-source-topic"), topics_.input);
    EXPECT_FALSE(r.header("relance-source-offset").empty());
  }
  std::size_t twice = 0;
  for (const auto& [value, n] : dead_per_value) twice += n > 1 ? 1 : 0;
  EXPECT_EQ(unknown + wrong_reason + without_reason + twice, 0u);
  EXPECT_EQ(dead_per_value.size(), bad.size()) << "malformed records missing from the dead-letter topic";

  std::string kinds, reasons;
  for (const auto& [kind, n] : per_kind) kinds += std::string(kinds.empty() ? "" : ", ") + kKindNames[kind] + " " + std::to_string(n);
  for (const auto& [reason, n] : per_reason) reasons += std::string(reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
  std::printf("[ summary  ] malformed: %zu dead-lettered of %d (%s; reasons: %s), %zu twice, %d good invoices, %zu "
              "mails, %zu SENT events, %zu lost, %zu doubled, %.1f s\n",
              dead.size(), kMalformed, kinds.c_str(), reasons.c_str(), twice, kGood, t.mails, t.sent_events, t.lost,
              t.doubled, seconds_since(started_));
  std::fflush(stdout);
}

}  // namespace
}  // namespace relance::testing
