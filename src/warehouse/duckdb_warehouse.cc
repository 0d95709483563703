// duckdb:///path/to/file.duckdb — the embedded default.
//
// DuckDB lets one process write a database file at a time, so the daemon
// opens it only for the duration of a load step and readers open it
// read-only; whoever finds it locked waits (bounded) instead of failing.
#include <duckdb.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>
#include <unordered_set>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "format/compression.h"
#include "warehouse/duckdb_part_loader.h"
#include "warehouse/warehouse.h"

namespace logferry {

namespace {

// s between quotes, a quote inside doubled: SQL's escaping for identifiers
// ("x") and strings ('x').
std::string Quoted(const std::string& s, char quote) {
  std::string out(1, quote);
  for (char c : s) {
    out += c;
    if (c == quote) out += c;
  }
  return out + quote;
}

std::string Ident(const std::string& name) {
  return Quoted(name, '"');
}

std::string Literal(const std::string& s) {
  return Quoted(s, '\'');
}

// DuckDB's messages span lines ("Did you mean ..."); the ledger and logs want one.
std::string OneLine(const char* message) {
  std::string out;
  for (const char* p = message ? message : "unknown error"; *p; ++p) {
    if (*p == '\n') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += *p;
    }
  }
  return out;
}

std::string TimestampLiteral(int64_t us) {
  return "TIMESTAMPTZ " + Literal(FormatIso8601(us));
}

// Reads value `row` of a chunk vector's data as text.
using TextReader = std::string (*)(const void* data, idx_t row);

std::string VarcharAt(const void* data, idx_t row) {
  auto* s = const_cast<duckdb_string_t*>(static_cast<const duckdb_string_t*>(data) + row);
  return std::string(duckdb_string_t_data(s), duckdb_string_t_length(*s));
}

std::string BoolAt(const void* data, idx_t row) {
  return static_cast<const bool*>(data)[row] ? "true" : "false";
}

template <typename T>
std::string IntegerAt(const void* data, idx_t row) {
  return std::to_string(static_cast<const T*>(data)[row]);
}

template <typename T>
std::string FloatAt(const void* data, idx_t row) {
  char buf[64];
  // The shortest form that reads back the same.
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<const T*>(data)[row]);
  return std::string(buf, r.ptr);
}

// The DuckDB types a column's kind or its values depend on. `read`: how a
// value is read straight from a chunk's vector; nullptr for types only a
// wrapped SELECT shows (DuckDB casts them to text). Everything a wrapped
// SELECT returns is VARCHAR; other statements return readable types in
// practice.
struct DuckDbType {
  duckdb_type type;
  ValueKind kind;
  TextReader read;
};
constexpr DuckDbType kDuckDbTypes[] = {
    {DUCKDB_TYPE_VARCHAR, ValueKind::kText, VarcharAt},
    {DUCKDB_TYPE_BOOLEAN, ValueKind::kBool, BoolAt},
    {DUCKDB_TYPE_TINYINT, ValueKind::kNumber, IntegerAt<int8_t>},
    {DUCKDB_TYPE_SMALLINT, ValueKind::kNumber, IntegerAt<int16_t>},
    {DUCKDB_TYPE_INTEGER, ValueKind::kNumber, IntegerAt<int32_t>},
    {DUCKDB_TYPE_BIGINT, ValueKind::kNumber, IntegerAt<int64_t>},
    {DUCKDB_TYPE_UTINYINT, ValueKind::kNumber, IntegerAt<uint8_t>},
    {DUCKDB_TYPE_USMALLINT, ValueKind::kNumber, IntegerAt<uint16_t>},
    {DUCKDB_TYPE_UINTEGER, ValueKind::kNumber, IntegerAt<uint32_t>},
    {DUCKDB_TYPE_UBIGINT, ValueKind::kNumber, IntegerAt<uint64_t>},
    {DUCKDB_TYPE_FLOAT, ValueKind::kNumber, FloatAt<float>},
    {DUCKDB_TYPE_DOUBLE, ValueKind::kNumber, FloatAt<double>},
    {DUCKDB_TYPE_HUGEINT, ValueKind::kNumber, nullptr},
    {DUCKDB_TYPE_UHUGEINT, ValueKind::kNumber, nullptr},
    {DUCKDB_TYPE_DECIMAL, ValueKind::kNumber, nullptr},
};

const DuckDbType* Describe(duckdb_type t) {
  for (const DuckDbType& d : kDuckDbTypes)
    if (d.type == t) return &d;
  return nullptr;
}

// Everything else (dates, timestamps, nested values, blobs) is text.
ValueKind KindOf(duckdb_type t) {
  const DuckDbType* d = Describe(t);
  return d ? d->kind : ValueKind::kText;
}

TextReader ReaderOf(duckdb_type t) {
  const DuckDbType* d = Describe(t);
  return d ? d->read : nullptr;
}

class DuckDbWarehouse final : public Warehouse {
 public:
  DuckDbWarehouse(duckdb_database db, duckdb_connection con, std::string path, WarehouseOptions opts)
      : db_(db), con_(con), path_(std::move(path)), opts_(std::move(opts)) {}
  ~DuckDbWarehouse() override {
    duckdb_disconnect(&con_);
    duckdb_close(&db_);
  }

  Status Exec(const std::string& sql) {
    duckdb_result res;
    if (duckdb_query(con_, sql.c_str(), &res) == DuckDBError) {
      std::string err = OneLine(duckdb_result_error(&res));
      duckdb_destroy_result(&res);
      return Status::Internal("duckdb: " + err);
    }
    duckdb_destroy_result(&res);
    return Status::Ok();
  }

  // Values come from DuckDB's data chunks: a string there has an explicit
  // length, where the value accessors (duckdb_value_varchar/_string) stop at
  // the first NUL byte. A SELECT is prepared first, for its column types,
  // and then run wrapped so that DuckDB itself casts every column to text
  // (its own rendering of timestamps, decimals, nested values); other
  // statements (PRAGMA, SHOW, ...) are run as they are.
  StatusOr<QueryResult> Query(const std::string& sql) override {
    duckdb_prepared_statement stmt = nullptr;
    if (duckdb_prepare(con_, sql.c_str(), &stmt) == DuckDBError) {
      std::string err = OneLine(duckdb_prepare_error(stmt));
      duckdb_destroy_prepare(&stmt);
      return Status::InvalidArgument(err);
    }
    QueryResult out;
    std::vector<duckdb_type> types;
    bool all_text = true;
    for (idx_t c = 0; c < duckdb_prepared_statement_column_count(stmt); ++c) {
      out.columns.emplace_back(duckdb_prepared_statement_column_name(stmt, c));
      types.push_back(duckdb_prepared_statement_column_type(stmt, c));
      out.kinds.push_back(KindOf(types.back()));
      all_text &= types.back() == DUCKDB_TYPE_VARCHAR;
    }
    bool wrap = !all_text && duckdb_prepared_statement_type(stmt) == DUCKDB_STATEMENT_TYPE_SELECT;
    duckdb_result res;
    duckdb_state state = DuckDBError;
    std::string wrap_error;
    if (wrap) {
      // The newline ends a trailing "-- comment"; a trailing ';' cannot stay inside.
      std::string inner = sql;
      while (!inner.empty() && (isspace(static_cast<unsigned char>(inner.back())) || inner.back() == ';'))
        inner.pop_back();
      std::string wrapped = "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (" + inner + "\n)";
      state = duckdb_query(con_, wrapped.c_str(), &res);
      // Some statements of the SELECT kind cannot be a subquery (PRAGMA
      // table_info): those run as they are.
      if (state == DuckDBError) {
        wrap_error = OneLine(duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        wrap = false;
      }
    }
    if (!wrap) {
      for (idx_t c = 0; c < types.size(); ++c) {
        if (ReaderOf(types[c])) continue;
        duckdb_destroy_prepare(&stmt);
        // (When the wrapped query failed for a reason of its own, that is the answer.)
        return Status::InvalidArgument(!wrap_error.empty() ? wrap_error
                                                           : "column '" + out.columns[c] +
                                                                 "' has a type only a SELECT can show (try SELECT * "
                                                                 "FROM (...) or a table function such as "
                                                                 "pragma_table_info)");
      }
      state = duckdb_execute_prepared(stmt, &res);
    }
    duckdb_destroy_prepare(&stmt);
    if (state == DuckDBError) {
      std::string err = OneLine(duckdb_result_error(&res));
      duckdb_destroy_result(&res);
      return Status::InvalidArgument(err);
    }
    if (duckdb_column_count(&res) != out.columns.size()) {
      duckdb_destroy_result(&res);
      return Status::Internal("duckdb: the query's columns changed between prepare and run");
    }
    std::vector<TextReader> readers;
    for (duckdb_type t : types) readers.push_back(ReaderOf(wrap ? DUCKDB_TYPE_VARCHAR : t));
    ReadRows(res, readers, &out.rows);
    duckdb_destroy_result(&res);
    return out;
  }

  // Appends the result's rows, column c read by readers[c] (every one set).
  static void ReadRows(duckdb_result& res, const std::vector<TextReader>& readers,
                       std::vector<std::vector<std::optional<std::string>>>* rows) {
    while (duckdb_data_chunk chunk = duckdb_fetch_chunk(res)) {
      idx_t n = duckdb_data_chunk_get_size(chunk);
      size_t first = rows->size();
      rows->resize(first + n);
      for (idx_t c = 0; c < readers.size(); ++c) {
        duckdb_vector vec = duckdb_data_chunk_get_vector(chunk, c);
        const void* data = duckdb_vector_get_data(vec);
        uint64_t* validity = duckdb_vector_get_validity(vec);
        for (idx_t r = 0; r < n; ++r) {
          std::optional<std::string>& v = (*rows)[first + r].emplace_back();
          if (validity && !duckdb_validity_row_is_valid(validity, r)) continue;
          v = readers[c](data, r);
        }
      }
      duckdb_destroy_data_chunk(&chunk);
    }
  }

  StatusOr<int64_t> ScalarInt(const std::string& sql) {
    duckdb_result res;
    if (duckdb_query(con_, sql.c_str(), &res) == DuckDBError) {
      std::string err = OneLine(duckdb_result_error(&res));
      duckdb_destroy_result(&res);
      return Status::Internal("duckdb: " + err);
    }
    int64_t v = duckdb_row_count(&res) > 0 ? duckdb_value_int64(&res, 0, 0) : 0;
    duckdb_destroy_result(&res);
    return v;
  }

  StatusOr<std::map<std::string, std::string>> ExistingColumns(const std::string& table) {
    LF_ASSIGN_OR_RETURN(QueryResult r,
                        Query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name=" +
                              Literal(table) + " AND table_schema='main'"));
    std::map<std::string, std::string> out;
    for (auto& row : r.rows) out[ToLower(row[0].value_or(""))] = row[1].value_or("");
    return out;
  }

  Status EnsureTable(const std::string& table, const SchemaRegistry& schema) override {
    LF_RETURN_IF_ERROR(Exec(std::string("CREATE TABLE IF NOT EXISTS ") + kLoadsTable +
                            " (table_name VARCHAR, partition_start TIMESTAMPTZ, kind VARCHAR, load_id VARCHAR, "
                            "parts BIGINT, rows BIGINT, finished_at TIMESTAMPTZ)"));
    auto cols = schema.DuckDbColumns();
    LF_ASSIGN_OR_RETURN(auto existing, ExistingColumns(table));
    if (existing.empty()) {
      std::string ddl = "CREATE TABLE IF NOT EXISTS " + Ident(table) + " (";
      for (size_t i = 0; i < cols.size(); ++i) ddl += (i ? ", " : "") + Ident(cols[i].first) + " " + cols[i].second;
      ddl += ")";
      return Exec(ddl);
    }
    for (auto& [name, type] : cols) {
      auto it = existing.find(ToLower(name));
      if (it == existing.end()) {
        LF_RETURN_IF_ERROR(Exec("ALTER TABLE " + Ident(table) + " ADD COLUMN " + Ident(name) + " " + type));
      } else if (it->second != type && !(type == "TIMESTAMPTZ" && it->second == "TIMESTAMP WITH TIME ZONE")) {
        // Only lossless widenings reach here (BIGINT -> DOUBLE, any -> VARCHAR).
        LF_RETURN_IF_ERROR(
            Exec("ALTER TABLE " + Ident(table) + " ALTER COLUMN " + Ident(name) + " SET DATA TYPE " + type));
      }
    }
    return Status::Ok();
  }

  StatusOr<int64_t> ReplacePartition(const PartitionLoad& plan, int64_t unit_us, ObjectStore& staging,
                                     const SchemaRegistry& schema) override {
    LF_ASSIGN_OR_RETURN(auto rows, ReplacePartitions(plan.load_id, {plan}, unit_us, staging, schema));
    return rows[plan.partition_us];
  }

  // Every partition of the job in one transaction: DuckDB checkpoints at
  // each large commit, and sixteen one-partition commits cost twice the
  // CPU of one (bench/README.md). All of them change, or none.
  StatusOr<std::map<int64_t, int64_t>> ReplacePartitions(const std::string& job_id,
                                                         const std::vector<PartitionLoad>& loads, int64_t unit_us,
                                                         ObjectStore& staging, const SchemaRegistry& schema) override {
    if (loads.empty()) return std::map<int64_t, int64_t>();
    LF_RETURN_IF_ERROR(Exec("BEGIN TRANSACTION"));
    StatusOr<std::map<int64_t, int64_t>> rows = ReplaceInTransaction(loads, unit_us, staging, schema);
    if (!rows.ok()) {
      (void)Exec("ROLLBACK");  // the error that matters is the load's
      return rows.status().WithContext(loads.size() == 1 ? "loading partition " + FormatHour(loads[0].partition_us)
                                                         : "loading " + std::to_string(loads.size()) +
                                                               " partitions in job " + job_id);
    }
    LF_RETURN_IF_ERROR(Exec("COMMIT"));
    return rows;
  }

  bool CanAppend() const override { return true; }

  // The append and its row in the load history commit together, so the
  // history says whether an id was applied: a resumed append finds it and
  // adds nothing.
  StatusOr<int64_t> AppendToPartition(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                                      const SchemaRegistry& schema) override {
    LF_RETURN_IF_ERROR(Exec("BEGIN TRANSACTION"));
    StatusOr<int64_t> rows = AppendOnce(load, unit_us, staging, schema);
    if (!rows.ok()) {
      (void)Exec("ROLLBACK");  // the error that matters is the append's
      return rows.status().WithContext("appending to partition " + FormatHour(load.partition_us));
    }
    LF_RETURN_IF_ERROR(Exec("COMMIT"));
    return rows;
  }

  // Loads of a backlog share transactions (see ReplacePartitions).
  StatusOr<JobGroups> GroupIntoJobs(const std::vector<int64_t>& due, LoadJobLog& sent, int64_t now_us) override {
    JobGroups groups;
    for (size_t i = 0; i < due.size(); i += kPartitionsPerJob)
      groups.jobs.emplace_back(due.begin() + i, due.begin() + std::min(due.size(), i + kPartitionsPerJob));
    return groups;
  }

  StatusOr<std::map<int64_t, int64_t>> CountByPartition(const std::string& table, int64_t unit_us) override {
    LF_ASSIGN_OR_RETURN(auto existing, ExistingColumns(table));
    if (existing.empty()) return Status::NotFound("table " + table + " does not exist in " + path_);
    // floor(), not //: integer division truncates toward zero, which would
    // put 1969-12-31T23:59 in the 1970-01-01T00 partition.
    LF_ASSIGN_OR_RETURN(QueryResult r, Query("SELECT CAST(floor(epoch_us(_time) / " + std::to_string(unit_us) +
                                             ") AS BIGINT) * " + std::to_string(unit_us) + " AS p, count(*) FROM " +
                                             Ident(table) + " GROUP BY p ORDER BY p"));
    std::map<int64_t, int64_t> out;
    for (auto& row : r.rows) out[std::stoll(row[0].value_or("0"))] = std::stoll(row[1].value_or("0"));
    return out;
  }

 private:
  static constexpr const char* kLoadsTable = "_logferry_loads";

  StatusOr<std::map<int64_t, int64_t>> ReplaceInTransaction(const std::vector<PartitionLoad>& loads, int64_t unit_us,
                                                            ObjectStore& staging, const SchemaRegistry& schema) {
    for (const PartitionLoad& load : loads)
      LF_RETURN_IF_ERROR(Exec("DELETE FROM " + Ident(load.table) + " WHERE " + RangeOf(load.partition_us, unit_us)));
    LF_RETURN_IF_ERROR(AppendParts(loads, staging, schema).status());
    LF_ASSIGN_OR_RETURN(auto rows, CountPartitions(loads, unit_us));
    for (const PartitionLoad& load : loads) {
      // A replace resumed after a crash between this commit and the
      // ledger's record runs again under its id: still one replace.
      if (!load.load_id.empty())
        LF_RETURN_IF_ERROR(Exec(std::string("DELETE FROM ") + kLoadsTable + " WHERE load_id=" + Literal(load.load_id)));
      LF_RETURN_IF_ERROR(RecordLoad(load, "replace", rows[load.partition_us]));
    }
    LF_RETURN_IF_ERROR(PruneLoadHistory());
    return rows;
  }

  StatusOr<int64_t> AppendOnce(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                               const SchemaRegistry& schema) {
    LF_ASSIGN_OR_RETURN(int64_t applied, ScalarInt(std::string("SELECT count(*) FROM ") + kLoadsTable +
                                                   " WHERE load_id=" + Literal(load.load_id)));
    if (applied == 0) {
      LF_ASSIGN_OR_RETURN(int64_t appended, AppendParts({load}, staging, schema));
      LF_RETURN_IF_ERROR(RecordLoad(load, "append", appended));
    }
    return ScalarInt("SELECT count(*) FROM " + Ident(load.table) + " WHERE " + RangeOf(load.partition_us, unit_us));
  }

  // Appends into open partitions can come every second, so their rows are
  // kept for kAppendHistoryDays (as long as Snowflake's COPY_HISTORY);
  // replaces, a few per partition, are kept for good. Rows are in time
  // order, so DuckDB's zone maps make this cheap.
  static constexpr int kAppendHistoryDays = 14;
  Status PruneLoadHistory() {
    return Exec(std::string("DELETE FROM ") + kLoadsTable + " WHERE kind='append' AND finished_at < now() - INTERVAL " +
                std::to_string(kAppendHistoryDays) + " DAY");
  }

  // A row of the load history (kLoadsTable), in the load's transaction.
  Status RecordLoad(const PartitionLoad& load, const char* kind, int64_t rows) {
    return Exec(std::string("INSERT INTO ") + kLoadsTable + " VALUES (" + Literal(load.table) + ", " +
                TimestampLiteral(load.partition_us) + ", " + Literal(kind) + ", " + Literal(load.load_id) + ", " +
                std::to_string(load.parts.size()) + ", " + std::to_string(rows) + ", now())");
  }

  // At most this many partitions share a transaction: a week of hours.
  static constexpr size_t kPartitionsPerJob = 168;

  static std::string RangeOf(int64_t partition_us, int64_t unit_us) {
    return "_time >= " + TimestampLiteral(partition_us) + " AND _time < " + TimestampLiteral(partition_us + unit_us);
  }

  // Streams each part through the loader (memory flat in part size and
  // in parts per partition), into the open transaction.
  StatusOr<int64_t> AppendParts(const std::vector<PartitionLoad>& loads, ObjectStore& staging,
                                const SchemaRegistry& schema) {
    auto held = HeldColumns(loads, schema);
    std::vector<std::string> skipped;
    for (const auto& column : schema.DuckDbColumns()) {
      if (std::none_of(held.begin(), held.end(), [&](const auto& c) { return c.first == column.first; }))
        skipped.push_back(column.first);
    }
    if (!loader_) {
      LF_ASSIGN_OR_RETURN(loader_, DuckDbPartLoader::Create(con_));
    }
    size_t load = 0, part = 0;
    NextPart next = [&]() -> StatusOr<PartRows> {
      for (; load < loads.size(); ++load, part = 0) {
        if (part == loads[load].parts.size()) continue;
        const StagedPart& p = loads[load].parts[part++];
        LF_ASSIGN_OR_RETURN(auto raw, staging.OpenRead(p.key));
        LF_ASSIGN_OR_RETURN(auto rows, OpenDecoder(std::move(raw), Compression::kGzip));
        return PartRows{std::move(rows), staging.UriOf(p.key)};
      }
      return PartRows{};
    };
    return loader_->Load(loads[0].table, held, skipped, next);
  }

  // Each partition's row count after the load (0 for an empty one).
  StatusOr<std::map<int64_t, int64_t>> CountPartitions(const std::vector<PartitionLoad>& loads, int64_t unit_us) {
    std::map<int64_t, int64_t> rows;
    std::string sql;
    for (const PartitionLoad& load : loads) {
      rows[load.partition_us] = 0;
      sql += (sql.empty() ? "" : " UNION ALL ") + std::string("SELECT ") + std::to_string(load.partition_us) +
             ", count(*) FROM " + Ident(load.table) + " WHERE " + RangeOf(load.partition_us, unit_us);
    }
    LF_ASSIGN_OR_RETURN(QueryResult r, Query(sql));
    for (auto& row : r.rows) rows[std::stoll(row[0].value_or("0"))] = std::stoll(row[1].value_or("0"));
    return rows;
  }

  // Only the top-level columns the loads' parts hold (every column when a
  // part predates that record), so a table widened by one odd object does
  // not make every later load fill thousands of columns.
  static std::vector<std::pair<std::string, std::string>> HeldColumns(const std::vector<PartitionLoad>& loads,
                                                                      const SchemaRegistry& schema) {
    std::unordered_set<std::string> held;
    bool all = false;
    for (const PartitionLoad& load : loads) {
      for (const StagedPart& p : load.parts) {
        if (!p.columns) all = true;
        if (all) break;
        for (std::string& name : Split(*p.columns, ',')) held.insert(std::move(name));
      }
    }
    std::vector<std::pair<std::string, std::string>> columns;
    for (auto& [name, type] : schema.DuckDbColumns()) {
      if (all || name == "_time" || held.count(name)) columns.emplace_back(name, type);
    }
    return columns;
  }

  duckdb_database db_;
  duckdb_connection con_;
  std::unique_ptr<DuckDbPartLoader> loader_;  // registered on con_ at the first load
  std::string path_;
  WarehouseOptions opts_;
};

constexpr int64_t kCreateWaitUs = 2'000'000;

StatusOr<std::unique_ptr<Warehouse>> OpenDuckDbWarehouse(const std::string& path, const WarehouseOptions& opts) {
  if (opts.read_only && access(path.c_str(), F_OK) != 0)
    return Status::NotFound("warehouse " + path + " does not exist yet (nothing has been loaded)");
  const int64_t start_us = opts.retry.env->MonotonicMicros();
  const int64_t deadline_us = start_us + opts.lock_timeout_us;
  for (int attempt = 0;; ++attempt) {
    duckdb_config config;
    duckdb_create_config(&config);
    if (opts.read_only) duckdb_set_config(config, "access_mode", "READ_ONLY");
    // Loads append from one thread; DuckDB's idle workers only spun on the
    // task queue (10% of a load's CPU in a profile). Queries keep them all.
    if (!opts.read_only) duckdb_set_config(config, "threads", "1");
    if (!opts.sql_file_access) duckdb_set_config(config, "enable_external_access", "false");
    duckdb_database db;
    char* err = nullptr;
    duckdb_state st = duckdb_open_ext(path.c_str(), &db, config, &err);
    duckdb_destroy_config(&config);
    if (st == DuckDBSuccess) {
      duckdb_connection con;
      if (duckdb_connect(db, &con) == DuckDBError) {
        duckdb_close(&db);
        return Status::Internal("duckdb: cannot connect to " + path);
      }
      auto w = std::make_unique<DuckDbWarehouse>(db, con, path, opts);
      LF_RETURN_IF_ERROR(w->Exec("SET TimeZone='UTC'"));
      // Locked after the last setting: the SQL that follows cannot turn
      // external access back on (DuckDB refuses that anyway once it is off).
      if (!opts.sql_file_access) LF_RETURN_IF_ERROR(w->Exec("SET lock_configuration = true"));
      return std::unique_ptr<Warehouse>(std::move(w));
    }
    std::string message = err ? err : "unknown error";
    duckdb_free(err);
    bool locked = message.find("lock") != std::string::npos;
    // Two workers starting on a new warehouse: the one that lost the race to
    // create the file may read it before its header is written. That passes
    // in milliseconds; a file that stays invalid is not DuckDB's.
    bool being_created = message.find("not a valid DuckDB database file") != std::string::npos &&
                         opts.retry.env->MonotonicMicros() - start_us < kCreateWaitUs;
    if (!locked && !being_created) return Status::Internal("duckdb: cannot open " + path + ": " + message);
    if (opts.retry.env->MonotonicMicros() >= deadline_us)
      return Status::Unavailable("duckdb: " + path + " is locked by another process (waited " +
                                 FormatDuration(opts.lock_timeout_us) + ")");
    // DuckDB cannot wait for its lock, so this polls; often enough that
    // workers taking turns on loads lose little between turns.
    opts.retry.env->SleepForMicroseconds(1000 * std::min(25 * (attempt + 1), 100));
  }
}

}  // namespace

SchemeInfo DuckDbScheme() {
  return {.name = "duckdb",
          .example = "duckdb:///path/file.duckdb",
          .service = "DuckDB",
          .roles = kRoleWarehouse,
          // duckdb://relative/w.duckdb would name a file under whatever
          // directory the process starts in (/ under systemd).
          .validate = [](const Uri& u) -> std::string {
            if (!u.authority.empty() || u.path.empty())
              return "is not duckdb:///absolute/path.duckdb (three slashes: the path must be absolute)";
            return "";
          },
          .open_warehouse = [](const Uri& u,
                               const WarehouseOptions& options) { return OpenDuckDbWarehouse("/" + u.path, options); }};
}

}  // namespace logferry
