// Staging through the pipeline under hostile input and failing resources:
// bounded open files however many hours an object spans, the per-object
// partition cap, resource errors and exceptions that fail one object and let
// the pass go on, and one retry layer (the protocol clients), not two.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "common/strings.h"
#include "common/time.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "ledger/ledger.h"
#include "local_http_server.h"
#include "support/fake_env.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

constexpr int64_t kHour = 3'600'000'000LL;
constexpr int64_t kT0 = 1470009600LL * 1'000'000;  // 2016-08-01T00:00Z

// An out_file line at `hours` after 2016-08-01T00:00Z.
std::string LineAt(int64_t hours, int n) {
  return FormatIso8601(kT0 + hours * kHour) + "\tt\t{\"n\":" + std::to_string(n) + "}\n";
}

class StageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lf-stage-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "src");
  }
  void TearDown() override {
    pipeline_.reset();
    ledger_.reset();
    fs::remove_all(dir_);
  }

  void Put(const std::string& key, const std::string& body) { std::ofstream(dir_ / "src" / key) << body; }

  void Open(const std::string& extra = "", const std::string& source = "") {
    std::string text = "state_dir = \"" + dir_.string() + "\"\nworkers = 1\n\n[[table]]\nname = \"access\"\n" +
                       "source = \"" + (source.empty() ? "file://" + (dir_ / "src").string() + "/" : source) +
                       "\"\nstaging = \"file://" + (dir_ / "staging").string() + "/\"\n" + "warehouse = \"duckdb://" +
                       (dir_ / "w.duckdb").string() + "\"\ntimezone = \"+00:00\"\nsettle = \"0s\"\n" + extra;
    auto config = ParseConfig(text, "test.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::make_unique<Config>(std::move(*config));
    auto ledger = Ledger::Open(dir_ / "ledger.db");
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    pipeline_ = std::make_unique<Pipeline>(*config_, ledger_.get(), &env_);
    Status s = pipeline_->Init();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TableRuntime& Table() { return pipeline_->tables()[0]; }

  PassStats DiscoverAndStage() {
    PassStats stats;
    auto found = pipeline_->Discover(Table(), &stats);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    std::atomic<bool> stop{false};
    Status s = pipeline_->Stage(Table(), stop, &stats);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return stats;
  }

  ObjectRow Object(const std::string& key) {
    auto all = ledger_->Objects("access");
    EXPECT_TRUE(all.ok());
    for (ObjectRow& o : *all)
      if (o.key == key) return o;
    ADD_FAILURE() << "no object " << key;
    return {};
  }

  fs::path dir_;
  // From the real time, which the ledger rows the tests make use; the
  // stores' retry backoffs pass on it instantly.
  testutil::FakeEnv env_{NowMicros()};
  std::unique_ptr<Config> config_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Pipeline> pipeline_;
};

// Sets the soft descriptor limit to `headroom` above the descriptors open
// now, and back on destruction.
class DescriptorLimit {
 public:
  explicit DescriptorLimit(int headroom) {
    getrlimit(RLIMIT_NOFILE, &old_);
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(probe);
    rlimit low = old_;
    low.rlim_cur = static_cast<rlim_t>(probe + headroom);
    ok_ = setrlimit(RLIMIT_NOFILE, &low) == 0;
  }
  ~DescriptorLimit() { setrlimit(RLIMIT_NOFILE, &old_); }
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  bool ok_ = false;
};

// One small object whose records spread over 2,000 hours used to hold one
// open part (a file descriptor and a gzip encoder) per hour. Under a limit
// of 150 descriptors it now stages, every hour's rows in their own part.
TEST_F(StageTest, AnObjectSpanningThousandsOfHoursStagesWithinAFewDescriptors) {
  std::string body;
  for (int i = 0; i < 4000; ++i) body += LineAt((i * 7919) % 2000, i);  // every hour twice, scattered
  Put("2016080100_0.log", body);
  ASSERT_NO_FATAL_FAILURE(Open("max_partitions_per_object = 10000\n"));
  PassStats stats;
  {
    DescriptorLimit limit(150);
    ASSERT_TRUE(limit.ok());
    stats = DiscoverAndStage();
  }
  ObjectRow o = Object("2016080100_0.log");
  EXPECT_EQ(o.state, ObjectState::kStaged) << o.last_error;
  EXPECT_EQ(o.rows_staged, 4000);
  EXPECT_EQ(o.bad_records, 0);
  auto parts = ledger_->LiveParts("access");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->size(), 2000u);
}

// A few garbage timestamps cannot open a partition (a load job) each: past
// max_partitions_per_object, records that would open another partition are
// bad records naming the bound. The partition of the object's own time slice
// is always kept, even when garbage comes first.
TEST_F(StageTest, RecordsPastThePartitionCapAreBadRecordsNamingTheBound) {
  std::string body;
  for (int i = 0; i < 30; ++i) body += LineAt((15 + i) * 365 * 24, i);  // 30 garbage years first
  for (int i = 0; i < 10; ++i) body += LineAt(0, 100 + i);              // the object's own hour
  for (int i = 0; i < 10; ++i) body += LineAt(5, 200 + i);              // a sixth partition
  Put("2016080100_0.log", body);
  ASSERT_NO_FATAL_FAILURE(Open("max_partitions_per_object = 5\n"));
  DiscoverAndStage();
  ObjectRow o = Object("2016080100_0.log");
  ASSERT_EQ(o.state, ObjectState::kStaged) << o.last_error;
  EXPECT_EQ(o.lines_read, 50);
  EXPECT_EQ(o.rows_staged, 14);  // 4 garbage partitions and the object's own hour
  EXPECT_EQ(o.bad_records, 36);
  EXPECT_EQ(o.lines_read, o.rows_staged + o.bad_records);
  auto parts = ledger_->LiveParts("access");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->size(), 5u);
  auto bad = ledger_->BadRecords("access", 0, 100);
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->size(), 36u);
  EXPECT_EQ((*bad)[0].record.line, 5);
  EXPECT_EQ((*bad)[0].record.field, "time");
  EXPECT_NE((*bad)[0].record.reason.find("max_partitions_per_object (5)"), std::string::npos)
      << (*bad)[0].record.reason;
  EXPECT_EQ(bad->back().record.line, 50);
}

// Out of descriptors (or disk, or memory) is not transient: the object fails
// at once with the reason, waits for its backoff, and the pass goes on.
TEST_F(StageTest, ResourceErrorsFailTheObjectAndThePassGoesOn) {
  Put("2016080100_0.log", LineAt(0, 1));
  Put("2016080101_0.log", LineAt(1, 2));
  ASSERT_NO_FATAL_FAILURE(Open());
  PassStats stats;
  {
    DescriptorLimit limit(1);  // the source object opens; its part cannot
    ASSERT_TRUE(limit.ok());
    stats = DiscoverAndStage();
  }
  EXPECT_EQ(stats.failed_objects, 2);
  for (const char* key : {"2016080100_0.log", "2016080101_0.log"}) {
    ObjectRow o = Object(key);
    EXPECT_EQ(o.state, ObjectState::kFailed);
    EXPECT_EQ(o.attempts, 1);
    EXPECT_NE(o.last_error.find("RESOURCE_EXHAUSTED"), std::string::npos) << o.last_error;
    EXPECT_NE(o.last_error.find("Too many open files"), std::string::npos) << o.last_error;
    EXPECT_TRUE(o.next_attempt_us.has_value());
  }
}

// A store whose reads throw for one key, as a parser deep inside staging
// might (std::stoll, nlohmann's get<>).
class ThrowingStore final : public ObjectStore {
 public:
  ThrowingStore(std::unique_ptr<ObjectStore> inner, std::string poisoned)
      : inner_(std::move(inner)), poisoned_(std::move(poisoned)) {}
  const std::string& uri() const override { return inner_->uri(); }
  StatusOr<ListPage> List(std::string_view p, std::string_view t, size_t n) override { return inner_->List(p, t, n); }
  StatusOr<ObjectInfo> Stat(std::string_view key) override { return inner_->Stat(key); }
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& o) override {
    if (key == poisoned_) throw std::out_of_range("stoll");
    return inner_->OpenRead(key, o);
  }
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override { return inner_->OpenWrite(key); }
  Status Delete(std::string_view key) override { return inner_->Delete(key); }

 private:
  std::unique_ptr<ObjectStore> inner_;
  std::string poisoned_;
};

TEST_F(StageTest, AnExceptionInAWorkerFailsThatObjectOnly) {
  Put("2016080100_0.log", LineAt(0, 1));
  Put("2016080100_1.log", LineAt(0, 2));
  Put("2016080100_2.log", LineAt(0, 3));
  ASSERT_NO_FATAL_FAILURE(Open());
  Table().source = std::make_unique<ThrowingStore>(std::move(Table().source), "2016080100_1.log");
  PassStats stats = DiscoverAndStage();
  EXPECT_EQ(stats.staged_objects, 2);
  EXPECT_EQ(stats.failed_objects, 1);
  EXPECT_EQ(Object("2016080100_0.log").state, ObjectState::kStaged);
  EXPECT_EQ(Object("2016080100_2.log").state, ObjectState::kStaged);
  ObjectRow o = Object("2016080100_1.log");
  EXPECT_EQ(o.state, ObjectState::kFailed);
  EXPECT_NE(o.last_error.find("2016080100_1.log"), std::string::npos) << o.last_error;
  EXPECT_NE(o.last_error.find("unexpected error while staging: stoll"), std::string::npos) << o.last_error;
}

// A damaged part sends its object back to staging; if the ledger refuses
// that, the partition's error says so instead of the failure being dropped.
TEST_F(StageTest, AFailedRestageIsReportedWithTheLoadError) {
  Put("2016080100_0.log", LineAt(0, 1));
  ASSERT_NO_FATAL_FAILURE(Open());
  DiscoverAndStage();
  auto parts = ledger_->LiveParts("access");
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 1u);
  fs::remove(dir_ / "staging" / (*parts)[0].key);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "ledger.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER refuse_restage BEFORE UPDATE OF state ON objects WHEN NEW.state='pending' "
                         "BEGIN SELECT RAISE(ABORT, 'restage refused by the test'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  PassStats stats;
  std::atomic<bool> stop{false};
  Status s = pipeline_->Load(Table(), stop, &stats);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.partitions_failed, 1);
  auto partitions = ledger_->Partitions("access");
  ASSERT_TRUE(partitions.ok());
  ASSERT_EQ(partitions->size(), 1u);
  const std::string& error = (*partitions)[0].last_error;
  EXPECT_NE(error.find("sending its object back to staging failed"), std::string::npos) << error;
  EXPECT_NE(error.find("restage refused by the test"), std::string::npos) << error;
}

// One retry layer: the S3 client retries each request (6 attempts, the
// core's per-request policy) and the core does not wrap it again. A source
// that always answers 503 sees exactly 6 listings and 6 HEADs per object,
// not 6 x 4; the object then fails for this pass and waits for its backoff.
TEST_F(StageTest, AFailingCallIsAttemptedByOneRetryLayerOnly) {
  setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "stand-in-secret", 1);
  setenv("AWS_REGION", "us-east-1", 1);
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  LocalHttpServer s3([](const LocalHttpRequest&) {
    return LocalHttpResponse{503, {}, "<Error><Code>ServiceUnavailable</Code><Message>m</Message></Error>"};
  });
  ASSERT_NO_FATAL_FAILURE(Open("source_endpoint = \"" + s3.Url() + "\"\nregion = \"us-east-1\"\n", "s3://b/logs/"));
  auto listed = pipeline_->Discover(Table());
  EXPECT_EQ(listed.status().code(), StatusCode::kUnavailable) << listed.status().ToString();
  EXPECT_EQ(s3.Requests().size(), 6u);

  ObjectInfo info{"2016080100_0.log", 10, 0, "e1"};
  ASSERT_TRUE(ledger_->RecordDiscovered("access", {info}, "listing", NowMicros()).ok());
  PassStats stats;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(pipeline_->Stage(Table(), stop, &stats).ok());
  EXPECT_EQ(stats.failed_objects, 1);
  EXPECT_EQ(s3.Requests().size(), 12u);
  // Five backoffs per request, on the pipeline's clock: no wall time.
  EXPECT_EQ(env_.sleeps().size(), 10u);
  ObjectRow o = Object("2016080100_0.log");
  EXPECT_EQ(o.state, ObjectState::kFailed);
  EXPECT_NE(o.last_error.find("UNAVAILABLE"), std::string::npos) << o.last_error;
}

}  // namespace
}  // namespace logferry
