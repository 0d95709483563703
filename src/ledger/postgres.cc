#include "ledger/postgres.h"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <unordered_map>
#include <vector>

#include "common/strings.h"

namespace logferry {

bool IsPostgresUri(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

namespace {

// Removes the password from a URI's user info: user:secret@host -> user@host.
std::string RedactUserInfo(std::string s) {
  size_t start = s.find("://") + 3;
  size_t end = s.find_first_of("/?", start);
  size_t at = s.rfind('@', end == std::string::npos ? s.size() : end);
  if (at == std::string::npos || at < start) return s;
  size_t colon = s.find(':', start);
  if (colon != std::string::npos && colon < at) s.erase(colon, at - colon);
  return s;
}

}  // namespace

std::string RedactConninfo(std::string_view conninfo) {
  std::string s(conninfo);
  if (IsPostgresUri(s)) s = RedactUserInfo(std::move(s));
  // password=... as a URI parameter or a conninfo keyword (quoted or not).
  static const std::regex kPassword(R"((password\s*=\s*)('(\\.|[^'\\])*'|[^&\s]*)[&\s]*)", std::regex::icase);
  s = std::regex_replace(s, kPassword, "");
  while (!s.empty() && (s.back() == '?' || s.back() == '&' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ToDollarPlaceholders(std::string_view sql, int* params) {
  std::string out;
  int next = 0;
  *params = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      out.push_back(c);
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
      continue;
    }
    if (c != '?') {
      out.push_back(c);
      continue;
    }
    size_t digits = i + 1;
    while (digits < sql.size() && sql[digits] >= '0' && sql[digits] <= '9') ++digits;
    int n = digits > i + 1 ? std::atoi(std::string(sql.substr(i + 1, digits - i - 1)).c_str()) : ++next;
    next = std::max(next, n);
    *params = std::max(*params, n);
    out += "$" + std::to_string(n);
    i = digits - 1;
  }
  return out;
}

namespace {

constexpr Oid kInt8Oid = 20, kTextOid = 25, kFloat8Oid = 701, kByteaOid = 17;

bool StartsWithWord(std::string_view sql, std::string_view word) {
  size_t i = sql.find_first_not_of(" \t\r\n(");
  if (i == std::string_view::npos || sql.size() - i < word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k)
    if (std::toupper(static_cast<unsigned char>(sql[i + k])) != word[k]) return false;
  return true;
}

bool IsWrite(std::string_view sql) {
  return StartsWithWord(sql, "INSERT") || StartsWithWord(sql, "UPDATE") || StartsWithWord(sql, "DELETE");
}

// SQLSTATE classes (PostgreSQL appendix A) as the retry policy sees them.
StatusCode CodeOf(const std::string& state) {
  auto cls = state.substr(0, 2);
  if (cls == "08" || cls == "53" || state == "57P01" || state == "57P02" || state == "57P03" || state == "40001" ||
      state == "40P01" || state == "55P03" || state == "57014")
    return StatusCode::kUnavailable;
  if (cls == "28" || state == "42501" || state == "25006") return StatusCode::kPermissionDenied;
  if (state == "3D000") return StatusCode::kNotFound;
  if (state == "XX001" || state == "XX002") return StatusCode::kCorruption;
  return StatusCode::kInternal;
}

// Connection failures have no SQLSTATE: classify libpq's message.
StatusCode ConnectFailureCode(const std::string& m) {
  if (m.find("password") != std::string::npos || m.find("pg_hba.conf") != std::string::npos ||
      (m.find("role \"") != std::string::npos && m.find("does not exist") != std::string::npos))
    return StatusCode::kPermissionDenied;
  if (m.find("database \"") != std::string::npos && m.find("does not exist") != std::string::npos)
    return StatusCode::kNotFound;
  return StatusCode::kUnavailable;
}

// libpq's messages span lines ("...failed: Connection refused\n\tIs the
// server running..."): one line for the log.
std::string OneLine(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool space = c == '\n' || c == '\t' || c == ' ';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void DiscardNotice(void*, const char*) {}

class PgCursor;

class PgConnection final : public Connection {
 public:
  PgConnection(std::string conninfo, bool read_only)
      : conninfo_(std::move(conninfo)), describe_(RedactConninfo(conninfo_)), read_only_(read_only) {}
  ~PgConnection() override {
    if (conn_) PQfinish(conn_);
  }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  Dialect dialect() const override { return Dialect::kPostgres; }
  std::string Describe() const override { return describe_; }
  std::unique_ptr<Cursor> Prepare(std::string_view sql) override;

  Status Connect();
  Status Exec(std::string_view sql) override;
  Status Begin() override;
  Status Commit() override;
  void Rollback() override;
  int64_t Changes() const override { return changes_; }
  size_t CachedStatements() const override { return prepared_.size(); }
  bool InTransaction() const override {
    PGTransactionStatusType t = conn_ ? PQtransactionStatus(conn_) : PQTRANS_UNKNOWN;
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
  }

  // Runs one statement with text parameters (types and formats per
  // parameter); the result is the caller's. A write outside a transaction
  // takes the write lock for itself.
  StatusOr<PGresult*> Execute(const std::string& sql, const std::vector<Oid>& types,
                              const std::vector<const char*>& values, const std::vector<int>& lengths,
                              const std::vector<int>& formats, bool write);

 private:
  Status Usable();
  StatusOr<PGresult*> Send(const std::string& sql, const std::vector<Oid>& types,
                           const std::vector<const char*>& values, const std::vector<int>& lengths,
                           const std::vector<int>& formats);
  Status ResultStatus(PGresult* res, std::string_view what);
  Status Simple(const char* sql, std::string_view what);
  std::string Scrub(std::string m) const;
  StatusOr<const std::string*> PreparedName(const std::string& sql, const std::vector<Oid>& types);
  void ForgetPrepared(const std::string& key);

  std::string conninfo_, describe_, password_;
  bool read_only_;
  PGconn* conn_ = nullptr;
  bool in_txn_ = false;
  bool txn_broken_ = false;
  int64_t changes_ = 0;
  // Statements prepared in this session, by their SQL and parameter types
  // (a NULL parameter's type is inferred at prepare time): name lf_<n>.
  std::unordered_map<std::string, std::string> prepared_;
  size_t server_statements_ = 0;  // prepared_ plus those forgotten after an error
  uint64_t next_statement_ = 0;
};

// Bounds the statements a session keeps on the server; past it they are all
// deallocated and prepared again as used (the ledger has fewer distinct ones).
constexpr size_t kMaxPreparedStatements = 256;

std::string PgConnection::Scrub(std::string m) const {
  m = RedactConninfo(m);
  if (password_.size() >= 3)
    for (size_t at; (at = m.find(password_)) != std::string::npos;) m.replace(at, password_.size(), "***");
  return OneLine(m);
}

Status PgConnection::Connect() {
  if (conn_) PQfinish(conn_);
  // A new session has none of the old one's prepared statements.
  prepared_.clear();
  server_statements_ = 0;
  // Defaults first: what the URI says overrides them (libpq keeps the last value).
  const char* keys[] = {"connect_timeout",
                        "application_name",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        nullptr};
  const char* values[] = {"10", "logferry", "30", "10", "3", conninfo_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (const char* pass = conn_ ? PQpass(conn_) : nullptr) password_ = pass;
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string m = Scrub(conn_ ? PQerrorMessage(conn_) : "out of memory");
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    return Status(ConnectFailureCode(m), "connect to ledger " + describe_ + ": " + m);
  }
  PQsetNoticeProcessor(conn_, DiscardNotice, nullptr);
  // As SQLite's busy timeout: a lock held longer is kUnavailable, retried later.
  std::string setup = "SET lock_timeout = '30s'; SET client_encoding = 'UTF8'";
  if (read_only_) setup += "; SET default_transaction_read_only = on";
  return Simple(setup.c_str(), "set up the session");
}

// Whether a statement may run now: connected, or connected again outside a
// transaction (inside one, what it did so far is gone with the connection).
Status PgConnection::Usable() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK && !txn_broken_) return Status::Ok();
  if (in_txn_) {
    txn_broken_ = true;
    return Status::Unavailable("the connection to ledger " + describe_ + " was lost during a transaction");
  }
  return Connect();
}

Status PgConnection::ResultStatus(PGresult* res, std::string_view what) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::Ok();
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string m = res ? PQresultErrorMessage(res) : "";
  if (m.empty()) m = PQerrorMessage(conn_);
  m = Scrub(m.substr(0, m.find('\n')));  // not the LINE/caret context that follows
  StatusCode code = state ? CodeOf(state) : StatusCode::kInternal;
  if (PQstatus(conn_) != CONNECTION_OK) {
    // Lost (the server stopped or the network broke): connect again next time.
    code = StatusCode::kUnavailable;
    if (in_txn_) txn_broken_ = true;
  }
  return Status(code, std::string(what) + " on ledger " + describe_ + ": " + m);
}

Status PgConnection::Simple(const char* sql, std::string_view what) {
  PGresult* res = PQexec(conn_, sql);
  Status s = ResultStatus(res, what);
  PQclear(res);
  return s;
}

Status PgConnection::Exec(std::string_view sql) {
  LF_RETURN_IF_ERROR(Usable());
  return Simple(std::string(sql).c_str(), "exec");
}

Status PgConnection::Begin() {
  LF_RETURN_IF_ERROR(Usable());
  std::string sql = "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kPostgresLedgerLockKey) + ")";
  Status s = Simple(sql.c_str(), "begin transaction");
  if (!s.ok()) {
    if (PQstatus(conn_) == CONNECTION_OK) PQclear(PQexec(conn_, "ROLLBACK"));
    return s;
  }
  in_txn_ = true;
  txn_broken_ = false;
  return Status::Ok();
}

Status PgConnection::Commit() {
  if (txn_broken_ || !conn_) {
    in_txn_ = txn_broken_ = false;
    return Status::Unavailable("the connection to ledger " + describe_ + " was lost during a transaction");
  }
  PGresult* res = PQexec(conn_, "COMMIT");
  Status s = ResultStatus(res, "commit");
  // COMMIT of a transaction that had failed answers ROLLBACK.
  if (s.ok() && std::string_view(PQcmdStatus(res)) == "ROLLBACK")
    s = Status::Internal("commit on ledger " + describe_ + ": the transaction was rolled back");
  PQclear(res);
  in_txn_ = txn_broken_ = false;
  return s;
}

void PgConnection::Rollback() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK && !txn_broken_) PQclear(PQexec(conn_, "ROLLBACK"));
  in_txn_ = txn_broken_ = false;
}

std::string PreparedKey(const std::string& sql, const std::vector<Oid>& types) {
  std::string key = sql;
  key.push_back('\0');
  for (Oid t : types) key += std::to_string(t) + ",";
  return key;
}

// The name of sql prepared with these parameter types, prepared now if it is
// not yet. nullptr when the transaction has failed already: the statement
// then runs unprepared, to fail as any statement would.
StatusOr<const std::string*> PgConnection::PreparedName(const std::string& sql, const std::vector<Oid>& types) {
  std::string key = PreparedKey(sql, types);
  if (auto it = prepared_.find(key); it != prepared_.end()) return &it->second;
  if (PQtransactionStatus(conn_) == PQTRANS_INERROR) return nullptr;
  if (server_statements_ >= kMaxPreparedStatements) {
    LF_RETURN_IF_ERROR(Simple("DEALLOCATE ALL", "deallocate prepared statements"));
    prepared_.clear();
    server_statements_ = 0;
  }
  std::string name = "lf_" + std::to_string(++next_statement_);
  PGresult* res = PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(types.size()), types.data());
  Status s = ResultStatus(res, "'" + sql.substr(0, 80) + "'");
  PQclear(res);
  if (!s.ok()) return s;
  ++server_statements_;
  return &prepared_.emplace(std::move(key), std::move(name)).first->second;
}

// After a failed run: prepared again next time (a table changed under a
// `SELECT *` fails every later run of the old plan, 0A000).
void PgConnection::ForgetPrepared(const std::string& key) {
  prepared_.erase(key);
}

StatusOr<PGresult*> PgConnection::Send(const std::string& sql, const std::vector<Oid>& types,
                                       const std::vector<const char*>& values, const std::vector<int>& lengths,
                                       const std::vector<int>& formats) {
  LF_ASSIGN_OR_RETURN(const std::string* name, PreparedName(sql, types));
  int n = static_cast<int>(values.size());
  PGresult* res = name ? PQexecPrepared(conn_, name->c_str(), n, values.data(), lengths.data(), formats.data(), 0)
                       : PQexecParams(conn_, sql.c_str(), n, types.data(), values.data(), lengths.data(),
                                      formats.data(), /*resultFormat=*/0);
  Status s = ResultStatus(res, "'" + sql.substr(0, 80) + "'");
  if (!s.ok()) {
    PQclear(res);
    if (name) ForgetPrepared(PreparedKey(sql, types));
    return s;
  }
  changes_ = std::atoll(PQcmdTuples(res));
  return res;
}

StatusOr<PGresult*> PgConnection::Execute(const std::string& sql, const std::vector<Oid>& types,
                                          const std::vector<const char*>& values, const std::vector<int>& lengths,
                                          const std::vector<int>& formats, bool write) {
  LF_RETURN_IF_ERROR(Usable());
  if (in_txn_ || !write) return Send(sql, types, values, lengths, formats);
  // One writer at a time, as SQLite: a lone write holds the lock too.
  LF_RETURN_IF_ERROR(Begin());
  auto res = Send(sql, types, values, lengths, formats);
  if (!res.ok()) {
    Rollback();
    return res.status();
  }
  Status committed = Commit();
  if (!committed.ok()) {
    PQclear(*res);
    return committed;
  }
  return res;
}

// PostgreSQL text is UTF-8 without NUL: other bytes (an excerpt of a binary
// line, a file name in another encoding) are stored as U+FFFD.
std::string PgText(std::string_view v) {
  std::string out;
  if (IsValidUtf8(v) && v.find('\0') == std::string_view::npos) return std::string(v);
  RepairUtf8(v, &out);
  for (size_t at; (at = out.find('\0')) != std::string::npos;) out.replace(at, 1, "\xEF\xBF\xBD");
  return out;
}

class PgCursor final : public Cursor {
 public:
  PgCursor(PgConnection* db, std::string_view sql) : db_(db), write_(IsWrite(sql)) {
    int n = 0;
    sql_ = ToDollarPlaceholders(sql, &n);
    Resize(n);
  }
  ~PgCursor() override { PQclear(res_); }
  PgCursor(const PgCursor&) = delete;
  PgCursor& operator=(const PgCursor&) = delete;

  void BindInt(int i, int64_t v) override { Set(i, std::to_string(v), kInt8Oid, 0); }
  void BindDouble(int i, double v) override {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    Set(i, buf, kFloat8Oid, 0);
  }
  void BindText(int i, std::string_view v) override { Set(i, PgText(v), kTextOid, 0); }
  void BindBlob(int i, std::string_view v) override { Set(i, std::string(v), kByteaOid, 1); }
  void BindNull(int i) override {
    if (!Valid(i)) return;
    values_[i - 1].reset();
    types_[i - 1] = 0;
  }

  StatusOr<bool> Step() override {
    if (!res_) {
      std::vector<const char*> values(values_.size());
      std::vector<int> lengths(values_.size());
      for (size_t k = 0; k < values_.size(); ++k) {
        values[k] = values_[k] ? values_[k]->data() : nullptr;
        lengths[k] = values_[k] ? static_cast<int>(values_[k]->size()) : 0;
      }
      LF_ASSIGN_OR_RETURN(res_, db_->Execute(sql_, types_, values, lengths, formats_, write_));
      row_ = -1;
    }
    return ++row_ < PQntuples(res_);
  }

  int64_t Int(int col) const override {
    const char* v = PQgetvalue(res_, row_, col);
    if (v[0] == 't' && v[1] == '\0') return 1;  // a boolean expression
    return std::strtoll(v, nullptr, 10);
  }
  double Double(int col) const override { return std::strtod(PQgetvalue(res_, row_, col), nullptr); }
  std::string Text(int col) const override {
    return std::string(PQgetvalue(res_, row_, col), static_cast<size_t>(PQgetlength(res_, row_, col)));
  }
  std::string Blob(int col) const override {
    size_t n = 0;
    unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res_, row_, col)), &n);
    if (!raw) return {};
    std::string out(reinterpret_cast<const char*>(raw), n);
    PQfreemem(raw);
    return out;
  }
  bool IsNull(int col) const override { return PQgetisnull(res_, row_, col) != 0; }

 private:
  bool Valid(int i) const { return i >= 1 && static_cast<size_t>(i) <= values_.size(); }
  void Resize(int n) {
    values_.resize(n);
    types_.assign(n, 0);
    formats_.assign(n, 0);
  }
  void Set(int i, std::string v, Oid type, int format) {
    if (!Valid(i)) return;
    values_[i - 1] = std::move(v);
    types_[i - 1] = type;
    formats_[i - 1] = format;
  }

  PgConnection* db_;
  bool write_;
  std::string sql_;
  std::vector<std::optional<std::string>> values_;
  std::vector<Oid> types_;
  std::vector<int> formats_;
  PGresult* res_ = nullptr;
  int row_ = -1;
};

std::unique_ptr<Cursor> PgConnection::Prepare(std::string_view sql) {
  return std::make_unique<PgCursor>(this, sql);
}

}  // namespace

StatusOr<std::unique_ptr<Connection>> OpenPostgres(const std::string& conninfo, bool read_only) {
  auto conn = std::make_unique<PgConnection>(conninfo, read_only);
  LF_RETURN_IF_ERROR(conn->Connect());
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace logferry
