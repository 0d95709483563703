// Turns one source line into one load-ready NDJSON row.
//
// This is the hot path of staging: one RowNormalizer per worker thread, fed
// lines straight from the decompression buffer (no copies). JSON goes through
// a hand-written fast path (normalizer_fast.h) for the common shapes of log
// records and simdjson's On-Demand API for everything else; values are copied
// through as their raw JSON text wherever that text is already valid output,
// so most of the work is a memcpy per value and a hash lookup per key. The
// parser stays behind this header (normalizer_core.h, included by the
// normalizer's own sources only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "format/format_options.h"
#include "format/lineage.h"
#include "schema/schema.h"

namespace logferry {

class NormalizerCore;

// Readable bytes a caller must leave after the text it hands to Normalize
// (simdjson reads up to 64 bytes past the end; normalizer.cc checks the two agree).
constexpr size_t kJsonPadding = 64;

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

// Adds the lineage columns (_source, _line) a table asks for, once its
// registry is restored: new ones come before any source field seen later,
// which then takes the sibling suffix (a field "_source" becomes _source_2).
// Fails (kFailedPrecondition) when a source field already holds the name:
// its column and rows were there first, so the lineage column cannot have it.
Status AddLineageColumns(SchemaRegistry* schema, const Lineage& lineage);

class RowNormalizer {
 public:
  // lineage: the columns each row gets besides its record's (see AddLineageColumns).
  RowNormalizer(SchemaRegistry* schema, const FormatOptions& opts, const Lineage& lineage = {});
  ~RowNormalizer();
  RowNormalizer(const RowNormalizer&) = delete;
  RowNormalizer& operator=(const RowNormalizer&) = delete;

  // Starts a new source object: its budget of new columns
  // (kMaxNewColumnsPerObject) begins again. `source_key`: the object's key,
  // which every row's _source holds (with lineage "source").
  void BeginObject(std::string_view source_key = {});

  // Normalizes a line (without its newline). `capacity` is how many bytes are
  // readable from line.data() (at least line.size() + kJsonPadding).
  // fallback_time: event time for records that carry none (the key's slice).
  // record: the record's 1-based line number (msgpack: its ordinal), the
  // number a bad record would report; the row's _line (with lineage "line").
  // On success row() holds the row with its trailing newline.
  bool Normalize(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time, LineError* err,
                 int64_t record = 0);
  // For records that arrive as JSON text built elsewhere (msgpack): `json`
  // must be followed by at least kJsonPadding readable bytes.
  // Neither throws: an exception while normalizing (out of memory, say)
  // fails that record with a reason saying so.
  bool NormalizeJson(std::string_view json, size_t capacity, std::optional<int64_t> fallback_time, LineError* err,
                     int64_t record = 0);

  std::string_view row() const;
  // The event time of the last row.
  int64_t time() const;

  // The fast path (on by default) handles the common shapes of log records
  // in one pass over the bytes and defers everything else — escapes in keys,
  // \u escapes, arrays, numbers near the limits, type conflicts, anything
  // invalid — to the simdjson path, which alone reports errors. Tests turn it
  // off to check both paths give identical rows.
  void set_fast_path(bool on);
  // Values repaired or rewritten (invalid UTF-8, out-of-range numbers, type
  // conflicts) since construction, with the latest message.
  uint64_t warnings() const;
  const std::string& last_warning() const;
  // Names of the top-level columns written since the last call (in the
  // order first written), then forgets them: a load reads only the columns
  // its parts hold, however wide the table has grown.
  std::vector<std::string> TakeColumnsWritten();
  // A repair made before the normalizer saw the record (msgpack decoding);
  // call after the record became a row.
  void AddWarning(std::string message);

 private:
  std::unique_ptr<NormalizerCore> core_;
};

}  // namespace logferry
