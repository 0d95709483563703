#include "format/format_options.h"

#include <cstdlib>

#include "format/json_number.h"

namespace logferry {

StatusOr<LogFormat> ParseLogFormat(std::string_view s) {
  if (s == "out_file") return LogFormat::kOutFile;
  if (s == "json") return LogFormat::kJson;
  if (s == "ltsv") return LogFormat::kLtsv;
  if (s == "csv") return LogFormat::kCsv;
  if (s == "tsv") return LogFormat::kTsv;
  if (s == "single_value") return LogFormat::kSingleValue;
  if (s == "msgpack") return LogFormat::kMsgpack;
  return Status::InvalidArgument("format must be out_file, json, ltsv, csv, tsv, single_value or msgpack (got '" +
                                 std::string(s) + "')");
}

std::optional<int64_t> InEventTimeRange(std::optional<int64_t> t) {
  if (t && (*t < -62135596800LL * kMicrosPerSecond || *t >= 253402300800LL * kMicrosPerSecond)) return std::nullopt;
  return t;
}

std::optional<int64_t> ParseEventTime(std::string_view text, const FormatOptions& opts) {
  return InEventTimeRange(ParseEventTimeUnchecked(text, opts));
}

std::optional<int64_t> ParseEventTimeUnchecked(std::string_view text, const FormatOptions& opts) {
  switch (opts.time_kind) {
    case TimeFormatKind::kIso8601:
      if (auto t = ParseIso8601(text, opts.zone)) return t;
      break;
    case TimeFormatKind::kLayout:
      if (auto t = opts.time_layout.Parse(text, opts.zone)) return t;
      break;
    default:
      break;
  }
  // Epoch numbers ("1470052800", "1470052800.123"); unix_ms scales.
  if (!LooksLikeNumber(text)) return std::nullopt;
  char* end = nullptr;
  std::string buf(text);
  double v = strtod(buf.c_str(), &end);
  if (end != buf.c_str() + buf.size()) return std::nullopt;
  double us = opts.time_kind == TimeFormatKind::kUnixMs ? v * 1000.0 : v * 1e6;
  // Reject what does not fit years 0001..9999.
  if (!(us > -62135596800e6 && us < 253402300800e6)) return std::nullopt;
  return static_cast<int64_t>(us);
}

}  // namespace logferry
