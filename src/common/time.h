// Time: instants are int64 microseconds since the Unix epoch, UTC.
//
// Parsing is on the hot path (one event time per log line), so ISO-8601 and
// strftime-style layouts are parsed by hand instead of through strptime(),
// which is locale-aware, slow, and ignores %z on glibc for mktime.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace logferry {

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kMicrosPerHour = 3600 * kMicrosPerSecond;
constexpr int64_t kMicrosPerDay = 24 * kMicrosPerHour;

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
void CivilFromDays(int64_t days, int64_t* y, unsigned* m, unsigned* d);

// The real wall clock (Env::Default()), for tests and tools. Code under src/
// reads the clock of the Env it was given, so that tests can replace it.
int64_t NowMicros();

// Floors to the start of the UTC hour/day containing t (works for negative t).
inline int64_t FloorTo(int64_t t, int64_t unit) {
  int64_t q = t / unit;
  if (t % unit < 0) --q;
  return q * unit;
}

// Writes "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (fraction only when non-zero).
// Returns the length; out must hold 32 bytes.
size_t FormatIso8601(int64_t micros, char* out);
std::string FormatIso8601(int64_t micros);
// "YYYY-MM-DDTHH" (for partition names in messages and the CLI).
std::string FormatHour(int64_t micros);
// "YYYYMMDDHH" (in load ids and BigQuery partition decorators).
std::string FormatCompactHour(int64_t micros);

// A time zone for wall-clock times written without an offset: a fixed UTC
// offset, or an IANA zone from the system tz database (daylight saving and
// historical offsets). Cheap to copy; safe to share between threads.
//
// A wall-clock time that does not exist or exists twice maps the way
// java.time and Python's zoneinfo (fold=0) map it:
//   - skipped (spring forward): as if the offset before the change still
//     held, so 02:30 on a day New York skips 02:00-03:00 is 03:30 EDT;
//   - repeated (fall back): the first occurrence, so 01:30 on a day New York
//     repeats 01:00-02:00 is 01:30 EDT, not EST.
class TimeZone {
 public:
  TimeZone() = default;  // UTC
  static TimeZone Fixed(int32_t offset_seconds);
  // "UTC", "Z", "+09:00", "-0530", "+9" (fixed), an IANA name such as
  // "Asia/Tokyo", or "localtime" (the TZ variable, else /etc/localtime).
  static StatusOr<TimeZone> Parse(std::string_view name);

  // Seconds since the epoch of a wall-clock time given as seconds since
  // 1970-01-01T00:00:00 on that wall clock.
  int64_t LocalToUtcSeconds(int64_t local_seconds) const {
    return zone_ ? ZoneLocalToUtc(local_seconds) : local_seconds - fixed_offset_;
  }
  // The offset east of UTC in effect at an instant.
  int32_t OffsetAt(int64_t micros) const { return zone_ ? ZoneOffsetAt(micros) : fixed_offset_; }
  bool is_fixed() const { return zone_ == nullptr; }
  // "+09:00" for a fixed offset, else the IANA name.
  std::string Name() const;

 private:
  class Zone;  // the tz database's zone, with a per-hour offset cache
  int64_t ZoneLocalToUtc(int64_t local_seconds) const;
  int32_t ZoneOffsetAt(int64_t micros) const;

  std::shared_ptr<const Zone> zone_;
  int32_t fixed_offset_ = 0;
};

// Parses ISO-8601 / RFC 3339 date-times: "YYYY-MM-DD[T ]HH:MM[:SS[.f+]][Z|±HH[:MM]|±HHMM]",
// also a bare "YYYY-MM-DD[THH]". Times without an offset are taken at
// default_offset_seconds (or in zone). Years outside 0001..9999 are rejected.
std::optional<int64_t> ParseIso8601(std::string_view s, const TimeZone& zone);
std::optional<int64_t> ParseIso8601(std::string_view s, int32_t default_offset_seconds = 0);

// A parsed strftime-style layout (%Y %m %d %H %M %S %y %b %j %z %Z %L %N %s %T %F
// %e %% and literal text), usable both to parse and to match a prefix.
class TimeLayout {
 public:
  static StatusOr<TimeLayout> Compile(std::string_view layout);

  // Parses all of s. Fields not in the layout default to the epoch start
  // (month/day 1, time 0); no offset in the text means zone's wall clock.
  std::optional<int64_t> Parse(std::string_view s, const TimeZone& zone) const;
  // Parses a prefix of s, returning how many bytes it consumed (0 on failure).
  size_t ParsePrefix(std::string_view s, const TimeZone& zone, int64_t* out) const;
  // Formats t on zone's wall clock, the way Fluentd would name a time slice.
  std::string Format(int64_t micros, const TimeZone& zone) const;
  // The finest unit the layout names, in micros (an hour for %Y%m%d%H).
  int64_t Resolution() const { return resolution_; }
  const std::string& layout() const { return layout_; }

 private:
  struct Item {
    char spec;  // 0 for literal
    std::string literal;
  };
  std::string layout_;
  std::vector<Item> items_;
  int64_t resolution_ = kMicrosPerDay * 366;
};

// "+09:00", "-0530", "Z", "UTC", "+9" → offset in seconds east of UTC
// (TimeZone::Parse takes these and IANA names).
StatusOr<int32_t> ParseUtcOffset(std::string_view s);
// "10m", "1h30m", "45s", "500ms", "2d", "0" → microseconds.
StatusOr<int64_t> ParseDuration(std::string_view s);
std::string FormatDuration(int64_t micros);

}  // namespace logferry
