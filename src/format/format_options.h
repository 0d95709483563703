// What a table's Fluentd formatter wrote, as the config names it: the format,
// its delimiters and keys, and how event times are written. Kept apart from
// the normalizer so that the config (and whatever includes it) sees only
// these options, not the JSON parser behind them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace logferry {

// Fluentd's out_s3 formatters. out_file and json are JSON records; ltsv, csv,
// tsv and single_value lines are turned into a JSON object of strings first;
// msgpack is a stream of maps (not lines), decoded by StageObject and handed
// over as JSON text.
enum class LogFormat { kOutFile, kJson, kLtsv, kCsv, kTsv, kSingleValue, kMsgpack };
StatusOr<LogFormat> ParseLogFormat(std::string_view s);

enum class TimeFormatKind { kIso8601, kUnix, kUnixMs, kLayout };

struct FormatOptions {
  LogFormat format = LogFormat::kOutFile;
  // out_file: field delimiter and which of time/tag lead the line.
  char delimiter = '\t';
  bool output_time = true;
  bool output_tag = true;
  // json, ltsv, csv, tsv, msgpack: the field holding event time.
  std::string time_key = "time";
  // ltsv: between label and value (fields are split on `delimiter`).
  char label_delimiter = ':';
  // csv, tsv: the column names, in order (Fluentd's `fields`/`keys`).
  std::vector<std::string> keys;
  // single_value: the field the line becomes.
  std::string message_key = "message";
  TimeFormatKind time_kind = TimeFormatKind::kIso8601;
  TimeLayout time_layout;  // for kLayout
  TimeZone zone;           // for times without an offset
};

// Parses an event time given as text per the options (numbers as epoch).
// Times outside years 0001..9999 (UTC) are rejected.
std::optional<int64_t> ParseEventTime(std::string_view text, const FormatOptions& opts);
std::optional<int64_t> ParseEventTimeUnchecked(std::string_view text, const FormatOptions& opts);
// t if it is writable as YYYY-MM-DD in UTC (years 0001..9999), else nullopt.
std::optional<int64_t> InEventTimeRange(std::optional<int64_t> t);

// ParseEventTime for a stream of records: consecutive records mostly carry
// the same second, so each distinct text is parsed once. Not thread-safe.
class EventTimeCache {
 public:
  std::optional<int64_t> Parse(std::string_view text, const FormatOptions& opts) {
    // valid_: an empty text must not match the initial empty cache.
    if (!valid_ || text != last_text_) {
      std::optional<int64_t> t = ParseEventTime(text, opts);
      if (!t) return std::nullopt;
      last_text_.assign(text);
      valid_ = true;
      last_time_ = *t;
    }
    return last_time_;
  }

 private:
  std::string last_text_;
  bool valid_ = false;
  int64_t last_time_ = 0;
};

}  // namespace logferry
