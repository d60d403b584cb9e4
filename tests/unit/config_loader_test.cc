#include "config/config_loader.h"

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

namespace relance::config {
namespace {

using google::protobuf::util::TimeUtil;

std::vector<ConfigError> errors_of(const std::string& yaml, const Environment& env = {}) {
  try {
    load_config(yaml, env);
  } catch (const ConfigException& e) {
    return e.errors();
  }
  return {};
}

bool has_error(const std::vector<ConfigError>& errors, const std::string& path) {
  for (const auto& e : errors) {
    if (e.path == path) return true;
  }
  return false;
}

TEST(ConfigLoader, DefaultsAreTheEmbeddedSetup) {
  auto loaded = load_config("", {});
  const auto& c = loaded.config;
  EXPECT_EQ(c.kafka().brokers(), "");
  EXPECT_EQ(c.kafka().input_topic(), "billing.invoice-events");
  EXPECT_EQ(c.kafka().delivery_topic(), "relance.delivery-events");
  EXPECT_EQ(c.kafka().dlq_topic(), "relance.dlq");
  EXPECT_EQ(c.kafka().call_task_topic(), "relance.call-tasks");
  EXPECT_EQ(c.clock().mode(), relance::v1::SYSTEM);
  EXPECT_TRUE(c.channels().email().smtp_url().empty());
  EXPECT_FALSE(c.policy().stages().empty());
}

TEST(ConfigLoader, ReadsYamlOverDefaults) {
  auto loaded = load_config(R"(
kafka:
  brokers: 10.0.0.1:9092,10.0.0.2:9092
  group_id: reminders
  commit_interval: 250ms
  properties:
    security.protocol: SASL_SSL
channels:
  email:
    smtp_url: smtp://mail.example.com:587
    from: billing@example.com
clock:
  mode: simulated
  speed: 3600
policy:
  stages:
    - name: first
      offset_days: 5
      tone: courteous
      channels: {minor: [email]}
)",
                            {});
  const auto& c = loaded.config;
  EXPECT_EQ(c.kafka().brokers(), "10.0.0.1:9092,10.0.0.2:9092");
  EXPECT_EQ(c.kafka().group_id(), "reminders");
  EXPECT_EQ(c.kafka().input_topic(), "billing.invoice-events");  // default kept
  EXPECT_EQ(TimeUtil::DurationToMilliseconds(c.kafka().commit_interval()), 250);
  EXPECT_EQ(c.kafka().properties().at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(c.clock().mode(), relance::v1::SIMULATED);
  EXPECT_EQ(c.clock().speed(), 3600.0);
  ASSERT_EQ(c.policy().stages_size(), 1);  // a list replaces the default list
  EXPECT_EQ(c.policy().stages(0).tone(), relance::v1::COURTEOUS);
  EXPECT_EQ(c.policy().stages(0).channels().minor(0), relance::v1::EMAIL);
}

TEST(ConfigLoader, EnvironmentOverridesApplyBeforeValidationAndMaskSecrets) {
  Environment env{{"RELANCE_KAFKA__BROKERS", "broker:9092"},
                  {"RELANCE_KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2"},
                  {"RELANCE_CLOCK__MODE", "simulated"},
                  {"RELANCE_CACHE_DIR", "/not/a/config/field"},
                  {"SMTP_PASSWORD", "s3cret"},
                  {"RELANCE_CHANNELS__EMAIL__PASSWORD_ENV", "SMTP_PASSWORD"}};
  auto loaded = load_config("kafka:\n  brokers: ignored:1\n", env);
  EXPECT_EQ(loaded.config.kafka().brokers(), "broker:9092");
  EXPECT_EQ(loaded.config.kafka().properties().at("sasl.password"), "hunter2");
  EXPECT_EQ(loaded.config.clock().mode(), relance::v1::SIMULATED);
  bool saw_masked = false;
  for (const auto& line : loaded.overrides) {
    EXPECT_EQ(line.find("hunter2"), std::string::npos) << line;
    if (line == "kafka.properties.sasl.password = ****") saw_masked = true;
  }
  EXPECT_TRUE(saw_masked);
  EXPECT_EQ(loaded.overrides.size(), 4u);
}

TEST(ConfigLoader, MisspeltEnvironmentOverrideIsAnError) {
  auto errors = errors_of("", {{"RELANCE_KAFKA__BROKERZ", "x"}});
  EXPECT_TRUE(has_error(errors, "RELANCE_KAFKA__BROKERZ"));
}

TEST(ConfigLoader, EveryErrorNamesItsFieldPath) {
  auto errors = errors_of(R"(
kafka:
  group_id: ""
  delivery_topic: billing.invoice-events
  commit_interval: 10
  unknown_thing: 1
channels:
  email:
    smtp_url: http://mail
    from: nobody
    password_env: RELANCE_TEST_UNSET_PASSWORD
http:
  listen: nowhere
clock:
  mode: sundial
policy:
  default_time_zone: Mars/Olympus
  stages:
    - name: first
      offset_days: x
)");
  // Schema errors are reported first, all of them.
  EXPECT_TRUE(has_error(errors, "kafka.commit_interval"));
  EXPECT_TRUE(has_error(errors, "kafka.unknown_thing"));
  EXPECT_TRUE(has_error(errors, "clock.mode"));
  EXPECT_TRUE(has_error(errors, "policy.stages[0].offset_days"));

  auto semantic = errors_of(R"(
kafka:
  group_id: ""
  delivery_topic: billing.invoice-events
channels:
  email:
    smtp_url: http://mail
    from: nobody
    password_env: RELANCE_TEST_UNSET_PASSWORD
http:
  listen: nowhere
policy:
  default_time_zone: Mars/Olympus
  stages:
    - name: first
      channels: {minor: [email]}
)");
  for (const auto* path : {"kafka.group_id", "kafka.delivery_topic", "channels.email.smtp_url", "channels.email.from",
                           "channels.email.password_env", "http.listen", "policy.default_time_zone",
                           "policy.stages[0].tone"}) {
    EXPECT_TRUE(has_error(semantic, path)) << path;
  }
}

TEST(ConfigLoader, TwilioSettingsAreCheckedFieldByField) {
  auto errors = errors_of(R"(
channels:
  twilio:
    base_url: api.twilio.com
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token_env: RELANCE_TEST_UNSET_TOKEN
    sms_from: "0612345678"
    whatsapp_from: MG123
    max_in_flight: 0
    success_codes: [201, 404]
    senders:
      - {channel: EMAIL, from: "+15005550006", mps: -1}
  call_task:
    webhook_url: ftp://helpdesk
    secret_env: RELANCE_TEST_UNSET_SECRET
http:
  public_url: https://my_gateway.example.com
  admin_token_env: RELANCE_TEST_UNSET_ADMIN
)");
  for (const auto* path : {"channels.twilio.base_url", "channels.twilio.auth_token_env", "channels.twilio.sms_from",
                           "channels.twilio.whatsapp_from", "channels.twilio.max_in_flight",
                           "channels.twilio.success_codes", "channels.twilio.senders[0].channel",
                           "channels.twilio.senders[0].mps", "channels.call_task.webhook_url",
                           "channels.call_task.secret_env", "http.public_url", "http.admin_token_env"}) {
    EXPECT_TRUE(has_error(errors, path)) << path;
  }

  auto loaded = load_config(R"(
channels:
  twilio:
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token_env: TWILIO_TOKEN
    sms_from: MG0123456789abcdef0123456789abcdef
http:
  public_url: https://relance.example.com
)",
                            {{"TWILIO_TOKEN", "secret"}});
  const auto& t = loaded.config.channels().twilio();
  EXPECT_EQ(t.base_url(), "https://api.twilio.com");
  EXPECT_EQ(t.signature_header(), "X-Twilio-Signature");
  EXPECT_EQ(t.max_in_flight(), 16);
  EXPECT_EQ(TimeUtil::DurationToSeconds(t.timeout()), 10);
  EXPECT_TRUE(has_error(errors_of(R"(
channels:
  twilio: {account_sid: AC0123456789abcdef0123456789abcdef, auth_token_env: TWILIO_TOKEN, sms_from: "+15005550006"}
)",
                                  {{"TWILIO_TOKEN", "secret"}}),
                        "http.public_url"));
}

TEST(ConfigLoader, TenantPoliciesFallBackToTheDefaultPolicyFieldByField) {
  auto loaded = load_config(R"(
policy:
  company_name: Group
tenant_policies:
  acme:
    company_name: ACME
    contact_cap: {per_day: 2}
    stages:
      - {name: acme_reminder, offset_days: 1, tone: courteous, channels: {minor: [email]}}
)",
                            {});
  const auto& acme = loaded.config.tenant_policies().at("acme");
  EXPECT_EQ(acme.company_name(), "ACME");
  ASSERT_EQ(acme.stages_size(), 1);
  EXPECT_EQ(acme.stages(0).name(), "acme_reminder");
  EXPECT_EQ(acme.contact_cap().per_day(), 2);
  EXPECT_EQ(acme.contact_cap().per_7_days(), loaded.config.policy().contact_cap().per_7_days());  // inherited
  EXPECT_EQ(acme.send_at(), loaded.config.policy().send_at());
  EXPECT_EQ(acme.calendar().windows_size(), loaded.config.policy().calendar().windows_size());
  EXPECT_EQ(loaded.config.policy().company_name(), "Group");

  auto errors = errors_of("tenant_policies:\n  acme:\n    send_at: noon\n");
  EXPECT_TRUE(has_error(errors, "tenant_policies.acme.send_at"));
}

TEST(ConfigLoader, TheDefaultPolicyIsTheShippedFileAndValid) {
  auto policy = default_config().policy();
  ASSERT_EQ(policy.stages_size(), 5);
  EXPECT_EQ(policy.stages(0).name(), "courtesy");
  EXPECT_EQ(policy.stages(0).offset_days(), -3);
  EXPECT_EQ(policy.stages(4).action(), relance::v1::ESCALATE);
  EXPECT_TRUE(validate(default_config(), {}).empty());
}

TEST(ConfigLoader, RejectsInvalidYaml) {
  auto errors = errors_of("kafka: [unclosed");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("not valid YAML"), std::string::npos);
}

}  // namespace
}  // namespace relance::config
