#include "common/zone_offsets.h"

#include <unicode/basictz.h>
#include <unicode/timezone.h>
#include <unicode/tztrans.h>

#include <algorithm>
#include <limits>
#include <map>

namespace relance {

namespace {

constexpr std::int64_t kForever = std::numeric_limits<std::int64_t>::max();
// Wider than any UTC offset: a local time this far inside the table maps to an instant in it.
constexpr std::int64_t kLocalMargin = 2 * 86'400'000LL;

}  // namespace

ZoneOffsets::ZoneOffsets(const std::string& id)
    : zone_(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(id))) {
  if (*zone_ == icu::TimeZone::getUnknown()) zone_.reset(icu::TimeZone::createTimeZone("UTC"));
  // ICU's factory only makes BasicTimeZone subclasses (Olson data, or fixed "GMT+hh:mm").
  basic_ = dynamic_cast<const icu::BasicTimeZone*>(zone_.get());
  offsets_.push_back(icu_offset(kTableBegin));
  icu::TimeZoneTransition transition;
  UDate from = static_cast<UDate>(kTableBegin);
  while (basic_ != nullptr && basic_->getNextTransition(from, false, transition) &&
         transition.getTime() < static_cast<UDate>(kTableEnd)) {
    from = transition.getTime();
    auto at = static_cast<std::int64_t>(from);
    auto offset = icu_offset(at);
    // Some transitions only move offset between raw and DST parts; the wall clock keeps going.
    if (offset != offsets_.back()) {
      changes_.push_back(at);
      offsets_.push_back(offset);
    }
  }
  // ICU reads a local time with the offset of the latest change whose new offset already
  // shows it (BasicTimeZone::getOffsetFromLocal with UCAL_TZ_LOCAL_FORMER for skipped times and
  // UCAL_TZ_LOCAL_LATTER for repeated ones, the options Calendar uses by default).
  local_changes_.reserve(changes_.size());
  for (std::size_t i = 0; i < changes_.size(); ++i) local_changes_.push_back(changes_[i] + offsets_[i + 1]);
  local_changes_sorted_ = basic_ != nullptr && std::is_sorted(local_changes_.begin(), local_changes_.end());
}

ZoneOffsets::~ZoneOffsets() = default;

ZoneOffsets::Segment ZoneOffsets::segment_at(std::int64_t utc_ms) const {
  if (utc_ms >= kTableBegin && utc_ms < kTableEnd) {
    auto next = std::upper_bound(changes_.begin(), changes_.end(), utc_ms);
    return {offsets_[static_cast<std::size_t>(next - changes_.begin())], next == changes_.end() ? kTableEnd : *next};
  }
  Segment segment{icu_offset(utc_ms), kForever};
  icu::TimeZoneTransition transition;
  if (basic_ != nullptr && basic_->getNextTransition(static_cast<UDate>(utc_ms), false, transition)) {
    segment.end_ms = static_cast<std::int64_t>(transition.getTime());
  }
  if (utc_ms < kTableBegin) segment.end_ms = std::min(segment.end_ms, kTableBegin);
  return segment;
}

std::int64_t ZoneOffsets::offset_at(std::int64_t utc_ms) const {
  if (utc_ms >= kTableBegin && utc_ms < kTableEnd) {
    auto next = std::upper_bound(changes_.begin(), changes_.end(), utc_ms);
    return offsets_[static_cast<std::size_t>(next - changes_.begin())];
  }
  return icu_offset(utc_ms);
}

std::int64_t ZoneOffsets::utc_of_local(std::int64_t local_ms) const {
  if (local_changes_sorted_ && local_ms >= kTableBegin + kLocalMargin && local_ms < kTableEnd - kLocalMargin) {
    auto next = std::upper_bound(local_changes_.begin(), local_changes_.end(), local_ms);
    return local_ms - offsets_[static_cast<std::size_t>(next - local_changes_.begin())];
  }
  // What a lenient icu::Calendar does when its fields are set (Calendar::computeZoneOffset).
  std::int32_t raw = 0, dst = 0;
  UErrorCode status = U_ZERO_ERROR;
  if (basic_ != nullptr) {
    basic_->getOffsetFromLocal(static_cast<UDate>(local_ms), UCAL_TZ_LOCAL_FORMER, UCAL_TZ_LOCAL_LATTER, raw, dst,
                               status);
  } else {
    zone_->getOffset(static_cast<UDate>(local_ms), true, raw, dst, status);
  }
  return U_SUCCESS(status) ? local_ms - raw - dst : local_ms;
}

std::int64_t ZoneOffsets::icu_offset(std::int64_t utc_ms) const {
  std::int32_t raw = 0, dst = 0;
  UErrorCode status = U_ZERO_ERROR;
  zone_->getOffset(static_cast<UDate>(utc_ms), false, raw, dst, status);
  return U_SUCCESS(status) ? std::int64_t{raw} + dst : 0;
}

const ZoneOffsets& zone_offsets(const std::string& id) {
  constexpr std::size_t kMaxZones = 1024;
  thread_local std::map<std::string, std::unique_ptr<ZoneOffsets>, std::less<>> cache;
  thread_local const std::string* last_id = nullptr;
  thread_local const ZoneOffsets* last_zone = nullptr;
  if (last_id != nullptr && *last_id == id) return *last_zone;
  auto it = cache.find(id);
  if (it == cache.end()) {
    if (cache.size() >= kMaxZones) cache.clear();
    it = cache.emplace(id, std::make_unique<ZoneOffsets>(id)).first;
  }
  last_id = &it->first;
  last_zone = it->second.get();
  return *last_zone;
}

}  // namespace relance
