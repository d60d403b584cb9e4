#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
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
  struct Acknowledgement;
  explicit Producer(const Properties& properties);
  ~Producer();

  void produce(const std::string& topic, std::string_view key, std::string_view value, const Headers& headers = {});
  // To one partition, chosen by the caller; no value is a tombstone (compacted topics).
  void produce_to(const std::string& topic, int32_t partition, std::string_view key,
                  std::optional<std::string_view> value);
  // Called for every acknowledged record, from poll() or flush(), on the calling thread.
  using DeliveryHook = std::function<void(const rd_kafka_message_t&)>;
  void on_delivered(DeliveryHook hook) { delivered_ = std::move(hook); }
  // Waits until every record produced so far is acknowledged; false on timeout or if any
  // record failed since the last call.
  bool flush(std::chrono::milliseconds timeout);
  // Waits until every record produced so far is acknowledged or has failed, leaving failures
  // for the next flush() to report; false on timeout.
  bool wait_delivered(std::chrono::milliseconds timeout);
  // Produces one record and waits for its own acknowledgement only: many threads may wait at
  // once and librdkafka batches their records, where produce() + flush() would make each
  // caller wait for everyone's. False when the broker refused it or did not answer in time (the
  // record may still be written later). The first call starts a thread that serves delivery
  // reports, so a producer used this way calls the delivered() hook on that thread.
  bool produce_acknowledged(const std::string& topic, std::string_view key, std::string_view value,
                            const Headers& headers, std::chrono::milliseconds timeout);
  // Produces one record without waiting: `then` is called once, on the thread that serves
  // delivery reports, with true when the broker acknowledged it, false when it refused it, the
  // producer's queue was full (called at once, on the caller's thread) or no acknowledgement
  // came within the timeout (the record may still be written).
  void produce_then(const std::string& topic, std::string_view key, std::string_view value, const Headers& headers,
                    std::chrono::milliseconds timeout, std::function<void(bool)> then);
  void poll() { rd_kafka_poll(rk_.get(), 0); }
  rd_kafka_t* handle() const { return rk_.get(); }

  // Throws unless each topic exists on the cluster.
  void require_topics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout);
  // The topic's partition count, or 0 when it does not exist.
  int partition_count(const std::string& topic, std::chrono::milliseconds timeout);

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  void start_reports();
  // Produces a record whose delivery report settles `ack`; false (and `ack` untouched) when
  // librdkafka refused it, after waiting for room in its queue until the deadline if asked to.
  bool start_acknowledged(const std::string& topic, std::string_view key, std::string_view value,
                          const Headers& headers, const std::shared_ptr<Acknowledgement>& ack,
                          std::chrono::steady_clock::time_point deadline, bool wait_for_room);
  rd_kafka_headers_t* make_headers(const Headers& headers);
  // One record with its headers (theirs once accepted) and its delivery report's opaque.
  rd_kafka_resp_err_t producev(const std::string& topic, std::string_view key, std::string_view value,
                               rd_kafka_headers_t* hdrs, void* opaque);
  HandlePtr rk_;
  std::once_flag reports_started_;
  std::atomic<bool> stopping_{false};
  std::thread reports_;
  std::size_t failed_ = 0;
  std::string last_error_;
  DeliveryHook delivered_;
  std::mutex deadlines_mutex_;
  // A min-heap of produce_then's deadlines, checked by the reports thread.
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::weak_ptr<Acknowledgement>>> deadlines_;
};

// A consumer-group member that stores offsets only when told to, after the record's effects.
// Partition changes reach the owner of the state through hooks, called on the polling thread
// (inside poll() or close()).
class Consumer {
 public:
  using Partitions = std::vector<int32_t>;
  struct Hooks {
    // Partitions just assigned: their state is restored here, before any of their records.
    std::function<void(const Partitions&)> assigned;
    // Partitions about to be revoked: effects settled and acknowledged; false (they are not)
    // skips the commit of their offsets.
    std::function<bool(const Partitions&)> revoking;
    // Partitions gone (after the commit, or lost to the group without one).
    std::function<void(const Partitions&)> revoked;
  };

  Consumer(const Properties& properties, Hooks hooks);
  ~Consumer();

  void subscribe(const std::vector<std::string>& topics);
  // A record, or nullopt on timeout. Consumer errors are logged and skipped.
  std::optional<Record> poll(std::chrono::milliseconds timeout);
  void store_offset(const Record& record);
  // Synchronously commits stored offsets; true when there was nothing to commit too.
  bool commit();
  void close();
  bool assigned() const { return assigned_count_ > 0; }

  // The partition's log end offset on the broker (the next offset to be written).
  std::optional<int64_t> end_offset(const std::string& topic, int32_t partition, std::chrono::milliseconds timeout);
  // The next offset this consumer will read from the partition, as it knows it locally (past
  // transaction markers, which no record shows); -1 when it has not fetched yet.
  int64_t position(const std::string& topic, int32_t partition) const;
  // Records of the partition not read yet: the log end offset last seen in a fetch answer (no
  // broker round trip) minus position(); nullopt before the first fetch.
  std::optional<int64_t> lag(const std::string& topic, int32_t partition) const;
  // The group's committed offset for the partition (-1 when none).
  int64_t committed(const std::string& topic, int32_t partition, std::chrono::milliseconds timeout);

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque);
  HandlePtr rk_;
  Hooks hooks_;
  int assigned_count_ = 0;
  bool closed_ = false;
  bool closing_ = false;
};

// Reads one partition of a topic from `from` to its end as of the call (for restoring state
// from a changelog), handing each record to `each`. Returns the end offset reached.
int64_t read_partition(const Properties& properties, const std::string& topic, int32_t partition, int64_t from,
                       const std::function<void(const Record&)>& each);

// The last value of each key in a run of records (no value: a tombstone), in key order.
using LatestByKey = std::vector<std::pair<std::string, std::optional<std::string>>>;
struct PartitionRead {
  int64_t from = 0;
  int64_t end = 0;  // the end offset reached
  std::size_t records = 0;
  std::chrono::milliseconds took{};
};
// Reads partitions of a topic from the given offsets to their ends as of the call, each on a
// thread of its own, in chunks of `chunk_records` records of which only the last record of each
// key is kept (what compaction keeps), sorted by key on the reader's thread. `apply` runs on the
// calling thread for each chunk as it comes, while the readers fetch the next ones; at most two
// chunks per reader wait, so the memory held stays bounded. Throws what a reader or `apply` threw, once every reader stopped.
std::map<int32_t, PartitionRead> read_partitions(const Properties& properties, const std::string& topic,
                                                 const std::map<int32_t, int64_t>& from, std::size_t chunk_records,
                                                 const std::function<void(int32_t, const LatestByKey&)>& apply);

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
  // Fault injection: the partition's leader becomes `broker` (-1: none, so that records produced
  // to it wait while every other partition takes them).
  void set_leader(const std::string& topic, int32_t partition, int32_t broker);

 private:
  HandlePtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace relance::kafka
