// The ledger's re-processing: restage (objects sent back to staging with the
// current config), skip and unskip, and the read-only ledger preview opens.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/time.h"
#include "ledger/ledger.h"
#include "support/ledger_backends.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

PartRow Part(int64_t hour_us, std::string key, int64_t rows) {
  PartRow p;
  p.hour_us = hour_us;
  p.partition_us = hour_us;
  p.key = std::move(key);
  p.rows = rows;
  p.bytes = rows * 10;
  p.crc32c = "00000000";
  return p;
}

class LedgerReprocessTest : public ::testing::TestWithParam<testing::Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-ledger-reprocess-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    location_ = testing::NewLedgerLocation(GetParam(), dir_);
    ASSERT_FALSE(location_.empty());
    auto l = Ledger::Open(path());
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    ledger_ = std::move(l).value();
  }
  void TearDown() override {
    ledger_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& path() const { return location_; }

  ObjectRow Discover(const std::string& key, const std::string& etag) {
    ObjectInfo o{key, 100, 1, etag};
    EXPECT_TRUE(ledger_->RecordDiscovered("t", {o}, "listing", now_).ok());
    auto row = ledger_->FindObject("t", key, etag);
    EXPECT_TRUE(row.ok() && row->has_value());
    return row.ok() && row->has_value() ? **row : ObjectRow{};
  }
  Status Stage(int64_t id, std::vector<PartRow> parts, int64_t bad = 0) {
    StagedObject st;
    st.object_id = id;
    for (auto& p : parts) {
      p.object_id = id;
      st.rows_staged += p.rows;
    }
    st.bad_total = bad;
    st.lines_read = st.rows_staged + bad;
    st.parts = std::move(parts);
    return ledger_->CommitStaged(st, now_);
  }
  ObjectRow Row(int64_t id) {
    std::vector<ObjectRow> all = ledger_->Objects("t").value();
    for (const ObjectRow& o : all)
      if (o.id == id) return o;
    ADD_FAILURE() << "no object " << id;
    return {};
  }
  PartitionRow Partition(int64_t p) {
    std::vector<PartitionRow> all = ledger_->Partitions("t").value();
    for (const PartitionRow& r : all)
      if (r.partition_us == p) return r;
    return {};
  }
  // Marks every pending partition loaded at its revision.
  void LoadAll() {
    std::vector<PartitionRow> all = ledger_->Partitions("t").value();
    for (const PartitionRow& p : all) {
      auto plan = ledger_->BeginLoad("t", p.partition_us, now_);
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE(ledger_->FinishLoad(*plan, plan->expected_rows, now_).ok());
    }
  }

  std::string dir_;
  std::string location_;  // the ledger's file or URI
  std::unique_ptr<Ledger> ledger_;
  int64_t now_ = *ParseIso8601("2016-08-02T00:00:00Z");
  const int64_t h0_ = *ParseIso8601("2016-08-01T00:00:00Z");
  const int64_t h1_ = *ParseIso8601("2016-08-01T01:00:00Z");
};

LF_INSTANTIATE_LEDGER_BACKENDS(LedgerReprocessTest);

TEST_P(LedgerReprocessTest, RestageSendsStagedAndFailedObjectsBackAndLeavesOthers) {
  ObjectRow staged = Discover("a", "e1");
  ASSERT_TRUE(Stage(staged.id, {Part(h0_, "t/h0/a", 5)}).ok());
  ObjectRow failed = Discover("b", "e1");
  ASSERT_TRUE(ledger_->MarkFailed(failed.id, "boom", now_ + kMicrosPerHour).ok());
  ObjectRow pending = Discover("c", "e1");
  ObjectRow skipped = Discover("d", "e1");
  ASSERT_TRUE(ledger_->Skip("t", "d", "broken", now_).ok());

  auto counts = ledger_->RestageObjects("t", {staged.id, failed.id, pending.id, skipped.id}, "restage");
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->staged, 1);
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->pending, 1);
  EXPECT_EQ(counts->left, 1);
  EXPECT_EQ(Row(skipped.id).state, ObjectState::kSkipped);
  auto due = ledger_->DueObjects("t", now_);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 3u) << "the failed one is due at once, not after its backoff";
  // The staged object's parts stay live (and loaded) until the new staging commits.
  EXPECT_EQ(ledger_->LiveParts("t").value().size(), 1u);
  EXPECT_FALSE(ledger_->RestageObjects("other", {staged.id}, "x").ok()) << "an object of another table";
}

TEST_P(LedgerReprocessTest, RestagingTheSameVersionReplacesItsPartsAndObsoletesHoursItNoLongerWrites) {
  ObjectRow o = Discover("a", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "t/h0/v", 0)}, /*bad=*/10).ok());
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "t/h0/v", 3), Part(h1_, "t/h1/v", 7)}).ok());  // a first restage
  LoadAll();
  int64_t rev0 = Partition(h0_).revision;
  ASSERT_TRUE(ledger_->RestageObjects("t", {o.id}, "restage").ok());
  // The new config puts every row in hour 1: hour 0's part is no longer the object's.
  ASSERT_TRUE(Stage(o.id, {Part(h1_, "t/h1/v", 10)}).ok());
  EXPECT_EQ(Row(o.id).state, ObjectState::kStaged);
  EXPECT_EQ(Row(o.id).bad_records, 0);
  auto live = ledger_->LiveParts("t").value();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].key, "t/h1/v");
  EXPECT_EQ(live[0].rows, 10);
  EXPECT_GT(Partition(h0_).revision, rev0) << "hour 0 reloads without the part";
  EXPECT_TRUE(Partition(h0_).pending());
  EXPECT_TRUE(ledger_->CollectableParts("t").value().empty()) << "not before hour 0 has reloaded";
  LoadAll();
  auto collectable = ledger_->CollectableParts("t").value();
  ASSERT_EQ(collectable.size(), 1u);
  EXPECT_EQ(collectable[0].key, "t/h0/v");
  auto keys = ledger_->PartKeys("t").value();
  EXPECT_EQ(keys.count("t/h0/v"), 1u) << "an obsolete part is known until collected, so the sweep leaves it";
}

TEST_P(LedgerReprocessTest, SkipRefusesAStagedObjectAndUnskipSendsItBack) {
  ObjectRow staged = Discover("a", "e1");
  ASSERT_TRUE(Stage(staged.id, {Part(h0_, "t/h0/a", 5)}).ok());
  auto refused = ledger_->Skip("t", "a", "no", now_);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ledger_->Skip("t", "missing", "no", now_).status().code(), StatusCode::kNotFound);

  ObjectRow broken = Discover("b", "e1");
  ASSERT_TRUE(ledger_->MarkFailed(broken.id, "corrupt", now_).ok());
  auto skipped = ledger_->Skip("t", "b", "truncated upload", now_);
  ASSERT_TRUE(skipped.ok()) << skipped.status().ToString();
  EXPECT_EQ(skipped->state, ObjectState::kSkipped);
  EXPECT_EQ(skipped->skip_reason, "truncated upload");
  EXPECT_EQ(skipped->skipped_us, now_);
  auto counts = ledger_->Counts("t", now_).value();
  EXPECT_EQ(counts.objects_skipped, 1);
  EXPECT_EQ(counts.objects_failed, 0);
  EXPECT_TRUE(ledger_->DueObjects("t", now_ + kMicrosPerDay).value().empty()) << "never due";
  EXPECT_EQ(ledger_->MarkFailed(broken.id, "late worker", now_).code(), StatusCode::kOk);
  EXPECT_EQ(Row(broken.id).state, ObjectState::kSkipped) << "a worker's late failure does not undo a skip";

  auto back = ledger_->Unskip("t", "b");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->state, ObjectState::kPending);
  EXPECT_EQ(back->skip_reason, "");
  EXPECT_EQ(ledger_->DueObjects("t", now_).value().size(), 1u);
  EXPECT_EQ(ledger_->Unskip("t", "b").status().code(), StatusCode::kNotFound);
}

TEST_P(LedgerReprocessTest, SkippingAnObjectWithPartsFromAnEarlierStagingDropsThem) {
  ObjectRow o = Discover("a", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "t/h0/a", 5)}).ok());
  LoadAll();
  ASSERT_TRUE(ledger_->RestageObjects("t", {o.id}, "restage").ok());
  ASSERT_TRUE(ledger_->MarkFailed(o.id, "cannot read", now_).ok());
  ASSERT_TRUE(ledger_->Skip("t", "a", "gone for good", now_).ok());
  EXPECT_TRUE(ledger_->LiveParts("t").value().empty());
  EXPECT_TRUE(Partition(h0_).pending()) << "its partition reloads without its rows";
}

TEST_P(LedgerReprocessTest, ANewVersionOfASkippedKeySupersedesIt) {
  ObjectRow old = Discover("a", "e1");
  ASSERT_TRUE(ledger_->Skip("t", "a", "broken", now_).ok());
  ObjectRow fixed = Discover("a", "e2");
  EXPECT_EQ(Row(old.id).state, ObjectState::kSuperseded);
  EXPECT_EQ(Row(fixed.id).state, ObjectState::kPending);
}

TEST_P(LedgerReprocessTest, AReadOnlyLedgerReadsAndWritesNothing) {
  if (GetParam() == testing::Backend::kPostgres) {
    ObjectRow o = Discover("a", "e1");
    auto ro = Ledger::OpenReadOnly(path());
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_EQ((*ro)->Objects("t").value().size(), 1u);
    Status write = (*ro)->Skip("t", "a", "x", now_).status();
    EXPECT_EQ(write.code(), StatusCode::kPermissionDenied) << write.ToString();
    EXPECT_EQ(Row(o.id).state, ObjectState::kPending);
    return;
  }
  ObjectRow o = Discover("a", "e1");
  ASSERT_TRUE(Stage(o.id, {Part(h0_, "t/h0/a", 5)}).ok());
  ledger_.reset();  // closed: the -wal file goes
  auto listing = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  auto before = listing();
  {
    auto ro = Ledger::OpenReadOnly(path());
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_EQ((*ro)->Objects("t").value().size(), 1u);
    EXPECT_FALSE((*ro)->Skip("t", "a", "x", now_).ok()) << "writes fail";
  }
  EXPECT_EQ(listing(), before);
  EXPECT_EQ(Ledger::OpenReadOnly(dir_ + "/none.db").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ + "/none.db"));
}

}  // namespace
}  // namespace logferry
