// The SQL connection the ledger runs on, whatever keeps it: SQLite (a file in
// state_dir) or PostgreSQL (a shared ledger). Private to src/ledger.
//
// The ledger writes one SQL dialect that both accept:
// - `?` placeholders (`?N` for a numbered one); the PostgreSQL driver sends
//   them as $n. A NULL parameter takes its type from its context, so a NULL
//   must never stand alone (`? IS NULL`): compare with a sentinel instead.
// - `ON CONFLICT ... DO NOTHING` rather than `INSERT OR IGNORE`, `RETURNING
//   id` rather than the last rowid, no `rowid`, no two-argument MIN/MAX.
// - Booleans are integers (0/1); a comparison read as Int() is 0 or 1.
// - Text compares bytewise (PostgreSQL columns are COLLATE "C").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace logferry {

// One prepared statement, driver side. Binding never fails: a statement that
// did not prepare reports why from Step().
class Cursor {
 public:
  virtual ~Cursor() = default;
  // i counts from 1, as in SQL.
  virtual void BindInt(int i, int64_t v) = 0;
  virtual void BindDouble(int i, double v) = 0;
  virtual void BindText(int i, std::string_view v) = 0;
  virtual void BindBlob(int i, std::string_view v) = 0;
  virtual void BindNull(int i) = 0;
  // Runs the statement on the first call; true while a row is available.
  virtual StatusOr<bool> Step() = 0;
  // Columns of the current row, counted from 0.
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual std::string Blob(int col) const = 0;
  virtual bool IsNull(int col) const = 0;
};

class Connection {
 public:
  enum class Dialect { kSqlite, kPostgres };
  virtual ~Connection() = default;
  virtual Dialect dialect() const = 0;
  // Where the ledger is, for messages and status: a path, or a URI without
  // its password.
  virtual std::string Describe() const = 0;
  virtual std::unique_ptr<Cursor> Prepare(std::string_view sql) = 0;
  // Statements without parameters, separated by ';'.
  virtual Status Exec(std::string_view sql) = 0;
  // A transaction that may write: it holds the ledger's write lock from its
  // start, so two processes never both read and then both write (SQLite:
  // BEGIN IMMEDIATE; PostgreSQL: an advisory lock for the transaction).
  // kUnavailable when another process holds the lock too long.
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  // Rows the last INSERT, UPDATE or DELETE changed.
  virtual int64_t Changes() const = 0;
  // Whether a transaction is open (also one a failed statement aborted,
  // which a ROLLBACK TO a savepoint recovers). False when the database
  // ended it on its own (SQLite on I/O errors, a lost connection).
  virtual bool InTransaction() const = 0;
  // Prepared statements the connection keeps for reuse (bounded), for tests.
  virtual size_t CachedStatements() const { return 0; }
};

// The statement the ledger's code writes: binds by index, steps through rows.
class Statement {
 public:
  Statement(Connection* db, std::string_view sql) : cursor_(db->Prepare(sql)) {}

  Statement& Bind(int i, int64_t v) {
    cursor_->BindInt(i, v);
    return *this;
  }
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, uint64_t v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, double v) {
    cursor_->BindDouble(i, v);
    return *this;
  }
  Statement& Bind(int i, std::string_view v) {
    cursor_->BindText(i, v);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Statement& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Statement& BindNull(int i) {
    cursor_->BindNull(i);
    return *this;
  }
  Statement& BindBlob(int i, std::string_view v) {
    cursor_->BindBlob(i, v);
    return *this;
  }
  Statement& Bind(int i, std::optional<int64_t> v) { return v ? Bind(i, *v) : BindNull(i); }

  // Steps once: true if a row is available, false when done.
  StatusOr<bool> Step() { return cursor_->Step(); }
  // Runs to completion, ignoring rows.
  Status Run() {
    for (;;) {
      LF_ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return Status::Ok();
    }
  }
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

  int64_t Int(int col) const { return cursor_->Int(col); }
  double Double(int col) const { return cursor_->Double(col); }
  std::string Text(int col) const { return cursor_->Text(col); }
  std::string Blob(int col) const { return cursor_->Blob(col); }
  bool IsNull(int col) const { return cursor_->IsNull(col); }
  std::optional<int64_t> OptInt(int col) const { return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col)); }

 private:
  std::unique_ptr<Cursor> cursor_;
};

// A writing transaction (Connection::Begin), rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(Connection* db) : db_(db), status_(db->Begin()), done_(!status_.ok()) {}
  ~Transaction() {
    if (!done_) db_->Rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Status status() const { return status_; }
  Status Commit() {
    if (done_) return status_.ok() ? Status::Internal("transaction already finished") : status_;
    done_ = true;
    return db_->Commit();
  }

 private:
  Connection* db_;
  Status status_;
  bool done_;
};

}  // namespace logferry
