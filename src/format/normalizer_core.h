// The normalizer's insides, behind RowNormalizer (normalizer.h): its state,
// the simdjson path (normalizer.cc) and the text formats' conversion to
// JSON. Included by the normalizer's own sources only, so simdjson stays out
// of every other module's headers.
#pragma once

#include <simdjson.h>

#include <cstdlib>
#include <cstring>
#include <deque>

#include "format/key_shapes.h"
#include "format/normalizer.h"
#include "format/normalizer_fast.h"

namespace logferry {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING);

// Whether a string has the shape of an ISO-8601 date-time ("YYYY-MM-DDTHH:MM…"):
// a cheap test before the real parse, which decides.
inline bool LooksLikeTimestamp(std::string_view s) {
  auto d = [&](size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  return s.size() >= 16 && s.size() <= 40 && d(0) && d(1) && d(2) && d(3) && s[4] == '-' && s[7] == '-' &&
         (s[10] == 'T' || s[10] == ' ' || s[10] == 't') && s[13] == ':';
}

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

// RowNormalizer's implementation; the public members are its contract (see
// normalizer.h).
class NormalizerCore {
 public:
  NormalizerCore(SchemaRegistry* schema, const FormatOptions& opts, const Lineage& lineage);

  void BeginObject(std::string_view source_key);
  bool Normalize(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time, LineError* err,
                 int64_t record);
  bool NormalizeJson(std::string_view json, size_t capacity, std::optional<int64_t> fallback_time, LineError* err,
                     int64_t record);
  std::string_view row() const { return row_.view(); }
  int64_t time() const { return time_; }
  void set_fast_path(bool on) { fast_path_ = on; }
  uint64_t warnings() const { return warnings_; }
  const std::string& last_warning() const { return last_warning_; }
  std::vector<std::string> TakeColumnsWritten();
  void AddWarning(std::string message) {
    ++warnings_;
    last_warning_ = std::move(message);
  }

 private:
  friend class FastPath;  // writes the row and the event time as this path does

  using JsonValue = simdjson::ondemand::value;
  using JsonType = simdjson::ondemand::json_type;

  // One record, start to end.
  void BeginRecord(LineError* err);  // resets the per-record state
  bool NormalizeLine(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time, LineError* err);
  // out_file: the time and tag fields before the JSON; *rest gets the JSON.
  bool OutFilePrefix(std::string_view line, std::optional<int64_t> fallback_time, std::string_view* rest,
                     LineError* err);
  // ltsv/csv/tsv/single_value: the line rebuilt as a JSON object.
  bool TextToJson(std::string_view line, LineError* err);
  bool ParseJsonLine(std::string_view json, size_t capacity, LineError* err);
  bool FinishRecord(std::optional<int64_t> fallback_time, LineError* err);
  bool Unexpected(const char* what, LineError* err);  // an exception: the record is bad
  bool OverBudget(LineError* err);

  // The simdjson path: members of an object, and values by JSON type.
  bool EmitMembers(simdjson::ondemand::object obj, Column* parent, bool top, LineError* err);
  // The column of a member's key: the shape's prediction, else a lookup;
  // nullptr when it may not have one (no_column_why_ says why) or, with
  // err->reason set, when the key is invalid.
  Column* MemberColumn(Shape& shape, size_t index, Column* parent, simdjson::ondemand::field& f,
                       std::string_view* raw_key, LineError* err);
  // Keeps the event time of a json/ltsv/csv/tsv/msgpack record (time_ or time_error_).
  void ReadEventTime(JsonValue v);
  // A field that may not have a column: to _overflow, whole.
  bool OverflowMember(Column* parent, JsonValue v, LineError* err);
  struct Member {
    Column* column;
    size_t start, end;  // in row_, including the leading comma
  };
  // Removes an earlier member of column c: with duplicate keys the last value wins.
  void DropDuplicate(std::vector<Member>& members, const Column* c);
  // Appends the value for column c (key already written). Returns false on a
  // parse error; sets *emitted=false when nothing was written (null, empty).
  bool EmitValue(JsonValue v, Column* c, size_t key_mark, bool* emitted, LineError* err);
  bool EmitObject(JsonValue v, Column* c, size_t key_mark, bool* emitted, LineError* err);
  bool EmitArrayValue(JsonValue v, Column* c, size_t key_mark, bool* emitted, LineError* err);
  bool EmitScalar(JsonValue v, JsonType t, Column* c, size_t key_mark, LineError* err);
  bool EmitArray(simdjson::ondemand::array arr, Column* c, ColumnType* kind, bool* mixed, LineError* err);
  // The JSON text of an object or array value, as it is in the input.
  bool RawContainer(JsonValue v, JsonType t, std::string_view* raw, LineError* err);
  bool ScalarText(JsonValue v, JsonType t, Column* c, ColumnType* kind, std::string* scratch, std::string_view* text,
                  LineError* err);
  // Whether a value of text `raw` at the current depth keeps the record
  // within kMaxJsonDepth; if not, says so in *err.
  bool WithinDepth(std::string_view raw, LineError* err);
  bool cut_deep_ = false;  // EmitArray copied a too-deep container as text

  // Columns.
  Column* Lookup(Column* parent, std::string_view raw_key, simdjson::ondemand::field& f, LineError* err);
  // The column for an unescaped key, or nullptr (with no_column_why_ set)
  // when it may not have one: too long a name, the object's new-column
  // budget spent, or the table at the column limit.
  Column* NewOrKnownChild(Column* parent, std::string_view key);
  std::string no_column_why_;
  size_t new_columns_left_ = kMaxNewColumnsPerObject;
  void NoteWritten(const Column* c) {
    if (c->parent() != schema_->root()) return;
    uint32_t i = c->sibling_index();
    if (i >= written_.size()) written_.resize(i + 64);
    if (!written_[i]) {
      written_[i] = 1;
      written_list_.push_back(c);
    }
  }
  std::vector<uint8_t> written_;  // by sibling_index, top-level columns only
  std::vector<const Column*> written_list_;
  ShapeCache shapes_;
  ColumnCache columns_;
  std::string last_unescaped_key_;
  std::string lossy_;          // a string or key decoded by UnescapeJsonLossy
  bool key_repaired_ = false;  // the last Lookup repaired its key (not cached)

  // Values written as text, and the row's size bound.
  // Replaces the member begun at key_mark by the value's text in c's STRING
  // companion (or _overflow at the column limit), with a warning saying why.
  void WriteAsText(Column* c, size_t key_mark, std::string_view text, bool quote, const std::string& why);
  void AddOverflow(const std::string& path, std::string_view value_text, bool quote);
  // A row may be at most kRowBudgetFactor times its line plus the slack:
  // ordinary records stay far below (escaping a control character takes 6
  // bytes), while re-quoting misfit nested values grows without this bound.
  static constexpr size_t kRowBudgetFactor = 8;
  static constexpr size_t kRowBudgetSlack = 1 << 20;
  size_t row_budget_ = kRowBudgetSlack;
  void CheckRowBudget(size_t adding) const;  // throws past the budget
  std::string overflow_;
  Column* overflow_col_ = nullptr;
  // Per nesting depth; a deque so growing it keeps outer frames' references valid.
  std::deque<std::vector<Member>> members_;

  // Warnings: counted only once the record becomes a row.
  void Warn(const Column* c, const std::string& message);
  void CommitWarnings();
  uint64_t warnings_ = 0;
  std::string last_warning_;
  uint64_t pending_warnings_ = 0;  // this record's, until it becomes a row
  std::string pending_warning_;

  // Times.
  void AppendTimeColumn();
  bool TimestampValue(std::string_view content, std::string* canonical);
  // A TIMESTAMP value as written: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z", which every
  // warehouse parses, whatever offset or precision the source used.
  std::string ts_canonical_;
  std::string last_ts_in_;  // the last timestamp text parsed, and its canonical form
  std::string last_ts_out_;
  EventTimeCache event_times_;
  bool time_in_record_;  // the event time is a field of the record (not out_file's prefix)
  int64_t time_ = 0;
  bool have_time_ = false;
  std::string time_error_;
  int64_t last_time_ = INT64_MIN;  // the last _time formatted, and its text
  char last_time_text_[40];
  size_t last_time_len_ = 0;

  // Lineage: the object's _source member, quoted once per object (keys are
  // long, rows many), and the record number written to _line.
  void AppendLineage();
  Column* source_col_ = nullptr;
  Column* line_col_ = nullptr;
  bool lineage_ = false;
  std::string source_member_;  // ,"_source":"<key>"
  int64_t record_ = 0;

  // Per-format scratch.
  std::string FieldAt(std::string_view line, size_t pos) const;
  void AppendQuoted(std::string_view s);
  std::string last_tag_;
  bool last_tag_valid_ = false;  // any text, even empty or NUL, may be a tag
  std::string last_tag_json_;
  std::string converted_;
  std::vector<std::string_view> fields_;  // csv/tsv fields of the current line
  std::string unquoted_;
  std::string quote_scratch_;
  std::string scratch_;
  std::string repaired_;
  bool inexact_int_ = false;  // the last integer ScalarText saw is beyond 2^53

  SchemaRegistry* schema_;
  FormatOptions opts_;
  simdjson::ondemand::parser parser_;
  RowBuffer row_;
  Column* time_col_;
  Column* tag_col_ = nullptr;
  FastPath fast_;
  bool fast_path_ = true;
  const char* input_end_ = nullptr;  // end of the JSON text being parsed
  int depth_ = 0;
};

}  // namespace logferry
