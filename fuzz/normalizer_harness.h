// The line normalizer under fuzzing, shared by fuzz_normalizer_<format>.cc.
//
// Input: the first byte picks format options (relative to '0', so a seed
// starting with '0' uses the defaults; see OptionsFor), the rest is the
// object's text, one record per '\n'-separated line. Every line is fed, in
// order, to two normalizers with their own schema registries: one with the
// fast path (the default), one without. Lines are normalized in place in one
// buffer holding the rest of the input plus SIMDJSON_PADDING, as staging
// does in its read window, allocated to the exact size so ASan sees any read
// beyond it.
//
// Checked for every line:
//   - both paths agree: success, row, error reason and field, event time;
//   - a row is one JSON object (nlohmann parses it, valid UTF-8) ending in
//     "}\n", with no duplicate key at any level (the warehouse rejects the
//     whole part otherwise);
//   - it has _time, which parses back to the event time (and _tag for
//     out_file with output_tag);
//   - out_file with output_time: the event time is what ParseEventTime makes
//     of the line's first field on its own.
// csv lines are joined into records as staging joins them (a line that ends
// inside quotes goes on in the next; src/core/stage.cc), and CsvContinuation
// must agree with the normalizer's own split: a record it ends is not open
// at its end, text it calls malformed fails for another reason, the input's
// end is a record end exactly when the normalizer sees the quotes closed,
// and scanning in small pieces finds what one scan finds.
// And at the end of the input:
//   - both registries hold the same schema;
//   - every row fits that schema: each key is a column at its level and each
//     value has the column's type and mode (schema.h: "a load never fails on
//     type drift"; the schema only widens, so the final one is what a load sees).
#pragma once

#include <simdjson.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/time.h"
#include "format/normalizer.h"
#include "fuzz_common.h"
#include "schema/schema.h"
#include "warehouse/bigquery_schema.h"

namespace logferry::fuzz {

using nlohmann::json;

// b = first byte - '0'. Bits 0-1: time format (iso8601, unix, unix_ms,
// layout); bit 2: offset +09:00 for times without one; bits 3-4: a
// format-specific variant; bit 5: the key has a time slice (fallback time).
inline FormatOptions OptionsFor(LogFormat format, uint8_t b) {
  FormatOptions o;
  o.format = format;
  o.time_kind = static_cast<TimeFormatKind>(b & 3);
  if (o.time_kind == TimeFormatKind::kLayout) o.time_layout = *TimeLayout::Compile("%d/%b/%Y:%H:%M:%S %z");
  o.zone = TimeZone::Fixed((b & 4) ? 9 * 3600 : 0);
  int variant = (b >> 3) & 3;
  switch (format) {
    case LogFormat::kOutFile:
      // Fluentd's out_file options: output_tag false, output_time false, delimiter COMMA.
      if (variant == 1) o.output_tag = false;
      if (variant == 2) o.output_time = false;
      if (variant == 3) o.delimiter = ',';
      break;
    case LogFormat::kJson:
      o.time_key = variant == 0 ? "time" : variant == 1 ? "t" : variant == 2 ? "@timestamp" : "";
      break;
    case LogFormat::kLtsv:
      if (variant == 1) o.delimiter = ' ';
      if (variant == 2) o.label_delimiter = '=';
      if (variant == 3) o.time_key = "a";
      break;
    case LogFormat::kCsv:
    case LogFormat::kTsv:
      if (format == LogFormat::kCsv) o.delimiter = ',';
      if (variant == 0) o.keys = {"time", "host", "code", "msg"};
      if (variant == 1) o.keys = {"time"};
      if (variant == 2) o.keys = {"time", "a", "a", "A"};  // duplicate and case-clashing keys
      if (variant == 3) o.keys = {"", "1x", "_PARTITIONTIME", "a.b", "time"};
      break;
    case LogFormat::kSingleValue:
      o.message_key = variant == 0 ? "message" : variant == 1 ? "time" : variant == 2 ? "" : "a\"b\\";
      break;
    case LogFormat::kMsgpack:
      break;
  }
  return o;
}

// Parses a row, failing on invalid JSON or a duplicate key at any level.
inline json ParseRow(std::string_view row) {
  std::vector<std::set<std::string>> open;
  try {
    return json::parse(row, [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        open.emplace_back();
      } else if (ev == json::parse_event_t::object_end) {
        open.pop_back();
      } else if (ev == json::parse_event_t::key) {
        if (!open.back().insert(parsed.get<std::string>()).second)
          Fail("row has a duplicate key", std::string(row) + "\nkey: " + parsed.get<std::string>());
      }
      return true;
    });
  } catch (const json::exception& e) {
    Fail("row is not valid JSON", std::string(e.what()) + "\n" + std::string(row));
  }
}

inline bool IsInt64(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return true;
  return v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
}

// Whether a (non-repeated) value has the BigQuery type `type`.
inline bool FitsType(const json& v, const std::string& type, const json* fields, const std::string& path,
                     std::string* why);

// Checks an object against an array of BigQuery fields.
inline bool FitsFields(const json& obj, const json& fields, const std::string& path, std::string* why) {
  if (!obj.is_object()) {
    *why = path + ": not an object";
    return false;
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const json* field = nullptr;
    for (const json& f : fields)
      if (f["name"] == it.key()) field = &f;
    std::string p = path.empty() ? it.key() : path + "." + it.key();
    if (!field) {
      *why = p + ": no such column in the schema";
      return false;
    }
    const std::string type = (*field)["type"];
    const json* sub = field->contains("fields") ? &(*field)["fields"] : nullptr;
    if ((*field)["mode"] == "REPEATED") {
      if (!it.value().is_array()) {
        *why = p + ": REPEATED column holds a non-array";
        return false;
      }
      for (const json& e : it.value())
        if (!FitsType(e, type, sub, p + "[]", why)) return false;
    } else if (!FitsType(it.value(), type, sub, p, why)) {
      return false;
    }
  }
  return true;
}

inline bool FitsType(const json& v, const std::string& type, const json* fields, const std::string& path,
                     std::string* why) {
  bool ok;
  if (type == "INT64")
    ok = IsInt64(v);
  else if (type == "FLOAT64")
    ok = v.is_number();
  else if (type == "BOOL")
    ok = v.is_boolean();
  else if (type == "STRING")
    ok = v.is_string();
  else if (type == "TIMESTAMP")
    ok = v.is_string() && ParseIso8601(v.get<std::string>()).has_value();
  else if (type == "RECORD")
    return fields && FitsFields(v, *fields, path, why);
  else
    ok = false;
  if (!ok) *why = path + ": value " + v.dump() + " does not fit type " + type;
  return ok;
}

// Two normalizers (fast path on and off) over the same records, with the
// per-row and end-of-input checks described at the top of this file.
class Differential {
 public:
  // With registries of their own (the usual), or given ones (fast, slow):
  // those may hold columns from earlier inputs, as a worker's registry holds
  // the table's.
  Differential(LogFormat format, const FormatOptions& opts, SchemaRegistry* fast = nullptr,
               SchemaRegistry* slow = nullptr)
      : format_(format),
        opts_(opts),
        own_fast_(fast ? nullptr : std::make_unique<SchemaRegistry>(FixedColumns(format))),
        own_slow_(slow ? nullptr : std::make_unique<SchemaRegistry>(FixedColumns(format))),
        fast_schema_(fast ? *fast : *own_fast_),
        slow_schema_(slow ? *slow : *own_slow_),
        fast_(&fast_schema_, opts),
        slow_(&slow_schema_, opts) {
    slow_.set_fast_path(false);
  }

  // A line of a text format, with `capacity` readable bytes from its start.
  // Returns the event time when the line was accepted.
  std::optional<int64_t> Line(std::string_view line, size_t capacity, std::optional<int64_t> fallback) {
    Outcome f = RunLine(fast_, line, capacity, fallback, false);
    Compare(line, f, RunLine(slow_, line, capacity, fallback, false));
    open_quote_ = f.open_quote;
    last_ = f;
    return f.ok ? std::optional<int64_t>(f.time) : std::nullopt;
  }
  // Whether the last Line() failed because it ends inside a quoted field (csv).
  bool open_quote() const { return open_quote_; }
  // The fast path's outcome of the last Line() or Json() (the paths agree).
  bool last_ok() const { return last_.ok; }
  const std::string& last_reason() const { return last_.reason; }
  const std::string& last_row() const { return last_.row; }
  size_t column_count() const { return fast_schema_.column_count(); }
  // A record given as JSON text (msgpack), likewise padded.
  void Json(std::string_view text, size_t capacity, std::optional<int64_t> fallback) {
    Outcome f = RunLine(fast_, text, capacity, fallback, true);
    Compare(text, f, RunLine(slow_, text, capacity, fallback, true));
    last_ = f;
  }

  void Finish() {
    const json schema = json::parse(BigQuerySchemaJson(fast_schema_.Columns()));
    const json slow = json::parse(BigQuerySchemaJson(slow_schema_.Columns()));
    Require(schema == slow, "fast and slow paths built different schemas", schema.dump() + "\nvs\n" + slow.dump());
    Require(fast_schema_.column_count() <= kMaxColumns, "the table is wider than the column limit",
            std::to_string(fast_schema_.column_count()));
    for (const json& row : rows_) {
      std::string why;
      if (!FitsFields(row, schema, "", &why))
        Fail("row does not fit the schema", why + "\nrow: " + row.dump() + "\nschema: " + schema.dump());
    }
  }

 private:
  struct Outcome {
    bool ok = false;
    std::string row;
    std::string reason, field;
    bool open_quote = false;
    int64_t time = 0;
  };

  static Outcome RunLine(RowNormalizer& n, std::string_view line, size_t capacity, std::optional<int64_t> fallback,
                         bool json_text) {
    LineError err;
    Outcome o;
    o.ok = json_text ? n.NormalizeJson(line, capacity, fallback, &err) : n.Normalize(line, capacity, fallback, &err);
    if (o.ok) {
      o.row = std::string(n.row());
      o.time = n.time();
    } else {
      o.reason = err.reason;
      o.field = err.field;
      o.open_quote = err.open_quote;
    }
    return o;
  }

  void Compare(std::string_view line, const Outcome& f, const Outcome& s) {
    std::string ctx = "input: " + std::string(line) + "\nfast: " + (f.ok ? f.row : f.reason + " [" + f.field + "]") +
                      "\nslow: " + (s.ok ? s.row : s.reason + " [" + s.field + "]");
    Require(f.ok == s.ok, "fast and slow paths disagree on success", ctx);
    Require(f.row == s.row, "fast and slow paths give different rows", ctx);
    Require(f.reason == s.reason && f.field == s.field && f.open_quote == s.open_quote,
            "fast and slow paths give different errors", ctx);
    Require(f.ok || !f.open_quote || format_ == LogFormat::kCsv, "an open quote outside csv", ctx);
    if (!f.ok) {
      Require(!f.reason.empty(), "a rejected line has no reason", ctx);
      return;
    }
    Require(f.time == s.time, "fast and slow paths give different event times", ctx);
    Require(f.row.size() >= 3 && f.row.front() == '{' && f.row.substr(f.row.size() - 2) == "}\n",
            "row is not one object and a newline", ctx);
    json row = ParseRow(std::string_view(f.row).substr(0, f.row.size() - 1));
    Require(row.is_object(), "row is not an object", ctx);
    Require(row.contains("_time") && row["_time"].is_string(), "row has no _time string", ctx);
    auto t = ParseIso8601(row["_time"].get<std::string>());
    Require(t.has_value() && *t == f.time, "_time does not parse back to the event time",
            ctx + "\nevent time (us): " + std::to_string(f.time));
    if (format_ == LogFormat::kOutFile && opts_.output_tag)
      Require(row.contains("_tag") && row["_tag"].is_string(), "out_file row has no _tag", ctx);
    rows_.push_back(std::move(row));
  }

  LogFormat format_;
  FormatOptions opts_;
  std::unique_ptr<SchemaRegistry> own_fast_, own_slow_;
  SchemaRegistry &fast_schema_, &slow_schema_;
  RowNormalizer fast_, slow_;
  std::vector<json> rows_;
  bool open_quote_ = false;
  Outcome last_;
};

// csv: where the record whose first line ends at `first_end` (inside quotes)
// ends, scanning `rest` (the text from the record's start) once and again in
// pieces of 1 to 7 bytes, which must agree.
inline CsvContinuation::Result ScanCsvRecord(std::string_view rest, size_t first_end, char delimiter, size_t* pos,
                                             bool* can_end) {
  CsvContinuation whole(delimiter);
  *pos = first_end + 1;
  CsvContinuation::Result r = whole.Scan(rest.data(), rest.size(), pos);
  *can_end = whole.CanEndHere();
  CsvContinuation pieces(delimiter);
  size_t p = first_end + 1, upto = p;
  CsvContinuation::Result q = CsvContinuation::Result::kMore;
  for (size_t k = 0; q == CsvContinuation::Result::kMore; ++k) {
    upto = std::min(rest.size(), upto + 1 + k % 7);
    q = pieces.Scan(rest.data(), upto, &p);
    if (upto == rest.size()) break;
  }
  Require(q == r && p == *pos && pieces.CanEndHere() == *can_end, "CsvContinuation depends on how it is fed",
          "record: " + std::string(rest.substr(0, std::min<size_t>(rest.size(), 200))));
  return r;
}

inline std::optional<int64_t> FallbackFor(uint8_t b) {
  return (b & 32) ? std::optional<int64_t>(1470052800 * kMicrosPerSecond) : std::nullopt;
}

inline int RunNormalizer(LogFormat format, const uint8_t* data, size_t size, SchemaRegistry* fast_schema = nullptr,
                         SchemaRegistry* slow_schema = nullptr) {
  if (size == 0) return 0;
  const uint8_t b = static_cast<uint8_t>(data[0] - '0');
  const FormatOptions opts = OptionsFor(format, b);
  Differential diff(format, opts, fast_schema, slow_schema);

  // The read window: the rest of the input, then padding, exactly allocated.
  const size_t text_size = size - 1;
  const size_t cap = text_size + simdjson::SIMDJSON_PADDING;
  std::unique_ptr<char[]> window(new char[cap]);
  memcpy(window.get(), data + 1, text_size);
  // Staging's padding holds stale bytes, not zeros: nothing may depend on it.
  memset(window.get() + text_size, '"', simdjson::SIMDJSON_PADDING);

  const std::string_view text(window.get(), text_size);
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    auto t = diff.Line(line, cap - start, FallbackFor(b));
    if (format == LogFormat::kCsv && diff.open_quote() && nl < text.size()) {
      // Staging reads on: the record is these lines joined, if CsvContinuation finds its end.
      std::string_view rest = text.substr(start);
      size_t end;
      bool can_end;
      CsvContinuation::Result r = ScanCsvRecord(rest, nl - start, opts.delimiter, &end, &can_end);
      size_t consumed = 0;  // the record and its line break, when it is one
      if (r == CsvContinuation::Result::kEnd) {
        consumed = end + 1;
      } else if (r == CsvContinuation::Result::kMore && can_end) {
        consumed = rest.size();
      } else if (r == CsvContinuation::Result::kMalformed) {
        // Up to that line's end the text fails, and not for an open quote.
        size_t line_end = rest.find('\n', end);
        std::string_view bad = rest.substr(0, line_end == std::string_view::npos ? rest.size() : line_end);
        Require(!diff.Line(bad, cap - start, FallbackFor(b)) && !diff.open_quote(),
                "text CsvContinuation calls malformed is a record, or open", std::string(bad));
      }
      if (consumed > 0) {
        std::string_view record = rest.substr(0, r == CsvContinuation::Result::kEnd ? end : rest.size());
        if (!record.empty() && record.back() == '\r') record.remove_suffix(1);  // as staging strips a line's CR
        diff.Line(record, cap - start, FallbackFor(b));
        Require(!diff.open_quote(), "a record CsvContinuation ends is still open", std::string(record));
        start += consumed;
        continue;
      }
    }
    start = nl + 1;
    if (t && format == LogFormat::kOutFile && opts.output_time) {
      // The event time is the first field's, parsed on its own.
      auto expected = ParseEventTime(line.substr(0, line.find(opts.delimiter)), opts);
      Require(expected.has_value() && *expected == *t, "an out_file row's time is not its time field's",
              "line: " + std::string(line) + "\nrow time: " + FormatIso8601(*t));
    }
  }
  diff.Finish();
  return 0;
}

}  // namespace logferry::fuzz
