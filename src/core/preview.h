// preview: parses one source object with a table's current config, through
// the staging code path (StageObject: the same readers, normalizer and
// partition cap as a real run), and writes nothing: parts go to a store that
// discards them, and the schema's new columns are reported, not recorded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/pipeline.h"
#include "ledger/ledger.h"
#include "schema/schema.h"

namespace logferry {

struct PreviewResult {
  std::string uri;                // of the object read
  std::vector<std::string> rows;  // the first max_rows rows, as NDJSON (no newline)
  std::vector<BadRecord> bad;     // the first max_rows bad records
  int64_t lines_read = 0, rows_total = 0, bad_total = 0, warnings = 0;
  std::string warning;  // the latest repair, for context
  uint64_t bytes_uncompressed = 0;
  std::vector<ColumnRecord> new_columns;                // columns (or type changes) the table does not have yet
  std::vector<std::pair<int64_t, int64_t>> partitions;  // (partition start, rows), in order
};

// What a command that reads a table without running it (preview, restage)
// needs: its source (source_uri: the table's, or a local directory for a
// file), key format and schema; no staging, discovery or warehouse, and
// nothing is written. The schema comes from `ledger` when given (only read),
// else it holds only the fixed columns.
StatusOr<TableRuntime> OpenTableForReading(const TableConfig& cfg, const std::string& source_uri, Ledger* ledger);

// Parses `key` of t.source. Memory is bounded as in staging plus max_rows
// rows; the object is streamed whatever its size. t.staging is replaced by a
// store that discards what is written.
StatusOr<PreviewResult> PreviewObject(TableRuntime& t, const std::string& key, size_t max_rows);

}  // namespace logferry
