#include "kafka/kafka_client.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

namespace relance::kafka {

namespace {

// librdkafka's own log lines (syslog levels, from its threads) go through the process's logger,
// so they are JSON lines and masked like every other line.
void log_to_spdlog(const rd_kafka_t*, int level, const char* facility, const char* message) {
  auto to = level <= 3 ? spdlog::level::err : level == 4 ? spdlog::level::warn : level <= 6 ? spdlog::level::info
                                                                                             : spdlog::level::debug;
  spdlog::log(to, "librdkafka {}: {}", facility, message);
}

}  // namespace

ConfPtr make_conf(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &log_to_spdlog);
  char err[512];
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      throw KafkaError("kafka property " + name + ": " + err);
    }
  }
  return conf;
}

std::optional<std::string> Record::header(const std::string& name) const {
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(msg_.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name.c_str(), &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return value ? std::string(static_cast<const char*>(value), size) : std::string();
}

Headers Record::headers() const {
  Headers out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(msg_.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    out.emplace_back(name, value ? std::string(static_cast<const char*>(value), size) : std::string());
  }
  return out;
}

Producer::Producer(const Properties& properties) {
  auto props = properties;
  props.emplace("enable.idempotence", "true");
  // Never give up on a record: a delivery event that was dropped would be a lost outcome.
  props.emplace("message.timeout.ms", "0");
  props.emplace("partitioner", "murmur2_random");
  auto conf = make_conf(props);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery);
  char err[512];
  rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err));
  if (!rk_) throw KafkaError(std::string("cannot create producer: ") + err);
  conf.release();  // owned by the handle now
}

Producer::~Producer() {
  stopping_ = true;
  if (reports_.joinable()) reports_.join();
  if (rk_) rd_kafka_flush(rk_.get(), 10'000);
}

// What a caller of produce_acknowledged or produce_then waits for; shared with the delivery
// report and the reports thread's deadline check, whichever settles it first.
struct Producer::Acknowledgement {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  bool ok = false;
  std::function<void(bool)> then;

  void settle(bool acknowledged) {
    {
      std::lock_guard lock(mutex);
      if (done) return;
      done = true;
      ok = acknowledged;
    }
    done_cv.notify_all();
    if (then) then(acknowledged);
  }
};

namespace {
using AcknowledgementPtr = std::shared_ptr<Producer::Acknowledgement>;
}  // namespace

void Producer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (msg->_private != nullptr) {
    std::unique_ptr<AcknowledgementPtr> ack(static_cast<AcknowledgementPtr*>(msg->_private));
    const bool ok = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!ok) spdlog::error("kafka delivery to {} failed: {}", rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
    (*ack)->settle(ok);
    if (ok && self->delivered_) self->delivered_(*msg);
    return;
  }
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++self->failed_;
    self->last_error_ = rd_kafka_err2str(msg->err);
    spdlog::error("kafka delivery to {} failed: {}", rd_kafka_topic_name(msg->rkt), self->last_error_);
    return;
  }
  if (self->delivered_) self->delivered_(*msg);
}

void Producer::produce_to(const std::string& topic, int32_t partition, std::string_view key,
                          std::optional<std::string_view> value) {
  // The macros cast their arguments without parentheses: plain variables only.
  char* payload = value ? const_cast<char*>(value->data()) : nullptr;
  std::size_t payload_size = value ? value->size() : 0;
  for (;;) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    auto err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()), RD_KAFKA_V_VALUE(payload, payload_size),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk_.get(), 100);
      continue;
    }
    throw KafkaError("produce to " + topic + "[" + std::to_string(partition) + "]: " + rd_kafka_err2str(err));
  }
}

int Producer::partition_count(const std::string& topic, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk_.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw KafkaError(std::string("cannot read cluster metadata: ") + rd_kafka_err2str(err));
  }
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(md, rd_kafka_metadata_destroy);
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      return md->topics[i].partition_cnt;
    }
  }
  return 0;
}

rd_kafka_headers_t* Producer::make_headers(const Headers& headers) {
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
  for (const auto& [name, v] : headers) {
    rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()), v.data(), static_cast<ssize_t>(v.size()));
  }
  return hdrs;
}

namespace {
// Orders the deadlines as a min-heap: the earliest on top.
bool later_deadline(const std::pair<std::chrono::steady_clock::time_point, std::weak_ptr<Producer::Acknowledgement>>& a,
                    const std::pair<std::chrono::steady_clock::time_point, std::weak_ptr<Producer::Acknowledgement>>& b) {
  return a.first > b.first;
}
}  // namespace

void Producer::start_reports() {
  std::call_once(reports_started_, [this] {
    reports_ = std::thread([this] {
      while (!stopping_) {
        rd_kafka_poll(rk_.get(), 50);
        // Records not acknowledged in time are answered false (they may still be written).
        std::vector<std::shared_ptr<Acknowledgement>> expired;
        {
          const auto now = std::chrono::steady_clock::now();
          std::lock_guard lock(deadlines_mutex_);
          while (!deadlines_.empty() && (deadlines_.front().first <= now || deadlines_.front().second.expired())) {
            if (auto ack = deadlines_.front().second.lock()) expired.push_back(std::move(ack));
            std::pop_heap(deadlines_.begin(), deadlines_.end(), later_deadline);
            deadlines_.pop_back();
          }
        }
        for (auto& ack : expired) ack->settle(false);
      }
    });
  });
}

bool Producer::start_acknowledged(const std::string& topic, std::string_view key, std::string_view value,
                                  const Headers& headers, const std::shared_ptr<Acknowledgement>& ack,
                                  std::chrono::steady_clock::time_point deadline, bool wait_for_room) {
  start_reports();
  auto* holder = new AcknowledgementPtr(ack);
  rd_kafka_headers_t* hdrs = make_headers(headers);
  for (;;) {
    auto err = producev(topic, key, value, hdrs, holder);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;  // the headers and the holder belong to the record now
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && wait_for_room && std::chrono::steady_clock::now() < deadline) {
      // Back-pressure: the reports thread makes room as acknowledgements come in.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    rd_kafka_headers_destroy(hdrs);
    delete holder;
    spdlog::error("produce to {}: {}", topic, rd_kafka_err2str(err));
    return false;
  }
}

bool Producer::produce_acknowledged(const std::string& topic, std::string_view key, std::string_view value,
                                   const Headers& headers, std::chrono::milliseconds timeout) {
  auto ack = std::make_shared<Acknowledgement>();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!start_acknowledged(topic, key, value, headers, ack, deadline, true)) return false;
  std::unique_lock lock(ack->mutex);
  ack->done_cv.wait_until(lock, deadline, [&] { return ack->done; });
  return ack->done && ack->ok;
}

void Producer::produce_then(const std::string& topic, std::string_view key, std::string_view value,
                            const Headers& headers, std::chrono::milliseconds timeout, std::function<void(bool)> then) {
  auto ack = std::make_shared<Acknowledgement>();
  ack->then = std::move(then);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!start_acknowledged(topic, key, value, headers, ack, deadline, false)) return ack->settle(false);
  std::lock_guard lock(deadlines_mutex_);
  deadlines_.emplace_back(deadline, ack);
  std::push_heap(deadlines_.begin(), deadlines_.end(), later_deadline);
}

rd_kafka_resp_err_t Producer::producev(const std::string& topic, std::string_view key, std::string_view value,
                                       rd_kafka_headers_t* hdrs, void* opaque) {
  // librdkafka's RD_KAFKA_V_* macros expand to C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
  return rd_kafka_producev(
      rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
}

void Producer::produce(const std::string& topic, std::string_view key, std::string_view value, const Headers& headers) {
  rd_kafka_headers_t* hdrs = make_headers(headers);
  for (;;) {
    auto err = producev(topic, key, value, hdrs, nullptr);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the headers now belong to the record
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk_.get(), 100);  // back-pressure: wait for acknowledgements, then retry
      continue;
    }
    rd_kafka_headers_destroy(hdrs);
    throw KafkaError("produce to " + topic + ": " + rd_kafka_err2str(err));
  }
}

bool Producer::wait_delivered(std::chrono::milliseconds timeout) {
  return rd_kafka_flush(rk_.get(), static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool Producer::flush(std::chrono::milliseconds timeout) {
  auto err = rd_kafka_flush(rk_.get(), static_cast<int>(timeout.count()));
  bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && failed_ == 0;
  failed_ = 0;
  return ok;
}

void Producer::require_topics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout) {
  // A topic created a moment ago may not be in every broker's metadata yet: look again for a
  // little while before refusing to start.
  auto deadline = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(10));
  for (;;) {
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(rk_.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw KafkaError(std::string("cannot read cluster metadata: ") + rd_kafka_err2str(err));
    }
    std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(md, rd_kafka_metadata_destroy);
    std::string missing;
    for (const auto& topic : topics) {
      bool found = false;
      for (int i = 0; i < md->topic_cnt; ++i) {
        if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) found = true;
      }
      if (!found) missing += (missing.empty() ? "" : ", ") + topic;
    }
    if (missing.empty()) return;
    if (std::chrono::steady_clock::now() >= deadline) throw KafkaError("topics missing on the cluster: " + missing);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Consumer::Consumer(const Properties& properties, Hooks hooks) : hooks_(std::move(hooks)) {
  auto props = properties;
  // Offsets are stored by the gateway after each record's effects, and committed after the
  // producer has flushed what those effects published.
  props.emplace("enable.auto.offset.store", "false");
  props.emplace("enable.auto.commit", "false");
  props.emplace("auto.offset.reset", "earliest");
  props.emplace("partition.assignment.strategy", "cooperative-sticky");
  auto conf = make_conf(props);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Consumer::on_rebalance);
  char err[512];
  rk_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
  if (!rk_) throw KafkaError(std::string("cannot create consumer: ") + err);
  conf.release();
  rd_kafka_poll_set_consumer(rk_.get());
}

Consumer::~Consumer() { close(); }

namespace {

Consumer::Partitions partitions_of(const rd_kafka_topic_partition_list_t* parts) {
  Consumer::Partitions out;
  for (int i = 0; i < parts->cnt; ++i) out.push_back(parts->elems[i].partition);
  return out;
}

}  // namespace

void Consumer::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                            void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  // A member fenced by the group gets its callbacks inside rd_kafka_consumer_close(), when the
  // protocol may no longer be known (NULL): cooperative is the only strategy configured.
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  bool cooperative = protocol == nullptr || std::string_view(protocol) == "COOPERATIVE";
  auto partitions = partitions_of(parts);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    spdlog::info("kafka: {} partition(s) assigned", parts->cnt);
    if (cooperative) {
      if (auto* e = rd_kafka_incremental_assign(rk, parts)) {
        spdlog::error("kafka: incremental assign failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, parts);
    }
    self->assigned_count_ += parts->cnt;
    if (self->closing_) {
      // Handed back at once: nothing is restored for a member on its way out.
      spdlog::info("kafka: assigned while closing; not restored");
      return;
    }
    // Called for an empty assignment too: the member has joined the group (readiness).
    if (self->hooks_.assigned) self->hooks_.assigned(partitions);
    return;
  }
  spdlog::info("kafka: {} partition(s) revoked", parts->cnt);
  // Lost partitions may already belong to another member: their offsets must not be committed.
  if (!rd_kafka_assignment_lost(rk)) {
    if (!self->hooks_.revoking || self->hooks_.revoking(partitions)) {
      auto cerr = rd_kafka_commit(rk, nullptr, 0);
      if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        spdlog::warn("kafka: commit on revoke failed: {}", rd_kafka_err2str(cerr));
      }
    } else {
      spdlog::error("kafka: effects not acknowledged; offsets of revoked partitions not committed");
    }
  }
  if (self->hooks_.revoked && !partitions.empty()) self->hooks_.revoked(partitions);
  if (cooperative) {
    if (auto* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
  } else {
    rd_kafka_assign(rk, nullptr);
  }
  self->assigned_count_ = std::max(0, self->assigned_count_ - parts->cnt);
}

std::optional<int64_t> Consumer::end_offset(const std::string& topic, int32_t partition,
                                            std::chrono::milliseconds timeout) {
  int64_t low = 0;
  int64_t high = 0;
  auto err = rd_kafka_query_watermark_offsets(rk_.get(), topic.c_str(), partition, &low, &high,
                                              static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("kafka: cannot read the end offset of {}[{}]: {}", topic, partition, rd_kafka_err2str(err));
    return std::nullopt;
  }
  return high;
}

int64_t Consumer::position(const std::string& topic, int32_t partition) const {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  if (rd_kafka_position(rk_.get(), list.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
  auto offset = list->elems[0].offset;
  return offset < 0 ? -1 : offset;
}

std::optional<int64_t> Consumer::lag(const std::string& topic, int32_t partition) const {
  int64_t low = 0;
  int64_t high = 0;
  if (rd_kafka_get_watermark_offsets(rk_.get(), topic.c_str(), partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      high < 0) {
    return std::nullopt;
  }
  auto at = position(topic, partition);
  if (at < 0) return std::nullopt;
  return std::max<int64_t>(0, high - at);
}

int64_t Consumer::committed(const std::string& topic, int32_t partition, std::chrono::milliseconds timeout) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  if (rd_kafka_committed(rk_.get(), list.get(), static_cast<int>(timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return list->elems[0].offset;
}

int64_t read_partition(const Properties& properties, const std::string& topic, int32_t partition, int64_t from,
                       const std::function<void(const Record&)>& each) {
  auto props = properties;
  props.erase("group.id");
  props["group.id"] = "relance-restore";  // required by the client; nothing is committed
  props["enable.auto.commit"] = "false";
  props["enable.partition.eof"] = "true";
  props["auto.offset.reset"] = "earliest";
  auto conf = make_conf(props);
  char err[512];
  HandlePtr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
  if (!rk) throw KafkaError(std::string("cannot create the restore consumer: ") + err);
  conf.release();
  rd_kafka_poll_set_consumer(rk.get());
  int64_t low = 0;
  int64_t high = 0;
  auto werr = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), partition, &low, &high, 30'000);
  if (werr != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw KafkaError("cannot read the offsets of " + topic + "[" + std::to_string(partition) +
                     "]: " + rd_kafka_err2str(werr));
  }
  from = std::max(from, low);
  if (from < high) {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = from;
    if (auto aerr = rd_kafka_assign(rk.get(), list.get()); aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw KafkaError(std::string("cannot read the changelog: ") + rd_kafka_err2str(aerr));
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    int64_t next = from;
    while (next < high) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw KafkaError("restoring " + topic + "[" + std::to_string(partition) + "] did not reach offset " +
                         std::to_string(high));
      }
      MessagePtr msg(rd_kafka_consumer_poll(rk.get(), 500));
      if (!msg) continue;
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) break;
      if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("kafka restore: {}", rd_kafka_message_errstr(msg.get()));
        continue;
      }
      next = msg->offset + 1;
      each(Record(std::move(msg)));
    }
  }
  rd_kafka_consumer_close(rk.get());
  return high;
}

std::map<int32_t, PartitionRead> read_partitions(const Properties& properties, const std::string& topic,
                                                 const std::map<int32_t, int64_t>& from, std::size_t chunk_records,
                                                 const std::function<void(int32_t, const LatestByKey&)>& apply) {
  std::map<int32_t, PartitionRead> reads;
  std::map<int32_t, std::exception_ptr> failures;
  for (const auto& [partition, offset] : from) reads[partition].from = offset;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::pair<int32_t, LatestByKey>> ready;
  std::size_t reading = reads.size();
  const std::size_t max_waiting = 2 * reads.size();
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> readers;
  for (auto& [partition, read] : reads) {
    readers.emplace_back([&, partition = partition, &read = read] {
      std::unordered_map<std::string, std::optional<std::string>> latest;
      auto hand_over = [&] {
        LatestByKey chunk;
        chunk.reserve(latest.size());
        while (!latest.empty()) {
          auto node = latest.extract(latest.begin());
          chunk.emplace_back(std::move(node.key()), std::move(node.mapped()));
        }
        std::sort(chunk.begin(), chunk.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return ready.size() < max_waiting; });
        ready.emplace_back(partition, std::move(chunk));
        changed.notify_all();
      };
      std::exception_ptr failure;
      try {
        read.end = read_partition(properties, topic, partition, read.from, [&](const Record& record) {
          std::optional<std::string> value;
          if (record.raw()->payload != nullptr) value.emplace(record.value());
          latest.insert_or_assign(std::string(record.key()), std::move(value));
          if (++read.records % chunk_records == 0) hand_over();
        });
        if (!latest.empty()) hand_over();
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard lock(mutex);
      read.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      if (failure) failures[partition] = failure;
      --reading;
      changed.notify_all();
    });
  }
  std::exception_ptr failure;
  for (;;) {
    std::pair<int32_t, LatestByKey> chunk;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return !ready.empty() || reading == 0; });
      if (ready.empty()) break;
      chunk = std::move(ready.front());
      ready.pop_front();
      changed.notify_all();
    }
    if (failure) continue;  // the readers are drained before the failure is thrown
    try {
      apply(chunk.first, chunk.second);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  for (auto& reader : readers) reader.join();
  if (!failure && !failures.empty()) failure = failures.begin()->second;
  if (failure) std::rethrow_exception(failure);
  return reads;
}

void Consumer::subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  auto err = rd_kafka_subscribe(rk_.get(), list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw KafkaError(std::string("subscribe: ") + rd_kafka_err2str(err));
}

std::optional<Record> Consumer::poll(std::chrono::milliseconds timeout) {
  MessagePtr msg(rd_kafka_consumer_poll(rk_.get(), static_cast<int>(timeout.count())));
  if (!msg) return std::nullopt;
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      spdlog::warn("kafka consumer: {}", rd_kafka_message_errstr(msg.get()));
    }
    return std::nullopt;
  }
  return Record(std::move(msg));
}

void Consumer::store_offset(const Record& record) {
  auto err = rd_kafka_offset_store(record.raw()->rkt, record.partition(), record.offset());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // The partition was revoked meanwhile: its new owner will process the record again.
    spdlog::warn("kafka: cannot store offset {} of partition {}: {}", record.offset(), record.partition(),
                 rd_kafka_err2str(err));
  }
}

bool Consumer::commit() {
  auto err = rd_kafka_commit(rk_.get(), nullptr, 0);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return true;
  spdlog::warn("kafka: commit failed: {}", rd_kafka_err2str(err));
  return false;
}

void Consumer::close() {
  if (closed_ || !rk_) return;
  closed_ = true;
  closing_ = true;
  rd_kafka_consumer_close(rk_.get());  // revokes (and commits through the hook) first
}

EmbeddedCluster::EmbeddedCluster(int brokers) {
  // This handle only hosts the mock cluster and never connects: its "no bootstrap.servers"
  // notice would only confuse.
  auto conf = make_conf({{"log_level", "3"}});
  char err[512];
  rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err));
  if (!rk_) throw KafkaError(std::string("cannot create the embedded cluster's handle: ") + err);
  conf.release();
  cluster_ = rd_kafka_mock_cluster_new(rk_.get(), brokers);
  if (cluster_ == nullptr) throw KafkaError("cannot start the embedded Kafka cluster");
}

EmbeddedCluster::~EmbeddedCluster() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
}

std::string EmbeddedCluster::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

void EmbeddedCluster::create_topic(const std::string& topic, int partitions) {
  auto err = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw KafkaError("create topic " + topic + ": " + rd_kafka_err2str(err));
}

void EmbeddedCluster::set_leader(const std::string& topic, int32_t partition, int32_t broker) {
  auto err = rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw KafkaError("set the leader of " + topic + "[" + std::to_string(partition) + "]: " + rd_kafka_err2str(err));
  }
}

}  // namespace relance::kafka
