// Appends staged parts (the normalizer's gzip NDJSON) to a DuckDB table
// through the Appender: each row is parsed once, with simdjson, straight
// into typed column vectors, instead of DuckDB parsing them again with
// read_json (bench/README.md, "files to queryable": the load went from most
// of logferry's CPU to about DuckDB's own storage cost plus this parse).
//
// The rows go into the connection's current transaction: a caller that
// began one (DELETE, then these appends, then COMMIT) replaces a partition
// atomically, and a ROLLBACK leaves no row behind.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "store/object_store.h"

namespace logferry {

class DuckDbPartLoader {
 public:
  // columns: (name, DuckDB type) of every column the parts hold; the
  // table's other columns get NULL. Types are the schema's (BOOLEAN, BIGINT,
  // DOUBLE, VARCHAR, JSON, TIMESTAMPTZ). Values of the `skipped` columns are
  // ignored (the ledger says the parts do not hold them, as read_json's
  // `columns` did); any other name is an error.
  static StatusOr<std::unique_ptr<DuckDbPartLoader>> Open(
      duckdb_connection con, const std::string& table, const std::vector<std::pair<std::string, std::string>>& columns,
      const std::vector<std::string>& skipped = {});
  ~DuckDbPartLoader();
  DuckDbPartLoader(const DuckDbPartLoader&) = delete;
  DuckDbPartLoader& operator=(const DuckDbPartLoader&) = delete;

  // Appends every row of one decompressed part; `name` (its URI) is for
  // messages, which also give the line and column of a value that does not
  // fit its column.
  Status Append(ReadStream& part, const std::string& name);
  // Hands the buffered rows to DuckDB. Call before COMMIT.
  Status Finish();
  int64_t rows() const;

 private:
  struct Impl;
  explicit DuckDbPartLoader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace logferry
