// Time: instants are int64 microseconds since the Unix epoch, UTC.
//
// Parsing is on the hot path (one event time per log line), so ISO-8601 and
// strftime-style layouts are parsed by hand instead of through strptime(),
// which is locale-aware, slow, and ignores %z on glibc for mktime.
#pragma once

#include <cstdint>
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

// Parses ISO-8601 / RFC 3339 date-times: "YYYY-MM-DD[T ]HH:MM[:SS[.f+]][Z|±HH[:MM]|±HHMM]",
// also a bare "YYYY-MM-DD[THH]". Times without an offset are taken at
// default_offset_seconds. Years outside 0001..9999 are rejected.
std::optional<int64_t> ParseIso8601(std::string_view s, int32_t default_offset_seconds = 0);

// A parsed strftime-style layout (%Y %m %d %H %M %S %y %b %j %z %Z %L %N %s %T %F
// %e %% and literal text), usable both to parse and to match a prefix.
class TimeLayout {
 public:
  static StatusOr<TimeLayout> Compile(std::string_view layout);

  // Parses all of s. Fields not in the layout default to the epoch start
  // (month/day 1, time 0); no offset in the layout means default_offset.
  std::optional<int64_t> Parse(std::string_view s, int32_t default_offset_seconds) const;
  // Parses a prefix of s, returning how many bytes it consumed (0 on failure).
  size_t ParsePrefix(std::string_view s, int32_t default_offset_seconds, int64_t* out) const;
  // Formats t (shifted by offset) the way Fluentd would name a time slice.
  std::string Format(int64_t micros, int32_t offset_seconds) const;
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

// "+09:00", "-0530", "Z", "UTC", "+9" → offset in seconds east of UTC.
StatusOr<int32_t> ParseUtcOffset(std::string_view s);
// "10m", "1h30m", "45s", "500ms", "2d", "0" → microseconds.
StatusOr<int64_t> ParseDuration(std::string_view s);
std::string FormatDuration(int64_t micros);

}  // namespace logferry
