#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/time.h"
#include "support/ledger_backends.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = kMicrosPerHour;

int64_t T(const char* iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(0);
}

ObjectInfo Obj(std::string key, std::string etag, uint64_t size = 100) {
  ObjectInfo o;
  o.key = std::move(key);
  o.etag = std::move(etag);
  o.size = size;
  o.mtime_us = 1;
  return o;
}

PartRow Part(int64_t hour_us, std::string key, int64_t rows) {
  PartRow p;
  p.hour_us = hour_us;
  p.partition_us = hour_us;  // hourly partitions
  p.key = std::move(key);
  p.rows = rows;
  p.bytes = rows * 10;
  p.crc32c = "00000000";
  return p;
}

// What staging an object into these parts commits: every line a row.
StagedObject Staged(int64_t object_id, std::vector<PartRow> parts) {
  StagedObject st;
  st.object_id = object_id;
  for (auto& p : parts) {
    p.object_id = object_id;
    st.rows_staged += p.rows;
  }
  st.lines_read = st.rows_staged;
  st.parts = std::move(parts);
  return st;
}

using testing::Backend;

// The tests of the ledger's contract (LedgerTest) run on every backend;
// SqliteLedgerTest's are about SQLite's files and migrations.
class LedgerFixture : public ::testing::Test {
 protected:
  virtual Backend backend() const { return Backend::kSqlite; }
  void SetUp() override {
    char tmpl[] = "/tmp/lf-ledger-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    location_ = testing::NewLedgerLocation(backend(), dir_);
    ASSERT_FALSE(location_.empty());
    Reopen();
  }
  void TearDown() override {
    ledger_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Reopen() {
    ledger_.reset();
    auto l = Ledger::Open(location_);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    ledger_ = std::move(l).value();
  }

  // Discovers one object and returns its row.
  ObjectRow Discover(const std::string& key, const std::string& etag) {
    auto n = ledger_->RecordDiscovered("t", {Obj(key, etag)}, "listing", now_);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    auto all = ledger_->Objects("t");
    EXPECT_TRUE(all.ok());
    for (auto& o : *all)
      if (o.key == key && o.etag == etag) return o;
    ADD_FAILURE() << "object " << key << " not recorded";
    return {};
  }

  Status Stage(int64_t object_id, std::vector<PartRow> parts, std::vector<ColumnRecord> columns = {}) {
    StagedObject st = Staged(object_id, std::move(parts));
    st.columns = std::move(columns);
    return ledger_->CommitStaged(st, now_);
  }

  PartitionRow Partition(int64_t p) {
    auto parts = ledger_->Partitions("t");
    EXPECT_TRUE(parts.ok());
    for (auto& row : *parts)
      if (row.partition_us == p) return row;
    ADD_FAILURE() << "no partition " << FormatHour(p);
    return {};
  }

  ObjectState StateOf(int64_t id) {
    auto all = ledger_->Objects("t");
    EXPECT_TRUE(all.ok());
    for (auto& o : *all)
      if (o.id == id) return o.state;
    ADD_FAILURE() << "no object " << id;
    return ObjectState::kPending;
  }

  std::string dir_;
  std::string location_;  // the ledger's file or URI
  std::unique_ptr<Ledger> ledger_;
  int64_t now_ = T("2016-08-02T00:00:00Z");
  const int64_t h0_ = T("2016-08-01T00:00:00Z");
  const int64_t h1_ = T("2016-08-01T01:00:00Z");
  const int64_t h2_ = T("2016-08-01T02:00:00Z");
};

class LedgerTest : public LedgerFixture, public ::testing::WithParamInterface<Backend> {
 protected:
  Backend backend() const override { return GetParam(); }
};
LF_INSTANTIATE_LEDGER_BACKENDS(LedgerTest);

class SqliteLedgerTest : public LedgerFixture {};

TEST_P(LedgerTest, RecordDiscoveredIsIdempotent) {
  std::vector<ObjectInfo> listed = {Obj("logs/2016080100_0.gz", "e1"), Obj("logs/2016080101_0.gz", "e2")};
  auto n = ledger_->RecordDiscovered("t", listed, "listing", now_);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2);
  n = ledger_->RecordDiscovered("t", listed, "listing", now_ + 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  auto all = ledger_->Objects("t");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].key, "logs/2016080100_0.gz");
  EXPECT_EQ((*all)[0].state, ObjectState::kPending);
  EXPECT_EQ((*all)[0].found_by, "listing");
  EXPECT_EQ((*all)[0].discovered_us, now_);
  EXPECT_EQ((*all)[0].size, 100u);
  EXPECT_EQ((*all)[0].version_id, Ledger::VersionId("t", "logs/2016080100_0.gz", "e1"));
  // Tables are separate namespaces.
  n = ledger_->RecordDiscovered("other", listed, "listing", now_);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(ledger_->Objects("t")->size(), 2u);
}

TEST_P(LedgerTest, VersionIdDependsOnEveryPart) {
  std::string v = Ledger::VersionId("t", "k", "e");
  EXPECT_EQ(v, Ledger::VersionId("t", "k", "e"));
  EXPECT_NE(v, Ledger::VersionId("t2", "k", "e"));
  EXPECT_NE(v, Ledger::VersionId("t", "k2", "e"));
  EXPECT_NE(v, Ledger::VersionId("t", "k", "e2"));
  // The separator keeps ("ab","c") and ("a","bc") apart.
  EXPECT_NE(Ledger::VersionId("t", "ab", "c"), Ledger::VersionId("t", "a", "bc"));
}

TEST_P(LedgerTest, NewEtagSupersedesPendingVersion) {
  ObjectRow v1 = Discover("k", "e1");
  ObjectRow v2 = Discover("k", "e2");
  EXPECT_EQ(StateOf(v1.id), ObjectState::kSuperseded);
  EXPECT_EQ(StateOf(v2.id), ObjectState::kPending);
  auto due = ledger_->DueObjects("t", now_);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, v2.id);
  // A superseded version cannot be committed any more.
  Status s = Stage(v1.id, {Part(h0_, "p/v1", 5)});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();

  // A failed version is superseded too.
  ASSERT_TRUE(ledger_->MarkFailed(v2.id, "boom", now_ + 1000).ok());
  ObjectRow v3 = Discover("k", "e3");
  EXPECT_EQ(StateOf(v2.id), ObjectState::kSuperseded);
  EXPECT_EQ(StateOf(v3.id), ObjectState::kPending);
}

TEST_P(LedgerTest, CommitStagedCreatesPartsAndBumpsRevisions) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 10), Part(h1_, "p/b", 5)}).ok());
  EXPECT_EQ(StateOf(o.id), ObjectState::kStaged);
  auto live = ledger_->LiveParts("t");
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].key, "p/a");
  EXPECT_EQ((*live)[0].rows, 10);
  EXPECT_EQ((*live)[0].object_id, o.id);
  auto only_h1 = ledger_->LiveParts("t", h1_);
  ASSERT_TRUE(only_h1.ok());
  ASSERT_EQ(only_h1->size(), 1u);
  EXPECT_EQ((*only_h1)[0].key, "p/b");

  EXPECT_EQ(Partition(h0_).revision, 1);
  EXPECT_EQ(Partition(h1_).revision, 1);
  EXPECT_TRUE(Partition(h0_).pending());
  EXPECT_EQ(ledger_->DueObjects("t", now_)->size(), 0u);

  // Restaging the same version (a retry) replaces its parts and bumps again.
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 11)}).ok());
  live = ledger_->LiveParts("t");
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].rows, 11);
  EXPECT_EQ(Partition(h0_).revision, 2);
  EXPECT_EQ(Partition(h1_).revision, 2) << "h1 lost its rows, so it must be reloaded";

  auto objs = ledger_->Objects("t", ObjectState::kStaged);
  ASSERT_TRUE(objs.ok());
  ASSERT_EQ(objs->size(), 1u);
  EXPECT_EQ((*objs)[0].rows_staged, 11);
}

TEST_P(LedgerTest, SecondVersionObsoletesOldPartsAndSupersedesOldObject) {
  ObjectRow v1 = Discover("k", "e1");
  ASSERT_TRUE(Stage(v1.id, {Part(h0_, "p/v1-h0", 10), Part(h1_, "p/v1-h1", 3)}).ok());
  ObjectRow v2 = Discover("k", "e2");
  EXPECT_EQ(StateOf(v1.id), ObjectState::kStaged) << "a staged version stays until its successor commits";
  ASSERT_TRUE(Stage(v2.id, {Part(h0_, "p/v2-h0", 12)}).ok());
  EXPECT_EQ(StateOf(v1.id), ObjectState::kSuperseded);
  EXPECT_EQ(StateOf(v2.id), ObjectState::kStaged);

  auto live = ledger_->LiveParts("t");
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].key, "p/v2-h0");
  EXPECT_EQ(Partition(h0_).revision, 2);
  EXPECT_EQ(Partition(h1_).revision, 2) << "the partition that lost v1's part must reload";
}

TEST_P(LedgerTest, DuePartitionsRespectsSettleAndRequests) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1), Part(h2_, "p/c", 1)}).ok());
  int64_t settle = 10 * 60 * kMicrosPerSecond;

  auto due = [&](int64_t now) {
    auto d = ledger_->DuePartitions("t", kHour, settle, now);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    std::vector<int64_t> out;
    if (d.ok())
      for (auto& p : *d) out.push_back(p.partition_us);
    return out;
  };
  EXPECT_TRUE(due(h0_ + kHour).empty()) << "the hour just ended: still settling";
  EXPECT_TRUE(due(h0_ + kHour + settle - 1).empty());
  EXPECT_EQ(due(h0_ + kHour + settle), (std::vector<int64_t>{h0_}));
  EXPECT_EQ(due(h2_ + kHour + settle), (std::vector<int64_t>{h0_, h2_}));

  // A request makes a partition due at once, even one still settling.
  auto r = ledger_->RecordRequest("t", "cli", "", h2_, h2_ + kHour, kHour, now_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(due(h0_ + kHour), (std::vector<int64_t>{h2_}));
}

TEST_P(LedgerTest, BeginLoadSnapshotsAndFinishLoadClearsPending) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/b", 2)}).ok());
  ObjectRow o2 = Discover("k2", "e1");
  ASSERT_TRUE(Stage(o2.id, {Part(h0_, "p/a", 3)}).ok());

  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->table, "t");
  EXPECT_EQ(plan->partition_us, h0_);
  EXPECT_EQ(plan->revision, 2);
  EXPECT_EQ(plan->generation, 1);
  EXPECT_EQ(plan->load_id, "logferry_t_2016080100_g1");
  ASSERT_EQ(plan->parts.size(), 2u);
  EXPECT_EQ(plan->parts[0].key, "p/a") << "parts in key order";
  EXPECT_EQ(plan->expected_rows, 5);

  // New parts arriving mid-load are not in this plan, and keep the partition pending.
  ObjectRow o3 = Discover("k3", "e1");
  ASSERT_TRUE(Stage(o3.id, {Part(h0_, "p/c", 7)}).ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan, 5, now_).ok());
  PartitionRow p = Partition(h0_);
  EXPECT_EQ(p.loaded_revision, 2);
  EXPECT_EQ(p.revision, 3);
  EXPECT_TRUE(p.pending());
  EXPECT_EQ(p.rows_loaded, 5);
  EXPECT_EQ(p.load_id, "logferry_t_2016080100_g1");
  ASSERT_TRUE(p.loaded_us.has_value());

  auto plan2 = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan2.ok());
  EXPECT_EQ(plan2->generation, 2);
  EXPECT_EQ(plan2->load_id, "logferry_t_2016080100_g2");
  EXPECT_EQ(plan2->expected_rows, 12);
  ASSERT_TRUE(ledger_->FinishLoad(*plan2, 12, now_).ok());
  p = Partition(h0_);
  EXPECT_FALSE(p.pending());
  EXPECT_EQ(p.loaded_revision, 3);
  EXPECT_TRUE(ledger_->DuePartitions("t", kHour, 0, now_)->empty());

  auto missing = ledger_->BeginLoad("t", h2_, now_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_P(LedgerTest, FailLoadBacksOff) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1)}).ok());
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  int64_t retry_at = now_ + 30 * kMicrosPerSecond;
  ASSERT_TRUE(ledger_->FailLoad(*plan, "warehouse locked", retry_at, now_).ok());
  PartitionRow p = Partition(h0_);
  EXPECT_EQ(p.attempts, 1);
  EXPECT_EQ(p.last_error, "warehouse locked");
  ASSERT_TRUE(p.next_attempt_us.has_value());
  EXPECT_EQ(*p.next_attempt_us, retry_at);
  EXPECT_TRUE(p.pending());
  EXPECT_TRUE(ledger_->DuePartitions("t", kHour, 0, now_)->empty()) << "backing off";
  EXPECT_TRUE(ledger_->DuePartitions("t", kHour, 0, retry_at - 1)->empty());
  EXPECT_EQ(ledger_->DuePartitions("t", kHour, 0, retry_at)->size(), 1u);

  auto counts = ledger_->Counts("t", now_);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->partitions_failed, 1);
  EXPECT_EQ(counts->partitions_pending, 1);

  // Success clears the failure.
  auto plan2 = ledger_->BeginLoad("t", h0_, retry_at);
  ASSERT_TRUE(plan2.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan2, 1, retry_at).ok());
  p = Partition(h0_);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_TRUE(p.last_error.empty());
  EXPECT_FALSE(p.next_attempt_us.has_value());
}

TEST_P(LedgerTest, CollectablePartsOnlyAfterLoadPastObsoletingRevision) {
  ObjectRow v1 = Discover("k", "e1");
  ASSERT_TRUE(Stage(v1.id, {Part(h0_, "p/v1", 10)}).ok());
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan, 10, now_).ok());

  ObjectRow v2 = Discover("k", "e2");
  ASSERT_TRUE(Stage(v2.id, {Part(h0_, "p/v2", 12)}).ok());
  EXPECT_TRUE(ledger_->CollectableParts("t")->empty())
      << "the warehouse still holds v1's rows until the partition reloads";

  // A load that started before v2 committed does not free v1's part.
  // (Simulated by finishing the old plan again: its revision is 1.)
  ASSERT_TRUE(ledger_->FinishLoad(*plan, 10, now_).ok());
  EXPECT_TRUE(ledger_->CollectableParts("t")->empty());

  auto plan2 = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan2.ok());
  ASSERT_EQ(plan2->parts.size(), 1u);
  EXPECT_EQ(plan2->parts[0].key, "p/v2");
  EXPECT_TRUE(ledger_->CollectableParts("t")->empty()) << "not before the load finishes";
  ASSERT_TRUE(ledger_->FinishLoad(*plan2, 12, now_).ok());
  auto coll = ledger_->CollectableParts("t");
  ASSERT_TRUE(coll.ok());
  ASSERT_EQ(coll->size(), 1u);
  EXPECT_EQ((*coll)[0].key, "p/v1");
  ASSERT_TRUE(ledger_->ForgetPart((*coll)[0]).ok());
  EXPECT_TRUE(ledger_->CollectableParts("t")->empty());
  EXPECT_EQ(ledger_->LiveParts("t")->size(), 1u) << "forgetting an obsolete part leaves live ones";
}

TEST_P(LedgerTest, RecordRequestIsIdempotentWithOriginKey) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1), Part(h1_, "p/b", 1), Part(h2_, "p/c", 1)}).ok());
  for (int64_t p : {h0_, h1_, h2_}) {
    auto plan = ledger_->BeginLoad("t", p, now_);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(ledger_->FinishLoad(*plan, 1, now_).ok());
  }
  EXPECT_TRUE(ledger_->DuePartitions("t", kHour, 0, now_)->empty());

  // [h0, h2) covers h0 and h1 only.
  auto r = ledger_->RecordRequest("t", "file:///s/_requests/a.json", "a.json", h0_, h2_, kHour, now_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->second, 2);
  auto due = ledger_->DuePartitions("t", kHour, 1000 * kHour, now_);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_TRUE((*due)[0].requested);

  auto again = ledger_->RecordRequest("t", "file:///s/_requests/a.json", "a.json", h0_, h2_, kHour, now_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->first, r->first) << "the same request object is recorded once";
  auto reqs = ledger_->Requests("t", "");
  ASSERT_TRUE(reqs.ok());
  EXPECT_EQ(reqs->size(), 1u);
  auto found = ledger_->FindRequest("a.json");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->from_us, h0_);
  EXPECT_EQ((*found)->to_us, h2_);
  EXPECT_EQ((*found)->state, "queued");
  EXPECT_FALSE(ledger_->FindRequest("nope")->has_value());

  ASSERT_TRUE(ledger_->FinishRequest(r->first, "done", "2 partitions", now_).ok());
  EXPECT_EQ(ledger_->Requests("t", "done")->size(), 1u);
  EXPECT_EQ(ledger_->Requests("t", "queued")->size(), 0u);

  // CLI requests (no origin key) are never deduplicated.
  auto c1 = ledger_->RecordRequest("t", "cli", "", h2_, h2_ + kHour, kHour, now_);
  auto c2 = ledger_->RecordRequest("t", "cli", "", h2_, h2_ + kHour, kHour, now_);
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_NE(c1->first, c2->first);

  // Loading clears the request flag.
  auto requested = ledger_->DuePartitions("t", kHour, 0, now_);
  ASSERT_TRUE(requested.ok());
  EXPECT_EQ(requested->size(), 3u) << "h0 and h1 from a.json, h2 from the CLI";
  for (auto& p : *requested) {
    auto plan = ledger_->BeginLoad("t", p.partition_us, now_);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(ledger_->FinishLoad(*plan, 1, now_).ok());
  }
  EXPECT_TRUE(ledger_->DuePartitions("t", kHour, 0, now_)->empty());
}

TEST_P(LedgerTest, MarkFailedAndDueObjectsHonourNextAttempt) {
  ObjectRow o = Discover("k", "e1");
  ObjectRow other = Discover("j", "e1");
  int64_t retry_at = now_ + 60 * kMicrosPerSecond;
  ASSERT_TRUE(ledger_->MarkFailed(o.id, "corrupt gzip", retry_at).ok());
  auto due = ledger_->DueObjects("t", now_);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, other.id);
  due = ledger_->DueObjects("t", retry_at);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].key, "j") << "due objects in key order";

  auto failed = ledger_->Objects("t", ObjectState::kFailed);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].attempts, 1);
  EXPECT_EQ((*failed)[0].last_error, "corrupt gzip");
  ASSERT_TRUE((*failed)[0].next_attempt_us.has_value());
  EXPECT_EQ(*(*failed)[0].next_attempt_us, retry_at);

  ASSERT_TRUE(ledger_->MarkFailed(o.id, "again", retry_at * 2).ok());
  EXPECT_EQ((*ledger_->Objects("t", ObjectState::kFailed))[0].attempts, 2);

  // A later success clears the error.
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1)}).ok());
  EXPECT_TRUE(ledger_->Objects("t", ObjectState::kFailed)->empty());
  // A staged object cannot be marked failed by a stale worker.
  ASSERT_TRUE(ledger_->MarkFailed(o.id, "stale", retry_at).ok());
  EXPECT_EQ(StateOf(o.id), ObjectState::kStaged);

  // Restage sends it back.
  ASSERT_TRUE(ledger_->Restage(o.id, "part missing").ok());
  EXPECT_EQ(StateOf(o.id), ObjectState::kPending);
}

TEST_P(LedgerTest, ReopenKeepsDataAndMigrationsAreIdempotent) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 4)}).ok());
  ASSERT_TRUE(ledger_->CheckTableSettings("t", "partition=hour").ok());
  Reopen();
  Reopen();
  auto all = ledger_->Objects("t");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, ObjectState::kStaged);
  EXPECT_EQ(ledger_->LiveParts("t")->size(), 1u);
  EXPECT_EQ(Partition(h0_).revision, 1);
  EXPECT_TRUE(ledger_->CheckTableSettings("t", "partition=hour").ok());
  Status changed = ledger_->CheckTableSettings("t", "partition=day");
  EXPECT_EQ(changed.code(), StatusCode::kFailedPrecondition) << changed.ToString();

  // Two handles on the same ledger (daemon and `status`) see each other's writes.
  auto second = Ledger::Open(location_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE((*second)->RecordDiscovered("t", {Obj("k2", "e")}, "listing", now_).ok());
  EXPECT_EQ(ledger_->Objects("t")->size(), 2u);
}

// The ledger keeps raw excerpts of bad lines: owner-only whatever the umask,
// its WAL included; a file left looser by an older version is tightened.
TEST_F(SqliteLedgerTest, FilesAreOwnerOnly) {
  auto mode = [](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  };
  ledger_.reset();
  std::string path = dir_ + "/fresh.db";
  mode_t old_umask = umask(022);
  auto l = Ledger::Open(path);
  umask(old_umask);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_TRUE((*l)->RecordDiscovered("t", {Obj("k", "e")}, "listing", now_).ok());
  EXPECT_EQ(mode(path), 0600u);
  ASSERT_TRUE(fs::exists(path + "-wal"));
  EXPECT_EQ(mode(path + "-wal"), 0600u);
  if (fs::exists(path + "-shm")) {
    EXPECT_EQ(mode(path + "-shm"), 0600u);
  }
  l->reset();

  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto again = Ledger::Open(path);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(mode(path), 0600u);
}

TEST_F(SqliteLedgerTest, RefusesNewerSchemaVersion) {
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/ledger.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema_version'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto l = Ledger::Open(dir_ + "/ledger.db");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kFailedPrecondition) << l.status().ToString();
}

TEST_P(LedgerTest, ColumnsRoundTripIncludingNulBytesInRawKeys) {
  ObjectRow o = Discover("k", "e1");
  std::vector<ColumnRecord> cols;
  auto add = [&](std::string parent, std::string raw, std::string name, ColumnType type, bool repeated, bool comp) {
    ColumnRecord c;
    c.parent_path = std::move(parent);
    c.raw_key = std::move(raw);
    c.name = std::move(name);
    c.type = type;
    c.repeated = repeated;
    c.companion = comp;
    cols.push_back(c);
  };
  add("", "status", "status", ColumnType::kInt64, false, false);
  add("", "status" + std::string(1, kInternalKeyMarker) + "str", "status_str", ColumnType::kString, false, true);
  add("", "req", "req", ColumnType::kRecord, false, false);
  add("req", "user-agent", "user_agent", ColumnType::kString, false, false);
  add("", "tags", "tags", ColumnType::kString, true, false);
  add("", "caf\xC3\xA9", "caf_", ColumnType::kBool, false, false);
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1)}, cols).ok());

  auto back = ledger_->Columns("t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), cols.size());
  for (size_t i = 0; i < cols.size(); ++i) {
    EXPECT_EQ((*back)[i].parent_path, cols[i].parent_path) << i;
    EXPECT_EQ((*back)[i].raw_key, cols[i].raw_key) << i;
    EXPECT_EQ((*back)[i].raw_key.size(), cols[i].raw_key.size()) << "NUL bytes must survive";
    EXPECT_EQ((*back)[i].name, cols[i].name) << i;
    EXPECT_EQ((*back)[i].type, cols[i].type) << i;
    EXPECT_EQ((*back)[i].repeated, cols[i].repeated) << i;
    EXPECT_EQ((*back)[i].companion, cols[i].companion) << i;
  }
  EXPECT_EQ(*ledger_->SchemaVersion("t"), 1);

  // A widening updates the type in place and keeps the order.
  ObjectRow o2 = Discover("k2", "e1");
  ColumnRecord widened = cols[0];
  widened.type = ColumnType::kFloat64;
  ASSERT_TRUE(Stage(o2.id, {Part(h1_, "p/b", 1)}, {widened}).ok());
  back = ledger_->Columns("t");
  ASSERT_EQ(back->size(), cols.size());
  EXPECT_EQ((*back)[0].name, "status");
  EXPECT_EQ((*back)[0].type, ColumnType::kFloat64);
  EXPECT_EQ(*ledger_->SchemaVersion("t"), 2);

  // Survives a reopen and restores a registry with the same shape.
  Reopen();
  back = ledger_->Columns("t");
  ASSERT_TRUE(back.ok());
  SchemaRegistry reg({{"_time", ColumnType::kTimestamp}});
  reg.Restore(*back);
  Column* status = reg.Child(reg.root(), "status");
  EXPECT_EQ(status->type(), ColumnType::kFloat64);
  EXPECT_EQ(reg.CompanionOf(status)->name(), "status_str");
  EXPECT_EQ(reg.Child(reg.Child(reg.root(), "req"), "user-agent")->path(), "req.user_agent");
  EXPECT_FALSE(reg.HasUnpersisted());

  // Other tables do not see these columns.
  EXPECT_TRUE(ledger_->Columns("other")->empty());
}

TEST_P(LedgerTest, BadRecordsAreReplacedOnRestageAndHiddenWhenSuperseded) {
  ObjectRow o = Discover("k", "e1");
  StagedObject st;
  st.object_id = o.id;
  st.bad_records = {BadRecord{3, 120, "time", "unparseable time 'x'", "x\t..."}};
  st.bad_total = 1;
  ASSERT_TRUE(ledger_->CommitStaged(st, now_).ok());
  auto bad = ledger_->BadRecords("t", 0, 100);
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->size(), 1u);
  EXPECT_EQ((*bad)[0].object_key, "k");
  EXPECT_EQ((*bad)[0].record.line, 3);
  EXPECT_EQ((*bad)[0].record.byte_offset, 120);
  EXPECT_EQ((*bad)[0].record.field, "time");

  ASSERT_TRUE(ledger_->CommitStaged(st, now_).ok());
  EXPECT_EQ(ledger_->BadRecords("t", 0, 100)->size(), 1u) << "restaging replaces, never duplicates";

  ObjectRow v2 = Discover("k", "e2");
  StagedObject clean;
  clean.object_id = v2.id;
  ASSERT_TRUE(ledger_->CommitStaged(clean, now_).ok());
  EXPECT_TRUE(ledger_->BadRecords("t", 0, 100)->empty()) << "bad records of a replaced version are history";
}

// More bad records than are kept with an excerpt: status and verify count
// all of them (lines read = rows + bad records), and the ledger says how
// many it kept.
TEST_P(LedgerTest, BadRecordCountsAreTheTrueCountNotTheKeptOne) {
  ObjectRow o = Discover("k", "e1");
  StagedObject st;
  st.object_id = o.id;
  st.lines_read = 12'005;
  st.rows_staged = 5;
  st.bad_total = 12'000;
  for (int64_t i = 0; i < 10'000; ++i) st.bad_records.push_back(BadRecord{i + 1, i * 10, "", "bad", "x"});
  ASSERT_TRUE(ledger_->CommitStaged(st, now_).ok());
  EXPECT_EQ(ledger_->Counts("t", now_)->bad_records, 12'000);
  auto objects = ledger_->Objects("t");
  ASSERT_TRUE(objects.ok());
  ASSERT_EQ(objects->size(), 1u);
  EXPECT_EQ((*objects)[0].bad_records, 12'000);
  EXPECT_EQ((*objects)[0].bad_records_kept, 10'000);
  EXPECT_EQ((*objects)[0].lines_read, (*objects)[0].rows_staged + (*objects)[0].bad_records);
  EXPECT_EQ(ledger_->BadRecords("t", 0, 20'000)->size(), 10'000u);
}

// A ledger written before the true count was kept (schema 4 stored the kept
// count only): the migration restores it from lines read and rows staged.
TEST_F(SqliteLedgerTest, MigrationRestoresTheTrueBadRecordCount) {
  ObjectRow o = Discover("k", "e1");
  StagedObject st;
  st.object_id = o.id;
  st.lines_read = 12'005;
  st.rows_staged = 5;
  st.bad_total = 12'000;
  ASSERT_TRUE(ledger_->CommitStaged(st, now_).ok());
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/ledger.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "DROP INDEX parts_by_append; ALTER TABLE parts DROP COLUMN loaded; ALTER TABLE parts DROP COLUMN "
                   "append_load; "
                   "ALTER TABLE loads DROP COLUMN kind; ALTER TABLE partitions DROP COLUMN appendable; "
                   "ALTER TABLE partitions DROP COLUMN appends; ALTER TABLE partitions DROP COLUMN appended_parts; "
                   "ALTER TABLE partitions DROP COLUMN last_append_us; "
                   "ALTER TABLE objects DROP COLUMN bad_records_kept; ALTER TABLE parts DROP COLUMN columns; "
                   "UPDATE objects SET bad_records=10000; "
                   "ALTER TABLE objects DROP COLUMN skip_reason; ALTER TABLE objects DROP COLUMN skipped_us; "
                   "DROP INDEX objects_by_lease; ALTER TABLE objects DROP COLUMN lease_worker; "
                   "ALTER TABLE objects DROP COLUMN lease_until; ALTER TABLE partitions DROP COLUMN lease_worker; "
                   "ALTER TABLE partitions DROP COLUMN lease_until; ALTER TABLE loads DROP COLUMN worker; "
                   "UPDATE meta SET value='4' WHERE key='schema_version'",
                   nullptr, nullptr, nullptr),
      SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  Reopen();
  auto objects = ledger_->Objects("t");
  ASSERT_TRUE(objects.ok()) << objects.status().ToString();
  EXPECT_EQ((*objects)[0].bad_records, 12'000);
  EXPECT_EQ((*objects)[0].bad_records_kept, 10'000);
  EXPECT_EQ(ledger_->Counts("t", now_)->bad_records, 12'000);
}

TEST_P(LedgerTest, CountsSummarizeStates) {
  ObjectRow a = Discover("a", "e");
  ObjectRow b = Discover("b", "e");
  (void)Discover("c", "e");
  ASSERT_TRUE(Stage(a.id, {Part(h0_, "p/a", 7)}).ok());
  ASSERT_TRUE(ledger_->MarkFailed(b.id, "x", now_ + 1).ok());
  auto c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->objects_staged, 1);
  EXPECT_EQ(c->objects_failed, 1);
  EXPECT_EQ(c->objects_pending, 1);
  EXPECT_EQ(c->rows_staged, 7);
  EXPECT_EQ(c->partitions_pending, 1);
  ASSERT_TRUE(c->oldest_pending_partition_us.has_value());
  EXPECT_EQ(*c->oldest_pending_partition_us, h0_);
}

TEST_P(LedgerTest, OnlyJobsRecordedAsSentCountAgainstTheBudgetOverARollingDay) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1), Part(h1_, "p/b", 2), Part(h2_, "p/c", 3)}).ok());
  std::vector<LoadPlan> plans;
  for (int64_t h : {h0_, h1_, h2_}) {
    auto plan = ledger_->BeginLoad("t", h, now_);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plans.push_back(*plan);
  }
  // Loads begun but never sent (a crash, or a part that failed its check)
  // cost nothing.
  EXPECT_EQ(ledger_->Counts("t", now_)->load_jobs_24h, 0);
  Reopen();
  EXPECT_EQ(ledger_->Counts("t", now_)->load_jobs_24h, 0);

  // Three partitions in one merged job: one job.
  std::string merged = Ledger::MergedLoadId(plans);
  EXPECT_FALSE(*ledger_->LoadJobKnown(merged));
  ASSERT_TRUE(ledger_->RecordLoadJob(plans, merged, now_).ok());
  EXPECT_TRUE(*ledger_->LoadJobKnown(merged));
  auto c = ledger_->Counts("t", now_);
  EXPECT_EQ(c->load_jobs_24h, 1);
  ASSERT_TRUE(c->oldest_load_job_24h_us.has_value());
  EXPECT_EQ(*c->oldest_load_job_24h_us, now_);
  // The same job again (a restart finding it) is not a second job, and
  // keeps its first sending time.
  ASSERT_TRUE(ledger_->RecordLoadJob(plans, merged, now_ + kHour).ok());
  c = ledger_->Counts("t", now_ + kHour);
  EXPECT_EQ(c->load_jobs_24h, 1);
  EXPECT_EQ(*c->oldest_load_job_24h_us, now_);
  int64_t jobs_named = 3;
  if (backend() == Backend::kSqlite) {  // read past the interface: SQLite only
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/ledger.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM loads WHERE job_id=?", -1, &st, nullptr), SQLITE_OK);
    sqlite3_bind_text(st, 1, merged.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    jobs_named = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  EXPECT_EQ(jobs_named, 3) << "every load in the batch names its job";

  // A failed job still counts (BigQuery counts failures); its retry is a
  // new generation, so a new job.
  ASSERT_TRUE(ledger_->FailLoad(plans[0], "x", now_ + kHour, now_ + kHour).ok());
  auto retry = ledger_->BeginLoad("t", h0_, now_ + 2 * kHour);
  ASSERT_TRUE(retry.ok());
  ASSERT_TRUE(ledger_->RecordLoadJob({*retry}, retry->load_id, now_ + 2 * kHour).ok());
  c = ledger_->Counts("t", now_ + 2 * kHour);
  EXPECT_EQ(c->load_jobs_24h, 2);

  // The window is the 24 hours before now, not the UTC day.
  c = ledger_->Counts("t", now_ + kMicrosPerDay - 1);
  EXPECT_EQ(c->load_jobs_24h, 2);
  c = ledger_->Counts("t", now_ + kMicrosPerDay);
  EXPECT_EQ(c->load_jobs_24h, 1);
  EXPECT_EQ(*c->oldest_load_job_24h_us, now_ + 2 * kHour);
  c = ledger_->Counts("t", now_ + 2 * kHour + kMicrosPerDay);
  EXPECT_EQ(c->load_jobs_24h, 0);
  EXPECT_FALSE(c->oldest_load_job_24h_us.has_value());
  EXPECT_EQ(ledger_->Counts("other", now_ + 2 * kHour)->load_jobs_24h, 0) << "per table";
}

TEST_P(LedgerTest, MergedLoadIdNamesEveryPartitionAndGeneration) {
  auto plan = [](int64_t partition_us, int64_t generation) {
    LoadPlan p;
    p.table = "t";
    p.partition_us = partition_us;
    p.generation = generation;
    p.load_id = "logferry_t_x_g" + std::to_string(generation);
    return p;
  };
  std::string id = Ledger::MergedLoadId({plan(h0_, 1), plan(h1_, 1), plan(h2_, 4)});
  EXPECT_EQ(id.rfind("logferry_t_2016080100_m3_", 0), 0u) << id;
  for (char c : id) {
    EXPECT_TRUE(isalnum(static_cast<unsigned char>(c)) || c == '_') << id;
  }
  // The same batch, in any order: the same job, found after a restart.
  EXPECT_EQ(Ledger::MergedLoadId({plan(h2_, 4), plan(h0_, 1), plan(h1_, 1)}), id);
  // Any other content: another job.
  EXPECT_NE(Ledger::MergedLoadId({plan(h0_, 1), plan(h1_, 2), plan(h2_, 4)}), id);
  EXPECT_NE(Ledger::MergedLoadId({plan(h0_, 1), plan(h1_, 1)}), id);
  EXPECT_NE(Ledger::MergedLoadId({plan(h0_, 1), plan(h1_, 1), plan(h2_, 4), plan(h2_ + kHour, 1)}), id);
  LoadPlan other_table = plan(h0_, 1);
  other_table.table = "u";
  std::string other = Ledger::MergedLoadId({other_table, plan(h1_, 1), plan(h2_, 4)});
  EXPECT_NE(other.substr(other.size() - 16), id.substr(id.size() - 16)) << "the hash covers the table";
}

TEST_F(SqliteLedgerTest, MigrationCountsEarlierLoadsAsOneJobEach) {
  ObjectRow o = Discover("k", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "p/a", 1), Part(h1_, "p/b", 2)}).ok());
  ASSERT_TRUE(ledger_->BeginLoad("t", h0_, now_).ok());
  ASSERT_TRUE(ledger_->BeginLoad("t", h1_, now_).ok());
  // Back to schema version 3, before jobs were recorded apart from loads
  // (and before parts recorded their columns, version 5).
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/ledger.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "DROP INDEX parts_by_append; ALTER TABLE parts DROP COLUMN loaded; ALTER TABLE parts DROP COLUMN "
                   "append_load; "
                   "ALTER TABLE loads DROP COLUMN kind; ALTER TABLE partitions DROP COLUMN appendable; "
                   "ALTER TABLE partitions DROP COLUMN appends; ALTER TABLE partitions DROP COLUMN appended_parts; "
                   "ALTER TABLE partitions DROP COLUMN last_append_us; "
                   "DROP TABLE load_jobs; ALTER TABLE loads DROP COLUMN job_id; "
                   "ALTER TABLE objects DROP COLUMN bad_records_kept; ALTER TABLE parts DROP COLUMN columns; "
                   "ALTER TABLE objects DROP COLUMN skip_reason; ALTER TABLE objects DROP COLUMN skipped_us; "
                   "DROP INDEX objects_by_lease; ALTER TABLE objects DROP COLUMN lease_worker; "
                   "ALTER TABLE objects DROP COLUMN lease_until; ALTER TABLE partitions DROP COLUMN lease_worker; "
                   "ALTER TABLE partitions DROP COLUMN lease_until; ALTER TABLE loads DROP COLUMN worker; "
                   "UPDATE meta SET value='3' WHERE key='schema_version'",
                   nullptr, nullptr, nullptr),
      SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  Reopen();
  auto c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->load_jobs_24h, 2);
  EXPECT_TRUE(*ledger_->LoadJobKnown("logferry_t_2016080100_g1"));
}

TEST_P(LedgerTest, PartsKeepTheColumnsTheyHold) {
  ObjectRow o = Discover("k", "e1");
  PartRow with = Part(h0_, "p/a", 1);
  with.columns = "_time,a,b";
  ASSERT_TRUE(Stage(o.id, {with, Part(h1_, "p/b", 2)}).ok());
  auto parts = ledger_->LiveParts("t", std::nullopt);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  for (const PartRow& p : *parts) {
    if (p.key == "p/a")
      EXPECT_EQ(p.columns, std::optional<std::string>("_time,a,b"));
    else
      EXPECT_FALSE(p.columns) << "unknown means every column";
  }
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->parts.size(), 1u);
  EXPECT_EQ(plan->parts[0].columns, std::optional<std::string>("_time,a,b"));
}

// --- processes, ignored keys, opening without creating ---

TEST_F(SqliteLedgerTest, OpenExistingRefusesToCreateALedger) {
  std::string path = dir_ + "/typo/ledger.db";
  auto l = Ledger::OpenExisting(path);
  ASSERT_FALSE(l.ok());
  EXPECT_TRUE(l.status().IsNotFound()) << l.status().ToString();
  EXPECT_NE(l.status().message().find("state_dir"), std::string::npos) << l.status().message();
  EXPECT_FALSE(fs::exists(dir_ + "/typo"));
  auto existing = Ledger::OpenExisting(dir_ + "/ledger.db");
  EXPECT_TRUE(existing.ok()) << existing.status().ToString();
}

TEST_P(LedgerTest, RecordProcessUpsertsByHostPidAndStart) {
  ProcessRow p;
  p.host = "h";
  p.pid = 42;
  p.started_us = h0_;
  p.mode = "daemon";
  p.heartbeat_us = h0_;
  ASSERT_TRUE(ledger_->RecordProcess(p).ok());
  p.last_pass_started_us = h0_ + 1;
  p.last_pass_ended_us = h0_ + 2;
  p.last_outcome = "ok";
  p.heartbeat_us = h0_ + 2;
  ASSERT_TRUE(ledger_->RecordProcess(p).ok());
  ProcessRow reused = p;  // the same pid, started again later: another process
  reused.started_us = h1_;
  reused.heartbeat_us = h1_;
  reused.last_pass_started_us.reset();
  reused.last_pass_ended_us.reset();
  reused.last_outcome.clear();
  ASSERT_TRUE(ledger_->RecordProcess(reused).ok());
  Reopen();
  auto all = ledger_->Processes();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].started_us, h1_);  // the most recently alive first
  EXPECT_FALSE((*all)[0].last_pass_ended_us);
  EXPECT_EQ((*all)[1].last_outcome, "ok");
  EXPECT_EQ((*all)[1].last_pass_ended_us, h0_ + 2);
  EXPECT_FALSE((*all)[1].stopped_us);
}

TEST_P(LedgerTest, OnlyTheNewestProcessesAreKept) {
  for (int64_t i = 0; i < Ledger::kKeptProcesses + 5; ++i) {
    ProcessRow p;
    p.host = "h";
    p.pid = 1000 + i;
    p.started_us = h0_ + i;
    p.mode = "once";
    p.heartbeat_us = h0_ + i * kHour;  // each quiet for long before the next
    p.stopped_us = h0_ + i * kHour;
    ASSERT_TRUE(ledger_->RecordProcess(p).ok());
  }
  auto all = ledger_->Processes();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(static_cast<int64_t>(all->size()), Ledger::kKeptProcesses);
  EXPECT_EQ(all->front().pid, 1000 + Ledger::kKeptProcesses + 4);
}

TEST_P(LedgerTest, IgnoredKeysAreReplacedByEachListingAndCapped) {
  auto c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ignored_keys, 0);
  EXPECT_FALSE(c->ignored_keys_listed_us);
  std::vector<std::string> many;
  for (int i = 0; i < 9; ++i) many.push_back("junk/" + std::to_string(i));
  many.push_back(std::string("bad\xff\x01key"));
  ASSERT_TRUE(ledger_->RecordIgnoredKeys("t", 1234, many, now_).ok());
  c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ignored_keys, 1234);
  EXPECT_EQ(c->ignored_key_examples.size(), Ledger::kMaxIgnoredKeyExamples);
  EXPECT_EQ(c->ignored_key_examples.front(), "junk/0");
  EXPECT_EQ(c->ignored_keys_listed_us, now_);
  EXPECT_EQ(ledger_->Counts("other", now_)->ignored_keys, 0);
  ASSERT_TRUE(ledger_->RecordIgnoredKeys("t", 1, {std::string("bad\xff\x01key")}, now_ + 1).ok());
  c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ignored_keys, 1);
  ASSERT_EQ(c->ignored_key_examples.size(), 1u);  // invalid UTF-8 kept as U+FFFD, not refused
  EXPECT_NE(c->ignored_key_examples[0].find("key"), std::string::npos);
  ASSERT_TRUE(ledger_->RecordIgnoredKeys("t", 0, {}, now_ + 2).ok());
  EXPECT_EQ(ledger_->Counts("t", now_)->ignored_keys, 0);
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

// Open partitions: appends carry only the parts the warehouse lacks, an
// append in flight is resumed as it was, and rows that no live part has
// (a rewritten object, a re-staged part) call for a replace.
class LedgerAppendTest : public LedgerTest {
 protected:
  AppendPlan Begin(bool resume_only = false) {
    auto plan = ledger_->BeginAppend("t", h0_, now_, resume_only);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return plan.ok() ? *plan : AppendPlan{};
  }
  static std::vector<std::string> Keys(const AppendPlan& plan) {
    std::vector<std::string> keys;
    for (const PartRow& p : plan.parts) keys.push_back(p.key);
    return keys;
  }
};

LF_INSTANTIATE_LEDGER_BACKENDS(LedgerAppendTest);

TEST_P(LedgerAppendTest, AppendsCarryOnlyNewPartsAndFinishRecordsThem) {
  ObjectRow a = Discover("a", "e1");
  ASSERT_TRUE(Stage(a.id, {Part(h0_, "p/a", 10)}).ok());
  auto open = ledger_->OpenPartitions("t", kMicrosPerHour, 0, 0, h0_ + 60 * kMicrosPerSecond);
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u) << "the hour has not ended: open";
  EXPECT_TRUE(ledger_->OpenPartitions("t", kMicrosPerHour, 0, 0, h1_)->empty()) << "due, not open";

  AppendPlan first = Begin();
  ASSERT_EQ(first.kind, AppendPlan::Kind::kAppend);
  EXPECT_EQ(Keys(first), std::vector<std::string>{"p/a"});
  EXPECT_EQ(first.expected_rows, 10);
  AppendPlan again = Begin();
  EXPECT_EQ(again.load_id, first.load_id) << "an append that recorded no outcome is resumed under its id";
  EXPECT_EQ(Keys(again), Keys(first));
  ASSERT_TRUE(ledger_->FinishAppend(first, 10, now_).ok());
  EXPECT_EQ(Begin().kind, AppendPlan::Kind::kNothing) << "nothing new";

  ObjectRow b = Discover("b", "e1");
  ASSERT_TRUE(Stage(b.id, {Part(h0_, "p/b", 5)}).ok());
  AppendPlan second = Begin();
  ASSERT_EQ(second.kind, AppendPlan::Kind::kAppend);
  EXPECT_NE(second.load_id, first.load_id);
  EXPECT_EQ(Keys(second), std::vector<std::string>{"p/b"});
  EXPECT_EQ(second.expected_rows, 15);
  ASSERT_TRUE(ledger_->FinishAppend(second, 15, now_).ok());
  PartitionRow p = Partition(h0_);
  EXPECT_EQ(p.appends, 2);
  EXPECT_EQ(p.appended_parts, 2);
  EXPECT_TRUE(p.pending()) << "appends do not stand for the partition's load";
}

TEST_P(LedgerAppendTest, ARewrittenObjectCallsForAReplaceWhichResetsAppends) {
  ObjectRow v1 = Discover("a", "e1");
  ASSERT_TRUE(Stage(v1.id, {Part(h0_, "p/v1", 10)}).ok());
  AppendPlan plan = Begin();
  ASSERT_TRUE(ledger_->FinishAppend(plan, 10, now_).ok());
  ObjectRow v2 = Discover("a", "e2");
  ASSERT_TRUE(Stage(v2.id, {Part(h0_, "p/v2", 7)}).ok());
  EXPECT_EQ(Begin().kind, AppendPlan::Kind::kReplace) << "v1's rows are in the warehouse";

  auto load = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(load.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*load, 7, now_).ok());
  EXPECT_EQ(Partition(h0_).appends, 0);
  ObjectRow c = Discover("c", "e1");
  ASSERT_TRUE(Stage(c.id, {Part(h0_, "p/c", 1)}).ok());
  AppendPlan next = Begin();
  ASSERT_EQ(next.kind, AppendPlan::Kind::kAppend) << "after the replace, appends resume";
  EXPECT_EQ(Keys(next), std::vector<std::string>{"p/c"});
  EXPECT_EQ(next.expected_rows, 8);
}

TEST_P(LedgerAppendTest, RestagingAnAppendedPartOrACountMismatchCallsForAReplace) {
  ObjectRow a = Discover("a", "e1");
  ASSERT_TRUE(Stage(a.id, {Part(h0_, "p/a", 10)}).ok());
  AppendPlan plan = Begin();
  ASSERT_TRUE(ledger_->FinishAppend(plan, 10, now_).ok());
  ASSERT_TRUE(Stage(a.id, {Part(h0_, "p/a", 9)}).ok());  // the same version, staged again
  EXPECT_EQ(Begin().kind, AppendPlan::Kind::kReplace);

  ObjectRow b = Discover("b", "e1");
  ASSERT_TRUE(Stage(b.id, {Part(h1_, "p/b", 4)}).ok());
  auto pb = ledger_->BeginAppend("t", h1_, now_, false);
  ASSERT_TRUE(pb.ok());
  ASSERT_TRUE(ledger_->FinishAppend(*pb, 5, now_).ok());  // one row more than the ledger expects
  ObjectRow c = Discover("c", "e1");
  ASSERT_TRUE(Stage(c.id, {Part(h1_, "p/c", 1)}).ok());
  EXPECT_EQ(ledger_->BeginAppend("t", h1_, now_, false)->kind, AppendPlan::Kind::kReplace);
}

TEST_P(LedgerAppendTest, AFailedAppendFreesItsPartsAndResumeOnlyFindsOnlyWhatIsInFlight) {
  ObjectRow a = Discover("a", "e1");
  ASSERT_TRUE(Stage(a.id, {Part(h0_, "p/a", 10)}).ok());
  EXPECT_EQ(Begin(/*resume_only=*/true).kind, AppendPlan::Kind::kNothing);
  AppendPlan plan = Begin();
  EXPECT_EQ(Begin(/*resume_only=*/true).load_id, plan.load_id);
  ASSERT_TRUE(ledger_->FailAppend(plan, "boom", now_).ok());
  EXPECT_EQ(Begin(/*resume_only=*/true).kind, AppendPlan::Kind::kNothing);
  AppendPlan retry = Begin();
  ASSERT_EQ(retry.kind, AppendPlan::Kind::kAppend);
  EXPECT_NE(retry.load_id, plan.load_id) << "a failed id is never reused";
  EXPECT_EQ(Keys(retry), std::vector<std::string>{"p/a"});
  auto spaced = ledger_->OpenPartitions("t", kMicrosPerHour, 0, kMicrosPerHour, h0_ + 1);
  ASSERT_TRUE(spaced.ok());
  EXPECT_TRUE(spaced->empty()) << "the failed append counts for the spacing";
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

ColumnRecord NewColumn(const std::string& name) {
  ColumnRecord c;
  c.raw_key = name;
  c.name = name;
  c.type = ColumnType::kString;
  return c;
}

TEST_P(LedgerTest, AGroupCommitsEachObjectOnItsOwnAndAFailedOneTakesNothingWithIt) {
  ObjectRow a = Discover("a", "e1");
  ObjectRow b_old = Discover("b", "e1");
  ObjectRow c = Discover("c", "e1");
  Discover("b", "e2");  // b's first version is superseded while it is staged
  auto results =
      ledger_->CommitStagedGroup({NewColumn("user")},
                                 {Staged(a.id, {Part(h0_, "p/a", 3)}), Staged(b_old.id, {Part(h0_, "p/b", 4)}),
                                  Staged(c.id, {Part(h0_, "p/c0", 5), Part(h1_, "p/c1", 6)})},
                                 now_);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_TRUE((*results)[0].ok()) << (*results)[0].ToString();
  EXPECT_EQ((*results)[1].code(), StatusCode::kFailedPrecondition) << (*results)[1].ToString();
  EXPECT_TRUE((*results)[2].ok()) << (*results)[2].ToString();

  EXPECT_EQ(StateOf(a.id), ObjectState::kStaged);
  EXPECT_EQ(StateOf(b_old.id), ObjectState::kSuperseded);
  EXPECT_EQ(StateOf(c.id), ObjectState::kStaged);
  auto live = ledger_->LiveParts("t");
  ASSERT_TRUE(live.ok());
  std::vector<std::string> keys;
  for (const PartRow& p : *live) keys.push_back(p.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"p/a", "p/c0", "p/c1"})) << "nothing of the failed object";
  EXPECT_EQ(Partition(h0_).revision, 2) << "one revision per object that touched it";
  EXPECT_EQ(Partition(h1_).revision, 1);
  auto columns = ledger_->Columns("t");
  ASSERT_TRUE(columns.ok());
  ASSERT_EQ(columns->size(), 1u);
  EXPECT_EQ((*columns)[0].name, "user");
  EXPECT_EQ(*ledger_->SchemaVersion("t"), 1);
}

TEST_P(LedgerTest, AGroupWhoseObjectsAllFailRecordsNoColumns) {
  ObjectRow old = Discover("k", "e1");
  Discover("k", "e2");
  auto results = ledger_->CommitStagedGroup({NewColumn("user")}, {Staged(old.id, {Part(h0_, "p/old", 1)})}, now_);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_EQ((*results)[0].code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ledger_->Columns("t")->empty()) << "no staged part relies on them";
  EXPECT_TRUE(ledger_->LiveParts("t")->empty());
  EXPECT_TRUE(ledger_->Partitions("t")->empty());
}

TEST_P(LedgerTest, AGroupSupersedingAStagedVersionFreesItsPartAfterTheNextLoad) {
  ObjectRow v1 = Discover("k", "e1");
  ASSERT_TRUE(Stage(v1.id, {Part(h0_, "p/v1", 10)}).ok());
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan, 10, now_).ok());
  ObjectRow v2 = Discover("k", "e2");
  ObjectRow other = Discover("other", "e1");
  auto results = ledger_->CommitStagedGroup(
      {}, {Staged(v2.id, {Part(h0_, "p/v2", 12)}), Staged(other.id, {Part(h1_, "p/other", 1)})}, now_);
  ASSERT_TRUE(results.ok());
  for (const Status& s : *results) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ledger_->CollectableParts("t")->empty()) << "v1's rows are in the warehouse until h0 reloads";
  auto plan2 = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan2.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan2, 12, now_).ok());
  auto collectable = ledger_->CollectableParts("t");
  ASSERT_TRUE(collectable.ok());
  ASSERT_EQ(collectable->size(), 1u);
  EXPECT_EQ((*collectable)[0].key, "p/v1");
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

ColumnRecord TypedColumn(const std::string& name, ColumnType type) {
  ColumnRecord c = NewColumn(name);
  c.type = type;
  return c;
}

// Several workers record columns of one table: the ledger only widens a
// column in ways every staged part fits, and refuses a commit whose column
// another worker first recorded with a type its values do not fit.
TEST_P(LedgerTest, ColumnsRecordedByTwoWorkersOnlyWiden) {
  auto type_of = [&](const std::string& name) {
    auto cols = ledger_->Columns("t");
    EXPECT_TRUE(cols.ok());
    for (const ColumnRecord& c : *cols)
      if (c.name == name) return std::string(ColumnTypeName(c.type));
    return std::string("none");
  };
  ObjectRow a = Discover("a", "e1"), b = Discover("b", "e1"), c = Discover("c", "e1"), d = Discover("d", "e1");
  ASSERT_TRUE(
      Stage(a.id, {Part(h0_, "p/a", 1)}, {TypedColumn("n", ColumnType::kInt64), TypedColumn("s", ColumnType::kString)})
          .ok());
  // A worker that saw floats first: INT64 widens to FLOAT64; ints fit it.
  ASSERT_TRUE(Stage(b.id, {Part(h0_, "p/b", 1)}, {TypedColumn("n", ColumnType::kFloat64)}).ok());
  EXPECT_EQ(type_of("n"), "FLOAT64");
  // A stale INT64 and an INT64 into a STRING column: the wider type stays.
  ASSERT_TRUE(
      Stage(c.id, {Part(h0_, "p/c", 1)}, {TypedColumn("n", ColumnType::kInt64), TypedColumn("s", ColumnType::kInt64)})
          .ok());
  EXPECT_EQ(type_of("n"), "FLOAT64");
  EXPECT_EQ(type_of("s"), "STRING");
  // Strings cannot go into a FLOAT64 column: refused, nothing of it kept.
  Status refused = Stage(d.id, {Part(h0_, "p/d", 1)}, {TypedColumn("n", ColumnType::kString)});
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find("column n of table t is FLOAT64"), std::string::npos) << refused.ToString();
  EXPECT_EQ(type_of("n"), "FLOAT64");
  auto obj = ledger_->FindObject("t", "d", "e1");
  ASSERT_TRUE(obj.ok() && obj->has_value());
  EXPECT_EQ((*obj)->state, ObjectState::kPending);
  // A column recorded before any value typed it takes the first type, repeated or not.
  ObjectRow e = Discover("e", "e1"), f = Discover("f", "e1");
  ASSERT_TRUE(Stage(e.id, {Part(h0_, "p/e", 1)}, {TypedColumn("r", ColumnType::kNone)}).ok());
  ColumnRecord nested = TypedColumn("r", ColumnType::kRecord);
  nested.repeated = true;
  ASSERT_TRUE(Stage(f.id, {Part(h0_, "p/f", 1)}, {nested}).ok());
  EXPECT_EQ(type_of("r"), "RECORD");
}

// found_only_by_listing in status and the metrics: versions no event
// announced, except those a newer version replaced.
TEST_P(LedgerTest, CountsTellVersionsFoundOnlyByListing) {
  (void)Discover("a", "e1");
  (void)Discover("a", "e2");  // supersedes a's first version
  ObjectRow b = Discover("b", "e1");
  ASSERT_TRUE(Stage(b.id, {Part(h0_, "p/b", 3)}).ok());
  ASSERT_TRUE(ledger_->RecordDiscovered("t", {Obj("c", "e1"), Obj("d", "e1")}, "event", now_).ok());
  auto c = ledger_->Counts("t", now_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->found_by_listing_only, 2) << "a's second version and b";
  EXPECT_EQ(c->objects_superseded, 1);
  EXPECT_EQ(c->objects_pending, 3);
  EXPECT_EQ(c->objects_staged, 1);
  EXPECT_EQ(c->rows_staged, 3);
}

}  // namespace
}  // namespace logferry
