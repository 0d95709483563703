// The table schema, established while staging.
//
// Every column is a node in a tree keyed by the source's raw field names.
// The first value seen fixes a column's type; later values must fit it, so a
// staged part always conforms to the schema the warehouse has, and a load
// never fails on type drift:
//   - an integer into a FLOAT64 column is written as is;
//   - a float into an INT64 column widens the column to FLOAT64;
//   - a scalar into a STRING column is written as its JSON text, quoted;
//   - anything else (an object into an INT64 column, an array into a scalar
//     one, a mixed array) goes, as its JSON text, into a STRING companion
//     column named "<column>_str", and the object gets a warning.
//
// Names are made warehouse-legal by Sanitize(); two raw names that sanitize
// to the same name (ignoring case) among siblings get suffixes _2, _3, ... in
// the order the ledger first recorded them. The registry is shared by all
// staging workers; nodes are never deleted, so pointers stay valid.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace logferry {

enum class ColumnType : uint8_t { kNone = 0, kBool, kInt64, kFloat64, kString, kTimestamp, kRecord };

const char* ColumnTypeName(ColumnType t);  // BigQuery's names: BOOL, INT64, ...
ColumnType ColumnTypeFromName(std::string_view s);

// BigQuery-legal name for a raw field name (see docs/schema.md):
// bytes outside [A-Za-z0-9_] become '_' (one per UTF-8 character); an empty
// name becomes "field"; a leading digit gets a '_' prefix; reserved prefixes
// (_TABLE_, _FILE_, _PARTITION, _ROW_TIMESTAMP, __ROOT__, _COLON_) get an 'f'
// prefix; the result is cut to 300 bytes.
std::string SanitizeName(std::string_view raw);

constexpr size_t kMaxColumnName = 300;
constexpr int kMaxNestingDepth = 15;
constexpr size_t kMaxColumns = 10000;
// The longest raw field name (after unescaping) that may become a column.
// Raw keys are kept in the registry, which the ledger stores and every
// command loads: a 5 MB key must not become 5 MB of every schema load. A
// longer field's value goes to _overflow under its full name instead.
constexpr size_t kMaxFieldNameBytes = 1024;

class Column {
 public:
  Column(Column* parent, std::string raw_key, std::string name);

  Column* parent() const { return parent_; }
  const std::string& raw_key() const { return raw_key_; }
  const std::string& name() const { return name_; }
  // Dotted path of mapped names from the root ("" for the root).
  const std::string& path() const { return path_; }
  // "\"name\":", ready to append to a JSON row.
  const std::string& json_key() const { return json_key_; }
  int depth() const { return depth_; }
  // Position among its parent's children, fixed at creation: a dense index
  // for per-column flags (which top-level columns a part holds).
  uint32_t sibling_index() const { return sibling_index_; }

  ColumnType type() const { return type_.load(std::memory_order_acquire); }
  // Has held an integer a double cannot represent exactly (|v| > 2^53), so
  // widening to FLOAT64 would no longer be lossless.
  bool inexact_ints() const { return inexact_ints_.load(std::memory_order_acquire); }
  bool repeated() const { return repeated_.load(std::memory_order_acquire); }

 private:
  friend class SchemaRegistry;
  Column* parent_;
  std::string raw_key_, name_, path_, json_key_;
  int depth_;
  uint32_t sibling_index_ = 0;
  std::atomic<ColumnType> type_{ColumnType::kNone};
  std::atomic<bool> repeated_{false};
  std::atomic<bool> inexact_ints_{false};
  std::atomic<Column*> companion_{nullptr};
  bool is_companion_ = false;
  // Guarded by the registry's mutex.
  std::unordered_map<std::string, std::unique_ptr<Column>> children_;
  std::vector<Column*> ordered_children_;
  std::unordered_set<std::string> taken_lower_;
  bool persisted_ = false;
};

// Raw keys of columns logferry makes itself (_time, _tag, companions) carry
// this byte, which no key from a source can contain: parsed keys are valid
// UTF-8, and 0xFF never appears in UTF-8. (A NUL would not do: JSON keys may
// hold \u0000.)
constexpr char kInternalKeyMarker = '\xff';
std::string FixedColumnKey(std::string_view name);

// A column as the ledger stores it.
struct ColumnRecord {
  std::string parent_path;
  std::string raw_key;
  std::string name;
  ColumnType type = ColumnType::kNone;
  bool repeated = false;
  bool companion = false;
  bool inexact_ints = false;
};

// A typed column as a warehouse sees it, with its typed children (a
// RECORD's fields): a copy, taken at one moment, of a registry that keeps
// growing. Columns seen only as null (no type yet) are left out.
struct ColumnSchema {
  std::string name;
  ColumnType type = ColumnType::kNone;
  bool repeated = false;
  std::vector<ColumnSchema> fields;
  bool operator==(const ColumnSchema&) const = default;
};

// Outcome of offering a value of some kind to a column.
enum class Fit {
  kOk,         // write it as is
  kAsString,   // write its JSON text as a string into this (STRING) column
  kCompanion,  // write its JSON text as a string into CompanionOf(column)
};

class SchemaRegistry {
 public:
  // Top-level columns every table has: _time (TIMESTAMP), plus any extra
  // fixed ones (e.g. _tag for out_file).
  explicit SchemaRegistry(const std::vector<std::pair<std::string, ColumnType>>& fixed_columns);

  Column* root() { return &root_; }

  // The most columns the table may have (kMaxColumns unless lowered; a
  // table's setting). Columns it already has are kept; past the limit,
  // Child() makes no new ones. Set before the registry is shared.
  void set_column_limit(size_t n) { column_limit_ = std::min(n, kMaxColumns); }
  size_t column_limit() const { return column_limit_; }

  // The child of parent for a raw key, created (with a unique legal name) on
  // first sight; nullptr when the table already has the most columns the
  // warehouse allows (kMaxColumns) or the key is longer than
  // kMaxFieldNameBytes. *created (if given) says whether this call made it.
  // Thread-safe.
  Column* Child(Column* parent, std::string_view raw_key, bool* created = nullptr);
  // The child if it exists, else nullptr; never creates. Thread-safe.
  Column* Find(Column* parent, std::string_view raw_key);
  // Offers a value of kind `kind` (repeated if it is an array) to column c,
  // establishing or widening its type as needed. Thread-safe.
  Fit Offer(Column* c, ColumnType kind, bool repeated) {
    // The common case, without a call: the value has the column's type.
    if (c->type() == kind && c->repeated() == repeated) return Fit::kOk;
    return OfferSlow(c, kind, repeated);
  }
  // The STRING companion column "<name>_str" of c; nullptr at the column
  // limit. Thread-safe.
  Column* CompanionOf(Column* c);
  // Records that c has held an integer beyond 2^53 (see Column::inexact_ints).
  void MarkInexactInts(Column* c);

  // Columns and type changes not yet written to the ledger; marks them
  // persisted. Call inside the ledger transaction that commits parts using them.
  std::vector<ColumnRecord> TakeUnpersisted(std::vector<Column*>* taken = nullptr);
  // Puts columns back after the transaction that was to persist them failed.
  void Requeue(const std::vector<Column*>& columns);
  bool HasUnpersisted() const { return unpersisted_.load(std::memory_order_acquire); }
  // Restores the registry from the ledger's records (parents before children).
  void Restore(const std::vector<ColumnRecord>& records);

  // The typed columns now, top level first, in the order they were made
  // (the warehouse writes its schema from this). Thread-safe.
  std::vector<ColumnSchema> Columns() const;
  // Top-level columns: (name, DuckDB type). Nested and repeated columns are JSON.
  std::vector<std::pair<std::string, std::string>> DuckDbColumns() const;
  // (original dotted raw path, column path) for every column.
  std::vector<std::pair<std::string, std::string>> NameMapping() const;
  size_t column_count() const;

 private:
  Fit OfferSlow(Column* c, ColumnType kind, bool repeated);
  // base: the name to start from (empty: sanitized from raw_key).
  Column* ChildLocked(Column* parent, std::string_view raw_key, bool companion, std::string base);
  void MarkDirty(Column* c);
  ColumnSchema SchemaOf(const Column* c) const;  // REQUIRES: mu_ held

  mutable std::mutex mu_;
  Column root_;
  size_t count_ = 0;
  size_t column_limit_ = kMaxColumns;
  std::atomic<bool> unpersisted_{false};
  std::vector<Column*> dirty_;
};

}  // namespace logferry
