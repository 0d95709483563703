#include "ledger/ledger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "ledger/connection.h"
#include "ledger/pg_migrations.h"
#include "ledger/postgres.h"
#include "ledger/sqlite.h"

namespace logferry {

const char* ObjectStateName(ObjectState s) {
  switch (s) {
    case ObjectState::kPending:
      return "pending";
    case ObjectState::kStaged:
      return "staged";
    case ObjectState::kFailed:
      return "failed";
    case ObjectState::kSuperseded:
      return "superseded";
    case ObjectState::kSkipped:
      return "skipped";
  }
  return "?";
}

namespace {

ObjectState StateFromName(const std::string& s) {
  if (s == "staged") return ObjectState::kStaged;
  if (s == "failed") return ObjectState::kFailed;
  if (s == "superseded") return ObjectState::kSuperseded;
  if (s == "skipped") return ObjectState::kSkipped;
  return ObjectState::kPending;
}

// Versioned migrations: index i brings the schema from version i to i+1.
const char* kMigrations[] = {
    R"sql(
CREATE TABLE table_settings(table_name TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE objects(
  id INTEGER PRIMARY KEY,
  table_name TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
  mtime_us INTEGER, version_id TEXT NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_us INTEGER,
  found_by TEXT NOT NULL, discovered_us INTEGER NOT NULL, staged_us INTEGER,
  lines_read INTEGER NOT NULL DEFAULT 0, rows_staged INTEGER NOT NULL DEFAULT 0,
  bad_records INTEGER NOT NULL DEFAULT 0, warnings INTEGER NOT NULL DEFAULT 0, last_warning TEXT,
  UNIQUE(table_name, key, etag));
CREATE INDEX objects_by_state ON objects(table_name, state);
CREATE INDEX objects_by_key ON objects(table_name, key);
CREATE TABLE parts(
  object_id INTEGER NOT NULL REFERENCES objects(id), hour_us INTEGER NOT NULL,
  table_name TEXT NOT NULL, partition_us INTEGER NOT NULL, key TEXT NOT NULL,
  rows INTEGER NOT NULL, bytes INTEGER NOT NULL, crc32c TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'live', obsoleted_revision INTEGER,
  PRIMARY KEY(object_id, hour_us));
CREATE INDEX parts_by_partition ON parts(table_name, partition_us, state);
CREATE TABLE partitions(
  table_name TEXT NOT NULL, partition_us INTEGER NOT NULL,
  revision INTEGER NOT NULL DEFAULT 0, loaded_revision INTEGER NOT NULL DEFAULT 0,
  requested INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0,
  load_id TEXT, rows_loaded INTEGER NOT NULL DEFAULT 0, loaded_us INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_us INTEGER, updated_us INTEGER,
  PRIMARY KEY(table_name, partition_us));
CREATE TABLE loads(
  id INTEGER PRIMARY KEY, table_name TEXT NOT NULL, partition_us INTEGER NOT NULL,
  generation INTEGER NOT NULL, load_id TEXT NOT NULL, started_us INTEGER NOT NULL,
  finished_us INTEGER, rows INTEGER, outcome TEXT, error TEXT);
CREATE INDEX loads_by_table ON loads(table_name, started_us);
CREATE TABLE bad_records(
  id INTEGER PRIMARY KEY, object_id INTEGER NOT NULL, table_name TEXT NOT NULL,
  line INTEGER NOT NULL, byte_offset INTEGER NOT NULL, field TEXT, reason TEXT NOT NULL,
  excerpt TEXT, created_us INTEGER NOT NULL);
CREATE INDEX bad_records_by_object ON bad_records(object_id);
CREATE INDEX bad_records_by_table ON bad_records(table_name, created_us);
CREATE TABLE requests(
  id INTEGER PRIMARY KEY, table_name TEXT NOT NULL, origin TEXT NOT NULL, origin_key TEXT UNIQUE,
  from_us INTEGER NOT NULL, to_us INTEGER NOT NULL, state TEXT NOT NULL, detail TEXT,
  created_us INTEGER NOT NULL, finished_us INTEGER);
CREATE TABLE columns(
  id INTEGER PRIMARY KEY, table_name TEXT NOT NULL, parent_path TEXT NOT NULL, raw_key BLOB NOT NULL,
  name TEXT NOT NULL, type TEXT NOT NULL, repeated INTEGER NOT NULL, companion INTEGER NOT NULL,
  schema_version INTEGER NOT NULL, updated_us INTEGER NOT NULL,
  UNIQUE(table_name, parent_path, raw_key));
CREATE TABLE schema_history(
  table_name TEXT NOT NULL, version INTEGER NOT NULL, changes TEXT NOT NULL, created_us INTEGER NOT NULL,
  PRIMARY KEY(table_name, version));
)sql",
    // 2: columns remember having held integers beyond 2^53 (no more lossless widening).
    R"sql(
ALTER TABLE columns ADD COLUMN inexact_ints INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3: event notifications that could not be handled (left on the queue
    // for its dead-letter policy), and which objects events announced.
    R"sql(
CREATE TABLE notifications(
  message_id TEXT PRIMARY KEY, table_name TEXT NOT NULL, queue TEXT NOT NULL, state TEXT NOT NULL,
  receive_count INTEGER NOT NULL, detail TEXT, excerpt TEXT, first_us INTEGER NOT NULL, updated_us INTEGER NOT NULL);
CREATE INDEX notifications_by_table ON notifications(table_name, state);
ALTER TABLE loads ADD COLUMN revision INTEGER;
)sql",
    // 4: warehouse jobs, counted against the daily load budget. A job is
    // recorded when it is about to be sent, not when its loads begin, so a
    // load that never reached the warehouse costs nothing; a merged load is
    // one job for several partitions' loads (loads.job_id). Earlier loads
    // were one job each.
    R"sql(
ALTER TABLE loads ADD COLUMN job_id TEXT;
UPDATE loads SET job_id=load_id;
CREATE TABLE load_jobs(
  job_id TEXT PRIMARY KEY, table_name TEXT NOT NULL, sent_us INTEGER NOT NULL, partitions INTEGER NOT NULL);
CREATE INDEX load_jobs_by_table ON load_jobs(table_name, sent_us);
INSERT OR IGNORE INTO load_jobs(job_id, table_name, sent_us, partitions)
  SELECT load_id, table_name, started_us, 1 FROM loads;
)sql",
    // 5: objects.bad_records counts every bad record, bad_records_kept those
    // stored with an excerpt (at most kMaxStoredBadRecords). Earlier versions
    // stored only the kept count; every line read is a row or a bad record,
    // so the true count is restored from the other two.
    R"sql(
ALTER TABLE objects ADD COLUMN bad_records_kept INTEGER NOT NULL DEFAULT 0;
UPDATE objects SET bad_records_kept=bad_records;
UPDATE objects SET bad_records=lines_read-rows_staged WHERE lines_read-rows_staged>bad_records;
)sql",
    // 6: the top-level columns each part holds (comma-separated names), so a
    // load reads only those however wide the table has grown. NULL (parts
    // staged before): every column.
    R"sql(
ALTER TABLE parts ADD COLUMN columns TEXT;
)sql",
    // 7: appends into open partitions (issue 11). parts.loaded: the part's
    // rows are in the warehouse (set exactly by each replace, and by
    // appends); parts.append_load: the append in flight that carries it.
    // A partition is appendable while the warehouse holds exactly its
    // loaded parts: partitions loaded before this version are not (their
    // parts' flags are unknown) until their next replace sets them.
    R"sql(
ALTER TABLE parts ADD COLUMN loaded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE parts ADD COLUMN append_load TEXT;
ALTER TABLE loads ADD COLUMN kind TEXT NOT NULL DEFAULT 'replace';
ALTER TABLE partitions ADD COLUMN appendable INTEGER NOT NULL DEFAULT 1;
UPDATE partitions SET appendable=0;
ALTER TABLE partitions ADD COLUMN appends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN appended_parts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN last_append_us INTEGER;
CREATE INDEX parts_by_append ON parts(append_load);
)sql",
    // 8: `run` processes (liveness for status), and per table the source keys
    // the newest listing ignored because they do not match key_format.
    // IF NOT EXISTS: a ledger rolled back to an older version by hand keeps them.
    R"sql(
CREATE TABLE IF NOT EXISTS processes(
  host TEXT NOT NULL, pid INTEGER NOT NULL, started_us INTEGER NOT NULL, mode TEXT NOT NULL,
  last_pass_started_us INTEGER, last_pass_ended_us INTEGER, last_outcome TEXT,
  heartbeat_us INTEGER NOT NULL, stopped_us INTEGER,
  PRIMARY KEY(host, pid, started_us));
CREATE TABLE IF NOT EXISTS ignored_keys(
  table_name TEXT PRIMARY KEY, count INTEGER NOT NULL, examples TEXT NOT NULL, listed_us INTEGER NOT NULL);
)sql",
    // 9: objects an operator acknowledged as permanently broken
    // (state 'skipped'), with the reason they gave and when.
    R"sql(
ALTER TABLE objects ADD COLUMN skip_reason TEXT;
ALTER TABLE objects ADD COLUMN skipped_us INTEGER;
)sql",
    // 10: several workers on one ledger (issue 13): leases on the objects a
    // worker stages and the partitions it loads (holder and expiry), and the
    // worker that ran each load.
    R"sql(
ALTER TABLE objects ADD COLUMN lease_worker TEXT;
ALTER TABLE objects ADD COLUMN lease_until INTEGER;
CREATE INDEX objects_by_lease ON objects(lease_worker);
ALTER TABLE partitions ADD COLUMN lease_worker TEXT;
ALTER TABLE partitions ADD COLUMN lease_until INTEGER;
ALTER TABLE loads ADD COLUMN worker TEXT;
)sql",
};

// Each dialect's migrations as (version it brings the schema to, SQL).
std::vector<std::pair<int64_t, const char*>> MigrationSteps(Connection::Dialect dialect) {
  std::vector<std::pair<int64_t, const char*>> steps;
  if (dialect == Connection::Dialect::kPostgres) {
    for (const PgMigration& m : kPgMigrations) steps.emplace_back(m.to_version, m.sql);
  } else {
    for (size_t i = 0; i < std::size(kMigrations); ++i) steps.emplace_back(static_cast<int64_t>(i + 1), kMigrations[i]);
  }
  return steps;
}
static_assert(std::size(kPgMigrations) > 0 &&
                  std::end(kPgMigrations)[-1].to_version == static_cast<int64_t>(std::size(kMigrations)),
              "every SQLite migration needs its PostgreSQL twin (ledger/pg_migrations.h)");

}  // namespace

// The ledger over one SQL connection behind a mutex: SQLite (WAL) or
// PostgreSQL (ledger/connection.h). Named for its first backend.
class SqliteLedger final : public Ledger {
 public:
  explicit SqliteLedger(std::unique_ptr<Connection> db) : owned_(std::move(db)), db_(owned_.get()) {}
  ~SqliteLedger() override = default;
  SqliteLedger(const SqliteLedger&) = delete;
  SqliteLedger& operator=(const SqliteLedger&) = delete;

  Status Exec(std::string_view sql);
  Status Migrate();
  // PostgreSQL: whether the database holds a ledger already.
  StatusOr<bool> HasSchema();
  std::string Location() override { return db_->Describe(); }
  // For a read-only ledger: its schema must be this build's.
  Status CheckCurrent();

  Status CheckTableSettings(const std::string& table, const std::string& settings) override;
  StatusOr<int64_t> RecordDiscovered(const std::string& table, const std::vector<ObjectInfo>& objects,
                                     const std::string& found_by, int64_t now_us) override;
  StatusOr<std::vector<ObjectRow>> DueObjects(const std::string& table, int64_t now_us) override;
  StatusOr<std::vector<ObjectRow>> Objects(const std::string& table, std::optional<ObjectState> state) override;
  StatusOr<std::optional<ObjectRow>> FindObject(const std::string& table, const std::string& key,
                                                const std::string& etag) override;
  Status RecordNotification(const NotificationRow& n) override;
  Status RecordIgnoredKeys(const std::string& table, int64_t count, const std::vector<std::string>& examples,
                           int64_t now_us) override;
  Status RecordProcess(const ProcessRow& p) override;
  StatusOr<std::vector<ProcessRow>> Processes() override;
  StatusOr<std::vector<NotificationRow>> Notifications(const std::string& table, const std::string& state) override;
  Status CommitStaged(const StagedObject& staged, int64_t now_us) override;
  StatusOr<std::vector<Status>> CommitStagedGroup(const std::vector<ColumnRecord>& columns,
                                                  const std::vector<StagedObject>& staged, int64_t now_us) override;
  Status MarkFailed(int64_t object_id, const std::string& error, int64_t next_attempt_us) override;
  Status Restage(int64_t object_id, const std::string& reason) override;
  StatusOr<RestageCounts> RestageObjects(const std::string& table, const std::vector<int64_t>& object_ids,
                                         const std::string& reason) override;
  StatusOr<ObjectRow> Skip(const std::string& table, const std::string& key, const std::string& reason,
                           int64_t now_us) override;
  StatusOr<ObjectRow> Unskip(const std::string& table, const std::string& key) override;
  StatusOr<std::vector<PartitionRow>> DuePartitions(const std::string& table, int64_t partition_unit_us,
                                                    int64_t settle_us, int64_t now_us) override;
  StatusOr<std::vector<PartitionRow>> Partitions(const std::string& table) override;
  StatusOr<LoadPlan> BeginLoad(const std::string& table, int64_t partition_us, int64_t now_us) override;
  Status FinishLoad(const LoadPlan& plan, int64_t rows_loaded, int64_t now_us) override;
  Status FailLoad(const LoadPlan& plan, const std::string& error, int64_t next_attempt_us, int64_t now_us) override;
  StatusOr<std::vector<PartitionRow>> OpenPartitions(const std::string& table, int64_t partition_unit_us,
                                                     int64_t settle_us, int64_t min_spacing_us,
                                                     int64_t now_us) override;
  StatusOr<AppendPlan> BeginAppend(const std::string& table, int64_t partition_us, int64_t now_us,
                                   bool resume_only) override;
  Status FinishAppend(const AppendPlan& plan, int64_t rows_after, int64_t now_us) override;
  Status FailAppend(const AppendPlan& plan, const std::string& error, int64_t now_us) override;
  Status RecordLoadJob(const std::vector<LoadPlan>& plans, const std::string& job_id, int64_t now_us) override;
  StatusOr<bool> LoadJobKnown(const std::string& job_id) override;
  StatusOr<std::vector<PartRow>> LiveParts(const std::string& table, std::optional<int64_t> partition_us) override;
  StatusOr<std::vector<PartRow>> CollectableParts(const std::string& table) override;
  Status ForgetPart(const PartRow& part) override;
  StatusOr<std::set<std::string>> PartKeys(const std::string& table) override;
  StatusOr<std::pair<int64_t, int64_t>> RecordRequest(const std::string& table, const std::string& origin,
                                                      const std::string& origin_key, int64_t from_us, int64_t to_us,
                                                      int64_t partition_unit_us, int64_t now_us) override;
  StatusOr<std::optional<RequestRow>> FindRequest(const std::string& origin_key) override;
  Status FinishRequest(int64_t id, const std::string& state, const std::string& detail, int64_t now_us) override;
  StatusOr<std::vector<RequestRow>> Requests(const std::string& table, const std::string& state) override;
  StatusOr<std::vector<ColumnRecord>> Columns(const std::string& table) override;
  StatusOr<int64_t> SchemaVersion(const std::string& table) override;
  StatusOr<TableCounts> Counts(const std::string& table, int64_t now_us) override;
  StatusOr<std::vector<BadRecordRow>> BadRecords(const std::string& table, int64_t since_us, int64_t limit) override;
  StatusOr<std::vector<ObjectRow>> ClaimObjects(const std::string& table, const std::string& worker, int64_t now_us,
                                                int64_t until_us, int64_t limit) override;
  StatusOr<bool> ClaimPartition(const std::string& table, int64_t partition_us, const std::string& worker,
                                int64_t now_us, int64_t until_us) override;
  Status ReleasePartition(const std::string& table, int64_t partition_us, const std::string& worker) override;
  Status RenewLeases(const std::string& worker, int64_t until_us) override;
  Status ReleaseLeases(const std::string& worker) override;
  StatusOr<std::set<std::string>> LeasedVersions(const std::string& table, int64_t now_us) override;
  StatusOr<std::vector<LeaseRow>> Leases(int64_t now_us) override;
  StatusOr<std::vector<LoadRow>> Loads(const std::string& table, std::optional<int64_t> partition_us) override;

 private:
  std::mutex mu_;
  std::unique_ptr<Connection> owned_;
  Connection* db_;
};

// `name` declares a variable, so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define LF_TXN(name)     \
  Transaction name(db_); \
  LF_RETURN_IF_ERROR(name.status())
// NOLINTEND(bugprone-macro-parentheses)

namespace {

// The ledger keeps raw excerpts of bad lines: owner-only (0600), whatever the
// umask. SQLite gives its -wal and -shm files the database file's mode;
// ones left looser by an older version are tightened too (they are ours).
Status MakeOwnerOnly(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::PermissionDenied("open ledger " + path + ": " + strerror(errno));
  struct stat st {};
  bool ok = fstat(fd, &st) == 0 && ((st.st_mode & 077) == 0 || fchmod(fd, 0600) == 0);
  close(fd);
  if (!ok) return Status::PermissionDenied("cannot make ledger " + path + " owner-only: " + strerror(errno));
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string side = path + suffix;
    if (stat(side.c_str(), &st) == 0 && (st.st_mode & 077) != 0) chmod(side.c_str(), 0600);
  }
  return Status::Ok();
}

enum class PgOpen { kCreate, kExisting, kReadOnly };

// A ledger on PostgreSQL at `uri`: created and migrated as needed (kCreate),
// or only if one is there already.
StatusOr<std::unique_ptr<Ledger>> OpenPostgresLedger(const std::string& uri, PgOpen mode) {
  LF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, OpenPostgres(uri, mode == PgOpen::kReadOnly));
  std::string where = conn->Describe();
  auto ledger = std::make_unique<SqliteLedger>(std::move(conn));
  if (mode != PgOpen::kCreate) {
    LF_ASSIGN_OR_RETURN(bool exists, ledger->HasSchema());
    if (!exists)
      return Status::NotFound("no ledger at " + where +
                              " (nothing has run with this ledger yet: is `ledger` right? 'logferry run' creates it)");
  }
  LF_RETURN_IF_ERROR(mode == PgOpen::kReadOnly ? ledger->CheckCurrent() : ledger->Migrate());
  return std::unique_ptr<Ledger>(std::move(ledger));
}

}  // namespace

StatusOr<std::unique_ptr<Ledger>> Ledger::OpenExisting(const std::string& path) {
  if (IsPostgresUri(path)) return OpenPostgresLedger(path, PgOpen::kExisting);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Status::NotFound("no ledger at " + path +
                              " (nothing has run with this state_dir yet: is state_dir right? 'logferry run' "
                              "creates it)");
    return Status::PermissionDenied("ledger " + path + ": " + strerror(errno));
  }
  return Open(path);
}

StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const std::string& path) {
  if (IsPostgresUri(path)) return OpenPostgresLedger(path, PgOpen::kCreate);
  LF_RETURN_IF_ERROR(MakeOwnerOnly(path));
  LF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, OpenSqlite(path, /*read_only=*/false, path));
  auto ledger = std::make_unique<SqliteLedger>(std::move(db));
  // Switching to WAL needs a moment alone with the file and SQLite does not
  // call the busy handler for it; WAL mode persists, so this only matters
  // while the ledger is new. Retry briefly instead of failing.
  for (int attempt = 0;; ++attempt) {
    Status s = ledger->Exec("PRAGMA journal_mode=WAL");
    if (s.ok()) break;
    if (!s.IsTransient() || attempt >= 100) return s;
    Env::Default()->SleepForMicroseconds(50'000);
  }
  // NORMAL is durable across process crashes in WAL mode; FULL adds power-loss
  // durability of the last commit, which matters for the ledger's promises.
  LF_RETURN_IF_ERROR(ledger->Exec("PRAGMA synchronous=FULL"));
  LF_RETURN_IF_ERROR(ledger->Exec("PRAGMA foreign_keys=ON"));
  LF_RETURN_IF_ERROR(ledger->Migrate());
  return std::unique_ptr<Ledger>(std::move(ledger));
}

StatusOr<std::unique_ptr<Ledger>> Ledger::OpenReadOnly(const std::string& path) {
  if (IsPostgresUri(path)) return OpenPostgresLedger(path, PgOpen::kReadOnly);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::NotFound("no ledger at " + path);
  LF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, OpenSqlite(SqliteReadOnlyUri(path), /*read_only=*/true, path));
  auto ledger = std::make_unique<SqliteLedger>(std::move(db));
  LF_RETURN_IF_ERROR(ledger->CheckCurrent());
  return std::unique_ptr<Ledger>(std::move(ledger));
}

bool Ledger::IsShared(std::string_view location) {
  return IsPostgresUri(location);
}

std::string Ledger::Describe(std::string_view location) {
  return IsPostgresUri(location) ? RedactConninfo(location) : std::string(location);
}

StatusOr<bool> SqliteLedger::HasSchema() {
  std::lock_guard lock(mu_);
  Statement s(db_, "SELECT to_regclass('meta') IS NOT NULL");
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  return row && s.Int(0) != 0;
}

Status SqliteLedger::CheckCurrent() {
  std::lock_guard lock(mu_);
  constexpr auto kTarget = static_cast<int64_t>(std::size(kMigrations));
  Statement s(db_, "SELECT value FROM meta WHERE key='schema_version'");
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  int64_t version = row ? std::stoll(s.Text(0)) : 0;
  if (version != kTarget)
    return Status::FailedPrecondition("the ledger's schema is version " + std::to_string(version) +
                                      ", this logferry's is " + std::to_string(kTarget) +
                                      " (any other command migrates it)");
  return Status::Ok();
}

Status SqliteLedger::Exec(std::string_view sql) {
  return db_->Exec(sql);
}

Status SqliteLedger::Migrate() {
  std::lock_guard lock(mu_);
  constexpr auto kTarget = static_cast<int64_t>(std::size(kMigrations));
  {
    // Most opens find the schema current: check with a read, not a write lock.
    Statement s(db_, "SELECT value FROM meta WHERE key='schema_version'");
    auto row = s.Step();
    if (row.ok() && *row && std::stoll(s.Text(0)) == kTarget) return Status::Ok();
  }
  LF_TXN(txn);
  LF_RETURN_IF_ERROR(Exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"));
  int64_t version = 0;
  {
    Statement s(db_, "SELECT value FROM meta WHERE key='schema_version'");
    LF_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) version = std::stoll(s.Text(0));
  }
  if (version > kTarget)
    return Status::FailedPrecondition("ledger schema version " + std::to_string(version) +
                                      " is newer than this logferry understands (" + std::to_string(kTarget) + ")");
  for (const auto& [to_version, sql] : MigrationSteps(db_->dialect())) {
    if (to_version <= version) continue;
    LF_RETURN_IF_ERROR(Exec(sql));
    version = to_version;
  }
  Statement s(
      db_,
      "INSERT INTO meta(key, value) VALUES('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  LF_RETURN_IF_ERROR(s.Bind(1, std::to_string(version)).Run());
  return txn.Commit();
}

std::string Ledger::VersionId(std::string_view table, std::string_view key, std::string_view etag) {
  std::string id(table);
  id.push_back('\0');
  id.append(key);
  id.push_back('\0');
  id.append(etag);
  return Sha256Hex(id).substr(0, 24);
}

Status SqliteLedger::CheckTableSettings(const std::string& table, const std::string& settings) {
  std::lock_guard lock(mu_);
  // INSERT OR IGNORE first: two processes opening a new ledger at once must
  // not race between a SELECT and an INSERT.
  Statement ins(db_, "INSERT INTO table_settings(table_name, settings) VALUES(?, ?) ON CONFLICT DO NOTHING");
  LF_RETURN_IF_ERROR(ins.Bind(1, table).Bind(2, settings).Run());
  Statement s(db_, "SELECT settings FROM table_settings WHERE table_name=?");
  s.Bind(1, table);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (row && s.Text(0) != settings)
    return Status::FailedPrecondition("table '" + table + "' was set up with " + s.Text(0) +
                                      " but the config now says " + settings +
                                      "; these cannot change under existing data");
  return Status::Ok();
}

StatusOr<int64_t> SqliteLedger::RecordDiscovered(const std::string& table, const std::vector<ObjectInfo>& objects,
                                                 const std::string& found_by, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  int64_t added = 0;
  for (const ObjectInfo& o : objects) {
    Statement i2(
        db_,
        "INSERT INTO objects(table_name, key, etag, size, mtime_us, version_id, state, found_by, discovered_us) "
        "VALUES(?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT(table_name, key, etag) DO NOTHING");
    i2.Bind(1, table).Bind(2, o.key).Bind(3, o.etag).Bind(4, o.size).Bind(5, o.mtime_us);
    i2.Bind(6, VersionId(table, o.key, o.etag)).Bind(7, found_by).Bind(8, now_us);
    LF_RETURN_IF_ERROR(i2.Run());
    if (db_->Changes() == 0 && found_by != "listing") {
      // Seen by listing first, then announced: not "found only by listing".
      Statement u(db_,
                  "UPDATE objects SET found_by='listing+' || ? WHERE table_name=? AND key=? AND etag=? "
                  "AND found_by='listing'");
      LF_RETURN_IF_ERROR(u.Bind(1, found_by).Bind(2, table).Bind(3, o.key).Bind(4, o.etag).Run());
    } else if (db_->Changes() > 0) {
      ++added;
      // A version never staged (or skipped as broken) is simply replaced; a
      // staged one stays until its successor's parts are committed
      // (CommitStaged).
      Statement s2(db_,
                   "UPDATE objects SET state='superseded' WHERE table_name=? AND key=? AND etag<>? "
                   "AND state IN ('pending', 'failed', 'skipped')");
      LF_RETURN_IF_ERROR(s2.Bind(1, table).Bind(2, o.key).Bind(3, o.etag).Run());
    }
  }
  LF_RETURN_IF_ERROR(txn.Commit());
  return added;
}

namespace {

ObjectRow ReadObject(const Statement& s) {
  ObjectRow o;
  o.id = s.Int(0);
  o.table = s.Text(1);
  o.key = s.Text(2);
  o.etag = s.Text(3);
  o.size = static_cast<uint64_t>(s.Int(4));
  o.version_id = s.Text(5);
  o.state = StateFromName(s.Text(6));
  o.attempts = static_cast<int>(s.Int(7));
  o.last_error = s.Text(8);
  o.next_attempt_us = s.OptInt(9);
  o.found_by = s.Text(10);
  o.discovered_us = s.Int(11);
  o.lines_read = s.Int(12);
  o.rows_staged = s.Int(13);
  o.bad_records = s.Int(14);
  o.warnings = s.Int(15);
  o.bad_records_kept = s.Int(16);
  o.skip_reason = s.Text(17);
  o.skipped_us = s.OptInt(18);
  return o;
}

constexpr const char* kObjectColumns =
    "id, table_name, key, etag, size, version_id, state, attempts, last_error, next_attempt_us, found_by, "
    "discovered_us, lines_read, rows_staged, bad_records, warnings, bad_records_kept, skip_reason, skipped_us";
// The objects table read by state. Left to itself, SQLite walks
// objects_by_key to skip a sort, reading every object the table ever had
// (seconds per pass at a million); PostgreSQL's planner has statistics and
// no INDEXED BY.
std::string ObjectsByState(Connection* db) {
  return db->dialect() == Connection::Dialect::kSqlite ? "objects INDEXED BY objects_by_state" : "objects";
}
}  // namespace

StatusOr<std::vector<ObjectRow>> SqliteLedger::DueObjects(const std::string& table, int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") + kObjectColumns + " FROM " + ObjectsByState(db_) +
                       " WHERE table_name=? AND state IN ('pending', 'failed') "
                       "AND (state='pending' OR next_attempt_us IS NULL OR next_attempt_us<=?) ORDER BY key");
  s.Bind(1, table).Bind(2, now_us);
  return s.Collect<ObjectRow>(ReadObject);
}

StatusOr<std::vector<ObjectRow>> SqliteLedger::Objects(const std::string& table, std::optional<ObjectState> state) {
  std::lock_guard lock(mu_);
  if (state) {  // by state, as DueObjects
    Statement s(db_, std::string("SELECT ") + kObjectColumns + " FROM " + ObjectsByState(db_) +
                         " WHERE table_name=? AND state=? ORDER BY key, id");
    s.Bind(1, table).Bind(2, ObjectStateName(*state));
    return s.Collect<ObjectRow>(ReadObject);
  }
  Statement s(db_, std::string("SELECT ") + kObjectColumns + " FROM objects WHERE table_name=? ORDER BY key, id");
  s.Bind(1, table);
  return s.Collect<ObjectRow>(ReadObject);
}

StatusOr<std::optional<ObjectRow>> SqliteLedger::FindObject(const std::string& table, const std::string& key,
                                                            const std::string& etag) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") + kObjectColumns + " FROM objects WHERE table_name=? AND key=? AND etag=?");
  s.Bind(1, table).Bind(2, key).Bind(3, etag);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<ObjectRow>();
  return std::optional<ObjectRow>(ReadObject(s));
}

Status SqliteLedger::RecordNotification(const NotificationRow& n) {
  std::lock_guard lock(mu_);
  Statement s(
      db_,
      "INSERT INTO notifications(message_id, table_name, queue, state, receive_count, detail, excerpt, first_us, "
      "updated_us) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
      "state=excluded.state, receive_count=excluded.receive_count, detail=excluded.detail, "
      "updated_us=excluded.updated_us");
  s.Bind(1, n.message_id).Bind(2, n.table).Bind(3, n.queue).Bind(4, n.state).Bind(5, n.receive_count);
  s.Bind(6, n.detail).Bind(7, n.excerpt).Bind(8, n.updated_us).Bind(9, n.updated_us);
  return s.Run();
}

StatusOr<std::vector<NotificationRow>> SqliteLedger::Notifications(const std::string& table, const std::string& state) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "SELECT message_id, table_name, queue, state, receive_count, detail, excerpt, updated_us FROM "
              "notifications WHERE table_name=? AND state=? ORDER BY updated_us");
  s.Bind(1, table).Bind(2, state);
  return s.Collect<NotificationRow>([](const Statement& r) {
    NotificationRow n;
    n.message_id = r.Text(0);
    n.table = r.Text(1);
    n.queue = r.Text(2);
    n.state = r.Text(3);
    n.receive_count = r.Int(4);
    n.detail = r.Text(5);
    n.excerpt = r.Text(6);
    n.updated_us = r.Int(7);
    return n;
  });
}

Status SqliteLedger::RecordIgnoredKeys(const std::string& table, int64_t count,
                                       const std::vector<std::string>& examples, int64_t now_us) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < examples.size() && i < kMaxIgnoredKeyExamples; ++i) list.push_back(examples[i]);
  // A key may hold any bytes: replaced, not refused, in the stored examples.
  std::string text = list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(mu_);
  Statement s(db_,
              "INSERT INTO ignored_keys(table_name, count, examples, listed_us) VALUES(?, ?, ?, ?) "
              "ON CONFLICT(table_name) DO UPDATE SET count=excluded.count, examples=excluded.examples, "
              "listed_us=excluded.listed_us");
  return s.Bind(1, table).Bind(2, count).Bind(3, text).Bind(4, now_us).Run();
}

Status SqliteLedger::RecordProcess(const ProcessRow& p) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  Statement s(db_,
              "INSERT INTO processes(host, pid, started_us, mode, last_pass_started_us, last_pass_ended_us, "
              "last_outcome, heartbeat_us, stopped_us) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT(host, pid, started_us) DO UPDATE SET mode=excluded.mode, "
              "last_pass_started_us=excluded.last_pass_started_us, last_pass_ended_us=excluded.last_pass_ended_us, "
              "last_outcome=excluded.last_outcome, heartbeat_us=excluded.heartbeat_us, stopped_us=excluded.stopped_us");
  s.Bind(1, p.host).Bind(2, p.pid).Bind(3, p.started_us).Bind(4, p.mode).Bind(5, p.last_pass_started_us);
  s.Bind(6, p.last_pass_ended_us).Bind(7, p.last_outcome).Bind(8, p.heartbeat_us).Bind(9, p.stopped_us);
  LF_RETURN_IF_ERROR(s.Run());
  // Only rows quiet for a while go: with several workers, every live one
  // stays listed whatever their number.
  Statement prune(db_,
                  "DELETE FROM processes WHERE heartbeat_us<? AND (host, pid, started_us) NOT IN "
                  "(SELECT host, pid, started_us FROM processes ORDER BY heartbeat_us DESC LIMIT ?)");
  LF_RETURN_IF_ERROR(prune.Bind(1, p.heartbeat_us - kProcessForgetAfterUs).Bind(2, kKeptProcesses).Run());
  return txn.Commit();
}

StatusOr<std::vector<ProcessRow>> SqliteLedger::Processes() {
  std::lock_guard lock(mu_);
  Statement s(
      db_,
      "SELECT host, pid, started_us, mode, last_pass_started_us, last_pass_ended_us, COALESCE(last_outcome, ''), "
      "heartbeat_us, stopped_us FROM processes ORDER BY heartbeat_us DESC, started_us DESC");
  return s.Collect<ProcessRow>([](const Statement& r) {
    ProcessRow p;
    p.host = r.Text(0);
    p.pid = r.Int(1);
    p.started_us = r.Int(2);
    p.mode = r.Text(3);
    p.last_pass_started_us = r.OptInt(4);
    p.last_pass_ended_us = r.OptInt(5);
    p.last_outcome = r.Text(6);
    p.heartbeat_us = r.Int(7);
    p.stopped_us = r.OptInt(8);
    return p;
  });
}

// The steps of CommitStaged, each within its transaction.
namespace {

int64_t ReadFirstInt(const Statement& s) {
  return s.Int(0);
}

// The staged object's table and key; it must still be the current version.
Status LookUpStagedObject(Connection* db, int64_t object_id, std::string* table, std::string* key) {
  Statement s(db, "SELECT table_name, key, state FROM objects WHERE id=?");
  s.Bind(1, object_id);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("object " + std::to_string(object_id) + " is not in the ledger");
  *table = s.Text(0);
  *key = s.Text(1);
  if (s.Text(2) == "superseded")
    return Status::FailedPrecondition("object " + *key + " was replaced by a newer version while it was staged");
  return Status::Ok();
}

// Partitions holding an object's live parts.
Status AddLivePartitions(Connection* db, int64_t object_id, std::vector<int64_t>* partitions) {
  Statement s(db, "SELECT partition_us FROM parts WHERE object_id=? AND state='live'");
  s.Bind(1, object_id);
  LF_ASSIGN_OR_RETURN(std::vector<int64_t> found, s.Collect<int64_t>(ReadFirstInt));
  partitions->insert(partitions->end(), found.begin(), found.end());
  return Status::Ok();
}

// Re-staging the same version (after a crash, a retry or `restage`)
// replaces its parts. Hours it writes again are rewritten under the same key;
// hours it no longer writes (a changed config moved their rows) keep their
// part as obsolete, so it is collected once its partition has reloaded
// without it, like a superseded version's.
Status ReplaceParts(Connection* db, const StagedObject& st, const std::string& table, std::vector<int64_t>* touched) {
  LF_RETURN_IF_ERROR(AddLivePartitions(db, st.object_id, touched));
  // Rows of the parts replaced here may be in the warehouse (loaded, or in
  // an append in flight): only a replace can take them out again.
  Statement stale(db,
                  "UPDATE partitions SET appendable=0 WHERE table_name=? AND partition_us IN (SELECT partition_us "
                  "FROM parts WHERE object_id=? AND (loaded<>0 OR append_load IS NOT NULL))");
  LF_RETURN_IF_ERROR(stale.Bind(1, table).Bind(2, st.object_id).Run());
  for (const PartRow& p : st.parts) {
    Statement del(db, "DELETE FROM parts WHERE object_id=? AND hour_us=?");
    LF_RETURN_IF_ERROR(del.Bind(1, st.object_id).Bind(2, p.hour_us).Run());
  }
  Statement obs(db, "UPDATE parts SET state='obsolete', obsoleted_revision=NULL WHERE object_id=? AND state='live'");
  LF_RETURN_IF_ERROR(obs.Bind(1, st.object_id).Run());
  for (const PartRow& p : st.parts) {
    Statement ins(db,
                  "INSERT INTO parts(object_id, hour_us, table_name, partition_us, key, rows, bytes, crc32c, columns) "
                  "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.Bind(1, st.object_id).Bind(2, p.hour_us).Bind(3, table).Bind(4, p.partition_us).Bind(5, p.key);
    ins.Bind(6, p.rows).Bind(7, p.bytes).Bind(8, p.crc32c);
    if (p.columns)
      ins.Bind(9, *p.columns);
    else
      ins.BindNull(9);
    LF_RETURN_IF_ERROR(ins.Run());
    touched->push_back(p.partition_us);
  }
  return Status::Ok();
}

// Older staged versions of the same key are replaced by this one: their
// parts become obsolete and their partitions are touched.
Status SupersedeOlderVersions(Connection* db, const std::string& table, const std::string& key, int64_t object_id,
                              std::vector<int64_t>* touched) {
  Statement olds(db, "SELECT id FROM objects WHERE table_name=? AND key=? AND id<>? AND state='staged'");
  olds.Bind(1, table).Bind(2, key).Bind(3, object_id);
  LF_ASSIGN_OR_RETURN(std::vector<int64_t> ids, olds.Collect<int64_t>(ReadFirstInt));
  for (int64_t id : ids) {
    LF_RETURN_IF_ERROR(AddLivePartitions(db, id, touched));
    Statement obs(db, "UPDATE parts SET state='obsolete' WHERE object_id=? AND state='live'");
    LF_RETURN_IF_ERROR(obs.Bind(1, id).Run());
    Statement sup(db, "UPDATE objects SET state='superseded' WHERE id=?");
    LF_RETURN_IF_ERROR(sup.Bind(1, id).Run());
  }
  return Status::Ok();
}

// Each touched partition gets a new revision (so it loads again); obsolete
// parts remember the revision that dropped them, for collection. Every part
// made obsolete is in a touched partition (its caller touched it), so only
// those are searched: the whole table per commit made a pass of n small
// objects cost O(n^2).
Status BumpPartitions(Connection* db, const std::string& table, std::vector<int64_t> touched, int64_t now_us) {
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (int64_t partition_us : touched) {
    Statement s(db,
                "INSERT INTO partitions(table_name, partition_us, revision, updated_us) VALUES(?, ?, 1, ?) "
                "ON CONFLICT(table_name, partition_us) DO UPDATE SET revision=partitions.revision+1, "
                "updated_us=excluded.updated_us, "
                "attempts=0, next_attempt_us=NULL");
    LF_RETURN_IF_ERROR(s.Bind(1, table).Bind(2, partition_us).Bind(3, now_us).Run());
    Statement mark(db,
                   "UPDATE parts SET obsoleted_revision=(SELECT revision FROM partitions q WHERE q.table_name=? AND "
                   "q.partition_us=?) WHERE table_name=? AND partition_us=? AND state='obsolete' AND "
                   "obsoleted_revision IS NULL");
    LF_RETURN_IF_ERROR(mark.Bind(1, table).Bind(2, partition_us).Bind(3, table).Bind(4, partition_us).Run());
  }
  return Status::Ok();
}

Status ReplaceBadRecords(Connection* db, const StagedObject& st, const std::string& table, int64_t now_us) {
  Statement del(db, "DELETE FROM bad_records WHERE object_id=?");
  LF_RETURN_IF_ERROR(del.Bind(1, st.object_id).Run());
  for (const BadRecord& b : st.bad_records) {
    Statement ins(
        db,
        "INSERT INTO bad_records(object_id, table_name, line, byte_offset, field, reason, excerpt, created_us) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    ins.Bind(1, st.object_id).Bind(2, table).Bind(3, b.line).Bind(4, b.byte_offset).Bind(5, b.field);
    ins.Bind(6, b.reason).Bind(7, b.excerpt).Bind(8, now_us);
    LF_RETURN_IF_ERROR(ins.Run());
  }
  return Status::Ok();
}

Status MarkObjectStaged(Connection* db, const StagedObject& st, int64_t now_us) {
  Statement upd(
      db,
      "UPDATE objects SET state='staged', staged_us=?, lines_read=?, rows_staged=?, bad_records=?, warnings=?, "
      "last_warning=?, last_error=NULL, next_attempt_us=NULL, attempts=attempts+1, bad_records_kept=?, "
      "skip_reason=NULL, skipped_us=NULL, lease_worker=NULL, lease_until=NULL WHERE id=?");
  upd.Bind(1, now_us).Bind(2, st.lines_read).Bind(3, st.rows_staged).Bind(4, st.bad_total);
  upd.Bind(5, st.warnings).Bind(6, st.warning).Bind(7, static_cast<int64_t>(st.bad_records.size()));
  upd.Bind(8, st.object_id);
  return upd.Run();
}

StatusOr<int64_t> ReadSchemaVersion(Connection* db, const std::string& table) {
  Statement v(db, "SELECT COALESCE(MAX(version), 0) FROM schema_history WHERE table_name=?");
  v.Bind(1, table);
  LF_ASSIGN_OR_RETURN(std::optional<int64_t> version, v.First<int64_t>(ReadFirstInt));
  return version.value_or(0);
}

// The columns the parts rely on, as one new schema version with its history entry.
// The type a column must have once c is recorded over what the ledger
// holds, which another worker may have recorded since this one last read it
// (several workers stage one table). Only a widening that every part already
// staged fits is accepted; a column two workers first saw with different
// types is refused, so the object is staged again against the ledger's.
StatusOr<ColumnType> MergedType(Connection* db, const std::string& table, const ColumnRecord& c) {
  Statement s(db, "SELECT type, repeated FROM columns WHERE table_name=? AND parent_path=? AND raw_key=?");
  s.Bind(1, table).Bind(2, c.parent_path).BindBlob(3, c.raw_key);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return c.type;
  ColumnType held = ColumnTypeFromName(s.Text(0));
  if (held == ColumnType::kNone) return c.type;  // recorded before a value typed it
  bool numbers = (held == ColumnType::kInt64 || held == ColumnType::kFloat64) &&
                 (c.type == ColumnType::kInt64 || c.type == ColumnType::kFloat64);
  bool as_text = held == ColumnType::kString && !c.repeated && c.type != ColumnType::kRecord;
  if ((s.Int(1) != 0) == c.repeated && (held == c.type || numbers || as_text))
    return numbers ? ColumnType::kFloat64 : held;
  return Status::FailedPrecondition("column " + c.name + " of table " + table + " is " + ColumnTypeName(held) +
                                    " in the ledger (another worker recorded it), not " + ColumnTypeName(c.type) +
                                    ": staged again with the ledger's schema");
}

Status RecordSchemaChanges(Connection* db, const std::string& table, const std::vector<ColumnRecord>& columns,
                           int64_t now_us) {
  if (columns.empty()) return Status::Ok();
  LF_ASSIGN_OR_RETURN(int64_t version, ReadSchemaVersion(db, table));
  ++version;
  nlohmann::json changes = nlohmann::json::array();
  for (ColumnRecord c : columns) {
    LF_ASSIGN_OR_RETURN(c.type, MergedType(db, table, c));
    Statement up(db,
                 "INSERT INTO columns(table_name, parent_path, raw_key, name, type, repeated, companion, "
                 "schema_version, updated_us, inexact_ints) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(table_name, parent_path, raw_key) DO UPDATE SET "
                 "type=excluded.type, repeated=excluded.repeated, schema_version=excluded.schema_version, "
                 "updated_us=excluded.updated_us, inexact_ints=excluded.inexact_ints");
    up.Bind(1, table).Bind(2, c.parent_path).BindBlob(3, c.raw_key).Bind(4, c.name).Bind(5, ColumnTypeName(c.type));
    up.Bind(6, c.repeated ? 1 : 0).Bind(7, c.companion ? 1 : 0).Bind(8, version).Bind(9, now_us);
    up.Bind(10, c.inexact_ints ? 1 : 0);
    LF_RETURN_IF_ERROR(up.Run());
    std::string path = c.parent_path.empty() ? c.name : c.parent_path + "." + c.name;
    changes.push_back({{"column", path}, {"type", ColumnTypeName(c.type)}, {"repeated", c.repeated}});
  }
  Statement h(db, "INSERT INTO schema_history(table_name, version, changes, created_us) VALUES(?, ?, ?, ?)");
  return h.Bind(1, table).Bind(2, version).Bind(3, changes.dump()).Bind(4, now_us).Run();
}

}  // namespace

Status SqliteLedger::CommitStaged(const StagedObject& st, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  std::string table, key;
  LF_RETURN_IF_ERROR(LookUpStagedObject(db_, st.object_id, &table, &key));
  std::vector<int64_t> touched;
  LF_RETURN_IF_ERROR(ReplaceParts(db_, st, table, &touched));
  LF_RETURN_IF_ERROR(SupersedeOlderVersions(db_, table, key, st.object_id, &touched));
  LF_RETURN_IF_ERROR(BumpPartitions(db_, table, std::move(touched), now_us));
  LF_RETURN_IF_ERROR(ReplaceBadRecords(db_, st, table, now_us));
  LF_RETURN_IF_ERROR(MarkObjectStaged(db_, st, now_us));
  LF_RETURN_IF_ERROR(RecordSchemaChanges(db_, table, st.columns, now_us));
  return txn.Commit();
}

// One object of a group, under a savepoint so that its failure rolls back
// only its own changes. *table is set once an object commits.
namespace {

Status ApplyStaged(Connection* db, const StagedObject& st, int64_t now_us, std::string* table) {
  std::string key;
  LF_RETURN_IF_ERROR(LookUpStagedObject(db, st.object_id, table, &key));
  std::vector<int64_t> touched;
  LF_RETURN_IF_ERROR(ReplaceParts(db, st, *table, &touched));
  LF_RETURN_IF_ERROR(SupersedeOlderVersions(db, *table, key, st.object_id, &touched));
  LF_RETURN_IF_ERROR(BumpPartitions(db, *table, std::move(touched), now_us));
  LF_RETURN_IF_ERROR(ReplaceBadRecords(db, st, *table, now_us));
  return MarkObjectStaged(db, st, now_us);
}

// *group_lost: the error took the whole transaction with it (SQLite rolls
// back by itself on I/O errors, a full disk, ...).
Status ApplyStagedInSavepoint(Connection* db, const StagedObject& st, int64_t now_us, std::string* committed_table,
                              bool* group_lost) {
  LF_RETURN_IF_ERROR(db->Exec("SAVEPOINT staged_object"));
  std::string table;
  Status s = ApplyStaged(db, st, now_us, &table);
  if (!db->InTransaction()) {
    *group_lost = true;
    return s.ok() ? Status::Internal("the ledger transaction ended unexpectedly") : s;
  }
  Status ended = db->Exec(s.ok() ? "RELEASE SAVEPOINT staged_object"
                                 : "ROLLBACK TO SAVEPOINT staged_object; RELEASE SAVEPOINT staged_object");
  if (!ended.ok()) {
    *group_lost = true;
    return ended.WithContext("ending a savepoint");
  }
  if (s.ok()) *committed_table = table;
  return s;
}

}  // namespace

StatusOr<std::vector<Status>> SqliteLedger::CommitStagedGroup(const std::vector<ColumnRecord>& columns,
                                                              const std::vector<StagedObject>& staged, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  std::vector<Status> out;
  out.reserve(staged.size());
  std::string table;  // of the objects that committed
  bool group_lost = false;
  for (const StagedObject& st : staged) {
    out.push_back(ApplyStagedInSavepoint(db_, st, now_us, &table, &group_lost));
    if (group_lost) return out.back();
  }
  if (!table.empty()) LF_RETURN_IF_ERROR(RecordSchemaChanges(db_, table, columns, now_us));
  LF_RETURN_IF_ERROR(txn.Commit());
  return out;
}

Status SqliteLedger::MarkFailed(int64_t object_id, const std::string& error, int64_t next_attempt_us) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "UPDATE objects SET state='failed', attempts=attempts+1, last_error=?, next_attempt_us=?, "
              "lease_worker=NULL, lease_until=NULL WHERE id=? AND state IN ('pending', 'failed')");
  return s.Bind(1, error).Bind(2, next_attempt_us).Bind(3, object_id).Run();
}

Status SqliteLedger::Restage(int64_t object_id, const std::string& reason) {
  std::lock_guard lock(mu_);
  Statement s(db_, "UPDATE objects SET state='pending', last_error=? WHERE id=? AND state='staged'");
  return s.Bind(1, reason).Bind(2, object_id).Run();
}

namespace {

// The object's state, or kNotFound if it is not one of the table's.
StatusOr<ObjectState> StateOf(Connection* db, const std::string& table, int64_t object_id) {
  Statement s(db, "SELECT state FROM objects WHERE id=? AND table_name=?");
  s.Bind(1, object_id).Bind(2, table);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("object " + std::to_string(object_id) + " is not in table " + table);
  return StateFromName(s.Text(0));
}

// The newest version of a key that is not superseded (a key has at most one
// staged version plus at most one newer pending, failed or skipped one).
StatusOr<std::optional<ObjectRow>> CurrentVersion(Connection* db, const std::string& table, const std::string& key) {
  Statement s(db, std::string("SELECT ") + kObjectColumns +
                      " FROM objects WHERE table_name=? AND key=? AND state<>'superseded' ORDER BY id DESC LIMIT 1");
  s.Bind(1, table).Bind(2, key);
  return s.First<ObjectRow>(ReadObject);
}

StatusOr<ObjectRow> ReadObjectById(Connection* db, int64_t object_id) {
  Statement s(db, std::string("SELECT ") + kObjectColumns + " FROM objects WHERE id=?");
  s.Bind(1, object_id);
  LF_ASSIGN_OR_RETURN(std::optional<ObjectRow> row, s.First<ObjectRow>(ReadObject));
  if (!row) return Status::NotFound("object " + std::to_string(object_id) + " is not in the ledger");
  return *row;
}

}  // namespace

StatusOr<RestageCounts> SqliteLedger::RestageObjects(const std::string& table, const std::vector<int64_t>& ids,
                                                     const std::string& reason) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  RestageCounts counts;
  for (int64_t id : ids) {
    LF_ASSIGN_OR_RETURN(ObjectState state, StateOf(db_, table, id));
    if (state == ObjectState::kSuperseded || state == ObjectState::kSkipped) {
      ++counts.left;
      continue;
    }
    ++(state == ObjectState::kStaged ? counts.staged : state == ObjectState::kFailed ? counts.failed : counts.pending);
    Statement s(db_,
                "UPDATE objects SET state='pending', last_error=?, next_attempt_us=NULL WHERE id=? AND "
                "state IN ('staged', 'failed', 'pending')");
    LF_RETURN_IF_ERROR(s.Bind(1, reason).Bind(2, id).Run());
  }
  LF_RETURN_IF_ERROR(txn.Commit());
  return counts;
}

StatusOr<ObjectRow> SqliteLedger::Skip(const std::string& table, const std::string& key, const std::string& reason,
                                       int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  LF_ASSIGN_OR_RETURN(std::optional<ObjectRow> current, CurrentVersion(db_, table, key));
  if (!current) return Status::NotFound("no object " + key + " in the ledger of table " + table);
  if (current->state == ObjectState::kStaged)
    return Status::FailedPrecondition("object " + key + " is staged (" + std::to_string(current->rows_staged) +
                                      " rows), not failing: there is nothing to skip");
  if (current->state == ObjectState::kSkipped) return *current;
  // A skipped object contributes no rows: parts left from an earlier staging
  // of this version go, and their partitions reload without them.
  std::vector<int64_t> touched;
  LF_RETURN_IF_ERROR(AddLivePartitions(db_, current->id, &touched));
  Statement obs(db_, "UPDATE parts SET state='obsolete', obsoleted_revision=NULL WHERE object_id=? AND state='live'");
  LF_RETURN_IF_ERROR(obs.Bind(1, current->id).Run());
  LF_RETURN_IF_ERROR(BumpPartitions(db_, table, std::move(touched), now_us));
  Statement s(db_,
              "UPDATE objects SET state='skipped', skip_reason=?, skipped_us=?, next_attempt_us=NULL, rows_staged=0 "
              "WHERE id=?");
  LF_RETURN_IF_ERROR(s.Bind(1, reason).Bind(2, now_us).Bind(3, current->id).Run());
  LF_ASSIGN_OR_RETURN(ObjectRow row, ReadObjectById(db_, current->id));
  LF_RETURN_IF_ERROR(txn.Commit());
  return row;
}

StatusOr<ObjectRow> SqliteLedger::Unskip(const std::string& table, const std::string& key) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  LF_ASSIGN_OR_RETURN(std::optional<ObjectRow> current, CurrentVersion(db_, table, key));
  if (!current || current->state != ObjectState::kSkipped)
    return Status::NotFound("object " + key + " of table " + table + " is not skipped");
  Statement s(db_,
              "UPDATE objects SET state='pending', skip_reason=NULL, skipped_us=NULL, attempts=0, last_error=NULL, "
              "next_attempt_us=NULL WHERE id=?");
  LF_RETURN_IF_ERROR(s.Bind(1, current->id).Run());
  LF_ASSIGN_OR_RETURN(ObjectRow row, ReadObjectById(db_, current->id));
  LF_RETURN_IF_ERROR(txn.Commit());
  return row;
}

namespace {
constexpr const char* kPartitionColumns =
    "table_name, partition_us, revision, loaded_revision, requested, generation, load_id, rows_loaded, loaded_us, "
    "attempts, last_error, next_attempt_us, appends, appended_parts, last_append_us, appendable, "
    "(SELECT coalesce(sum(rows), 0) FROM parts q WHERE q.table_name=partitions.table_name AND "
    "q.partition_us=partitions.partition_us AND q.loaded<>0)";

PartitionRow ReadPartition(const Statement& s) {
  PartitionRow p;
  p.table = s.Text(0);
  p.partition_us = s.Int(1);
  p.revision = s.Int(2);
  p.loaded_revision = s.Int(3);
  p.requested = s.Int(4) != 0;
  p.generation = s.Int(5);
  p.load_id = s.Text(6);
  p.rows_loaded = s.Int(7);
  p.loaded_us = s.OptInt(8);
  p.attempts = static_cast<int>(s.Int(9));
  p.last_error = s.Text(10);
  p.next_attempt_us = s.OptInt(11);
  p.appends = s.Int(12);
  p.appended_parts = s.Int(13);
  p.last_append_us = s.OptInt(14);
  p.appendable = s.Int(15) != 0;
  p.rows_in_warehouse = s.Int(16);
  return p;
}

PartRow ReadPart(const Statement& s) {
  PartRow p;
  p.object_id = s.Int(0);
  p.hour_us = s.Int(1);
  p.partition_us = s.Int(2);
  p.key = s.Text(3);
  p.rows = s.Int(4);
  p.bytes = s.Int(5);
  p.crc32c = s.Text(6);
  if (!s.IsNull(7)) p.columns = s.Text(7);
  return p;
}
constexpr const char* kPartColumns = "object_id, hour_us, partition_us, key, rows, bytes, crc32c, columns";
}  // namespace

StatusOr<std::vector<PartitionRow>> SqliteLedger::DuePartitions(const std::string& table, int64_t unit_us,
                                                                int64_t settle_us, int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") + kPartitionColumns +
                       " FROM partitions WHERE table_name=? AND (revision>loaded_revision OR requested<>0) "
                       "AND (next_attempt_us IS NULL OR next_attempt_us<=?) "
                       "AND (requested<>0 OR partition_us+?+?<=?) ORDER BY partition_us");
  s.Bind(1, table).Bind(2, now_us).Bind(3, unit_us).Bind(4, settle_us).Bind(5, now_us);
  return s.Collect<PartitionRow>([](const Statement& r) { return ReadPartition(r); });
}

StatusOr<std::vector<PartitionRow>> SqliteLedger::Partitions(const std::string& table) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              std::string("SELECT ") + kPartitionColumns + " FROM partitions WHERE table_name=? ORDER BY partition_us");
  s.Bind(1, table);
  return s.Collect<PartitionRow>([](const Statement& r) { return ReadPartition(r); });
}

namespace {

// A load resumed by another worker (its first one died) is that worker's now.
Status SignResumedLoad(Connection* db, const LoadPlan& plan) {
  Statement s(db,
              "UPDATE loads SET worker=(SELECT lease_worker FROM partitions WHERE table_name=?1 AND partition_us=?2) "
              "WHERE load_id=?3 AND outcome IS NULL");
  return s.Bind(1, plan.table).Bind(2, plan.partition_us).Bind(3, plan.load_id).Run();
}

}  // namespace

StatusOr<LoadPlan> SqliteLedger::BeginLoad(const std::string& table, int64_t partition_us, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  LoadPlan plan;
  plan.table = table;
  plan.partition_us = partition_us;
  // A load that never recorded an outcome (the process died during it) of
  // the same revision is resumed under the same generation, so a warehouse
  // whose loads are jobs finds that job by its id instead of running
  // another. Anything else gets a new generation, hence a new id.
  bool resume = false;
  {
    Statement last(db_,
                   "SELECT l.outcome IS NULL AND l.revision = p.revision FROM loads l JOIN partitions p "
                   "ON p.table_name = l.table_name AND p.partition_us = l.partition_us AND p.generation = l.generation "
                   "WHERE l.table_name=? AND l.partition_us=? AND l.kind='replace' ORDER BY l.id DESC LIMIT 1");
    last.Bind(1, table).Bind(2, partition_us);
    LF_ASSIGN_OR_RETURN(bool row, last.Step());
    resume = row && last.Int(0) == 1;
  }
  {
    if (!resume) {
      Statement up(db_, "UPDATE partitions SET generation=generation+1 WHERE table_name=? AND partition_us=?");
      LF_RETURN_IF_ERROR(up.Bind(1, table).Bind(2, partition_us).Run());
    }
    Statement s(db_,
                "SELECT revision, generation, requested, coalesce(lease_worker, '') FROM partitions WHERE "
                "table_name=? AND partition_us=?");
    s.Bind(1, table).Bind(2, partition_us);
    LF_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::NotFound("no partition " + FormatHour(partition_us) + " in table " + table);
    plan.revision = s.Int(0);
    plan.generation = s.Int(1);
    plan.requested = s.Int(2);
    plan.worker = s.Text(3);
  }
  {
    Statement s(db_, std::string("SELECT ") + kPartColumns +
                         " FROM parts WHERE table_name=? AND partition_us=? AND state='live' ORDER BY key");
    s.Bind(1, table).Bind(2, partition_us);
    LF_ASSIGN_OR_RETURN(plan.parts, s.Collect<PartRow>(ReadPart));
    for (const PartRow& part : plan.parts) plan.expected_rows += part.rows;
  }
  plan.load_id = "logferry_" + table + "_" + FormatCompactHour(partition_us) + "_g" + std::to_string(plan.generation);
  if (!resume) {
    Statement ins(db_,
                  "INSERT INTO loads(table_name, partition_us, generation, load_id, started_us, revision, worker) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, (SELECT lease_worker FROM partitions WHERE table_name=?1 AND "
                  "partition_us=?2))");
    LF_RETURN_IF_ERROR(ins.Bind(1, table)
                           .Bind(2, partition_us)
                           .Bind(3, plan.generation)
                           .Bind(4, plan.load_id)
                           .Bind(5, now_us)
                           .Bind(6, plan.revision)
                           .Run());
  } else {
    LF_RETURN_IF_ERROR(SignResumedLoad(db_, plan));
  }
  LF_RETURN_IF_ERROR(txn.Commit());
  return plan;
}

namespace {

// After a replace the warehouse holds exactly the plan's parts: their flags
// say so, appends start over, and appends still in flight are void (the
// core settles them before it replaces).
Status MarkReplaced(Connection* db, const LoadPlan& plan) {
  Statement clear(db,
                  "UPDATE parts SET loaded=0, append_load=NULL WHERE table_name=? AND partition_us=? AND "
                  "(loaded<>0 OR append_load IS NOT NULL)");
  LF_RETURN_IF_ERROR(clear.Bind(1, plan.table).Bind(2, plan.partition_us).Run());
  for (const PartRow& part : plan.parts) {
    Statement set(db, "UPDATE parts SET loaded=1 WHERE object_id=? AND hour_us=? AND key=?");
    LF_RETURN_IF_ERROR(set.Bind(1, part.object_id).Bind(2, part.hour_us).Bind(3, part.key).Run());
  }
  Statement voided(db,
                   "UPDATE loads SET outcome='void' WHERE table_name=? AND partition_us=? AND kind='append' AND "
                   "outcome IS NULL");
  LF_RETURN_IF_ERROR(voided.Bind(1, plan.table).Bind(2, plan.partition_us).Run());
  Statement p(db,
              "UPDATE partitions SET appendable=1, appends=0, appended_parts=0 WHERE table_name=? AND "
              "partition_us=?");
  return p.Bind(1, plan.table).Bind(2, plan.partition_us).Run();
}

// Whether `worker` still holds the partition's lease (or let it lapse with
// nobody taking it) and no load of it began after `generation`'s.
StatusOr<bool> StillHolds(Connection* db, const std::string& table, int64_t partition_us, const std::string& worker,
                          int64_t generation) {
  Statement s(db,
              "SELECT 1 FROM partitions WHERE table_name=? AND partition_us=? AND coalesce(lease_worker, '')=? AND "
              "generation=?");
  s.Bind(1, table).Bind(2, partition_us).Bind(3, worker).Bind(4, generation);
  return s.Step();
}

// A load or append that finished after its worker lost the partition: its
// job may have run after the newer load's, so the warehouse's partition is
// unknown. Nothing of it becomes the partition's state; the partition takes
// a replace at once (a request: due whatever its settle, and it outlives
// the other worker's finish, which clears only the requests it saw), and
// no append before that. The load's row is closed only if it is still this
// worker's (another one may have resumed it).
Status RecordLapsedLoad(Connection* db, const std::string& table, int64_t partition_us, const std::string& load_id,
                        const std::string& worker, int64_t rows, int64_t now_us) {
  Statement l(db,
              "UPDATE loads SET finished_us=?, rows=?, outcome='lapsed', error=? WHERE load_id=? AND "
              "coalesce(worker, '')=? AND outcome IS NULL");
  l.Bind(1, now_us).Bind(2, rows).Bind(3, "its worker lost the partition's lease before the load was recorded");
  LF_RETURN_IF_ERROR(l.Bind(4, load_id).Bind(5, worker).Run());
  if (db->Changes() > 0) {
    Statement parts(db, "UPDATE parts SET append_load=NULL WHERE append_load=?");
    LF_RETURN_IF_ERROR(parts.Bind(1, load_id).Run());
  }
  Statement p(db,
              "UPDATE partitions SET requested=requested+1, appendable=0, next_attempt_us=NULL WHERE table_name=? AND "
              "partition_us=?");
  return p.Bind(1, table).Bind(2, partition_us).Run();
}

// An append's version of StillHolds: its row is still in flight (a replace
// since voids it; a newer append cannot begin while it is in flight). Its
// generation may be older than the partition's: a replace that began
// after it and failed leaves it to be resumed.
StatusOr<bool> AppendStillHeld(Connection* db, const AppendPlan& plan) {
  Statement s(db,
              "SELECT 1 FROM partitions p JOIN loads l ON l.load_id=?3 AND l.outcome IS NULL WHERE "
              "p.table_name=?1 AND p.partition_us=?2 AND coalesce(p.lease_worker, '')=?4");
  s.Bind(1, plan.table).Bind(2, plan.partition_us).Bind(3, plan.load_id).Bind(4, plan.worker);
  return s.Step();
}

Status LapsedError(const std::string& table, int64_t partition_us, const std::string& load_id) {
  return Status::FailedPrecondition("load " + load_id + " of " + table + " " + FormatHour(partition_us) +
                                    " finished after this worker's lease on the partition lapsed and another "
                                    "worker took it over: not recorded; the partition will be replaced again");
}

}  // namespace

Status SqliteLedger::FinishLoad(const LoadPlan& plan, int64_t rows_loaded, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  LF_ASSIGN_OR_RETURN(bool held, StillHolds(db_, plan.table, plan.partition_us, plan.worker, plan.generation));
  if (!held) {
    LF_RETURN_IF_ERROR(
        RecordLapsedLoad(db_, plan.table, plan.partition_us, plan.load_id, plan.worker, rows_loaded, now_us));
    LF_RETURN_IF_ERROR(txn.Commit());
    return LapsedError(plan.table, plan.partition_us, plan.load_id);
  }
  // `requested` counts requests; one that arrived after the snapshot was
  // taken is not satisfied by this load and stays.
  Statement s(
      db_,
      "UPDATE partitions SET loaded_revision=CASE WHEN loaded_revision>?1 THEN loaded_revision ELSE ?1 END, "
      "requested=CASE WHEN requested=?2 THEN 0 ELSE requested END, load_id=?3, rows_loaded=?4, "
      "loaded_us=?5, attempts=0, last_error=NULL, next_attempt_us=NULL WHERE table_name=?6 AND partition_us=?7");
  s.Bind(1, plan.revision).Bind(2, plan.requested).Bind(3, plan.load_id).Bind(4, rows_loaded).Bind(5, now_us);
  s.Bind(6, plan.table).Bind(7, plan.partition_us);
  LF_RETURN_IF_ERROR(s.Run());
  Statement l(db_, "UPDATE loads SET finished_us=?, rows=?, outcome='loaded' WHERE load_id=?");
  LF_RETURN_IF_ERROR(l.Bind(1, now_us).Bind(2, rows_loaded).Bind(3, plan.load_id).Run());
  LF_RETURN_IF_ERROR(MarkReplaced(db_, plan));
  return txn.Commit();
}

Status SqliteLedger::FailLoad(const LoadPlan& plan, const std::string& error, int64_t next_attempt_us, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  Statement s(db_,
              "UPDATE partitions SET attempts=attempts+1, last_error=?, next_attempt_us=? WHERE table_name=? AND "
              "partition_us=?");
  LF_RETURN_IF_ERROR(s.Bind(1, error).Bind(2, next_attempt_us).Bind(3, plan.table).Bind(4, plan.partition_us).Run());
  Statement l(db_, "UPDATE loads SET finished_us=?, outcome='failed', error=? WHERE load_id=?");
  LF_RETURN_IF_ERROR(l.Bind(1, now_us).Bind(2, error).Bind(3, plan.load_id).Run());
  return txn.Commit();
}

StatusOr<std::vector<PartitionRow>> SqliteLedger::OpenPartitions(const std::string& table, int64_t unit_us,
                                                                 int64_t settle_us, int64_t min_spacing_us,
                                                                 int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") + kPartitionColumns +
                       " FROM partitions WHERE table_name=? AND revision>loaded_revision AND requested=0 "
                       "AND partition_us+?+?>? AND (next_attempt_us IS NULL OR next_attempt_us<=?) "
                       "AND (last_append_us IS NULL OR last_append_us+?<=?) ORDER BY partition_us");
  s.Bind(1, table).Bind(2, unit_us).Bind(3, settle_us).Bind(4, now_us).Bind(5, now_us);
  s.Bind(6, min_spacing_us).Bind(7, now_us);
  return s.Collect<PartitionRow>([](const Statement& r) { return ReadPartition(r); });
}

namespace {

// The append that never recorded an outcome, if any: it is resumed as it
// was (same id, same parts), so the warehouse applies it at most once.
StatusOr<bool> FindAppendInFlight(Connection* db, AppendPlan* plan) {
  Statement s(db,
              "SELECT load_id, generation FROM loads WHERE table_name=? AND partition_us=? AND kind='append' AND "
              "outcome IS NULL ORDER BY id DESC LIMIT 1");
  s.Bind(1, plan->table).Bind(2, plan->partition_us);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return false;
  plan->load_id = s.Text(0);
  plan->generation = s.Int(1);
  Statement parts(db, std::string("SELECT ") + kPartColumns + " FROM parts WHERE append_load=? ORDER BY key");
  parts.Bind(1, plan->load_id);
  LF_ASSIGN_OR_RETURN(plan->parts, parts.Collect<PartRow>(ReadPart));
  return true;
}

// Whether the warehouse may hold rows that no live part has.
StatusOr<bool> NeedsReplace(Connection* db, const AppendPlan& plan) {
  Statement s(db,
              "SELECT (SELECT appendable FROM partitions WHERE table_name=?1 AND partition_us=?2)=0 OR EXISTS("
              "SELECT 1 FROM parts WHERE table_name=?1 AND partition_us=?2 AND state<>'live' AND loaded<>0)");
  s.Bind(1, plan.table).Bind(2, plan.partition_us);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  return row && s.Int(0) != 0;
}

// A new append of the live parts the warehouse does not hold yet.
Status PlanNewAppend(Connection* db, AppendPlan* plan, int64_t now_us) {
  Statement parts(db, std::string("SELECT ") + kPartColumns +
                          " FROM parts WHERE table_name=? AND partition_us=? AND state='live' AND loaded=0 "
                          "AND append_load IS NULL ORDER BY key");
  parts.Bind(1, plan->table).Bind(2, plan->partition_us);
  LF_ASSIGN_OR_RETURN(plan->parts, parts.Collect<PartRow>(ReadPart));
  if (plan->parts.empty()) return Status::Ok();
  Statement up(db, "UPDATE partitions SET generation=generation+1 WHERE table_name=? AND partition_us=?");
  LF_RETURN_IF_ERROR(up.Bind(1, plan->table).Bind(2, plan->partition_us).Run());
  Statement gen(db, "SELECT generation, revision FROM partitions WHERE table_name=? AND partition_us=?");
  gen.Bind(1, plan->table).Bind(2, plan->partition_us);
  LF_ASSIGN_OR_RETURN(bool row, gen.Step());
  if (!row) return Status::NotFound("no partition " + FormatHour(plan->partition_us) + " in table " + plan->table);
  plan->generation = gen.Int(0);
  int64_t revision = gen.Int(1);
  plan->load_id = "logferry_" + plan->table + "_" + FormatCompactHour(plan->partition_us) + "_g" +
                  std::to_string(plan->generation) + "_append";
  Statement ins(db,
                "INSERT INTO loads(table_name, partition_us, generation, load_id, started_us, revision, kind, worker) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'append', (SELECT lease_worker FROM partitions WHERE table_name=?1 "
                "AND partition_us=?2))");
  ins.Bind(1, plan->table).Bind(2, plan->partition_us).Bind(3, plan->generation).Bind(4, plan->load_id);
  LF_RETURN_IF_ERROR(ins.Bind(5, now_us).Bind(6, revision).Run());
  for (const PartRow& part : plan->parts) {
    Statement mark(db, "UPDATE parts SET append_load=? WHERE object_id=? AND hour_us=?");
    LF_RETURN_IF_ERROR(mark.Bind(1, plan->load_id).Bind(2, part.object_id).Bind(3, part.hour_us).Run());
  }
  return Status::Ok();
}

// The partition's rows once the plan's parts are in: those loaded, plus these.
StatusOr<int64_t> RowsAfterAppend(Connection* db, const AppendPlan& plan) {
  Statement s(db,
              "SELECT coalesce(sum(rows), 0) FROM parts WHERE table_name=? AND partition_us=? AND "
              "(loaded<>0 OR append_load=?)");
  s.Bind(1, plan.table).Bind(2, plan.partition_us).Bind(3, plan.load_id);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

// Who holds the partition's lease ("" for nobody).
StatusOr<std::string> LeaseHolder(Connection* db, const std::string& table, int64_t partition_us) {
  Statement s(db, "SELECT coalesce(lease_worker, '') FROM partitions WHERE table_name=? AND partition_us=?");
  s.Bind(1, table).Bind(2, partition_us);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Text(0) : std::string();
}

}  // namespace

StatusOr<AppendPlan> SqliteLedger::BeginAppend(const std::string& table, int64_t partition_us, int64_t now_us,
                                               bool resume_only) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  AppendPlan plan;
  plan.table = table;
  plan.partition_us = partition_us;
  LF_ASSIGN_OR_RETURN(bool resumed, FindAppendInFlight(db_, &plan));
  plan.resumed = resumed;
  if (!resumed && resume_only) return plan;
  if (!resumed) {
    LF_ASSIGN_OR_RETURN(bool replace, NeedsReplace(db_, plan));
    if (replace) {
      plan.kind = AppendPlan::Kind::kReplace;
      return plan;
    }
    LF_RETURN_IF_ERROR(PlanNewAppend(db_, &plan, now_us));
  }
  if (plan.parts.empty()) return plan;  // kNothing
  plan.kind = AppendPlan::Kind::kAppend;
  LF_ASSIGN_OR_RETURN(plan.expected_rows, RowsAfterAppend(db_, plan));
  LF_ASSIGN_OR_RETURN(plan.worker, LeaseHolder(db_, table, partition_us));
  if (resumed)
    LF_RETURN_IF_ERROR(SignResumedLoad(db_, {.table = table, .partition_us = partition_us, .load_id = plan.load_id}));
  LF_RETURN_IF_ERROR(txn.Commit());
  return plan;
}

Status SqliteLedger::FinishAppend(const AppendPlan& plan, int64_t rows_after, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  LF_ASSIGN_OR_RETURN(bool held, AppendStillHeld(db_, plan));
  if (!held) {
    LF_RETURN_IF_ERROR(
        RecordLapsedLoad(db_, plan.table, plan.partition_us, plan.load_id, plan.worker, rows_after, now_us));
    LF_RETURN_IF_ERROR(txn.Commit());
    return LapsedError(plan.table, plan.partition_us, plan.load_id);
  }
  Statement l(db_, "UPDATE loads SET finished_us=?, rows=?, outcome='appended' WHERE load_id=? AND outcome IS NULL");
  LF_RETURN_IF_ERROR(l.Bind(1, now_us).Bind(2, rows_after).Bind(3, plan.load_id).Run());
  Statement parts(db_, "UPDATE parts SET loaded=1, append_load=NULL WHERE append_load=?");
  LF_RETURN_IF_ERROR(parts.Bind(1, plan.load_id).Run());
  // A count that differs from the ledger's means the warehouse holds rows
  // the ledger cannot account for: the next step for the partition is a replace.
  Statement p(db_,
              "UPDATE partitions SET appends=appends+1, appended_parts=appended_parts+?, last_append_us=?, "
              "appendable=CASE WHEN ?=? THEN appendable ELSE 0 END, "
              "last_error=CASE WHEN attempts=0 THEN NULL ELSE last_error END WHERE table_name=? AND partition_us=?");
  p.Bind(1, static_cast<int64_t>(plan.parts.size())).Bind(2, now_us).Bind(3, rows_after).Bind(4, plan.expected_rows);
  LF_RETURN_IF_ERROR(p.Bind(5, plan.table).Bind(6, plan.partition_us).Run());
  return txn.Commit();
}

Status SqliteLedger::FailAppend(const AppendPlan& plan, const std::string& error, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  Statement l(db_, "UPDATE loads SET finished_us=?, outcome='failed', error=? WHERE load_id=? AND outcome IS NULL");
  LF_RETURN_IF_ERROR(l.Bind(1, now_us).Bind(2, error).Bind(3, plan.load_id).Run());
  Statement parts(db_, "UPDATE parts SET append_load=NULL WHERE append_load=?");
  LF_RETURN_IF_ERROR(parts.Bind(1, plan.load_id).Run());
  // Spaced like the next append, not like a failed replace: the final
  // replace of the partition does not wait for appends.
  Statement p(db_, "UPDATE partitions SET last_append_us=?, last_error=? WHERE table_name=? AND partition_us=?");
  LF_RETURN_IF_ERROR(p.Bind(1, now_us).Bind(2, error).Bind(3, plan.table).Bind(4, plan.partition_us).Run());
  return txn.Commit();
}

Status SqliteLedger::RecordLoadJob(const std::vector<LoadPlan>& plans, const std::string& job_id, int64_t now_us) {
  if (plans.empty()) return Status::InvalidArgument("a load job needs at least one partition");
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  // A job resumed after a crash keeps its first sending time: it was
  // counted then, and BigQuery does not count it again.
  Statement ins(db_,
                "INSERT INTO load_jobs(job_id, table_name, sent_us, partitions) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(job_id) DO NOTHING");
  LF_RETURN_IF_ERROR(ins.Bind(1, job_id)
                         .Bind(2, plans.front().table)
                         .Bind(3, now_us)
                         .Bind(4, static_cast<int64_t>(plans.size()))
                         .Run());
  for (const LoadPlan& plan : plans) {
    Statement s(db_, "UPDATE loads SET job_id=? WHERE load_id=?");
    LF_RETURN_IF_ERROR(s.Bind(1, job_id).Bind(2, plan.load_id).Run());
  }
  return txn.Commit();
}

StatusOr<bool> SqliteLedger::LoadJobKnown(const std::string& job_id) {
  std::lock_guard lock(mu_);
  Statement s(db_, "SELECT 1 FROM load_jobs WHERE job_id=?");
  s.Bind(1, job_id);
  return s.Step();
}

StatusOr<std::vector<Status>> Ledger::CommitStagedGroup(const std::vector<ColumnRecord>& columns,
                                                        const std::vector<StagedObject>& staged, int64_t now_us) {
  std::vector<Status> out;
  bool columns_recorded = columns.empty();
  for (const StagedObject& st : staged) {
    if (columns_recorded) {
      out.push_back(CommitStaged(st, now_us));
      continue;
    }
    StagedObject with_columns = st;  // the first to commit records the group's columns
    with_columns.columns.insert(with_columns.columns.end(), columns.begin(), columns.end());
    out.push_back(CommitStaged(with_columns, now_us));
    columns_recorded = out.back().ok();
  }
  return out;
}

std::string Ledger::MergedLoadId(const std::vector<LoadPlan>& plans) {
  if (plans.empty()) return "";
  // Every (partition, generation) goes into the name, so a restart with the
  // same batch finds its job and a batch with any other content never does.
  std::vector<std::pair<int64_t, int64_t>> members;
  for (const LoadPlan& plan : plans) members.emplace_back(plan.partition_us, plan.generation);
  std::sort(members.begin(), members.end());
  std::string key = plans.front().table;
  for (const auto& [partition_us, generation] : members) {
    key.push_back('\n');
    key.append(std::to_string(partition_us)).push_back('/');
    key.append(std::to_string(generation));
  }
  return "logferry_" + plans.front().table + "_" + FormatCompactHour(members.front().first) + "_m" +
         std::to_string(plans.size()) + "_" + Sha256Hex(key).substr(0, 16);
}

StatusOr<std::vector<PartRow>> SqliteLedger::LiveParts(const std::string& table, std::optional<int64_t> partition_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") + kPartColumns +
                       " FROM parts WHERE table_name=? AND state='live' AND (?=0 OR partition_us=?) ORDER BY key");
  s.Bind(1, table).Bind(2, partition_us ? 1 : 0).Bind(3, partition_us.value_or(0));
  return s.Collect<PartRow>([](const Statement& r) { return ReadPart(r); });
}

StatusOr<std::vector<PartRow>> SqliteLedger::CollectableParts(const std::string& table) {
  std::lock_guard lock(mu_);
  Statement s(db_, std::string("SELECT ") +
                       "p.object_id, p.hour_us, p.partition_us, p.key, p.rows, p.bytes, p.crc32c, p.columns" +
                       " FROM parts p JOIN partitions q ON q.table_name=p.table_name AND q.partition_us=p.partition_us "
                       "WHERE p.table_name=? AND p.state='obsolete' AND q.loaded_revision>=p.obsoleted_revision");
  s.Bind(1, table);
  return s.Collect<PartRow>([](const Statement& r) { return ReadPart(r); });
}

Status SqliteLedger::ForgetPart(const PartRow& part) {
  std::lock_guard lock(mu_);
  Statement s(db_, "DELETE FROM parts WHERE object_id=? AND hour_us=? AND state='obsolete'");
  return s.Bind(1, part.object_id).Bind(2, part.hour_us).Run();
}

StatusOr<std::set<std::string>> SqliteLedger::PartKeys(const std::string& table) {
  std::lock_guard lock(mu_);
  Statement s(db_, "SELECT key FROM parts WHERE table_name=?");
  s.Bind(1, table);
  LF_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                      s.Collect<std::string>([](const Statement& r) { return r.Text(0); }));
  return std::set<std::string>(keys.begin(), keys.end());
}

StatusOr<std::pair<int64_t, int64_t>> SqliteLedger::RecordRequest(const std::string& table, const std::string& origin,
                                                                  const std::string& origin_key, int64_t from_us,
                                                                  int64_t to_us, int64_t unit_us, int64_t now_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  if (!origin_key.empty()) {
    Statement f(db_, "SELECT id FROM requests WHERE origin_key=?");
    f.Bind(1, origin_key);
    LF_ASSIGN_OR_RETURN(bool row, f.Step());
    if (row) return std::pair<int64_t, int64_t>{f.Int(0), 0};
  }
  Statement ins(db_,
                "INSERT INTO requests(table_name, origin, origin_key, from_us, to_us, state, created_us) VALUES(?, ?, "
                "?, ?, ?, 'queued', ?) RETURNING id");
  ins.Bind(1, table).Bind(2, origin);
  if (origin_key.empty())
    ins.BindNull(3);
  else
    ins.Bind(3, origin_key);
  LF_ASSIGN_OR_RETURN(std::vector<int64_t> ids,
                      ins.Bind(4, from_us).Bind(5, to_us).Bind(6, now_us).Collect<int64_t>(ReadFirstInt));
  // Partitions overlapping [from, to).
  Statement up(db_,
               "UPDATE partitions SET requested=requested+1, next_attempt_us=NULL WHERE table_name=? AND "
               "partition_us<? AND partition_us+?>?");
  LF_RETURN_IF_ERROR(up.Bind(1, table).Bind(2, to_us).Bind(3, unit_us).Bind(4, from_us).Run());
  int64_t n = db_->Changes();
  LF_RETURN_IF_ERROR(txn.Commit());
  return std::pair<int64_t, int64_t>{ids.empty() ? 0 : ids.front(), n};
}

StatusOr<std::optional<RequestRow>> SqliteLedger::FindRequest(const std::string& origin_key) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "SELECT id, table_name, origin, from_us, to_us, state, COALESCE(detail,''), created_us FROM requests "
              "WHERE origin_key=?");
  s.Bind(1, origin_key);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<RequestRow>();
  RequestRow r{s.Int(0), s.Text(1), s.Text(2), s.Int(3), s.Int(4), s.Text(5), s.Text(6), s.Int(7)};
  return std::optional<RequestRow>(r);
}

Status SqliteLedger::FinishRequest(int64_t id, const std::string& state, const std::string& detail, int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, "UPDATE requests SET state=?, detail=?, finished_us=? WHERE id=?");
  return s.Bind(1, state).Bind(2, detail).Bind(3, now_us).Bind(4, id).Run();
}

StatusOr<std::vector<RequestRow>> SqliteLedger::Requests(const std::string& table, const std::string& state) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "SELECT id, table_name, origin, from_us, to_us, state, COALESCE(detail,''), created_us FROM requests "
              "WHERE table_name=? AND (?='' OR state=?) ORDER BY id");
  s.Bind(1, table).Bind(2, state).Bind(3, state);
  return s.Collect<RequestRow>([](const Statement& r) {
    return RequestRow{r.Int(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4), r.Text(5), r.Text(6), r.Int(7)};
  });
}

StatusOr<std::vector<ColumnRecord>> SqliteLedger::Columns(const std::string& table) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "SELECT parent_path, raw_key, name, type, repeated, companion, inexact_ints FROM columns WHERE "
              "table_name=? ORDER BY id");
  s.Bind(1, table);
  return s.Collect<ColumnRecord>([](const Statement& r) {
    ColumnRecord c;
    c.parent_path = r.Text(0);
    c.raw_key = r.Blob(1);
    c.name = r.Text(2);
    c.type = ColumnTypeFromName(r.Text(3));
    c.repeated = r.Int(4) != 0;
    c.companion = r.Int(5) != 0;
    c.inexact_ints = r.Int(6) != 0;
    return c;
  });
}

StatusOr<int64_t> SqliteLedger::SchemaVersion(const std::string& table) {
  std::lock_guard lock(mu_);
  return ReadSchemaVersion(db_, table);
}

namespace {

// The steps of Counts: each fills its part of c.

Status CountObjects(Connection* db, TableCounts* c) {
  struct ByState {
    std::string state;
    int64_t objects, rows_staged, bad_records, warnings, oldest_discovered_us, found_by_listing;
  };
  // One pass over the table's rows for every figure: a second query for
  // found_by alone walked objects_by_key and cost 2.8 of 3.3 CPU-s at a
  // million objects.
  Statement s(db,
              "SELECT state, COUNT(*), SUM(rows_staged), SUM(bad_records), SUM(warnings), MIN(discovered_us), "
              "SUM(CASE WHEN found_by='listing' THEN 1 ELSE 0 END) FROM objects WHERE table_name=? GROUP BY state");
  s.Bind(1, c->table);
  LF_ASSIGN_OR_RETURN(std::vector<ByState> states, s.Collect<ByState>([](const Statement& r) {
    return ByState{r.Text(0), r.Int(1), r.Int(2), r.Int(3), r.Int(4), r.Int(5), r.Int(6)};
  }));
  for (const ByState& b : states) {
    if (b.state != "superseded") c->found_by_listing_only += b.found_by_listing;
    if (b.state == "pending" || b.state == "failed")
      c->oldest_unstaged_object_us = std::min(c->oldest_unstaged_object_us.value_or(INT64_MAX), b.oldest_discovered_us);
    if (b.state == "pending") {
      c->objects_pending = b.objects;
    } else if (b.state == "staged") {
      c->objects_staged = b.objects;
      c->rows_staged = b.rows_staged;
      c->bad_records = b.bad_records;
      c->warnings = b.warnings;
    } else if (b.state == "failed") {
      c->objects_failed = b.objects;
    } else if (b.state == "superseded") {
      c->objects_superseded = b.objects;
    } else if (b.state == "skipped") {
      c->objects_skipped = b.objects;
    }
  }
  return Status::Ok();
}

// sql: a COUNT(*) with the table name as its one parameter.
StatusOr<int64_t> CountRows(Connection* db, const char* sql, const std::string& table) {
  Statement s(db, sql);
  s.Bind(1, table);
  LF_ASSIGN_OR_RETURN(std::optional<int64_t> n, s.First<int64_t>(ReadFirstInt));
  return n.value_or(0);
}

Status CountPartitions(Connection* db, TableCounts* c) {
  Statement s(db,
              "SELECT SUM(CASE WHEN revision>loaded_revision OR requested<>0 THEN 1 ELSE 0 END), "
              "SUM(CASE WHEN revision<=loaded_revision AND requested=0 THEN 1 ELSE 0 END), "
              "SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END), SUM(rows_loaded), "
              "MAX(CASE WHEN loaded_us IS NOT NULL THEN partition_us END), "
              "MIN(CASE WHEN revision>loaded_revision OR requested<>0 THEN partition_us END) "
              "FROM partitions WHERE table_name=?");
  s.Bind(1, c->table);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Ok();
  c->partitions_pending = s.Int(0);
  c->partitions_loaded = s.Int(1);
  c->partitions_failed = s.Int(2);
  c->rows_loaded = s.Int(3);
  c->newest_loaded_partition_us = s.OptInt(4);
  c->oldest_pending_partition_us = s.OptInt(5);
  return Status::Ok();
}

// BigQuery's per-table quota is over a rolling day, not a calendar day.
Status CountLoadJobs(Connection* db, int64_t now_us, TableCounts* c) {
  Statement s(db, "SELECT COUNT(*), MIN(sent_us) FROM load_jobs WHERE table_name=? AND sent_us>?");
  s.Bind(1, c->table).Bind(2, now_us - kMicrosPerDay);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Ok();
  c->load_jobs_24h = s.Int(0);
  c->oldest_load_job_24h_us = s.OptInt(1);
  return Status::Ok();
}

Status CountIgnoredKeys(Connection* db, TableCounts* c) {
  Statement s(db, "SELECT count, examples, listed_us FROM ignored_keys WHERE table_name=?");
  s.Bind(1, c->table);
  LF_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Ok();
  c->ignored_keys = s.Int(0);
  c->ignored_keys_listed_us = s.Int(2);
  auto examples = nlohmann::json::parse(s.Text(1), nullptr, /*allow_exceptions=*/false);
  if (examples.is_array())
    for (const auto& e : examples)
      if (e.is_string()) c->ignored_key_examples.push_back(e.get<std::string>());
  return Status::Ok();
}

}  // namespace

StatusOr<TableCounts> SqliteLedger::Counts(const std::string& table, int64_t now_us) {
  std::lock_guard lock(mu_);
  TableCounts c;
  c.table = table;
  LF_RETURN_IF_ERROR(CountObjects(db_, &c));
  LF_ASSIGN_OR_RETURN(
      c.notifications_failing,
      CountRows(db_, "SELECT COUNT(*) FROM notifications WHERE table_name=? AND state='failing'", table));
  LF_RETURN_IF_ERROR(CountPartitions(db_, &c));
  LF_RETURN_IF_ERROR(CountLoadJobs(db_, now_us, &c));
  LF_RETURN_IF_ERROR(CountIgnoredKeys(db_, &c));
  return c;
}

StatusOr<std::vector<BadRecordRow>> SqliteLedger::BadRecords(const std::string& table, int64_t since_us,
                                                             int64_t limit) {
  std::lock_guard lock(mu_);
  Statement s(
      db_,
      "SELECT b.table_name, o.key, b.line, b.byte_offset, COALESCE(b.field,''), b.reason, COALESCE(b.excerpt,''), "
      "b.created_us "
      "FROM bad_records b JOIN objects o ON o.id=b.object_id "
      "WHERE (?='' OR b.table_name=?) AND b.created_us>=? AND o.state<>'superseded' ORDER BY o.key, b.line LIMIT ?");
  s.Bind(1, table).Bind(2, table).Bind(3, since_us).Bind(4, limit);
  return s.Collect<BadRecordRow>([](const Statement& r) {
    BadRecordRow b;
    b.table = r.Text(0);
    b.object_key = r.Text(1);
    b.record.line = r.Int(2);
    b.record.byte_offset = r.Int(3);
    b.record.field = r.Text(4);
    b.record.reason = r.Text(5);
    b.record.excerpt = r.Text(6);
    b.created_us = r.Int(7);
    return b;
  });
}

// --- leases ---
// Both backends serialize writers (SQLite's write lock, PostgreSQL's ledger
// advisory lock: connection.h), so a claim is one UPDATE over a sub-select
// and two claims never collide; SKIP LOCKED would add nothing.

StatusOr<std::vector<ObjectRow>> SqliteLedger::ClaimObjects(const std::string& table, const std::string& worker,
                                                            int64_t now_us, int64_t until_us, int64_t limit) {
  std::lock_guard lock(mu_);
  Statement s(db_, "UPDATE objects SET lease_worker=?1, lease_until=?2 WHERE id IN (SELECT id FROM " +
                       ObjectsByState(db_) +
                       " WHERE table_name=?3 AND state IN ('pending', 'failed') AND (state='pending' OR "
                       "next_attempt_us IS NULL OR next_attempt_us<=?4) AND (lease_until IS NULL OR lease_until<=?4 OR "
                       "lease_worker=?1) ORDER BY key LIMIT ?5) RETURNING " +
                       kObjectColumns);
  s.Bind(1, worker).Bind(2, until_us).Bind(3, table).Bind(4, now_us).Bind(5, limit);
  LF_ASSIGN_OR_RETURN(std::vector<ObjectRow> rows, s.Collect<ObjectRow>(ReadObject));
  std::sort(rows.begin(), rows.end(), [](const ObjectRow& a, const ObjectRow& b) { return a.key < b.key; });
  return rows;
}

StatusOr<bool> SqliteLedger::ClaimPartition(const std::string& table, int64_t partition_us, const std::string& worker,
                                            int64_t now_us, int64_t until_us) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "UPDATE partitions SET lease_worker=?1, lease_until=?2 WHERE table_name=?3 AND partition_us=?4 AND "
              "(revision>loaded_revision OR requested<>0) AND (next_attempt_us IS NULL OR next_attempt_us<=?5) AND "
              "(lease_until IS NULL OR lease_until<=?5 OR lease_worker=?1)");
  LF_RETURN_IF_ERROR(s.Bind(1, worker).Bind(2, until_us).Bind(3, table).Bind(4, partition_us).Bind(5, now_us).Run());
  return db_->Changes() > 0;
}

Status SqliteLedger::ReleasePartition(const std::string& table, int64_t partition_us, const std::string& worker) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "UPDATE partitions SET lease_worker=NULL, lease_until=NULL WHERE table_name=? AND partition_us=? AND "
              "lease_worker=?");
  return s.Bind(1, table).Bind(2, partition_us).Bind(3, worker).Run();
}

Status SqliteLedger::RenewLeases(const std::string& worker, int64_t until_us) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  for (const char* sql : {"UPDATE objects SET lease_until=? WHERE lease_worker=?",
                          "UPDATE partitions SET lease_until=? WHERE lease_worker=?"}) {
    Statement s(db_, sql);
    LF_RETURN_IF_ERROR(s.Bind(1, until_us).Bind(2, worker).Run());
  }
  return txn.Commit();
}

Status SqliteLedger::ReleaseLeases(const std::string& worker) {
  std::lock_guard lock(mu_);
  LF_TXN(txn);
  for (const char* sql : {"UPDATE objects SET lease_worker=NULL, lease_until=NULL WHERE lease_worker=?",
                          "UPDATE partitions SET lease_worker=NULL, lease_until=NULL WHERE lease_worker=?"}) {
    Statement s(db_, sql);
    LF_RETURN_IF_ERROR(s.Bind(1, worker).Run());
  }
  return txn.Commit();
}

StatusOr<std::set<std::string>> SqliteLedger::LeasedVersions(const std::string& table, int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(db_, "SELECT version_id FROM objects WHERE lease_worker IS NOT NULL AND table_name=? AND lease_until>?");
  s.Bind(1, table).Bind(2, now_us);
  LF_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      s.Collect<std::string>([](const Statement& r) { return r.Text(0); }));
  return std::set<std::string>(ids.begin(), ids.end());
}

StatusOr<std::vector<LeaseRow>> SqliteLedger::Leases(int64_t now_us) {
  std::lock_guard lock(mu_);
  Statement s(
      db_,
      "SELECT lease_worker, table_name, 'object', key, lease_until FROM objects WHERE lease_worker IS NOT "
      "NULL AND lease_until>?1 UNION ALL SELECT lease_worker, table_name, 'partition', CAST(partition_us AS TEXT), "
      "lease_until FROM partitions WHERE lease_worker IS NOT NULL AND lease_until>?1 ORDER BY 1, 2, 3, 4");
  s.Bind(1, now_us);
  return s.Collect<LeaseRow>([](const Statement& r) {
    LeaseRow l{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Int(4)};
    if (l.kind == "partition") l.what = FormatIso8601(std::stoll(l.what));
    return l;
  });
}

StatusOr<std::vector<LoadRow>> SqliteLedger::Loads(const std::string& table, std::optional<int64_t> partition_us) {
  std::lock_guard lock(mu_);
  Statement s(db_,
              "SELECT table_name, partition_us, load_id, generation, kind, coalesce(worker, ''), started_us, "
              "finished_us, rows, coalesce(outcome, ''), coalesce(error, '') FROM loads WHERE table_name=?1 AND "
              "(?2=0 OR partition_us=?3) ORDER BY id");
  s.Bind(1, table).Bind(2, partition_us ? 1 : 0).Bind(3, partition_us.value_or(0));
  return s.Collect<LoadRow>([](const Statement& r) {
    return LoadRow{.table = r.Text(0),
                   .partition_us = r.Int(1),
                   .load_id = r.Text(2),
                   .generation = r.Int(3),
                   .kind = r.Text(4),
                   .worker = r.Text(5),
                   .started_us = r.Int(6),
                   .finished_us = r.OptInt(7),
                   .rows = r.OptInt(8),
                   .outcome = r.Text(9),
                   .error = r.Text(10)};
  });
}

}  // namespace logferry
