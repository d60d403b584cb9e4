#include "support/kafka_test_client.h"

#include <stdexcept>

namespace relance::testing {

std::string ConsumedRecord::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

void create_topics(const std::string& bootstrap, const std::vector<std::string>& topics, int partitions) {
  auto conf = kafka::make_conf({{"bootstrap.servers", bootstrap}});
  char err[512];
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err));
  if (!rk) throw std::runtime_error(err);
  conf.release();
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  for (const auto& t : topics) new_topics.push_back(rd_kafka_NewTopic_new(t.c_str(), partitions, 1, err, sizeof err));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30'000);
  std::string failure;
  if (event == nullptr) {
    failure = "CreateTopics timed out";
  } else {
    const auto* result = rd_kafka_event_CreateTopics_result(event);
    size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
    for (size_t i = 0; i < count; ++i) {
      auto code = rd_kafka_topic_result_error(results[i]);
      if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        failure += std::string(rd_kafka_topic_result_name(results[i])) + ": " + rd_kafka_err2str(code) + "; ";
      }
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  if (!failure.empty()) throw std::runtime_error("create topics: " + failure);
}

void produce(const std::string& bootstrap, const std::string& topic, const std::string& key, const std::string& value,
             const kafka::Headers& headers) {
  kafka::Producer producer({{"bootstrap.servers", bootstrap}});
  producer.produce(topic, key, value, headers);
  if (!producer.flush(std::chrono::seconds(30))) throw std::runtime_error("test record not acknowledged");
}

void produce_all(const std::string& bootstrap, const std::string& topic,
                 const std::vector<std::pair<std::string, std::string>>& records) {
  kafka::Producer producer({{"bootstrap.servers", bootstrap}});
  for (const auto& [key, value] : records) producer.produce(topic, key, value);
  if (!producer.flush(std::chrono::seconds(30))) throw std::runtime_error("test records not acknowledged");
}

std::vector<ConsumedRecord> read_topic(const std::string& bootstrap, const std::string& topic, std::size_t at_least,
                                       std::chrono::milliseconds timeout, std::chrono::milliseconds settle) {
  auto conf = kafka::make_conf({{"bootstrap.servers", bootstrap},
                                {"group.id", "relance-test-reader"},
                                {"enable.auto.commit", "false"},
                                {"enable.partition.eof", "false"}});
  char err[512];
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
  if (!rk) throw std::runtime_error(err);
  conf.release();

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  if (rd_kafka_metadata(rk.get(), 0, rkt, &md, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    throw std::runtime_error("no metadata for " + topic);
  }
  kafka::PartitionListPtr parts(rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt));
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), md->topics[0].partitions[i].id)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_assign(rk.get(), parts.get());

  std::vector<ConsumedRecord> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<std::chrono::steady_clock::time_point> settle_until;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (!settle_until && out.size() >= at_least) settle_until = now + settle;
    if (settle_until && now >= *settle_until) break;
    if (now >= deadline) break;
    kafka::MessagePtr msg(rd_kafka_consumer_poll(rk.get(), 100));
    if (!msg || msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    kafka::Record record(std::move(msg));
    ConsumedRecord r;
    r.topic = std::string(record.topic());
    r.partition = record.partition();
    r.offset = record.offset();
    r.key = std::string(record.key());
    r.value = std::string(record.value());
    r.headers = record.headers();
    out.push_back(std::move(r));
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

}  // namespace relance::testing
