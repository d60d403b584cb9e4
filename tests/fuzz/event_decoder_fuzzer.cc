// Kafka record values as the consumer receives them: any bytes, decoded both as binary
// protobuf and as protobuf JSON (the content-type header is the producer's word, not a
// guarantee), then validated and keyed as the gateway does with a decoded event.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "decode/event_decoder.h"

namespace {

void decode_validate_and_key(std::string_view bytes, relance::decode::ContentType type) {
  auto event = relance::decode::decode_event(bytes, type);
  if (!event) return;
  (void)relance::decode::validate_event(event.value());
  (void)relance::decode::subject_key(event.value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The header value travels with the record and is as untrusted as the value itself.
  (void)relance::decode::content_type_from_header(bytes.substr(0, 64));
  decode_validate_and_key(bytes, relance::decode::ContentType::kProtobuf);
  decode_validate_and_key(bytes, relance::decode::ContentType::kJson);
  return 0;
}
