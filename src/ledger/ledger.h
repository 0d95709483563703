// The ledger: the single source of truth for delivery state, in SQLite (WAL).
//
// Every state change is one transaction. Identities here name everything
// outside: a staged part's key derives from its object version's identity
// (table, key, etag), so staging again rewrites the same part, and a load's
// id derives from (table, partition, generation).
//
// Thread-safe: one connection behind a mutex. Several processes (the daemon,
// `status`, `reload`) may open the same ledger; SQLite's locking and a busy
// timeout serialize them.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "schema/schema.h"
#include "store/object_store.h"

namespace logferry {

enum class ObjectState { kPending, kStaged, kFailed, kSuperseded };
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

struct TableCounts {
  std::string table;
  int64_t objects_pending = 0, objects_staged = 0, objects_failed = 0, objects_superseded = 0;
  int64_t found_by_listing_only = 0;
  int64_t notifications_failing = 0;
  int64_t partitions_pending = 0, partitions_loaded = 0, partitions_failed = 0;
  int64_t rows_staged = 0, rows_loaded = 0, bad_records = 0, warnings = 0;
  std::optional<int64_t> newest_loaded_partition_us;
  std::optional<int64_t> oldest_pending_partition_us;
  // Warehouse load jobs sent in the 24 hours before now (the rolling window
  // of BigQuery's per-table quota), and when the oldest of them was sent.
  int64_t load_jobs_24h = 0;
  std::optional<int64_t> oldest_load_job_24h_us;
};

class Ledger {
 public:
  static StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path);
  ~Ledger();

  static std::string VersionId(std::string_view table, std::string_view key, std::string_view etag);

  // Per-table settings that must not change under existing data (partition unit).
  Status CheckTableSettings(const std::string& table, const std::string& settings);

  // --- discovery ---
  // Records listed objects not yet known (by table, key, etag). Returns how many were new.
  StatusOr<int64_t> RecordDiscovered(const std::string& table, const std::vector<ObjectInfo>& objects,
                                     const std::string& found_by, int64_t now_us);
  // Objects to stage now: pending, or failed and due for a retry.
  StatusOr<std::vector<ObjectRow>> DueObjects(const std::string& table, int64_t now_us);
  StatusOr<std::vector<ObjectRow>> Objects(const std::string& table, std::optional<ObjectState> state = {});
  StatusOr<std::optional<ObjectRow>> FindObject(const std::string& table, const std::string& key,
                                                const std::string& etag);
  Status RecordNotification(const NotificationRow& n);
  StatusOr<std::vector<NotificationRow>> Notifications(const std::string& table, const std::string& state);

  // --- staging ---
  Status CommitStaged(const StagedObject& staged, int64_t now_us);
  Status MarkFailed(int64_t object_id, const std::string& error, int64_t next_attempt_us);
  // Sends a staged object back to be staged again (its part is missing or damaged).
  Status Restage(int64_t object_id, const std::string& reason);

  // --- loading ---
  // Partitions with new or changed parts (or a request) whose load is due:
  // period end + settle <= now (requests are due at once) and not backing off.
  StatusOr<std::vector<PartitionRow>> DuePartitions(const std::string& table, int64_t partition_unit_us,
                                                    int64_t settle_us, int64_t now_us);
  StatusOr<std::vector<PartitionRow>> Partitions(const std::string& table);
  // Snapshots a partition's live parts and revision and bumps its generation.
  StatusOr<LoadPlan> BeginLoad(const std::string& table, int64_t partition_us, int64_t now_us);
  Status FinishLoad(const LoadPlan& plan, int64_t rows_loaded, int64_t now_us);
  Status FailLoad(const LoadPlan& plan, const std::string& error, int64_t next_attempt_us, int64_t now_us);
  // Records that a warehouse job for these plans' loads is about to be sent
  // (once per job id: a resumed job is not counted again). Only recorded
  // jobs count against the daily budget, so loads that stopped before
  // reaching the warehouse cost nothing.
  Status RecordLoadJob(const std::vector<LoadPlan>& plans, const std::string& job_id, int64_t now_us);
  StatusOr<bool> LoadJobKnown(const std::string& job_id);
  // The job id of a merged load, from the table and every (partition,
  // generation) in it: a restart that resumes the same generations finds
  // the same job, and a batch with other contents never collides with it.
  static std::string MergedLoadId(const std::vector<LoadPlan>& plans);
  // Live parts of a partition (for verify).
  StatusOr<std::vector<PartRow>> LiveParts(const std::string& table, std::optional<int64_t> partition_us = {});
  // Parts replaced by a newer object version whose partitions have since loaded.
  StatusOr<std::vector<PartRow>> CollectableParts(const std::string& table);
  Status ForgetPart(const PartRow& part);
  // Staging keys of every part the ledger knows, live or obsolete.
  StatusOr<std::set<std::string>> PartKeys(const std::string& table);

  // --- requests ---
  // Flags the partitions in [from, to) for reload; returns the request id and
  // how many partitions it covers. `origin_key` makes a request object's
  // recording idempotent.
  StatusOr<std::pair<int64_t, int64_t>> RecordRequest(const std::string& table, const std::string& origin,
                                                      const std::string& origin_key, int64_t from_us, int64_t to_us,
                                                      int64_t partition_unit_us, int64_t now_us);
  StatusOr<std::optional<RequestRow>> FindRequest(const std::string& origin_key);
  Status FinishRequest(int64_t id, const std::string& state, const std::string& detail, int64_t now_us);
  StatusOr<std::vector<RequestRow>> Requests(const std::string& table, const std::string& state);

  // --- schema ---
  StatusOr<std::vector<ColumnRecord>> Columns(const std::string& table);
  StatusOr<int64_t> SchemaVersion(const std::string& table);

  // --- reporting ---
  StatusOr<TableCounts> Counts(const std::string& table, int64_t now_us);
  StatusOr<std::vector<ObjectRow>> FailedObjects(const std::string& table);
  StatusOr<std::vector<BadRecordRow>> BadRecords(const std::string& table, int64_t since_us, int64_t limit);

 private:
  explicit Ledger(sqlite3* db) : db_(db) {}
  Status Migrate();
  Status Exec(std::string_view sql);
  Status BumpPartition(const std::string& table, int64_t partition_us, int64_t now_us);
  ObjectRow ReadObject(const class Statement& s) const;

  std::mutex mu_;
  sqlite3* db_;
};

// RAII transaction helper (BEGIN IMMEDIATE ... COMMIT, rolled back if not committed).
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Status status() const { return status_; }
  Status Commit();

 private:
  sqlite3* db_;
  Status status_;
  bool done_ = false;
};

}  // namespace logferry
