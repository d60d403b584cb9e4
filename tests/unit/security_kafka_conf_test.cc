// kafka.properties reach librdkafka unchanged, TLS and SASL settings included, whether written in
// the file, given by an environment override or read from a secret file; the secret ones are
// masked wherever the configuration is reported.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "config/config_loader.h"
#include "kafka/kafka_client.h"

namespace relance::kafka {
namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> dump(const ConfPtr& conf) {
  std::size_t count = 0;
  const char** pairs = rd_kafka_conf_dump(conf.get(), &count);
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i + 1 < count; i += 2) out[pairs[i]] = pairs[i + 1];
  rd_kafka_conf_dump_free(pairs, count);
  return out;
}

constexpr const char* kSaslSsl = R"(
kafka:
  brokers: broker-1.example.com:9093
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: SCRAM-SHA-512
    sasl.username: relance
    ssl.ca.location: /etc/relance/kafka-ca.pem
    ssl.endpoint.identification.algorithm: https
)";

TEST(SecurityKafkaConf, SaslSslPropertiesReachLibrdkafkaUnchanged) {
  auto loaded = config::load_config(kSaslSsl, {{"RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD", "kafka-pass-from-env"}});
  const auto& props = loaded.config.kafka().properties();
  auto conf = make_conf(Properties(props.begin(), props.end()));
  auto set = dump(conf);
  EXPECT_EQ(set["security.protocol"], "sasl_ssl");  // librdkafka prints its enums in lower case
  EXPECT_EQ(set["sasl.mechanisms"], "SCRAM-SHA-512");  // sasl.mechanism is its alias
  EXPECT_EQ(set["sasl.username"], "relance");
  EXPECT_EQ(set["sasl.password"], "kafka-pass-from-env");
  EXPECT_EQ(set["ssl.ca.location"], "/etc/relance/kafka-ca.pem");
  EXPECT_EQ(set["ssl.endpoint.identification.algorithm"], "https");
}

TEST(SecurityKafkaConf, APasswordFromASecretFileReachesLibrdkafka) {
  auto file = fs::temp_directory_path() / ("relance-kafka-secret-" + std::to_string(::getpid()));
  std::ofstream(file) << "kafka-pass-from-file\n";
  ::chmod(file.c_str(), 0600);
  auto loaded = config::load_config(std::string(kSaslSsl) + "  property_files:\n    sasl.password: " + file.string() + "\n", {});
  fs::remove(file);
  const auto& props = loaded.config.kafka().properties();
  auto set = dump(make_conf(Properties(props.begin(), props.end())));
  EXPECT_EQ(set["sasl.password"], "kafka-pass-from-file");
}

TEST(SecurityKafkaConf, AnUnknownPropertyIsRefusedWithoutItsValue) {
  try {
    make_conf({{"sasl.pasword", "kafka-pass-typo"}});
    FAIL() << "a misspelt property was accepted";
  } catch (const KafkaError& e) {
    EXPECT_NE(std::string(e.what()).find("sasl.pasword"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("kafka-pass-typo"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace relance::kafka
