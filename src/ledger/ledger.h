// The ledger: the single source of truth for delivery state, in SQLite (WAL,
// a file in state_dir) or PostgreSQL (`ledger = "postgresql://..."`, shared
// by several workers).
//
// Every state change is one transaction. Identities here name everything
// outside: a staged part's key derives from its object version's identity
// (table, key, etag), so staging again rewrites the same part, and a load's
// id derives from (table, partition, generation).
//
// Thread-safe. The ledger (ledger.cc) is one connection behind a mutex;
// several processes (the daemon, `status`, `reload`, other workers) may open
// the same ledger. Writing transactions take one ledger-wide lock (SQLite's
// write lock; a PostgreSQL advisory lock), so they run one at a time across
// processes, and waiting for it longer than 30 s is kUnavailable. SQLite and
// libpq stay behind this header (ledger/connection.h and its drivers are
// private).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "schema/schema.h"
#include "store/object_store.h"

namespace logferry {

// kSkipped: acknowledged by an operator as permanently broken (`logferry
// skip`): never staged, contributes no rows, and fails nothing.
enum class ObjectState { kPending, kStaged, kFailed, kSuperseded, kSkipped };
const char* ObjectStateName(ObjectState s);

struct ObjectRow {
  int64_t id = 0;
  std::string table;
  std::string key;
  std::string etag;
  uint64_t size = 0;
  std::string version_id;  // derived from (table, key, etag); names staged parts
  ObjectState state = ObjectState::kPending;
  int attempts = 0;
  std::string last_error;
  std::optional<int64_t> next_attempt_us;
  std::string found_by;
  int64_t discovered_us = 0;
  int64_t lines_read = 0, rows_staged = 0, warnings = 0;
  int64_t bad_records = 0;       // all of them
  int64_t bad_records_kept = 0;  // stored with their excerpt (see BadRecords)
  std::string skip_reason;       // kSkipped: why, as the operator said
  std::optional<int64_t> skipped_us;
};

struct PartRow {
  int64_t object_id = 0;
  int64_t hour_us = 0;
  int64_t partition_us = 0;
  std::string key;  // in the staging store
  int64_t rows = 0;
  int64_t bytes = 0;
  std::string crc32c;
  // Top-level column names the part holds, comma-separated; nullopt when
  // unknown (staged before the ledger recorded them): every column.
  std::optional<std::string> columns;
};

struct BadRecord {
  int64_t line = 0;
  int64_t byte_offset = 0;
  std::string field;
  std::string reason;
  std::string excerpt;
};

// Everything staging one object version produced, committed at once.
struct StagedObject {
  int64_t object_id = 0;
  std::vector<PartRow> parts;
  std::vector<BadRecord> bad_records;  // the first kMaxStoredBadRecords
  int64_t bad_total = 0;               // all of them
  int64_t lines_read = 0, rows_staged = 0, warnings = 0;
  std::string warning;                // the latest, for status
  std::vector<ColumnRecord> columns;  // schema changes the parts rely on
};

struct PartitionRow {
  std::string table;
  int64_t partition_us = 0;
  int64_t revision = 0;
  int64_t loaded_revision = 0;
  bool requested = false;
  int64_t generation = 0;
  std::string load_id;
  int64_t rows_loaded = 0;
  std::optional<int64_t> loaded_us;
  int attempts = 0;
  std::string last_error;
  std::optional<int64_t> next_attempt_us;
  // Appends into the partition while it was open, since its last replace.
  int64_t appends = 0;
  int64_t appended_parts = 0;
  std::optional<int64_t> last_append_us;
  // Whether the warehouse holds exactly the parts the ledger marks loaded,
  // and their rows: what it must hold while the partition is open.
  bool appendable = false;
  int64_t rows_in_warehouse = 0;
  bool pending() const { return revision > loaded_revision || requested; }
};

// A consistent snapshot of what a partition load must contain.
struct LoadPlan {
  std::string table;
  int64_t partition_us = 0;
  int64_t revision = 0;
  int64_t generation = 0;
  std::string load_id;
  std::vector<PartRow> parts;
  int64_t expected_rows = 0;
  int64_t requested = 0;  // the partition's request counter when the snapshot was taken
  // Who held the partition's lease when the load began ("" for nobody):
  // FinishLoad records the load only while they still hold it.
  std::string worker;
};

// What to do for a partition that is still open (its period plus settle has
// not passed) and has new parts.
struct AppendPlan {
  enum class Kind {
    kNothing,  // nothing new, or an append is not possible yet
    kAppend,   // append `parts` as job `load_id`
    kReplace,  // the warehouse holds rows no live part has (a rewritten
               // object, a re-staged part): replace the partition instead
  };
  Kind kind = Kind::kNothing;
  std::string table;
  int64_t partition_us = 0;
  int64_t generation = 0;
  // Derived from (table, partition, generation); an append that never
  // recorded its outcome is resumed under the same id, which the warehouse
  // applies at most once.
  std::string load_id;
  std::vector<PartRow> parts;
  int64_t expected_rows = 0;  // the partition's rows once the parts are in
  // An append in flight that a stopped run left (its parts only: parts
  // staged since wait for the next append).
  bool resumed = false;
  // Who held the partition's lease when the append was planned ("" for
  // nobody): FinishAppend records it only while they still hold it.
  std::string worker;
};

struct RequestRow {
  int64_t id = 0;
  std::string table;
  std::string origin;  // "cli" or the request object's URI
  int64_t from_us = 0, to_us = 0;
  std::string state;  // queued | done | failed
  std::string detail;
  int64_t created_us = 0;
};

struct BadRecordRow {
  std::string table;
  std::string object_key;
  BadRecord record;
  int64_t created_us = 0;
};

// An event notification that could not be handled: its body is not an S3
// event, or an object it names keeps failing. It stays on the queue, so the
// queue's redrive policy moves it to a dead-letter queue.
struct NotificationRow {
  std::string message_id;
  std::string table;
  std::string queue;
  std::string state;  // "failing" | "done" (handled after all)
  int64_t receive_count = 0;
  std::string detail;
  std::string excerpt;
  int64_t updated_us = 0;
};

// What RestageObjects did, by the state each object was in.
struct RestageCounts {
  int64_t staged = 0, failed = 0, pending = 0;  // sent back (pending ones already were)
  int64_t left = 0;                             // superseded or skipped: left alone
};

struct TableCounts {
  std::string table;
  int64_t objects_pending = 0, objects_staged = 0, objects_failed = 0, objects_superseded = 0;
  int64_t objects_skipped = 0;  // acknowledged as broken: not failing
  int64_t found_by_listing_only = 0;
  int64_t notifications_failing = 0;
  int64_t partitions_pending = 0, partitions_loaded = 0, partitions_failed = 0;
  int64_t rows_staged = 0, rows_loaded = 0, bad_records = 0, warnings = 0;
  std::optional<int64_t> newest_loaded_partition_us;
  std::optional<int64_t> oldest_pending_partition_us;
  // When the longest-waiting object not yet staged (pending or failed) was discovered.
  std::optional<int64_t> oldest_unstaged_object_us;
  // Warehouse load jobs sent in the 24 hours before now (the rolling window
  // of BigQuery's per-table quota), and when the oldest of them was sent.
  int64_t load_jobs_24h = 0;
  std::optional<int64_t> oldest_load_job_24h_us;
  // Source keys the newest listing found that do not match key_format
  // (RecordIgnoredKeys): how many, a few of them, and when it ran.
  int64_t ignored_keys = 0;
  std::vector<std::string> ignored_key_examples;
  std::optional<int64_t> ignored_keys_listed_us;
};

// A `logferry run` process (daemon or --once), as it last recorded itself.
// Several may share a ledger over time (and, later, at once): each is known
// by (host, pid, started_us), so a reused pid is a new row.
struct ProcessRow {
  std::string host;
  int64_t pid = 0;
  int64_t started_us = 0;
  std::string mode;  // "daemon" | "once"
  std::optional<int64_t> last_pass_started_us, last_pass_ended_us;
  std::string last_outcome;           // "" before the first pass ends; "ok", or what failed
  int64_t heartbeat_us = 0;           // the last time the process showed it was alive
  std::optional<int64_t> stopped_us;  // set when it exited normally

  // The stable name of this process as a worker: it holds leases and signs
  // the loads it runs ("host:pid:started_us").
  std::string worker_id() const { return host + ":" + std::to_string(pid) + ":" + std::to_string(started_us); }
};

// A lease a worker holds on an object it stages or a partition it loads
// (several `run` processes on one ledger); it lapses at until_us unless
// renewed, so a dead worker's work is taken over.
struct LeaseRow {
  std::string worker;  // ProcessRow::worker_id()
  std::string table;
  std::string kind;  // "object" | "partition"
  std::string what;  // the object's key, or the partition's start (ISO 8601)
  int64_t until_us = 0;
};

// One load of a partition (a replace or an append), as the ledger keeps it.
struct LoadRow {
  std::string table;
  int64_t partition_us = 0;
  std::string load_id;
  int64_t generation = 0;
  std::string kind;    // "replace" | "append"
  std::string worker;  // the worker that ran it (ProcessRow::worker_id()); "" for loads before leases
  int64_t started_us = 0;
  std::optional<int64_t> finished_us;
  std::optional<int64_t> rows;
  // "" while in flight; "loaded" (a replace), "appended", "failed", "void"
  // (an append a replace overtook), or "lapsed": it finished after its
  // worker had lost the partition, and is not the partition's state.
  std::string outcome;
  std::string error;
};

// What `logferry ledger migrate` copied, per table.
struct TableCopy {
  std::string table;
  int64_t rows = 0;
};

// The ledger's contract, whatever keeps it (Open). Methods are grouped by
// the pipeline step that calls them; each returns a Status on a storage error
// (kUnavailable when another process holds the lock past the busy timeout,
// or PostgreSQL cannot be reached: the connection is made again on the next
// call) and changes nothing then.
class Ledger {
 public:
  // The ledger at `path`: a SQLite file (created, owner-only, and migrated as
  // needed), or a postgresql:// (postgres://) URI, whose database must exist
  // and which gets the ledger's tables in its default schema, migrated as
  // needed.
  static StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path);
  // The same, but kNotFound instead of creating a ledger that does not exist
  // (readers: a typo in state_dir must not look like an empty ledger).
  static StatusOr<std::unique_ptr<Ledger>> OpenExisting(const std::string& path);
  // An existing ledger, read-only: never created, migrated or written
  // (`preview`). kNotFound when there is no ledger at path;
  // kFailedPrecondition when its schema version is not this build's. Any
  // method that writes fails.
  static StatusOr<std::unique_ptr<Ledger>> OpenReadOnly(const std::string& path);
  virtual ~Ledger() = default;

  // Whether `path` names a PostgreSQL ledger (a postgresql:// URI).
  static bool IsShared(std::string_view path);
  // `path` as messages and status show it: a URI loses its password.
  static std::string Describe(std::string_view path);
  // This ledger's Describe().
  virtual std::string Location() { return ""; }

  // `logferry ledger migrate`: copies the SQLite ledger at sqlite_path (read
  // only, never changed; its schema must be this build's) into the
  // PostgreSQL ledger at uri (created if needed), in one transaction, and
  // checks every table's row count. kFailedPrecondition if the PostgreSQL
  // ledger holds anything already.
  static StatusOr<std::vector<TableCopy>> CopySqliteToPostgres(const std::string& sqlite_path, const std::string& uri);

  // The identity of an object version (hashed table, key and etag): it names
  // staged parts, so every backend must derive it the same way.
  static std::string VersionId(std::string_view table, std::string_view key, std::string_view etag);

  // Per-table settings that must not change under existing data (partition unit).
  virtual Status CheckTableSettings(const std::string& table, const std::string& settings) = 0;

  // --- discovery ---
  // Records listed objects not yet known (by table, key, etag). Returns how many were new.
  virtual StatusOr<int64_t> RecordDiscovered(const std::string& table, const std::vector<ObjectInfo>& objects,
                                             const std::string& found_by, int64_t now_us) = 0;
  // Objects to stage now: pending, or failed and due for a retry.
  virtual StatusOr<std::vector<ObjectRow>> DueObjects(const std::string& table, int64_t now_us) = 0;
  // Every object of the table, or those in one state (failed ones, for status).
  virtual StatusOr<std::vector<ObjectRow>> Objects(const std::string& table, std::optional<ObjectState> state = {}) = 0;
  virtual StatusOr<std::optional<ObjectRow>> FindObject(const std::string& table, const std::string& key,
                                                        const std::string& etag) = 0;
  virtual Status RecordNotification(const NotificationRow& n) = 0;
  // Replaces the table's record of source keys that do not match key_format
  // with what the listing just found: how many, and up to a few examples
  // (the ledger keeps at most kMaxIgnoredKeyExamples).
  virtual Status RecordIgnoredKeys(const std::string& table, int64_t count, const std::vector<std::string>& examples,
                                   int64_t now_us) = 0;
  static constexpr size_t kMaxIgnoredKeyExamples = 5;
  virtual StatusOr<std::vector<NotificationRow>> Notifications(const std::string& table, const std::string& state) = 0;

  // --- staging ---
  // Commits everything staging one object version produced, at once: its
  // parts (replacing any earlier ones of the same version), bad records,
  // counts and schema changes; older staged versions of the key are
  // superseded and every partition touched gets a new revision.
  // kFailedPrecondition when the version was superseded while it was staged.
  virtual Status CommitStaged(const StagedObject& staged, int64_t now_us) = 0;
  // Commits several staged objects of one table as CommitStaged does, in one
  // transaction (one sync of the ledger instead of one per object). Each
  // object's outcome is its own, in the same order: one that cannot commit
  // (superseded while it was staged, ...) is rolled back alone and the others
  // still commit. `columns` are the schema changes their parts rely on: they
  // are recorded when at least one object commits, and not otherwise. An
  // error only when the group as a whole fails; then nothing is committed,
  // columns included. The default commits the objects one by one.
  virtual StatusOr<std::vector<Status>> CommitStagedGroup(const std::vector<ColumnRecord>& columns,
                                                          const std::vector<StagedObject>& staged, int64_t now_us);
  virtual Status MarkFailed(int64_t object_id, const std::string& error, int64_t next_attempt_us) = 0;
  // Sends a staged object back to be staged again (its part is missing or damaged).
  virtual Status Restage(int64_t object_id, const std::string& reason) = 0;

  // --- re-processing (logferry restage, skip, unskip) ---
  // Sends these objects back to be staged with the current config, in one
  // transaction: staged ones become pending (their parts stay live, and
  // loaded, until the new staging commits and replaces them), failed ones
  // are due at once, pending ones already are. Superseded and skipped ones
  // are left alone and counted. Safe while a daemon runs: it only changes
  // what the next Stage step finds due.
  virtual StatusOr<RestageCounts> RestageObjects(const std::string& table, const std::vector<int64_t>& object_ids,
                                                 const std::string& reason) = 0;
  // Marks the current version of a key skipped (pending or failed ones; a
  // staged version is refused with kFailedPrecondition: nothing is failing,
  // its rows are loaded). Any live parts it still has (from a staging before
  // a restage that then failed) become obsolete, so its partitions reload
  // without them. kNotFound if the ledger has no such key.
  virtual StatusOr<ObjectRow> Skip(const std::string& table, const std::string& key, const std::string& reason,
                                   int64_t now_us) = 0;
  // Sends a skipped key back to pending (staged on the next pass).
  // kNotFound if no version of the key is skipped.
  virtual StatusOr<ObjectRow> Unskip(const std::string& table, const std::string& key) = 0;

  // --- loading ---
  // Partitions with new or changed parts (or a request) whose load is due:
  // period end + settle <= now (requests are due at once) and not backing off.
  virtual StatusOr<std::vector<PartitionRow>> DuePartitions(const std::string& table, int64_t partition_unit_us,
                                                            int64_t settle_us, int64_t now_us) = 0;
  virtual StatusOr<std::vector<PartitionRow>> Partitions(const std::string& table) = 0;
  // Snapshots a partition's live parts and revision and bumps its generation.
  virtual StatusOr<LoadPlan> BeginLoad(const std::string& table, int64_t partition_us, int64_t now_us) = 0;
  // Records the load as the partition's state, if the plan's worker still
  // holds the partition's lease and no other load of it began since (the
  // generation is the plan's). Otherwise (the lease lapsed while the worker
  // was stopped or cut off from the ledger, and another worker took the
  // partition over) its job may have run after the newer load's:
  // kFailedPrecondition, and, committed, the load is marked "lapsed" and
  // the partition is due for another replace at once (its request count
  // goes up, so the other worker's finish does not clear it).
  virtual Status FinishLoad(const LoadPlan& plan, int64_t rows_loaded, int64_t now_us) = 0;
  virtual Status FailLoad(const LoadPlan& plan, const std::string& error, int64_t next_attempt_us, int64_t now_us) = 0;
  // Partitions with new parts that are still open at now_us (their period
  // plus settle has not passed), not appended to within min_spacing_us and
  // not backing off.
  virtual StatusOr<std::vector<PartitionRow>> OpenPartitions(const std::string& table, int64_t partition_unit_us,
                                                             int64_t settle_us, int64_t min_spacing_us,
                                                             int64_t now_us) = 0;
  // Plans an append of the open partition's parts that the warehouse does
  // not hold yet (see AppendPlan). Appends add to what the last replace
  // loaded; the partition is still replaced once it is due.
  // With resume_only, only an append in flight is returned.
  virtual StatusOr<AppendPlan> BeginAppend(const std::string& table, int64_t partition_us, int64_t now_us,
                                           bool resume_only) = 0;
  // The append is in the warehouse, which now holds rows_after rows in the
  // partition. A count other than the plan's expected one makes the
  // partition take a replace next (FinishAppend still records the append).
  // As FinishLoad, kFailedPrecondition when the plan's worker lost the
  // partition meanwhile: then the append is marked "lapsed", its parts are
  // not marked loaded, and the partition is due for a replace at once.
  virtual Status FinishAppend(const AppendPlan& plan, int64_t rows_after, int64_t now_us) = 0;
  // The warehouse certainly did not apply the append: its parts are new again.
  virtual Status FailAppend(const AppendPlan& plan, const std::string& error, int64_t now_us) = 0;
  // Records that a warehouse job for these plans' loads is about to be sent
  // (once per job id: a resumed job is not counted again). Only recorded
  // jobs count against the daily budget, so loads that stopped before
  // reaching the warehouse cost nothing.
  virtual Status RecordLoadJob(const std::vector<LoadPlan>& plans, const std::string& job_id, int64_t now_us) = 0;
  virtual StatusOr<bool> LoadJobKnown(const std::string& job_id) = 0;
  // The job id of a merged load, from the table and every (partition,
  // generation) in it: a restart that resumes the same generations finds
  // the same job, and a batch with other contents never collides with it.
  static std::string MergedLoadId(const std::vector<LoadPlan>& plans);

  // --- staged parts (verify, collection) ---
  // Live parts of a table, or of one partition.
  virtual StatusOr<std::vector<PartRow>> LiveParts(const std::string& table,
                                                   std::optional<int64_t> partition_us = {}) = 0;
  // Parts replaced by a newer object version whose partitions have since loaded.
  virtual StatusOr<std::vector<PartRow>> CollectableParts(const std::string& table) = 0;
  virtual Status ForgetPart(const PartRow& part) = 0;
  // Staging keys of every part the ledger knows, live or obsolete.
  virtual StatusOr<std::set<std::string>> PartKeys(const std::string& table) = 0;

  // --- requests ---
  // Flags the partitions in [from, to) for reload; returns the request id and
  // how many partitions it covers. `origin_key` makes a request object's
  // recording idempotent.
  virtual StatusOr<std::pair<int64_t, int64_t>> RecordRequest(const std::string& table, const std::string& origin,
                                                              const std::string& origin_key, int64_t from_us,
                                                              int64_t to_us, int64_t partition_unit_us,
                                                              int64_t now_us) = 0;
  virtual StatusOr<std::optional<RequestRow>> FindRequest(const std::string& origin_key) = 0;
  virtual Status FinishRequest(int64_t id, const std::string& state, const std::string& detail, int64_t now_us) = 0;
  virtual StatusOr<std::vector<RequestRow>> Requests(const std::string& table, const std::string& state) = 0;

  // --- schema ---
  virtual StatusOr<std::vector<ColumnRecord>> Columns(const std::string& table) = 0;
  virtual StatusOr<int64_t> SchemaVersion(const std::string& table) = 0;

  // --- processes ---
  // Inserts or updates the row of p's (host, pid, started_us). Rows of
  // processes not heard from for kProcessForgetAfterUs are dropped, keeping
  // the newest kKeptProcesses; rows of processes heard from since are kept,
  // however many workers share the ledger.
  virtual Status RecordProcess(const ProcessRow& p) = 0;
  static constexpr int64_t kKeptProcesses = 20;
  static constexpr int64_t kProcessForgetAfterUs = 3600LL * 1000 * 1000;
  // Every recorded process, the most recently alive first.
  virtual StatusOr<std::vector<ProcessRow>> Processes() = 0;

  // --- reporting ---
  virtual StatusOr<TableCounts> Counts(const std::string& table, int64_t now_us) = 0;
  // Bad records of one table ("" for all) created at or after since_us, at most limit.
  virtual StatusOr<std::vector<BadRecordRow>> BadRecords(const std::string& table, int64_t since_us, int64_t limit) = 0;

  // --- leases (several workers on one ledger) ---
  // A worker stages an object or loads a partition only under its lease.
  // Leases lapse at their until_us unless renewed (RenewLeases), so the work
  // of a worker that died is taken over; staging a version twice stays
  // harmless (its parts keep their names), leases only keep workers from
  // doing the same work at once. CommitStaged and MarkFailed release the
  // object's lease; BeginLoad and BeginAppend record the partition's holder
  // in the load they start, and FinishLoad and FinishAppend record the
  // outcome as the partition's state only while that holder still holds it.
  //
  // Claims up to `limit` objects due now (as DueObjects) whose lease is free,
  // lapsed or the worker's own, leased to the worker until until_us; by key.
  // An object another live lease holds is never returned.
  virtual StatusOr<std::vector<ObjectRow>> ClaimObjects(const std::string& table, const std::string& worker,
                                                        int64_t now_us, int64_t until_us, int64_t limit) = 0;
  // Claims a partition that still needs loading (new parts or a request, not
  // backing off) unless another worker's lease on it is live. True when the
  // worker holds it now.
  virtual StatusOr<bool> ClaimPartition(const std::string& table, int64_t partition_us, const std::string& worker,
                                        int64_t now_us, int64_t until_us) = 0;
  virtual Status ReleasePartition(const std::string& table, int64_t partition_us, const std::string& worker) = 0;
  // Extends every lease the worker holds to until_us.
  virtual Status RenewLeases(const std::string& worker, int64_t until_us) = 0;
  // Frees every lease the worker holds (its claims it will not work on, or a
  // worker known dead).
  virtual Status ReleaseLeases(const std::string& worker) = 0;
  // Version ids of the table's objects under a live lease: their parts may
  // be written and not yet committed.
  virtual StatusOr<std::set<std::string>> LeasedVersions(const std::string& table, int64_t now_us) = 0;
  // Every live lease, by worker.
  virtual StatusOr<std::vector<LeaseRow>> Leases(int64_t now_us) = 0;
  // The table's loads (of one partition, or all), oldest first: who ran
  // each, and how it ended.
  virtual StatusOr<std::vector<LoadRow>> Loads(const std::string& table, std::optional<int64_t> partition_us = {}) = 0;
};

}  // namespace logferry
