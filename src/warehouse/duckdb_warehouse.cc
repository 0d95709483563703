// duckdb:///path/to/file.duckdb — the embedded default.
//
// DuckDB lets one process write a database file at a time, so the daemon
// opens it only for the duration of a load step and readers open it
// read-only; whoever finds it locked waits (bounded) instead of failing.
#include <duckdb.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/strings.h"
#include "common/time.h"
#include "warehouse/warehouse.h"

namespace logferry {

namespace {

std::string Ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"')
      out += "\"\"";
    else
      out += c;
  }
  return out + "\"";
}

std::string Literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "''";
    else
      out += c;
  }
  return out + "'";
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

  StatusOr<QueryResult> Query(const std::string& sql) override {
    duckdb_result res;
    if (duckdb_query(con_, sql.c_str(), &res) == DuckDBError) {
      std::string err = OneLine(duckdb_result_error(&res));
      duckdb_destroy_result(&res);
      return Status::InvalidArgument(err);
    }
    // duckdb_value_varchar() cannot render some types (TIMESTAMPTZ among
    // them); have DuckDB cast those to text itself.
    std::string casts;
    for (idx_t c = 0; c < duckdb_column_count(&res); ++c) {
      duckdb_type t = duckdb_column_type(&res, c);
      if (t == DUCKDB_TYPE_TIMESTAMP_TZ || t == DUCKDB_TYPE_TIME_TZ) {
        std::string name = Ident(duckdb_column_name(&res, c));
        casts += (casts.empty() ? "" : ", ") + ("CAST(" + name + " AS VARCHAR) AS " + name);
      }
    }
    if (!casts.empty()) {
      duckdb_destroy_result(&res);
      // The newline ends a trailing "-- comment"; a trailing ';' cannot stay inside.
      std::string inner = sql;
      while (!inner.empty() && (isspace(static_cast<unsigned char>(inner.back())) || inner.back() == ';'))
        inner.pop_back();
      std::string wrapped = "SELECT * REPLACE (" + casts + ") FROM (" + inner + "\n)";
      if (duckdb_query(con_, wrapped.c_str(), &res) == DuckDBError) {
        std::string err = OneLine(duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        return Status::InvalidArgument(err);
      }
    }
    QueryResult out;
    idx_t cols = duckdb_column_count(&res);
    idx_t rows = duckdb_row_count(&res);
    for (idx_t c = 0; c < cols; ++c) out.columns.emplace_back(duckdb_column_name(&res, c));
    out.rows.reserve(rows);
    for (idx_t r = 0; r < rows; ++r) {
      std::vector<std::optional<std::string>> row;
      for (idx_t c = 0; c < cols; ++c) {
        if (duckdb_value_is_null(&res, c, r)) {
          row.emplace_back(std::nullopt);
          continue;
        }
        // duckdb_value_string keeps NUL bytes that duckdb_value_varchar cuts at.
        duckdb_string s = duckdb_value_string(&res, c, r);
        row.emplace_back(s.data ? std::string(s.data, s.size) : std::string());
        duckdb_free(s.data);
      }
      out.rows.push_back(std::move(row));
    }
    duckdb_destroy_result(&res);
    return out;
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

  StatusOr<int64_t> ReplacePartition(const LoadPlan& plan, int64_t unit_us, ObjectStore& staging,
                                     const SchemaRegistry& schema) override {
    std::vector<std::string> files;
    for (const PartRow& p : plan.parts) {
      auto local = staging.LocalPath(p.key);
      if (!local)
        return Status::FailedPrecondition("duckdb warehouse needs local staging parts; " + staging.UriOf(p.key) +
                                          " is remote");
      files.push_back(*local);
    }
    std::string where = "_time >= " + TimestampLiteral(plan.partition_us) + " AND _time < " +
                        TimestampLiteral(plan.partition_us + unit_us);
    LF_RETURN_IF_ERROR(Exec("BEGIN TRANSACTION"));
    auto rollback = [&](Status s) {
      (void)Exec("ROLLBACK");
      return s;
    };
    Status s = Exec("DELETE FROM " + Ident(plan.table) + " WHERE " + where);
    if (!s.ok()) return rollback(s);
    if (!files.empty()) {
      std::string list = "[";
      for (size_t i = 0; i < files.size(); ++i) list += (i ? ", " : "") + Literal(files[i]);
      list += "]";
      std::string columns = "{";
      auto cols = schema.DuckDbColumns();
      for (size_t i = 0; i < cols.size(); ++i)
        columns += (i ? ", " : "") + Literal(cols[i].first) + ": " + Literal(cols[i].second);
      columns += "}";
      s = Exec("INSERT INTO " + Ident(plan.table) + " BY NAME SELECT * FROM read_json(" + list +
               ", format='newline_delimited', compression='gzip', columns=" + columns +
               ", maximum_object_size=268435456, hive_partitioning=false)");
      if (!s.ok()) return rollback(s.WithContext("loading partition " + FormatHour(plan.partition_us)));
    }
    LF_RETURN_IF_ERROR(Exec("COMMIT"));
    return ScalarInt("SELECT count(*) FROM " + Ident(plan.table) + " WHERE " + where);
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
  duckdb_database db_;
  duckdb_connection con_;
  std::string path_;
  WarehouseOptions opts_;
};

}  // namespace

StatusOr<std::unique_ptr<Warehouse>> OpenDuckDbWarehouse(const std::string& path, const WarehouseOptions& opts) {
  if (opts.read_only && access(path.c_str(), F_OK) != 0)
    return Status::NotFound("warehouse " + path + " does not exist yet (nothing has been loaded)");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(opts.lock_timeout_us);
  for (int attempt = 0;; ++attempt) {
    duckdb_config config;
    duckdb_create_config(&config);
    if (opts.read_only) duckdb_set_config(config, "access_mode", "READ_ONLY");
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
      return std::unique_ptr<Warehouse>(std::move(w));
    }
    std::string message = err ? err : "unknown error";
    duckdb_free(err);
    bool locked = message.find("lock") != std::string::npos;
    if (!locked) return Status::Internal("duckdb: cannot open " + path + ": " + message);
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::Unavailable("duckdb: " + path + " is locked by another process (waited " +
                                 FormatDuration(opts.lock_timeout_us) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
  }
}

StatusOr<std::unique_ptr<Warehouse>> OpenWarehouse(const std::string& uri, const WarehouseOptions& options) {
  Uri u;
  if (!ParseUri(uri, &u))
    return Status::InvalidArgument("not a warehouse URI: '" + uri + "' (expected duckdb:///path/file.duckdb)");
  if (u.scheme == "duckdb") {
    std::string path = u.authority.empty() ? "/" + u.path : u.authority + "/" + u.path;
    return OpenDuckDbWarehouse(path, options);
  }
  return Status::InvalidArgument("unsupported warehouse scheme '" + u.scheme + "://' (supported: duckdb://)");
}

}  // namespace logferry
