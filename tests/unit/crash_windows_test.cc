// The crash windows of staging, loading and requests, through the pipeline
// over in-memory stores (mem://), a fault-injecting staging store and a fake
// warehouse, instead of through the binary. Each test stops the pipeline at
// one window, "restarts" (a new ledger handle and pipeline over the same
// stores and warehouse, as a new process would find them), and checks the
// exactly-once outcome: every partition holds each source line once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <string>

#include "common/time.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "core/requests.h"
#include "core/restage.h"
#include "ledger/ledger.h"
#include "registry/scheme_registry.h"
#include "store/memory_store.h"
#include "support/fake_warehouse.h"
#include "support/fault_injection_store.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using testutil::FakeWarehouseScheme;
using testutil::FakeWarehouseState;
using testutil::FaultInjectionStore;
using testutil::SimulatedCrash;
using Fault = FaultInjectionStore::Fault;

constexpr int64_t kHour = 3'600'000'000LL;
constexpr int64_t kT0 = 1470009600LL * 1'000'000;  // 2016-08-01T00:00Z

// out_file lines numbered [from, to), all in hour `hours` after kT0.
std::string Lines(int64_t hours, int from, int to) {
  std::string out;
  for (int n = from; n < to; ++n)
    out += FormatIso8601(kT0 + hours * kHour) + "\tt\t{\"n\":" + std::to_string(n) + "}\n";
  return out;
}

// Staging through a store that records what a group's sync covers and what
// the ledger knew of those keys at that moment (queried by `known`).
class SyncRecordingStore final : public ObjectStore {
 public:
  using Known = std::function<size_t(const std::vector<std::string>&)>;
  SyncRecordingStore(std::unique_ptr<ObjectStore> inner, Known known)
      : inner_(std::move(inner)), known_(std::move(known)) {}

  const std::string& uri() const override { return inner_->uri(); }
  StatusOr<ListPage> List(std::string_view p, std::string_view t, size_t n) override { return inner_->List(p, t, n); }
  StatusOr<ObjectInfo> Stat(std::string_view key) override { return inner_->Stat(key); }
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& o) override {
    return inner_->OpenRead(key, o);
  }
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override { return inner_->OpenWrite(key); }
  StatusOr<std::unique_ptr<WriteStream>> OpenWriteSyncedLater(std::string_view key) override {
    written_later.insert(std::string(key));
    return inner_->OpenWriteSyncedLater(key);
  }
  Status SyncWritten(const std::vector<std::string>& keys) override {
    ++syncs;
    known_at_sync += known_(keys);
    synced.insert(keys.begin(), keys.end());
    return inner_->SyncWritten(keys);
  }
  Status Delete(std::string_view key) override { return inner_->Delete(key); }

  int syncs = 0;
  size_t known_at_sync = 0;
  std::set<std::string> written_later, synced;

 private:
  std::unique_ptr<ObjectStore> inner_;
  Known known_;
};

// The numbers in hour h after kT0: {from, ..., to-1}.
std::set<int> Range(int from, int to) {
  std::set<int> s;
  for (int n = from; n < to; ++n) s.insert(n);
  return s;
}

class CrashWindows : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lf-crash-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Schemes().Register(MemoryScheme(objects_));
    Schemes().Register(FakeWarehouseScheme(warehouse_));
    std::string text = "state_dir = \"" + dir_.string() +
                       "\"\nworkers = 1\n\n[[table]]\nname = \"access\"\nsource = \"mem://src/logs/\"\n"
                       "staging = \"mem://stg/\"\nwarehouse = \"fakewh://w\"\ntimezone = \"+00:00\"\n"
                       "settle = \"0s\"\nretry_base = \"0s\"\nretry_max = \"0s\"\n";
    auto config = ParseConfig(text, "test.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::make_unique<Config>(std::move(*config));
    ASSERT_NO_FATAL_FAILURE(Restart());
  }
  void TearDown() override {
    pipeline_.reset();
    ledger_.reset();
    Schemes().Unregister("mem");
    Schemes().Unregister("fakewh");
    fs::remove_all(dir_);
  }

  // A new process: the ledger reopened, the stores opened afresh (no faults).
  void Restart() {
    pipeline_.reset();
    ledger_.reset();
    auto ledger = Ledger::Open(dir_ / "ledger.db");
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    pipeline_ = std::make_unique<Pipeline>(*config_, ledger_.get());
    Status s = pipeline_->Init();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TableRuntime& Table() { return pipeline_->tables()[0]; }

  void PutSource(const std::string& key, const std::string& body) {
    auto source = OpenObjectStore("mem://src/logs/");
    ASSERT_TRUE(source.ok());
    ASSERT_TRUE((*source)->WriteAll(key, body).ok());
  }

  // Staging from here on fails or tears as armed.
  FaultInjectionStore& InjectIntoStaging(Fault fault, int nth) {
    auto* faulty = new FaultInjectionStore(std::move(Table().staging));
    Table().staging.reset(faulty);
    faulty->Inject(fault, nth);
    return *faulty;
  }

  void DiscoverAndStage() {
    PassStats stats;
    std::atomic<bool> stop{false};
    ASSERT_TRUE(pipeline_->Discover(Table(), &stats).ok());
    ASSERT_TRUE(pipeline_->Stage(Table(), stop, &stats).ok());
  }

  void Load() {
    PassStats stats;
    std::atomic<bool> stop{false};
    Status s = pipeline_->Load(Table(), stop, &stats);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // One full pass; passes `n` times.
  void RunPasses(int n) {
    std::atomic<bool> stop{false};
    for (int i = 0; i < n; ++i) {
      auto stats = pipeline_->RunOnce(stop);
      ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    }
  }

  std::set<std::string> StagingKeys(const std::string& prefix) {
    auto staging = OpenObjectStore("mem://stg/");
    EXPECT_TRUE(staging.ok());
    auto listed = (*staging)->ListAll(prefix);
    EXPECT_TRUE(listed.ok());
    std::set<std::string> keys;
    for (const ObjectInfo& o : *listed) keys.insert(o.key);
    return keys;
  }

  // Exactly once: the warehouse holds, per partition (hours after kT0),
  // exactly these line numbers, none twice, and the ledger marks each one
  // loaded with that many rows.
  void ExpectExactlyOnce(const std::map<int64_t, std::set<int>>& expected) {
    std::lock_guard lock(warehouse_->mu);
    std::map<int64_t, std::set<int>> held;
    for (const auto& [partition, rows] : warehouse_->rows) {
      if (rows.empty()) continue;
      std::multiset<int> numbers;
      static const std::regex kN("\"n\":([0-9]+)");
      for (const std::string& row : rows) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(row, m, kN)) << row;
        numbers.insert(std::stoi(m[1]));
      }
      std::set<int> unique(numbers.begin(), numbers.end());
      EXPECT_EQ(unique.size(), numbers.size()) << "duplicate rows in partition " << FormatIso8601(partition);
      held[(partition - kT0) / kHour] = unique;
    }
    EXPECT_EQ(held, expected);
    auto partitions = ledger_->Partitions("access");
    ASSERT_TRUE(partitions.ok());
    EXPECT_EQ(partitions->size(), expected.size());
    for (const PartitionRow& p : *partitions) {
      auto it = expected.find((p.partition_us - kT0) / kHour);
      ASSERT_NE(it, expected.end()) << FormatIso8601(p.partition_us);
      EXPECT_FALSE(p.pending()) << FormatIso8601(p.partition_us) << ": " << p.last_error;
      EXPECT_EQ(p.rows_loaded, static_cast<int64_t>(it->second.size())) << FormatIso8601(p.partition_us);
    }
  }

  int Replacements(int64_t hours) {
    std::lock_guard lock(warehouse_->mu);
    return warehouse_->replacements[kT0 + hours * kHour];
  }

  fs::path dir_;
  std::shared_ptr<MemoryObjects> objects_ = NewMemoryObjects();
  std::shared_ptr<FakeWarehouseState> warehouse_ = std::make_shared<FakeWarehouseState>();
  std::unique_ptr<Config> config_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Pipeline> pipeline_;
};

// Window: a part is written, the ledger commit of its object is not (the
// crash comes while the object's next part is written). The next process
// stages the object again under the same part names, so the part written
// before the crash is overwritten rather than left beside a second copy.
TEST_F(CrashWindows, APartWrittenBeforeTheLedgerCommitIsRewrittenUnderTheSameName) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10) + Lines(1, 10, 20)));
  FaultInjectionStore& staging = InjectIntoStaging(Fault::kCrash, 1);
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  ASSERT_TRUE(staging.crashed());
  ASSERT_EQ(staging.persisted().size(), 1u);
  std::string orphan = staging.persisted()[0];
  EXPECT_EQ(StagingKeys("access/"), std::set<std::string>{orphan});
  auto known = ledger_->PartKeys("access");
  ASSERT_TRUE(known.ok());
  EXPECT_TRUE(known->empty()) << "the ledger must not know a part of an object it did not commit";

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  known = ledger_->PartKeys("access");
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(known->size(), 2u);
  EXPECT_TRUE(known->count(orphan)) << "the same part name is written again";
  EXPECT_EQ(StagingKeys("access/"), *known);
  ExpectExactlyOnce({{0, Range(0, 10)}, {1, Range(10, 20)}});
  EXPECT_EQ(Replacements(0), 1);
  EXPECT_EQ(Replacements(1), 1);
}

// Window: as above, but the source object is replaced before the next
// process runs. The old version's part is then a stray no ledger row names:
// the sweep removes it and it is never loaded.
TEST_F(CrashWindows, AStrayPartOfAReplacedVersionIsSweptAndNeverLoaded) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10) + Lines(1, 10, 20)));
  FaultInjectionStore& staging = InjectIntoStaging(Fault::kCrash, 1);
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  ASSERT_EQ(staging.persisted().size(), 1u);
  std::string stray = staging.persisted()[0];
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 100, 105)));

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  std::set<std::string> keys = StagingKeys("access/");
  EXPECT_FALSE(keys.count(stray)) << stray << " was not swept";
  auto known = ledger_->PartKeys("access");
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(keys, *known);
  ExpectExactlyOnce({{0, Range(100, 105)}});
}

// Window: a part write cut part-way that the store still acknowledged. The
// ledger records the checksum of what was meant to be written; the load
// finds the mismatch before the warehouse sees the part, sends the object
// back to staging, and the next pass loads the rewritten part.
TEST_F(CrashWindows, ATornPartIsCaughtByItsChecksumAndStagedAgain) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 50)));
  InjectIntoStaging(Fault::kTear, 1);
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  ASSERT_NO_FATAL_FAILURE(Load());
  EXPECT_EQ(Replacements(0), 0) << "a torn part must never reach the warehouse";
  auto partitions = ledger_->Partitions("access");
  ASSERT_TRUE(partitions.ok());
  ASSERT_EQ(partitions->size(), 1u);
  EXPECT_NE((*partitions)[0].last_error.find("checksum mismatch"), std::string::npos) << (*partitions)[0].last_error;

  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  ExpectExactlyOnce({{0, Range(0, 50)}});
  EXPECT_EQ(Replacements(0), 1);
}

// Window: the warehouse replaced the partition, but its answer was lost, so
// the ledger did not mark it loaded. The next pass replaces it again, with
// the same rows: replacing is idempotent, never additive.
TEST_F(CrashWindows, APartitionReplacedButNotMarkedLoadedIsReplacedAgainWithTheSameRows) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10)));
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080101_0.log", Lines(1, 10, 30)));
  warehouse_->lose_answers = 1;
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  auto partitions = ledger_->Partitions("access");
  ASSERT_TRUE(partitions.ok());
  int pending = 0;
  for (const PartitionRow& p : *partitions) pending += p.pending();
  EXPECT_EQ(pending, 1) << "the partition whose answer was lost is not marked loaded";

  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  ExpectExactlyOnce({{0, Range(0, 10)}, {1, Range(10, 30)}});
  EXPECT_EQ(Replacements(0) + Replacements(1), 3) << "one partition replaced twice, the other once";
}

// Window: the process dies right after the warehouse committed a
// replacement, before the ledger heard of it. The next process finds the
// partition still due and replaces it again with the same rows.
TEST_F(CrashWindows, ACrashAfterTheReplaceLeavesThePartitionToBeReplacedAgain) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10)));
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  warehouse_->crash_after_replace = true;
  std::atomic<bool> stop{false};
  PassStats stats;
  EXPECT_THROW((void)pipeline_->Load(Table(), stop, &stats), SimulatedCrash);
  EXPECT_EQ(Replacements(0), 1);

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  ExpectExactlyOnce({{0, Range(0, 10)}});
  EXPECT_EQ(Replacements(0), 2);
}

// out_file lines without an offset: the table's timezone places them.
std::string LocalLines(int hour, int from, int to) {
  std::string out;
  for (int n = from; n < to; ++n)
    out += "2016-08-01T" + std::string(hour < 10 ? "0" : "") + std::to_string(hour) +
           ":30:00\tt\t{\"n\":" + std::to_string(n) + "}\n";
  return out;
}

// Window: `restage` after a wrong timezone; the process dies once the first
// rewritten part is written, before the ledger commit. The next process
// stages the object again: its new hours hold its rows once, its old hours
// reload empty, and their parts are collected.
TEST_F(CrashWindows, ARestageKilledBeforeItsCommitIsFinishedByTheNextPass) {
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080110_0.log", LocalLines(10, 0, 10) + LocalLines(11, 10, 20)));
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  ExpectExactlyOnce({{10, Range(0, 10)}, {11, Range(10, 20)}});

  std::string text = "state_dir = \"" + dir_.string() +
                     "\"\nworkers = 1\n\n[[table]]\nname = \"access\"\nsource = \"mem://src/logs/\"\n"
                     "staging = \"mem://stg/\"\nwarehouse = \"fakewh://w\"\ntimezone = \"+09:00\"\n"
                     "settle = \"0s\"\nretry_base = \"0s\"\nretry_max = \"0s\"\n";
  auto fixed = ParseConfig(text, "test.toml");
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  *config_ = std::move(*fixed);
  ASSERT_NO_FATAL_FAILURE(Restart());
  RestageSelection all;
  all.slices = {kT0 - kHour * 24, kT0 + kHour * 24};
  auto restaged = Restage(Table(), *ledger_, all, "test");
  ASSERT_TRUE(restaged.ok()) << restaged.status().ToString();
  EXPECT_EQ(restaged->sent.staged, 1);
  FaultInjectionStore& staging = InjectIntoStaging(Fault::kCrash, 1);
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  ASSERT_TRUE(staging.crashed());
  ASSERT_NO_FATAL_FAILURE(Load());  // nothing committed: the old rows stay loaded meanwhile
  EXPECT_EQ(Replacements(10), 1);

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(1));
  {
    std::lock_guard lock(warehouse_->mu);
    EXPECT_EQ(warehouse_->rows[kT0 + 10 * kHour].size(), 0u);
    EXPECT_EQ(warehouse_->rows[kT0 + 11 * kHour].size(), 0u);
    EXPECT_EQ(warehouse_->rows[kT0 + 1 * kHour].size(), 10u);
    EXPECT_EQ(warehouse_->rows[kT0 + 2 * kHour].size(), 10u);
  }
  EXPECT_EQ(Replacements(10), 2) << "the old hour reloads, empty";
  auto partitions = ledger_->Partitions("access");
  ASSERT_TRUE(partitions.ok());
  for (const PartitionRow& p : *partitions) EXPECT_FALSE(p.pending()) << FormatIso8601(p.partition_us);
  auto known = ledger_->PartKeys("access");
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(known->size(), 2u) << "the old hours' parts are collected";
  EXPECT_EQ(StagingKeys("access/"), *known);
}

// Loads hour 0 once, then writes a reload request for it into staging.
class CrashWindowsRequests : public CrashWindows {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(CrashWindows::SetUp());
    ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10)));
    ASSERT_NO_FATAL_FAILURE(RunPasses(1));
    ASSERT_EQ(Replacements(0), 1);
    auto staging = OpenObjectStore("mem://stg/");
    ASSERT_TRUE(staging.ok());
    ASSERT_TRUE((*staging)->WriteAll("_requests/r1.json", R"({"table": "access", "from": "2016-08-01T00"})").ok());
  }

  size_t RequestsIn(const std::string& state) {
    auto rows = ledger_->Requests("access", state);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? rows->size() : 0;
  }
};

// Window: the request is copied to done/, and the process dies before the
// ledger records it. The next process reads the original again, rewrites the
// same copy, records it once, and reloads the partition once.
// The core follows the warehouse's job policy (BigQuery's daily budget, here
// the fake's job limit): one job under the ledger's merged name, counted once
// even when a crash after the replace makes the next pass resume it, and a
// job held back leaves its partitions pending at no cost.
TEST_F(CrashWindows, AJobTheWarehouseMergesIsSentOnceUnderTheLedgersNameAndAHeldJobWaits) {
  warehouse_->job_limit = 1;
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_0.log", Lines(0, 0, 10) + Lines(1, 10, 20) + Lines(2, 20, 30)));
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  warehouse_->crash_after_replace = true;
  EXPECT_THROW(Load(), SimulatedCrash);
  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_EQ(warehouse_->job_ids.size(), 2u);
  EXPECT_EQ(warehouse_->job_ids[0], warehouse_->job_ids[1]) << "the restart resumes the same job";
  EXPECT_TRUE(std::regex_match(warehouse_->job_ids[0], std::regex("logferry_access_2016080100_m3_[0-9a-f]{16}")))
      << warehouse_->job_ids[0];
  EXPECT_EQ(ledger_->Counts("access", NowMicros())->load_jobs_24h, 1) << "a resumed job is counted once";
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce({{0, Range(0, 10)}, {1, Range(10, 20)}, {2, Range(20, 30)}}));

  // A new object in hour 1: its job would be the second, past the limit.
  ASSERT_NO_FATAL_FAILURE(PutSource("2016080101_0.log", Lines(1, 30, 35)));
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  ASSERT_NO_FATAL_FAILURE(Load());
  EXPECT_EQ(warehouse_->job_ids.size(), 2u) << "held back";
  EXPECT_EQ(ledger_->Counts("access", NowMicros())->load_jobs_24h, 1);
  auto partitions = ledger_->Partitions("access");
  ASSERT_TRUE(partitions.ok());
  EXPECT_TRUE((*partitions)[1].pending());
  EXPECT_EQ((*partitions)[1].last_error, "") << "waiting is not failing";

  warehouse_->job_limit = 2;
  ASSERT_NO_FATAL_FAILURE(Load());
  EXPECT_EQ(warehouse_->job_ids.size(), 3u);
  EXPECT_EQ(ledger_->Counts("access", NowMicros())->load_jobs_24h, 2);
  std::set<int> hour1 = Range(10, 20);
  for (int n : Range(30, 35)) hour1.insert(n);
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce({{0, Range(0, 10)}, {1, hour1}, {2, Range(20, 30)}}));
}

TEST_F(CrashWindowsRequests, ARequestCopiedToDoneButNotRecordedIsFiledOnce) {
  InjectIntoStaging(Fault::kCrashThrow, 1);
  EXPECT_THROW((void)pipeline_->ProcessRequests(Table()), SimulatedCrash);
  EXPECT_EQ(StagingKeys("_requests/"), (std::set<std::string>{"_requests/done/r1.json", "_requests/r1.json"}));
  EXPECT_EQ(RequestsIn("queued") + RequestsIn("done"), 0u);

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(2));
  EXPECT_EQ(StagingKeys("_requests/"), std::set<std::string>{"_requests/done/r1.json"});
  EXPECT_EQ(RequestsIn("done"), 1u);
  EXPECT_EQ(RequestsIn("queued"), 0u);
  ExpectExactlyOnce({{0, Range(0, 10)}});
  EXPECT_EQ(Replacements(0), 2) << "loaded once, then reloaded once for the request";
}

// Window: the request is copied and recorded, and the process dies before
// the original is deleted. The next process knows it (by URI and etag): it
// only finishes the delete, and the reload does not run twice.
TEST_F(CrashWindowsRequests, ARecordedRequestWhoseOriginalSurvivedIsNotRunTwice) {
  InjectIntoStaging(Fault::kCrash, 1);
  EXPECT_TRUE(pipeline_->ProcessRequests(Table()).ok());  // the failed delete waits for the next pass
  EXPECT_EQ(StagingKeys("_requests/"), (std::set<std::string>{"_requests/done/r1.json", "_requests/r1.json"}));
  EXPECT_EQ(RequestsIn("queued"), 1u);

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(RunPasses(2));
  EXPECT_EQ(StagingKeys("_requests/"), std::set<std::string>{"_requests/done/r1.json"});
  EXPECT_EQ(RequestsIn("done"), 1u);
  EXPECT_EQ(RequestsIn("queued"), 0u);
  ExpectExactlyOnce({{0, Range(0, 10)}});
  EXPECT_EQ(Replacements(0), 2) << "loaded once, then reloaded once for the request";
}

// Order: a commit group's parts are synced (bytes and names, SyncWritten)
// before the ledger commit that names them, and every part the ledger
// names was covered by a sync.
TEST_F(CrashWindows, AGroupsPartsAreSyncedBeforeTheLedgerCommitThatNamesThem) {
  for (int i = 0; i < 6; ++i)
    ASSERT_NO_FATAL_FAILURE(PutSource("2016080100_" + std::to_string(i) + ".log",
                                      Lines(0, i * 100, i * 100 + 5) + Lines(1 + i % 2, i * 100 + 5, i * 100 + 9)));
  auto* recording = new SyncRecordingStore(std::move(Table().staging), [&](const std::vector<std::string>& keys) {
    auto known = ledger_->PartKeys("access");
    EXPECT_TRUE(known.ok());
    return static_cast<size_t>(std::count_if(keys.begin(), keys.end(),
                                             [&](const std::string& k) { return known.ok() && known->count(k) > 0; }));
  });
  Table().staging.reset(recording);
  ASSERT_NO_FATAL_FAILURE(DiscoverAndStage());
  auto named = ledger_->PartKeys("access");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->size(), 12u);
  EXPECT_GE(recording->syncs, 1);
  EXPECT_EQ(recording->known_at_sync, 0u) << "the ledger named a part before its sync";
  EXPECT_EQ(recording->written_later, recording->synced);
  for (const std::string& key : *named) EXPECT_EQ(recording->synced.count(key), 1u) << key << " never synced";
}

}  // namespace
}  // namespace logferry
