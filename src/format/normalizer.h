// Turns one source line into one load-ready NDJSON row.
//
// This is the hot path of staging: one RowNormalizer per worker thread, fed
// lines straight from the decompression buffer (no copies). JSON goes through
// simdjson's On-Demand API; values are copied through as their raw JSON text
// wherever that text is already valid output, so most of the work is a
// memcpy per value and a hash lookup per key.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"
#include "common/time.h"
#include "schema/schema.h"

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
  TimeLayout time_layout;      // for kLayout
  int32_t offset_seconds = 0;  // for times without an offset
};

// Whether a string has the shape of an ISO-8601 date-time ("YYYY-MM-DDTHH:MM…"):
// a cheap test before the real parse, which decides.
inline bool LooksLikeTimestamp(std::string_view s) {
  auto d = [&](size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  return s.size() >= 16 && s.size() <= 40 && d(0) && d(1) && d(2) && d(3) && s[4] == '-' && s[7] == '-' &&
         (s[10] == 'T' || s[10] == ' ' || s[10] == 't') && s[13] == ':';
}

// Parses an event time given as text per the options (numbers as epoch).
// Times outside years 0001..9999 (UTC) are rejected.
std::optional<int64_t> ParseEventTime(std::string_view text, const FormatOptions& opts);
std::optional<int64_t> ParseEventTimeUnchecked(std::string_view text, const FormatOptions& opts);

// Decodes the body of a JSON string (the text between its quotes) as
// simdjson does, except that an unpaired surrogate escape (a backslash-u of
// U+D800..U+DFFF without its partner) becomes U+FFFD instead of failing: such
// text has no UTF-8 form, and the policy repairs odd values rather than
// losing the record. For the rare strings simdjson rejects, so not fast.
// Returns how many escapes were replaced, or -1 if the text is invalid for
// another reason (an unknown escape, a raw control byte), leaving *out unspecified.
int UnescapeJsonLossy(std::string_view body, std::string* out);

struct LineError {
  std::string field;  // the field at fault, when there is one
  std::string reason;
  // csv: the line ends inside a quoted field, so the record may go on in the
  // next line (the reader decides; see CsvContinuation).
  bool open_quote = false;
};

// Where a csv record ends when a quoted field holds line breaks: Ruby's CSV,
// which Fluentd's csv formatter uses, writes such a value as it is, inside
// quotes (RFC 4180). Fed the text after a first line that ended inside a
// quoted field (LineError::open_quote), in pieces as they are read; it
// follows the quoting as SplitCsv does.
class CsvContinuation {
 public:
  enum class Result {
    kMore,       // all of text[*pos, size) belongs to the record: *pos == size
    kEnd,        // the record ends at the line break at *pos
    kMalformed,  // a closing quote followed by something other than a delimiter or line end, at *pos
  };
  explicit CsvContinuation(char delimiter) : delimiter_(delimiter) {}
  // Scans text[*pos, size), carrying on from where the last call stopped.
  Result Scan(const char* text, size_t size, size_t* pos);
  // Whether the text scanned so far is a complete record (the input ends here).
  bool CanEndHere() const { return state_ != State::kQuoted; }

 private:
  enum class State { kQuoted, kQuoteInQuoted, kCrAfterQuote, kFieldStart, kUnquoted };
  State state_ = State::kQuoted;
  char delimiter_;
};

// The deepest nesting a record may have (containers open at once, the record
// itself included); a deeper record is a bad record. Below 15 levels a value
// is written as text to a companion column anyway, and that costs no stack
// or memory per level (simdjson's On-Demand parser keeps none, and the text
// is copied, not recursed into), so the bound is not about this parser: it
// is msgpack's (kMsgpackMaxParseDepth, where its parser does keep memory per
// level), applied to every format so that depth means the same in all.
constexpr size_t kMaxJsonDepth = 1'000'000;

// The most new columns one source object may add to a table; its other new
// fields go to _overflow. One object of a million distinct keys would
// otherwise widen the table to the column limit, and every later load pays
// for every column.
constexpr size_t kMaxNewColumnsPerObject = 1000;

// A field name as quoted in errors and warnings: names may be megabytes
// long, so past 256 bytes it is cut, with its length.
std::string FieldNameForMessage(std::string_view name);

// Columns every table gets from the normalizer.
std::vector<std::pair<std::string, ColumnType>> FixedColumns(LogFormat format);

// The output row under construction. Appends are inline with one capacity
// check; a row is built from ~30 small pieces, and std::string's out-of-line
// append was a measurable share of staging time.
class RowBuffer {
 public:
  RowBuffer() { Grow(4096); }
  ~RowBuffer() { free(data_); }
  RowBuffer(const RowBuffer&) = delete;
  RowBuffer& operator=(const RowBuffer&) = delete;

  void clear() { size_ = 0; }
  size_t size() const { return size_; }
  char back() const { return data_[size_ - 1]; }
  void pop_back() { --size_; }
  void resize(size_t n) { size_ = n; }  // shrink only
  void erase(size_t pos, size_t n) {
    memmove(data_ + pos, data_ + pos + n, size_ - pos - n);
    size_ -= n;
  }
  void push_back(char c) {
    if (size_ == cap_) Grow(cap_ * 2);
    data_[size_++] = c;
  }
  void append(const char* p, size_t n) {
    if (size_ + n > cap_) Grow(std::max(cap_ * 2, size_ + n));
    memcpy(data_ + size_, p, n);
    size_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  std::string_view view() const { return {data_, size_}; }
  std::string substr(size_t pos) const { return std::string(data_ + pos, size_ - pos); }

 private:
  void Grow(size_t n) {
    data_ = static_cast<char*>(realloc(data_, n));
    cap_ = n;
  }
  char* data_ = nullptr;
  size_t size_ = 0, cap_ = 0;
};

class RowNormalizer {
 public:
  RowNormalizer(SchemaRegistry* schema, const FormatOptions& opts);

  // Starts a new source object: its budget of new columns
  // (kMaxNewColumnsPerObject) begins again.
  void BeginObject() { new_columns_left_ = kMaxNewColumnsPerObject; }

  // Normalizes a line (without its newline). `capacity` is how many bytes are
  // readable from line.data() (simdjson reads up to 64 bytes past the end).
  // fallback_time: event time for records that carry none (the key's slice).
  // On success row() holds the row with its trailing newline.
  bool Normalize(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time, LineError* err);
  // For records that arrive as JSON text built elsewhere (msgpack): `json`
  // must be followed by at least SIMDJSON_PADDING readable bytes.
  // Neither throws: an exception while normalizing (out of memory, say)
  // fails that record with a reason saying so.
  bool NormalizeJson(std::string_view json, size_t capacity, std::optional<int64_t> fallback_time, LineError* err);

  std::string_view row() const { return row_.view(); }

  // The fast path (on by default) handles the common shapes of log records
  // in one pass over the bytes and defers everything else — escapes in keys,
  // \u escapes, arrays, numbers near the limits, type conflicts, anything
  // invalid — to the simdjson path, which alone reports errors. Tests turn it
  // off to check both paths give identical rows.
  void set_fast_path(bool on) { fast_path_ = on; }
  int64_t time() const { return time_; }
  // Values repaired or rewritten (invalid UTF-8, out-of-range numbers, type
  // conflicts) since construction, with the latest message.
  uint64_t warnings() const { return warnings_; }
  const std::string& last_warning() const { return last_warning_; }
  // Names of the top-level columns written since the last call (in the
  // order first written), then forgets them: a load reads only the columns
  // its parts hold, however wide the table has grown.
  std::vector<std::string> TakeColumnsWritten();
  // A repair made before the normalizer saw the record (msgpack decoding);
  // call after the record became a row.
  void AddWarning(std::string message) {
    ++warnings_;
    last_warning_ = std::move(message);
  }

 private:
 public:
  // Log records repeat one shape: the same keys in the same order. Per
  // object level, remember the key seen at each position, so the common case
  // is one short compare instead of building a key and hashing it.
  struct ShapeSlot {
    std::string raw_key;
    Column* column = nullptr;
    // The key's first 8 bytes and a mask over them, for a one-load compare.
    uint64_t prefix = 0, mask = 0;
    void Set(std::string_view key, Column* c) {
      raw_key.assign(key);
      column = c;
      size_t n = std::min<size_t>(key.size(), 8);
      prefix = 0;
      memcpy(&prefix, key.data(), n);
      mask = n == 8 ? ~uint64_t{0} : ((uint64_t{1} << (8 * n)) - 1);
    }
  };

 private:
  bool EmitMembers(simdjson::ondemand::object obj, Column* parent, bool top, LineError* err);
  // Appends the value for column c (key already written). Returns false on a
  // parse error; sets *emitted=false when nothing was written (null, empty).
  bool EmitValue(simdjson::ondemand::value v, Column* c, size_t key_mark, bool* emitted, LineError* err);
  bool EmitArray(simdjson::ondemand::array arr, Column* c, ColumnType* kind, bool* mixed, LineError* err);
  // The JSON text of an object or array value, as it is in the input.
  bool RawContainer(simdjson::ondemand::value v, simdjson::ondemand::json_type t, std::string_view* raw,
                    LineError* err);
  // Whether a value of text `raw` at the current depth keeps the record
  // within kMaxJsonDepth; if not, says so in *err.
  bool WithinDepth(std::string_view raw, LineError* err);
  bool cut_deep_ = false;  // EmitArray copied a too-deep container as text
  bool ScalarText(simdjson::ondemand::value v, simdjson::ondemand::json_type t, Column* c, ColumnType* kind,
                  std::string* scratch, std::string_view* text, LineError* err);
  Column* Lookup(Column* parent, std::string_view raw_key, simdjson::ondemand::field& f, LineError* err);
  // The column for an unescaped key, or nullptr (with no_column_why_ set)
  // when it may not have one: too long a name, the object's new-column
  // budget spent, or the table at the column limit.
  Column* NewOrKnownChild(Column* parent, std::string_view key);
  std::string no_column_why_;
  size_t new_columns_left_ = kMaxNewColumnsPerObject;
  Column* LookupAt(std::vector<ShapeSlot>& shape, size_t index, Column* parent, std::string_view raw_key,
                   simdjson::ondemand::field& f, LineError* err);
  void Warn(const Column* c, std::string message);
  void NoteWritten(const Column* c) {
    if (c->parent() != schema_->root()) return;
    uint32_t i = c->sibling_index();
    if (i >= written_.size()) written_.resize(i + 64);
    if (!written_[i]) {
      written_[i] = 1;
      written_list_.push_back(c);
    }
  }
  void AppendTimeColumn();
  bool ParseJsonLine(std::string_view json, size_t capacity, LineError* err);
  // Replaces the member begun at key_mark by the value's text in c's STRING
  // companion (or _overflow at the column limit), with a warning saying why.
  void WriteAsText(Column* c, size_t key_mark, std::string_view text, bool quote, const std::string& why);
  void AddOverflow(const std::string& path, std::string_view value_text, bool quote);
  struct Member {
    Column* column;
    size_t start, end;  // in row_, including the leading comma
  };
  // Per nesting depth; a deque so growing it keeps outer frames' references valid.
  std::deque<std::vector<Member>> members_;
  std::string overflow_;
  std::string last_unescaped_key_;
  Column* overflow_col_ = nullptr;
  // Returns false when the line needs the simdjson path (row_ may then hold
  // a partial row; the caller truncates it).
  bool FastObject(const char*& p, const char* end, Column* parent, bool top, int depth, bool* emitted);
  bool FastLine(std::string_view json);
  // Sets time_ from an event time's text, reusing the last parse when the
  // text repeats. False if it does not parse.
  bool CachedEventTime(std::string_view text);
  Column* ChildCached(std::vector<ShapeSlot>& shape, size_t index, Column* parent, std::string_view raw_key);
  bool fast_path_ = true;
  const char* input_end_ = nullptr;  // end of the JSON text being parsed
  bool time_in_record_;              // the event time is a field of the record (not out_file's prefix)
  // ltsv/csv/tsv/single_value: the line rebuilt as a JSON object.
  bool TextToJson(std::string_view line, LineError* err);
  std::string converted_;
  std::vector<std::string_view> fields_;  // csv/tsv fields of the current line
  std::string unquoted_;
  void BeginRecord(LineError* err);  // resets the per-record state
  bool NormalizeLine(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time, LineError* err);
  bool Unexpected(const char* what, LineError* err);  // an exception: the record is bad
  // A row may be at most kRowBudgetFactor times its line plus the slack:
  // ordinary records stay far below (escaping a control character takes 6
  // bytes), while re-quoting misfit nested values grows without this bound.
  static constexpr size_t kRowBudgetFactor = 8;
  static constexpr size_t kRowBudgetSlack = 1 << 20;
  size_t row_budget_ = kRowBudgetSlack;
  void CheckRowBudget(size_t adding) const;  // throws past the budget
  bool OverBudget(LineError* err);
  bool FinishRecord(std::optional<int64_t> fallback_time, LineError* err);

  SchemaRegistry* schema_;
  FormatOptions opts_;
  simdjson::ondemand::parser parser_;
  RowBuffer row_;
  std::string quote_scratch_;
  // A TIMESTAMP value as written: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z", which every
  // warehouse parses, whatever offset or precision the source used.
  std::string ts_canonical_;
  bool inexact_int_ = false;  // the last integer ScalarText saw is beyond 2^53
  bool TimestampValue(std::string_view content, std::string* canonical);
  std::string last_ts_in_;  // the last timestamp text parsed, and its canonical form
  std::string last_ts_out_;
  std::string last_tag_;
  bool last_tag_valid_ = false;  // any text, even empty or NUL, may be a tag
  std::string last_tag_json_;
  void AppendQuoted(std::string_view s);
  std::string FieldAt(std::string_view line, size_t pos) const;
  std::string scratch_;
  std::string repaired_;
  std::string lossy_;          // a string or key decoded by UnescapeJsonLossy
  bool key_repaired_ = false;  // the last Lookup repaired its key (not cached)
  std::string cache_key_;
  std::unordered_map<std::string, Column*> cache_;
  std::unordered_map<const Column*, std::vector<ShapeSlot>> shapes_;
  // A few recent (parent, shape) pairs: a record visits the same handful of
  // object levels every line, so this skips most hash lookups.
  struct RecentShape {
    const Column* parent = nullptr;
    std::vector<ShapeSlot>* shape = nullptr;
  };
  RecentShape recent_shapes_[4];
  unsigned recent_next_ = 0;
  std::vector<ShapeSlot>& ShapeOf(const Column* parent) {
    for (RecentShape& r : recent_shapes_)
      if (r.parent == parent) return *r.shape;
    std::vector<ShapeSlot>* s = &shapes_[parent];  // node-based map: the address stays valid
    recent_shapes_[recent_next_++ & 3] = RecentShape{parent, s};
    return *s;
  }
  Column* time_col_;
  Column* tag_col_ = nullptr;
  int64_t time_ = 0;
  int64_t last_time_ = INT64_MIN;
  std::string last_time_in_;
  bool last_time_valid_ = false;  // an empty text must not match the initial empty cache
  int64_t last_time_parsed_ = 0;
  char last_time_text_[40];
  size_t last_time_len_ = 0;
  bool have_time_ = false;
  std::string time_error_;
  uint64_t warnings_ = 0;
  std::vector<uint8_t> written_;  // by sibling_index, top-level columns only
  std::vector<const Column*> written_list_;
  uint64_t pending_warnings_ = 0;  // this record's, until it becomes a row
  std::string pending_warning_;
  void CommitWarnings();
  std::string last_warning_;
  int depth_ = 0;
};

}  // namespace logferry
