#include "support/topic_snapshot.h"

#include <map>
#include <stdexcept>

namespace relance::testing {

std::vector<ConsumedRecord> read_topic_to_end(const std::string& bootstrap, const std::string& topic,
                                              std::chrono::milliseconds timeout) {
  auto conf = kafka::make_conf({{"bootstrap.servers", bootstrap},
                                {"group.id", "relance-test-reader"},
                                {"enable.auto.commit", "false"},
                                {"enable.partition.eof", "false"},
                                // Only what is committed counts as written, as for any consumer.
                                {"isolation.level", "read_committed"}});
  char err[512];
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
  if (!rk) throw std::runtime_error(err);
  conf.release();

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  if (rd_kafka_metadata(rk.get(), 0, rkt, &md, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    rd_kafka_topic_destroy(rkt);
    throw std::runtime_error("no metadata for " + topic);
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);

  // The end of each partition now; reading stops there.
  std::map<int32_t, int64_t> end;
  kafka::PartitionListPtr parts(rd_kafka_topic_partition_list_new(partitions));
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    auto code = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, 10'000);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("end offsets of " + topic + ": " + rd_kafka_err2str(code));
    }
    if (high > low) end[p] = high;
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk.get(), parts.get());

  std::vector<ConsumedRecord> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!end.empty()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      rd_kafka_consumer_close(rk.get());
      throw std::runtime_error("the end of " + topic + " was not reached in time");
    }
    kafka::MessagePtr msg(rd_kafka_consumer_poll(rk.get(), 100));
    if (msg && msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
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
    // The position passes transaction markers too, which are never delivered as records.
    rd_kafka_position(rk.get(), parts.get());
    for (int i = 0; i < parts->cnt; ++i) {
      auto it = end.find(parts->elems[i].partition);
      if (it != end.end() && parts->elems[i].offset >= it->second) end.erase(it);
    }
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

}  // namespace relance::testing
