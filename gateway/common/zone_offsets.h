#pragma once

#include <unicode/utypes.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

U_NAMESPACE_BEGIN
class BasicTimeZone;
class TimeZone;
U_NAMESPACE_END

namespace relance {

// A time zone's UTC offsets and the instants at which they change, read from ICU once. ICU's
// own conversions (TimeZone::getOffset, a GregorianCalendar per call) cost microseconds; within
// the table's range (1970-2100) these are a binary search over a few hundred instants. Outside
// it ICU is asked directly, so the answers are ICU's everywhere.
//
// Times are milliseconds since 1970-01-01T00:00: on the UTC clock for instants ("utc_ms") and on
// the zone's wall clock for local times ("local_ms").
class ZoneOffsets {
 public:
  // The offset in force at the queried instant, and the instant (exclusive) until which it is
  // known to hold: the next change, or a table boundary.
  struct Segment {
    std::int64_t offset_ms;
    std::int64_t end_ms;
  };

  // Unknown zone ids read as UTC.
  explicit ZoneOffsets(const std::string& id);
  ~ZoneOffsets();
  ZoneOffsets(const ZoneOffsets&) = delete;
  ZoneOffsets& operator=(const ZoneOffsets&) = delete;

  Segment segment_at(std::int64_t utc_ms) const;
  std::int64_t offset_at(std::int64_t utc_ms) const;

  // The instant at which the wall clock shows `local_ms`, read as ICU's lenient Calendar reads
  // it (and as Relance always has): a wall time that never occurs (spring forward) is read
  // with the offset in force before the jump, so 02:30 on the day Paris skips 02:00-03:00 is
  // 03:30 CEST; a wall time that occurs twice (fall back) is its later occurrence.
  std::int64_t utc_of_local(std::int64_t local_ms) const;

 private:
  static constexpr std::int64_t kTableBegin = 0;                  // 1970-01-01
  static constexpr std::int64_t kTableEnd = 4'102'444'800'000LL;  // 2100-01-01

  std::int64_t icu_offset(std::int64_t utc_ms) const;

  std::unique_ptr<icu::TimeZone> zone_;
  const icu::BasicTimeZone* basic_ = nullptr;
  std::vector<std::int64_t> changes_;  // UTC instants at which offsets_[i + 1] starts
  std::vector<std::int64_t> offsets_;  // offsets_[0] holds from kTableBegin
  // The wall time from which a local time is read with offsets_[i + 1]: changes_[i] on the
  // clock after the change. Increasing in every zone ICU knows; when it is not, local times
  // are left to ICU.
  std::vector<std::int64_t> local_changes_;
  bool local_changes_sorted_ = true;
};

// The zone's table, built on first use. Each thread keeps the zones it has used; the reference
// stays valid until the same thread asks for a zone it has not used yet (the cache is bounded,
// since zone ids come from customer data).
const ZoneOffsets& zone_offsets(const std::string& id);

}  // namespace relance
