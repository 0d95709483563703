// Leases of several workers on one ledger: objects and partitions are
// claimed by one live worker at a time, lapse unless renewed, are taken over
// once lapsed, and are released when the work's outcome is recorded.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "common/time.h"
#include "ledger/ledger.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = kMicrosPerSecond;
constexpr int64_t kLease = 120 * kSecond;

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-lease-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto l = Ledger::Open(dir_ + "/ledger.db");
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    ledger_ = std::move(l).value();
  }
  void TearDown() override {
    ledger_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void DiscoverKeys(const std::vector<std::string>& keys) {
    std::vector<ObjectInfo> listed;
    for (const std::string& k : keys) listed.push_back(ObjectInfo{.key = k, .size = 10, .mtime_us = 1, .etag = "e"});
    ASSERT_TRUE(ledger_->RecordDiscovered("t", listed, "listing", now_).ok());
  }

  std::vector<std::string> Claim(const std::string& worker, int64_t at_us, int64_t limit = 100) {
    auto rows = ledger_->ClaimObjects("t", worker, at_us, at_us + kLease, limit);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<std::string> keys;
    if (rows.ok())
      for (const ObjectRow& r : *rows) keys.push_back(r.key);
    return keys;
  }

  bool ClaimPartition(const std::string& worker, int64_t at_us) {
    auto mine = ledger_->ClaimPartition("t", h0_, worker, at_us, at_us + kLease);
    EXPECT_TRUE(mine.ok()) << mine.status().ToString();
    return mine.value_or(false);
  }

  // Stages object `key` with one part in partition h0_.
  void StageOne(const std::string& key) {
    auto all = ledger_->Objects("t");
    ASSERT_TRUE(all.ok());
    for (const ObjectRow& o : *all) {
      if (o.key != key) continue;
      StagedObject st;
      st.object_id = o.id;
      st.parts.push_back(PartRow{.object_id = o.id,
                                 .hour_us = h0_,
                                 .partition_us = h0_,
                                 .key = "p/" + key,
                                 .rows = 1,
                                 .bytes = 1,
                                 .crc32c = "00000000"});
      st.rows_staged = st.lines_read = 1;
      ASSERT_TRUE(ledger_->CommitStaged(st, now_).ok());
      return;
    }
    FAIL() << "no object " << key;
  }

  // The workers that recorded the table's loads, oldest first.
  std::vector<std::string> LoadWorkers() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ + "/ledger.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT coalesce(worker, '') FROM loads ORDER BY id", -1, &st, nullptr),
              SQLITE_OK);
    std::vector<std::string> out;
    while (sqlite3_step(st) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  std::string dir_;
  std::unique_ptr<Ledger> ledger_;
  int64_t now_ = *ParseIso8601("2016-08-02T00:00:00Z");
  const int64_t h0_ = *ParseIso8601("2016-08-01T00:00:00Z");
};

TEST_F(LeaseTest, WorkerIdsNameHostPidAndStart) {
  ProcessRow p{.host = "h1", .pid = 42, .started_us = 1000};
  EXPECT_EQ(p.worker_id(), "h1:42:1000");
  ProcessRow reused = p;
  reused.started_us = 2000;
  EXPECT_NE(reused.worker_id(), p.worker_id()) << "a reused pid is another worker";
}

TEST_F(LeaseTest, AClaimNeverReturnsAnObjectAnotherLiveLeaseHolds) {
  DiscoverKeys({"a", "b", "c"});
  EXPECT_EQ(Claim("A", now_, 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Claim("B", now_), (std::vector<std::string>{"c"}));
  EXPECT_EQ(Claim("C", now_), std::vector<std::string>{});
  // A worker's own claims come back to it (it renews them so).
  EXPECT_EQ(Claim("A", now_ + kSecond), (std::vector<std::string>{"a", "b"}));
  // And DueObjects, which knows no workers, still lists all three.
  EXPECT_EQ(ledger_->DueObjects("t", now_)->size(), 3u);
}

TEST_F(LeaseTest, ALapsedLeaseIsTakenOver) {
  DiscoverKeys({"a"});
  EXPECT_EQ(Claim("A", now_).size(), 1u);
  EXPECT_TRUE(Claim("B", now_ + kLease - 1).empty()) << "still A's";
  EXPECT_EQ(Claim("B", now_ + kLease), (std::vector<std::string>{"a"})) << "lapsed: B takes it over";
  EXPECT_TRUE(Claim("A", now_ + kLease + 1).empty()) << "A lost it";
}

TEST_F(LeaseTest, RenewingKeepsTheLeaseAndReleasingFreesIt) {
  DiscoverKeys({"a"});
  ASSERT_EQ(Claim("A", now_).size(), 1u);
  ASSERT_TRUE(ledger_->RenewLeases("A", now_ + 2 * kLease).ok());
  EXPECT_TRUE(Claim("B", now_ + kLease + 1).empty()) << "renewed past its first expiry";
  ASSERT_TRUE(ledger_->ReleaseLeases("A").ok());
  EXPECT_EQ(Claim("B", now_ + kLease + 1).size(), 1u);
}

TEST_F(LeaseTest, CommittingOrFailingReleasesTheObject) {
  DiscoverKeys({"a", "b"});
  ASSERT_EQ(Claim("A", now_).size(), 2u);
  StageOne("a");
  auto all = ledger_->Objects("t");
  ASSERT_TRUE(all.ok());
  int64_t b_id = (*all)[1].id;
  ASSERT_TRUE(ledger_->MarkFailed(b_id, "boom", now_ + 10 * kSecond).ok());
  auto leases = ledger_->Leases(now_);
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty()) << leases->front().worker << " still holds " << leases->front().what;
  EXPECT_TRUE(Claim("B", now_ + kSecond).empty()) << "staged, and the failed one backs off";
  EXPECT_EQ(Claim("B", now_ + 10 * kSecond), (std::vector<std::string>{"b"})) << "due again: anyone's";
}

TEST_F(LeaseTest, LeasesAndLeasedVersionsListOnlyLiveLeases) {
  DiscoverKeys({"a", "b"});
  ASSERT_EQ(Claim("A", now_, 1).size(), 1u);
  ASSERT_EQ(Claim("B", now_ + kSecond, 1).size(), 1u);
  auto versions = ledger_->LeasedVersions("t", now_ + 2 * kSecond);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, (std::set<std::string>{Ledger::VersionId("t", "a", "e"), Ledger::VersionId("t", "b", "e")}));
  auto leases = ledger_->Leases(now_ + kLease);  // A's lapsed, B's not yet
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].worker, "B");
  EXPECT_EQ((*leases)[0].kind, "object");
  EXPECT_EQ((*leases)[0].what, "b");
  EXPECT_EQ(ledger_->LeasedVersions("t", now_ + kLease + kSecond)->size(), 0u);
}

TEST_F(LeaseTest, APartitionIsClaimedByOneWorkerAtATime) {
  DiscoverKeys({"a"});
  StageOne("a");
  EXPECT_TRUE(ClaimPartition("A", now_));
  EXPECT_FALSE(ClaimPartition("B", now_ + kSecond));
  EXPECT_TRUE(ClaimPartition("A", now_ + kSecond)) << "its own again";
  // Another worker's release does not free it.
  ASSERT_TRUE(ledger_->ReleasePartition("t", h0_, "B").ok());
  EXPECT_FALSE(ClaimPartition("B", now_ + 2 * kSecond));
  ASSERT_TRUE(ledger_->ReleasePartition("t", h0_, "A").ok());
  EXPECT_TRUE(ClaimPartition("B", now_ + 2 * kSecond));
  auto leases = ledger_->Leases(now_ + 3 * kSecond);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].kind, "partition");
  EXPECT_EQ((*leases)[0].what, "2016-08-01T00:00:00Z");
}

TEST_F(LeaseTest, ALoadedPartitionIsNotClaimedUntilItNeedsLoadingAgain) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*plan, 1, now_ + kSecond).ok());
  ASSERT_TRUE(ledger_->ReleasePartition("t", h0_, "A").ok());
  EXPECT_FALSE(ClaimPartition("B", now_ + 2 * kSecond)) << "loaded already: nothing to do";
  ASSERT_TRUE(ledger_->RecordRequest("t", "cli", "", h0_, h0_ + kMicrosPerHour, kMicrosPerHour, now_).ok());
  EXPECT_TRUE(ClaimPartition("B", now_ + 2 * kSecond)) << "a reload was requested";
}

TEST_F(LeaseTest, LoadsRecordTheWorkerThatRanThem) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto plan = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(plan.ok());
  // A dies during the load; B takes the partition over once A's lease
  // lapses and resumes the same load (same id), which is B's now.
  ASSERT_TRUE(ClaimPartition("B", now_ + kLease));
  auto resumed = ledger_->BeginLoad("t", h0_, now_ + kLease);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->load_id, plan->load_id);
  EXPECT_EQ(LoadWorkers(), (std::vector<std::string>{"B"}));
  ASSERT_TRUE(ledger_->FinishLoad(*resumed, 1, now_ + kLease + kSecond).ok());
  ASSERT_TRUE(ledger_->ReleasePartition("t", h0_, "B").ok());
  // A new version of the object: a new load, by whoever claims it.
  DiscoverKeys({"b"});
  StageOne("b");
  ASSERT_TRUE(ClaimPartition("C", now_ + kLease + 2 * kSecond));
  ASSERT_TRUE(ledger_->BeginLoad("t", h0_, now_ + kLease + 2 * kSecond).ok());
  EXPECT_EQ(LoadWorkers(), (std::vector<std::string>{"B", "C"}));
}

TEST_F(LeaseTest, EveryRecentlyLiveProcessIsKeptHoweverMany) {
  for (int64_t i = 0; i < Ledger::kKeptProcesses + 5; ++i) {
    ProcessRow p{.host = "h", .pid = 1000 + i, .started_us = now_, .mode = "daemon", .heartbeat_us = now_ + i};
    ASSERT_TRUE(ledger_->RecordProcess(p).ok());
  }
  auto all = ledger_->Processes();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(static_cast<int64_t>(all->size()), Ledger::kKeptProcesses + 5);
}

}  // namespace
}  // namespace logferry
