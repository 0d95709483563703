// Inserts staged parts (the normalizer's gzip NDJSON) into a DuckDB table:
// each row is parsed once, with simdjson, straight into the typed vectors of
// a table function's output, and `INSERT INTO t SELECT * FROM` that function
// stores them. Compared with read_json this skips a second JSON parse and
// type inference; compared with the Appender it skips the Appender's own
// buffer, a copy of every string (bench/README.md, "files to queryable").
//
// The rows go into the connection's current transaction: a caller that
// began one (DELETE, then Load, then COMMIT) replaces a partition
// atomically, and a ROLLBACK leaves no row behind.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "store/object_store.h"

namespace logferry {

// A staged part's decompressed rows, and its URI for messages; rows is null
// when there are no more parts.
struct PartRows {
  std::unique_ptr<ReadStream> rows;
  std::string name;
};
using NextPart = std::function<StatusOr<PartRows>()>;

class DuckDbPartLoader {
 public:
  // Registers the loader's table function on con, which must outlive it.
  static StatusOr<std::unique_ptr<DuckDbPartLoader>> Create(duckdb_connection con);
  ~DuckDbPartLoader();
  DuckDbPartLoader(const DuckDbPartLoader&) = delete;
  DuckDbPartLoader& operator=(const DuckDbPartLoader&) = delete;

  // Inserts every row of the parts next() yields (read one at a time, so
  // memory stays flat in part size and in parts) into table, and returns
  // how many. columns: (name, DuckDB type) of every column the parts hold;
  // the table's other columns get NULL. Types are the schema's (BOOLEAN,
  // BIGINT, DOUBLE, VARCHAR, JSON, TIMESTAMPTZ). Values of the `skipped`
  // columns are ignored (the ledger says the parts do not hold them); any
  // other name is an error naming the part, line and column, as is a value
  // that does not fit its column.
  StatusOr<int64_t> Load(const std::string& table, const std::vector<std::pair<std::string, std::string>>& columns,
                         const std::vector<std::string>& skipped, const NextPart& next);

  struct Impl;

 private:
  DuckDbPartLoader(duckdb_connection con, std::string function);
  duckdb_connection con_;
  std::string function_;  // the table function's name, unique in the process
  Impl* current_ = nullptr;
  friend struct LoaderCallbacks;
};

}  // namespace logferry
