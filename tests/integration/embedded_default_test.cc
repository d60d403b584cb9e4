// `relance run` with no configuration: the embedded Kafka cluster and the capture channel. A
// separate Kafka client produces to it, as a new user would with kcat.
#include <gtest/gtest.h>
#include <unistd.h>

#include "relance/v1/delivery.pb.h"
#include "support/gateway_process.h"
#include "support/kafka_test_client.h"
#include "support/sample_events.h"

namespace relance::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(EmbeddedDefault, ServesKafkaOnLoopbackAndCapturesTheRenderedMessage) {
  auto work = fs::temp_directory_path() / ("relance-embedded-" + std::to_string(getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  // Port 0: the default 8080 may be taken on a shared machine. The clock is set to a Tuesday
  // morning so that the default policy's quiet hours never hold the message back.
  GatewayProcess gateway({RELANCE_BINARY, "run"},
                         {{"RELANCE_HTTP__LISTEN", "127.0.0.1:0"},
                          {"RELANCE_CLOCK__MODE", "simulated"},
                          {"RELANCE_CLOCK__SIMULATED_START", "2026-11-24T10:00:00Z"}},
                         work, work / "gateway.log");

  auto bootstrap_file = work / "relance-data" / "kafka-bootstrap";
  ASSERT_TRUE(eventually(30s, [&] { return fs::exists(bootstrap_file) && fs::file_size(bootstrap_file) > 0; }))
      << gateway.log();
  auto bootstrap = read_file(bootstrap_file);
  bootstrap.erase(bootstrap.find_last_not_of("\n") + 1);
  ASSERT_EQ(bootstrap.rfind("127.0.0.1:", 0), 0u) << bootstrap;

  InvoiceSpec spec;
  spec.locale = "fr-FR";
  spec.email = "jeanne@example.fr";
  spec.due_on = "2026-11-20";
  std::string bytes;
  invoice_issued(spec).SerializeToString(&bytes);
  produce(bootstrap, "billing.invoice-events", spec.customer_id, bytes);

  auto outbox = work / "relance-data" / "outbox";
  fs::path captured;
  ASSERT_TRUE(eventually(30s, [&] {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(outbox, ec)) {
      if (entry.path().filename().string().rfind("rem_", 0) == 0) captured = entry.path();
    }
    return !captured.empty();
  })) << gateway.log();
  auto text = read_file(captured);
  EXPECT_NE(text.find("To: jeanne@example.fr"), std::string::npos) << text;
  EXPECT_NE(text.find("120,00\u00a0€"), std::string::npos) << text;  // fr-FR formatting
  EXPECT_NE(text.find("F-2026-001"), std::string::npos) << text;
  EXPECT_NE(text.find(spec.payment_link), std::string::npos) << text;

  auto records = read_topic(bootstrap, "relance.delivery-events", 1, 30s);
  ASSERT_EQ(records.size(), 1u);
  relance::v1::DeliveryEvent event;
  ASSERT_TRUE(event.ParseFromString(records[0].value));
  EXPECT_EQ(event.status(), relance::v1::SENT);
  EXPECT_EQ(event.provider(), "capture");
  EXPECT_EQ(event.customer_id(), spec.customer_id);

  EXPECT_EQ(gateway.stop(), 0) << gateway.log();
  fs::remove_all(work);
}

}  // namespace
}  // namespace relance::testing
