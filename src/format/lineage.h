// Lineage columns (a table's `lineage` key): where each row came from, as
// ordinary columns of the table, so an audit is plain SQL (docs/schema.md#lineage).
#pragma once

namespace logferry {

// Names as a table's `lineage` list spells them; the columns they add.
constexpr const char* kLineageSource = "source";  // _source STRING: the object's key in the source store
constexpr const char* kLineageLine = "line";      // _line INT64: the record's 1-based line (msgpack: its ordinal)
constexpr const char* kSourceColumn = "_source";
constexpr const char* kLineColumn = "_line";

// Off by default: every row carries them, and BigQuery bills logical bytes.
struct Lineage {
  bool source = false;
  bool line = false;
  bool any() const { return source || line; }
};

}  // namespace logferry
