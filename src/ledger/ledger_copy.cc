// `logferry ledger migrate --to postgresql://...`: the SQLite ledger copied
// table by table, column by column, into an empty PostgreSQL ledger. The
// tables and columns come from the PostgreSQL schema (the same version as
// SQLite's), so a migration added to both is copied without a change here.
#include <algorithm>

#include "ledger/connection.h"
#include "ledger/ledger.h"
#include "ledger/postgres.h"
#include "ledger/sqlite.h"

namespace logferry {
namespace {

struct Column {
  std::string name;
  std::string type;  // PostgreSQL's data_type: bigint, text, bytea, ...
};

// The ledger's tables, parents before the tables that reference them.
StatusOr<std::vector<std::string>> LedgerTables(Connection* pg) {
  Statement s(pg,
              "SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema() AND "
              "table_type='BASE TABLE' AND table_name<>'meta' ORDER BY table_name");
  LF_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                      s.Collect<std::string>([](const Statement& r) { return r.Text(0); }));
  std::stable_partition(tables.begin(), tables.end(), [](const std::string& t) { return t == "objects"; });
  return tables;
}

StatusOr<std::vector<Column>> ColumnsOf(Connection* pg, const std::string& table) {
  Statement s(pg,
              "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema=current_schema() "
              "AND table_name=? ORDER BY ordinal_position");
  s.Bind(1, table);
  return s.Collect<Column>([](const Statement& r) { return Column{r.Text(0), r.Text(1)}; });
}

StatusOr<int64_t> CountOf(Connection* db, const std::string& table) {
  Statement s(db, "SELECT COUNT(*) FROM " + table);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

// One value read from SQLite, as the PostgreSQL column's type wants it.
struct Value {
  enum Kind { kNull, kInt, kDouble, kText, kBlob } kind = kNull;
  int64_t i = 0;
  double d = 0;
  std::string s;
};

Value ReadValue(const Statement& in, int col, const std::string& type) {
  Value v;
  if (in.IsNull(col)) return v;
  if (type == "bigint" || type == "integer") {
    v.kind = Value::kInt;
    v.i = in.Int(col);
  } else if (type == "double precision") {
    v.kind = Value::kDouble;
    v.d = in.Double(col);
  } else {
    v.kind = type == "bytea" ? Value::kBlob : Value::kText;
    v.s = type == "bytea" ? in.Blob(col) : in.Text(col);
  }
  return v;
}

void BindValue(Statement& out, int i, const Value& v) {
  switch (v.kind) {
    case Value::kNull:
      out.BindNull(i);
      break;
    case Value::kInt:
      out.Bind(i, v.i);
      break;
    case Value::kDouble:
      out.Bind(i, v.d);
      break;
    case Value::kText:
      out.Bind(i, v.s);
      break;
    case Value::kBlob:
      out.BindBlob(i, v.s);
      break;
  }
}

// rows: values row after row, columns.size() each.
Status InsertRows(Connection* pg, const std::string& table, const std::vector<Column>& columns,
                  const std::vector<Value>& rows) {
  std::string names, row = "(";
  for (size_t c = 0; c < columns.size(); ++c) {
    names += (c ? ", " : "") + columns[c].name;
    row += c ? ", ?" : "?";
  }
  row += ")";
  std::string sql = "INSERT INTO " + table + "(" + names + ") VALUES";
  for (size_t r = 0; r < rows.size() / columns.size(); ++r) sql += (r ? ", " : " ") + row;
  Statement out(pg, sql);
  for (size_t k = 0; k < rows.size(); ++k) BindValue(out, static_cast<int>(k + 1), rows[k]);
  return out.Run();
}

// Copies the rows in batches: one INSERT of many rows per round trip.
Status CopyRows(Connection* lite, Connection* pg, const std::string& table, const std::vector<Column>& columns) {
  std::string names;
  for (const Column& c : columns) names += (names.empty() ? "" : ", ") + c.name;
  Statement in(lite, "SELECT " + names + " FROM " + table);
  const size_t batch_values = 20000 - 20000 % columns.size();  // under PostgreSQL's 65535 parameters
  std::vector<Value> rows;
  for (;;) {
    LF_ASSIGN_OR_RETURN(bool row, in.Step());
    if (row)
      for (size_t c = 0; c < columns.size(); ++c) rows.push_back(ReadValue(in, static_cast<int>(c), columns[c].type));
    if (!rows.empty() && (!row || rows.size() >= batch_values)) {
      LF_RETURN_IF_ERROR(InsertRows(pg, table, columns, rows));
      rows.clear();
    }
    if (!row) return Status::Ok();
  }
}

// Identity columns continue after the copied ids.
Status ContinueIdentity(Connection* pg, const std::string& table) {
  return Statement(pg, "SELECT setval(pg_get_serial_sequence('" + table +
                           "', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM " + table + "), false)")
      .Run();
}

Status RefuseNonEmpty(Connection* pg, const std::vector<std::string>& tables) {
  for (const std::string& table : tables) {
    LF_ASSIGN_OR_RETURN(int64_t n, CountOf(pg, table));
    if (n > 0)
      return Status::FailedPrecondition("the ledger at " + pg->Describe() + " is not empty (table " + table + " has " +
                                        std::to_string(n) +
                                        " rows): migrate only into a new ledger (an empty database or schema)");
  }
  return Status::Ok();
}

StatusOr<TableCopy> CopyTable(Connection* lite, Connection* pg, const std::string& table) {
  LF_ASSIGN_OR_RETURN(std::vector<Column> columns, ColumnsOf(pg, table));
  LF_RETURN_IF_ERROR(CopyRows(lite, pg, table, columns));
  if (std::any_of(columns.begin(), columns.end(), [](const Column& c) { return c.name == "id"; }))
    LF_RETURN_IF_ERROR(ContinueIdentity(pg, table));
  LF_ASSIGN_OR_RETURN(int64_t from, CountOf(lite, table));
  LF_ASSIGN_OR_RETURN(int64_t to, CountOf(pg, table));
  if (from != to)
    return Status::Internal("table " + table + ": " + std::to_string(from) + " rows in SQLite but " +
                            std::to_string(to) + " copied");
  return TableCopy{table, to};
}

}  // namespace

StatusOr<std::vector<TableCopy>> Ledger::CopySqliteToPostgres(const std::string& sqlite_path, const std::string& uri) {
  if (!IsPostgresUri(uri)) return Status::InvalidArgument("the target is not a postgresql:// URI");
  // Both at this build's schema version: the SQLite one checked without a
  // write, the PostgreSQL one created or migrated.
  LF_RETURN_IF_ERROR(OpenReadOnly(sqlite_path).status());
  LF_RETURN_IF_ERROR(Open(uri).status());
  LF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> lite,
                      OpenSqlite(SqliteReadOnlyUri(sqlite_path), /*read_only=*/true, sqlite_path));
  LF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> pg, OpenPostgres(uri, /*read_only=*/false));
  Transaction txn(pg.get());
  LF_RETURN_IF_ERROR(txn.status());
  LF_ASSIGN_OR_RETURN(std::vector<std::string> tables, LedgerTables(pg.get()));
  LF_RETURN_IF_ERROR(RefuseNonEmpty(pg.get(), tables));
  std::vector<TableCopy> copied;
  for (const std::string& table : tables) {
    LF_ASSIGN_OR_RETURN(TableCopy copy, CopyTable(lite.get(), pg.get(), table));
    copied.push_back(copy);
  }
  LF_RETURN_IF_ERROR(txn.Commit());
  return copied;
}

}  // namespace logferry
