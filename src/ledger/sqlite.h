// A thin RAII layer over the SQLite C API: the ledger's private header (only
// src/ledger includes it; the rest of the tree sees ledger.h).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace logferry {

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, uint64_t v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, double v);
  Statement& Bind(int i, std::string_view v);
  Statement& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Statement& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Statement& BindNull(int i);
  Statement& BindBlob(int i, std::string_view v);
  Statement& Bind(int i, std::optional<int64_t> v) { return v ? Bind(i, *v) : BindNull(i); }

  // Steps once: true if a row is available, false when done.
  StatusOr<bool> Step();
  // Runs to completion, ignoring rows.
  Status Run();
  // Runs to completion, turning each row into a T with read(*this).
  template <typename T, typename Read>
  StatusOr<std::vector<T>> Collect(Read read) {
    std::vector<T> out;
    for (;;) {
      LF_ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return out;
      out.push_back(read(*this));
    }
  }
  // Steps once: the first row as read(*this), nullopt when there is none.
  template <typename T, typename Read>
  StatusOr<std::optional<T>> First(Read read) {
    LF_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return std::optional<T>();
    return std::optional<T>(read(*this));
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;
  std::string Blob(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptInt(int col) const { return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col)); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status prepare_status_;
};

Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

// BEGIN IMMEDIATE ... COMMIT, rolled back if not committed. IMMEDIATE takes
// the write lock at once, so two processes never both read and then both
// try to write (a deadlock SQLite would answer with SQLITE_BUSY).
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Status status() const { return status_; }
  Status Commit();

 private:
  sqlite3* db_;
  Status status_;
  bool done_ = false;
};

}  // namespace logferry
