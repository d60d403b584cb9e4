// Secrets come from the environment or from files only the gateway's user can read; every way a
// secret file can be unfit is refused with the field's path, and no message quotes a secret.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config_loader.h"

namespace relance::config {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSecret = "s3cret-value-that-must-not-leak";

class SecretFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("relance-secrets-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    auto path = dir_ / name;
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
    return path.string();
  }

  // The errors of loading `yaml`, each checked not to quote kSecret.
  std::vector<ConfigError> errors_of(const std::string& yaml, const Environment& env = {}) {
    try {
      load_config(yaml, env);
    } catch (const ConfigException& e) {
      EXPECT_EQ(std::string(e.what()).find(kSecret), std::string::npos) << e.what();
      return e.errors();
    }
    return {};
  }

  static const ConfigError* find(const std::vector<ConfigError>& errors, const std::string& path) {
    for (const auto& e : errors) {
      if (e.path == path) return &e;
    }
    return nullptr;
  }

  fs::path dir_;
};

TEST_F(SecretFiles, EverySecretCanComeFromAFileReadAtLoadTime) {
  auto token = write("admin", std::string(kSecret) + "\n");  // the final line break is dropped
  auto link = write("link", "link-secret-0123456789");
  auto password = write("smtp", "smtp-password");
  auto twilio = write("twilio", "twilio-auth-token");
  auto signing = write("signing", "twilio-signing-key");
  auto call = write("call", "call-task-secret-0123");
  auto kafka = write("kafka", "kafka-password");
  auto loaded = load_config(R"(
kafka:
  properties: {security.protocol: SASL_SSL, sasl.username: relance}
  property_files: {sasl.password: )" + kafka + R"(}
channels:
  email: {smtp_url: "smtp://mail.example.com:587", from: billing@example.com, username: relance, password_file: )" +
                                password + R"(}
  twilio: {account_sid: AC0123, auth_token_file: )" + twilio + ", signing_secret_file: " + signing +
                                R"(, sms_from: "+33612345678"}
  call_task: {webhook_url: "https://helpdesk.example.com/hook", secret_file: )" + call + R"(}
http:
  public_url: https://relance.example.com
  admin_token_file: )" + token + R"(
  link_secret_file: )" + link + "\n",
                            {});
  const auto& c = loaded.config;
  const auto& env = loaded.environment;
  EXPECT_EQ(secret(env, c.http().admin_token_env(), c.http().admin_token_file()), kSecret);
  EXPECT_EQ(secret(env, c.http().link_secret_env(), c.http().link_secret_file()), "link-secret-0123456789");
  EXPECT_EQ(secret(env, "", c.channels().email().password_file()), "smtp-password");
  EXPECT_EQ(secret(env, "", c.channels().twilio().auth_token_file()), "twilio-auth-token");
  EXPECT_EQ(secret(env, "", c.channels().twilio().signing_secret_file()), "twilio-signing-key");
  EXPECT_EQ(secret(env, "", c.channels().call_task().secret_file()), "call-task-secret-0123");
  // librdkafka gets a property read from a file like any other.
  EXPECT_EQ(c.kafka().properties().at("sasl.password"), "kafka-password");
  EXPECT_EQ(c.kafka().properties().at("sasl.username"), "relance");
}

TEST_F(SecretFiles, EnvironmentVariablesWorkAsBefore) {
  auto loaded = load_config("http: {admin_token_env: ADMIN}\n", {{"ADMIN", kSecret}});
  EXPECT_EQ(secret(loaded.environment, loaded.config.http().admin_token_env(), ""), kSecret);
  auto errors = errors_of("http: {admin_token_env: ADMIN}\n", {{"ADMIN", "short"}});
  ASSERT_TRUE(find(errors, "http.admin_token_env"));
}

TEST_F(SecretFiles, AFileOpenToGroupOrOthersIsRefused) {
  for (mode_t mode : {0640, 0604, 0620, 0602, 0644, 0660}) {
    auto file = write("token", kSecret, mode);
    auto errors = errors_of("http: {admin_token_file: " + file + "}\n");
    const auto* e = find(errors, "http.admin_token_file");
    ASSERT_TRUE(e) << std::oct << mode;
    EXPECT_NE(e->message.find("chmod 600"), std::string::npos) << e->message;
  }
  auto readable_by_owner = write("token", kSecret, 0400);
  EXPECT_TRUE(errors_of("http: {admin_token_file: " + readable_by_owner + "}\n").empty());
}

TEST_F(SecretFiles, AFileOwnedBySomeoneElseIsRefused) {
  // Run as root, the test gives its own file away; otherwise a file of root's stands for it.
  std::string file = "/etc/hostname";
  if (::geteuid() == 0) {
    file = write("link", "link-secret-0123456789");
    ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
  }
  auto errors = errors_of("http: {link_secret_file: " + file + "}\n");
  const auto* e = find(errors, "http.link_secret_file");
  ASSERT_TRUE(e);
  EXPECT_NE(e->message.find("owned by uid"), std::string::npos) << e->message;
}

TEST_F(SecretFiles, BothTheVariableAndTheFileIsRefused) {
  auto file = write("token", kSecret);
  auto errors = errors_of("http: {admin_token_env: ADMIN, admin_token_file: " + file + "}\n", {{"ADMIN", kSecret}});
  const auto* e = find(errors, "http.admin_token_file");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "set admin_token_env or admin_token_file, not both");
  auto call = errors_of("channels: {call_task: {webhook_url: 'https://h.example.com', secret_env: S, secret_file: " +
                            file + "}}\n",
                        {{"S", kSecret}});
  EXPECT_TRUE(find(call, "channels.call_task.secret_file"));
}

TEST_F(SecretFiles, MissingEmptyShortAndNonRegularFilesAreRefused) {
  EXPECT_TRUE(find(errors_of("http: {admin_token_file: " + (dir_ / "absent").string() + "}\n"), "http.admin_token_file"));
  auto empty = write("empty", "\n");
  EXPECT_TRUE(find(errors_of("channels: {email: {smtp_url: 'smtp://m.example.com', from: a@example.com, password_file: " +
                             empty + "}}\n"),
                   "channels.email.password_file"));
  auto short_token = write("short", "short");
  auto short_errors = errors_of("http: {admin_token_file: " + short_token + "}\n");
  const auto* e = find(short_errors, "http.admin_token_file");
  ASSERT_TRUE(e);
  EXPECT_NE(e->message.find("at least 16 characters"), std::string::npos) << e->message;
  EXPECT_TRUE(find(errors_of("http: {admin_token_file: " + dir_.string() + "}\n"), "http.admin_token_file"));
}

TEST_F(SecretFiles, TwilioSecretsFromFilesAreCheckedLikeTheOthers) {
  auto open_file = write("twilio", kSecret, 0644);
  auto errors = errors_of(R"(
http: {public_url: "https://relance.example.com"}
channels:
  twilio: {account_sid: AC0123, sms_from: "+33612345678", auth_token_file: )" + open_file + "}\n");
  EXPECT_TRUE(find(errors, "channels.twilio.auth_token_file"));
  auto none = errors_of(R"(
http: {public_url: "https://relance.example.com"}
channels:
  twilio: {account_sid: AC0123, sms_from: "+33612345678"}
)");
  EXPECT_TRUE(find(none, "channels.twilio.auth_token_env"));
}

TEST_F(SecretFiles, AKafkaSecretWrittenInTheFileIsRefusedButAnOverrideIsTaken) {
  auto errors = errors_of("kafka:\n  properties: {sasl.password: " + std::string(kSecret) + ", ssl.key.password: x}\n");
  const auto* e = find(errors, "kafka.properties.sasl.password");
  ASSERT_TRUE(e);
  EXPECT_NE(e->message.find("RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD"), std::string::npos) << e->message;
  EXPECT_TRUE(find(errors, "kafka.properties.ssl.key.password"));

  auto loaded = load_config("kafka:\n  properties: {sasl.username: relance}\n",
                            {{"RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD", kSecret}});
  EXPECT_EQ(loaded.config.kafka().properties().at("sasl.password"), kSecret);
  for (const auto& line : loaded.overrides) EXPECT_EQ(line.find(kSecret), std::string::npos) << line;

  auto file = write("kafka", kSecret, 0644);
  EXPECT_TRUE(find(errors_of("kafka:\n  property_files: {sasl.password: " + file + "}\n"),
                   "kafka.property_files.sasl.password"));
}

TEST_F(SecretFiles, TlsNeedsBothACertificateAndAClosedKeyFile) {
  auto cert = write("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0644);
  auto key = write("key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  EXPECT_TRUE(errors_of("http: {tls_cert: " + cert + ", tls_key: " + key + "}\n").empty());
  EXPECT_TRUE(find(errors_of("http: {tls_cert: " + cert + "}\n"), "http.tls_key"));
  EXPECT_TRUE(find(errors_of("http: {tls_key: " + key + "}\n"), "http.tls_cert"));
  EXPECT_TRUE(find(errors_of("http: {tls_cert: " + (dir_ / "none.pem").string() + ", tls_key: " + key + "}\n"),
                   "http.tls_cert"));
  EXPECT_TRUE(find(errors_of("http: {tls_cert: " + key + ", tls_key: " + key + "}\n"), "http.tls_cert"));
  auto open_key = write("open-key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", 0644);
  EXPECT_TRUE(find(errors_of("http: {tls_cert: " + cert + ", tls_key: " + open_key + "}\n"), "http.tls_key"));
}

}  // namespace
}  // namespace relance::config
