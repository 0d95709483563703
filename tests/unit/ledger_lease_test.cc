// Leases of several workers on one ledger: objects and partitions are
// claimed by one live worker at a time, lapse unless renewed, are taken over
// once lapsed, and are released when the work's outcome is recorded; a load
// that finishes after its worker lost the partition is not recorded. On both
// backends (support/ledger_backends.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/time.h"
#include "ledger/ledger.h"
#include "support/ledger_backends.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = kMicrosPerSecond;
constexpr int64_t kLease = 120 * kSecond;

class LeaseTest : public ::testing::TestWithParam<testing::Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-lease-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string location = testing::NewLedgerLocation(GetParam(), dir_);
    ASSERT_FALSE(location.empty());
    auto l = Ledger::Open(location);
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
    std::vector<std::string> out;
    for (const LoadRow& l : Loads()) out.push_back(l.worker);
    return out;
  }

  std::vector<LoadRow> Loads() {
    auto loads = ledger_->Loads("t");
    EXPECT_TRUE(loads.ok()) << loads.status().ToString();
    return loads.ok() ? *loads : std::vector<LoadRow>{};
  }

  PartitionRow Partition() {
    auto all = ledger_->Partitions("t");
    EXPECT_TRUE(all.ok() && all->size() == 1);
    return all.ok() && !all->empty() ? all->front() : PartitionRow{};
  }

  std::string dir_;
  std::unique_ptr<Ledger> ledger_;
  int64_t now_ = *ParseIso8601("2016-08-02T00:00:00Z");
  const int64_t h0_ = *ParseIso8601("2016-08-01T00:00:00Z");
};
LF_INSTANTIATE_LEDGER_BACKENDS(LeaseTest);

TEST(WorkerIdTest, NamesHostPidAndStart) {
  ProcessRow p{.host = "h1", .pid = 42, .started_us = 1000};
  EXPECT_EQ(p.worker_id(), "h1:42:1000");
  ProcessRow reused = p;
  reused.started_us = 2000;
  EXPECT_NE(reused.worker_id(), p.worker_id()) << "a reused pid is another worker";
}

TEST_P(LeaseTest, AClaimNeverReturnsAnObjectAnotherLiveLeaseHolds) {
  DiscoverKeys({"a", "b", "c"});
  EXPECT_EQ(Claim("A", now_, 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Claim("B", now_), (std::vector<std::string>{"c"}));
  EXPECT_EQ(Claim("C", now_), std::vector<std::string>{});
  // A worker's own claims come back to it (it renews them so).
  EXPECT_EQ(Claim("A", now_ + kSecond), (std::vector<std::string>{"a", "b"}));
  // And DueObjects, which knows no workers, still lists all three.
  EXPECT_EQ(ledger_->DueObjects("t", now_)->size(), 3u);
}

TEST_P(LeaseTest, ALapsedLeaseIsTakenOver) {
  DiscoverKeys({"a"});
  EXPECT_EQ(Claim("A", now_).size(), 1u);
  EXPECT_TRUE(Claim("B", now_ + kLease - 1).empty()) << "still A's";
  EXPECT_EQ(Claim("B", now_ + kLease), (std::vector<std::string>{"a"})) << "lapsed: B takes it over";
  EXPECT_TRUE(Claim("A", now_ + kLease + 1).empty()) << "A lost it";
}

TEST_P(LeaseTest, RenewingKeepsTheLeaseAndReleasingFreesIt) {
  DiscoverKeys({"a"});
  ASSERT_EQ(Claim("A", now_).size(), 1u);
  ASSERT_TRUE(ledger_->RenewLeases("A", now_ + 2 * kLease).ok());
  EXPECT_TRUE(Claim("B", now_ + kLease + 1).empty()) << "renewed past its first expiry";
  ASSERT_TRUE(ledger_->ReleaseLeases("A").ok());
  EXPECT_EQ(Claim("B", now_ + kLease + 1).size(), 1u);
}

TEST_P(LeaseTest, CommittingOrFailingReleasesTheObject) {
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

TEST_P(LeaseTest, LeasesAndLeasedVersionsListOnlyLiveLeases) {
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

TEST_P(LeaseTest, APartitionIsClaimedByOneWorkerAtATime) {
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

TEST_P(LeaseTest, ALoadedPartitionIsNotClaimedUntilItNeedsLoadingAgain) {
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

TEST_P(LeaseTest, LoadsRecordTheWorkerThatRanThem) {
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

// The case the finish check is for: A's lease lapses while its load runs (A
// stopped, or cut off from the ledger); B takes the partition over and loads
// a newer snapshot; A's job may then run after B's and put the older rows
// back. A's finish must not become the partition's state, and the partition
// must be replaced again.
TEST_P(LeaseTest, ALoadFinishedAfterItsWorkerLostThePartitionIsRefusedAndReplacedAgain) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto a = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->worker, "A");
  DiscoverKeys({"b"});
  StageOne("b");
  int64_t later = now_ + kLease;
  ASSERT_TRUE(ClaimPartition("B", later)) << "A's lease lapsed";
  auto b = ledger_->BeginLoad("t", h0_, later);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(b->load_id, a->load_id) << "the partition changed: a new load";
  ASSERT_TRUE(ledger_->FinishLoad(*b, 2, later + kSecond).ok());
  ASSERT_TRUE(ledger_->ReleasePartition("t", h0_, "B").ok());
  EXPECT_FALSE(Partition().pending());

  Status late = ledger_->FinishLoad(*a, 1, later + 2 * kSecond);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition) << late.ToString();
  PartitionRow p = Partition();
  EXPECT_EQ(p.load_id, b->load_id) << "B's load stays the partition's record";
  EXPECT_EQ(p.rows_loaded, 2);
  EXPECT_TRUE(p.pending()) << "the warehouse may hold A's older rows";
  auto due = ledger_->DuePartitions("t", kMicrosPerHour, 0, later + 2 * kSecond);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 1u);
  std::vector<LoadRow> loads = Loads();
  ASSERT_EQ(loads.size(), 2u);
  EXPECT_EQ(loads[0].worker, "A");
  EXPECT_EQ(loads[0].outcome, "lapsed");
  EXPECT_EQ(loads[0].rows, 1);
  EXPECT_EQ(loads[1].worker, "B");
  EXPECT_EQ(loads[1].outcome, "loaded");

  // The next load replaces the partition with every live part, and settles it.
  ASSERT_TRUE(ClaimPartition("A", later + 3 * kSecond));
  auto again = ledger_->BeginLoad("t", h0_, later + 3 * kSecond);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->parts.size(), 2u);
  EXPECT_EQ(again->expected_rows, 2);
  ASSERT_TRUE(ledger_->FinishLoad(*again, 2, later + 4 * kSecond).ok());
  EXPECT_FALSE(Partition().pending());
  EXPECT_EQ(Partition().load_id, again->load_id);
}

TEST_P(LeaseTest, ARefusedFinishOutlivesTheNewHoldersFinish) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto a = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(a.ok());
  int64_t later = now_ + kLease;
  ASSERT_TRUE(ClaimPartition("B", later));
  // Nothing changed: B resumes A's load under its id (one BigQuery job for both).
  auto b = ledger_->BeginLoad("t", h0_, later);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->load_id, a->load_id);
  EXPECT_EQ(b->worker, "B");
  EXPECT_EQ(ledger_->FinishLoad(*a, 1, later + kSecond).code(), StatusCode::kFailedPrecondition)
      << "B holds the partition now";
  EXPECT_EQ(Loads().at(0).outcome, "") << "B's load (resumed): A leaves it to B";
  ASSERT_TRUE(ledger_->FinishLoad(*b, 1, later + 2 * kSecond).ok());
  EXPECT_EQ(Loads().at(0).outcome, "loaded");
  EXPECT_TRUE(Partition().pending()) << "A's refusal still calls for a replace";
}

TEST_P(LeaseTest, ALapsedLeaseNobodyTookStillRecordsTheLoad) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto a = ledger_->BeginLoad("t", h0_, now_);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(ledger_->Leases(now_ + kLease)->empty()) << "lapsed";
  ASSERT_TRUE(ledger_->FinishLoad(*a, 1, now_ + 2 * kLease).ok()) << "no other load began";
  EXPECT_FALSE(Partition().pending());
  EXPECT_EQ(Loads().at(0).outcome, "loaded");
}

TEST_P(LeaseTest, AnAppendFinishedAfterItsWorkerLostThePartitionIsRefused) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto a = ledger_->BeginAppend("t", h0_, now_, /*resume_only=*/false);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->kind, AppendPlan::Kind::kAppend);
  EXPECT_EQ(a->worker, "A");
  int64_t later = now_ + kLease;
  ASSERT_TRUE(ClaimPartition("B", later));
  auto b = ledger_->BeginLoad("t", h0_, later);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(ledger_->FinishLoad(*b, 1, later + kSecond).ok());

  Status late = ledger_->FinishAppend(*a, 2, later + 2 * kSecond);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition) << late.ToString();
  PartitionRow p = Partition();
  EXPECT_EQ(p.appends, 0) << "not recorded";
  EXPECT_FALSE(p.appendable) << "no append before the replace";
  EXPECT_TRUE(p.pending());
  EXPECT_EQ(p.rows_in_warehouse, 1) << "the parts B's replace loaded stay so";
}

TEST_P(LeaseTest, AnAppendResumedByAnotherWorkerIsThatWorkersToFinish) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ClaimPartition("A", now_));
  auto a = ledger_->BeginAppend("t", h0_, now_, /*resume_only=*/false);
  ASSERT_TRUE(a.ok());
  int64_t later = now_ + kLease;
  ASSERT_TRUE(ClaimPartition("B", later));
  auto b = ledger_->BeginAppend("t", h0_, later, /*resume_only=*/true);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->resumed);
  EXPECT_EQ(b->load_id, a->load_id);
  EXPECT_EQ(LoadWorkers(), (std::vector<std::string>{"B"}));
  EXPECT_EQ(ledger_->FinishAppend(*a, 1, later + kSecond).code(), StatusCode::kFailedPrecondition);
  Status finished = ledger_->FinishAppend(*b, 1, later + 2 * kSecond);
  EXPECT_TRUE(finished.ok()) << finished.ToString();
  EXPECT_EQ(Loads().at(0).outcome, "appended");
  EXPECT_EQ(Partition().rows_in_warehouse, 1);
  EXPECT_TRUE(Partition().requested) << "replaced after A's refusal";
}

TEST_P(LeaseTest, LoadsListsOnePartitionOrAll) {
  DiscoverKeys({"a"});
  StageOne("a");
  ASSERT_TRUE(ledger_->BeginLoad("t", h0_, now_).ok());
  EXPECT_EQ(ledger_->Loads("t", h0_)->size(), 1u);
  EXPECT_EQ(ledger_->Loads("t", h0_ + kMicrosPerHour)->size(), 0u);
  EXPECT_EQ(ledger_->Loads("other")->size(), 0u);
  LoadRow l = Loads().at(0);
  EXPECT_EQ(l.kind, "replace");
  EXPECT_EQ(l.partition_us, h0_);
  EXPECT_EQ(l.started_us, now_);
  EXPECT_FALSE(l.finished_us.has_value());
}

TEST_P(LeaseTest, EveryRecentlyLiveProcessIsKeptHoweverMany) {
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
