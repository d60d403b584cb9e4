#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relance::kafka {

// Every librdkafka handle is owned by a unique_ptr with the matching destructor.
struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
  void operator()(rd_kafka_message_t* msg) const { rd_kafka_message_destroy(msg); }
  void operator()(rd_kafka_topic_partition_list_t* list) const { rd_kafka_topic_partition_list_destroy(list); }
  void operator()(rd_kafka_headers_t* headers) const { rd_kafka_headers_destroy(headers); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, HandleDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, HandleDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, HandleDeleter>;

class KafkaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Properties = std::map<std::string, std::string>;
using Headers = std::vector<std::pair<std::string, std::string>>;

ConfPtr make_conf(const Properties& properties);

// A received record with accessors that do not copy.
class Record {
 public:
  explicit Record(MessagePtr msg) : msg_(std::move(msg)) {}
  std::string_view topic() const { return rd_kafka_topic_name(msg_->rkt); }
  int32_t partition() const { return msg_->partition; }
  int64_t offset() const { return msg_->offset; }
  std::string_view key() const {
    return msg_->key ? std::string_view(static_cast<const char*>(msg_->key), msg_->key_len) : std::string_view();
  }
  std::string_view value() const {
    return msg_->payload ? std::string_view(static_cast<const char*>(msg_->payload), msg_->len) : std::string_view();
  }
  std::optional<std::string> header(const std::string& name) const;
  Headers headers() const;
  rd_kafka_message_t* raw() const { return msg_.get(); }

 private:
  MessagePtr msg_;
};

// An idempotent producer: each record is written once per produce call, in order, and retried
// by librdkafka until it is acknowledged.
class Producer {
 public:
  explicit Producer(const Properties& properties);
  ~Producer();

  void produce(const std::string& topic, std::string_view key, std::string_view value, const Headers& headers = {});
  // Waits until every record produced so far is acknowledged; false on timeout or if any
  // record failed since the last call.
  bool flush(std::chrono::milliseconds timeout);
  void poll() { rd_kafka_poll(rk_.get(), 0); }
  rd_kafka_t* handle() const { return rk_.get(); }

  // Throws unless each topic exists on the cluster.
  void require_topics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout);

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  HandlePtr rk_;
  std::size_t failed_ = 0;
  std::string last_error_;
};

// A consumer-group member that stores offsets only when told to, after the record's effects.
class Consumer {
 public:
  // Called before offsets of partitions about to be revoked are committed; returning false
  // (the effects those offsets cover are not acknowledged) skips the commit.
  using RevokeHook = std::function<bool()>;

  Consumer(const Properties& properties, RevokeHook before_revoke_commit);
  ~Consumer();

  void subscribe(const std::vector<std::string>& topics);
  // A record, or nullopt on timeout. Consumer errors are logged and skipped.
  std::optional<Record> poll(std::chrono::milliseconds timeout);
  void store_offset(const Record& record);
  // Synchronously commits stored offsets; true when there was nothing to commit too.
  bool commit();
  void close();
  bool assigned() const { return assigned_count_ > 0; }

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);
  HandlePtr rk_;
  RevokeHook before_revoke_commit_;
  int assigned_count_ = 0;
  bool closed_ = false;
};

// librdkafka's in-process mock cluster, listening on loopback: the embedded default when no
// brokers are configured. Other processes reach it through bootstrap_servers().
class EmbeddedCluster {
 public:
  explicit EmbeddedCluster(int brokers = 1);
  ~EmbeddedCluster();
  EmbeddedCluster(const EmbeddedCluster&) = delete;
  EmbeddedCluster& operator=(const EmbeddedCluster&) = delete;

  std::string bootstrap_servers() const;
  void create_topic(const std::string& topic, int partitions);

 private:
  HandlePtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace relance::kafka
