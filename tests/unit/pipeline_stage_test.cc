// Staging with several workers at once over file:// stores: every object is
// staged once, every line is accounted for, and the shared schema registry
// and ledger see every new column. scripts/sanitize.sh runs this under
// ThreadSanitizer.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.h"
#include "core/pipeline.h"
#include "ledger/ledger.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

void WriteGzip(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  gzFile f = gzopen(path.c_str(), "wb1");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

class PipelineStage : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-stage-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    pipeline_.reset();
    ledger_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void Open(int workers) {
    std::string text = "state_dir = \"" + (dir_ / "state").string() + "\"\nworkers = " + std::to_string(workers) +
                       "\n\n[[table]]\nname = \"access\"\nsource = \"file://" + (dir_ / "src").string() +
                       "/\"\nstaging = \"file://" + (dir_ / "staging").string() + "/\"\nwarehouse = \"duckdb://" +
                       (dir_ / "w.duckdb").string() + "\"\nformat = \"out_file\"\ntimezone = \"+00:00\"\n";
    auto config = ParseConfig(text, "test.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::make_unique<Config>(std::move(*config));
    fs::create_directories(dir_ / "state");
    auto ledger = Ledger::Open((dir_ / "state" / "ledger.db").string());
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(ledger).value();
    pipeline_ = std::make_unique<Pipeline>(*config_, ledger_.get());
    ASSERT_TRUE(pipeline_->Init().ok());
  }

  // Object i holds `lines` records in hour (i % 3), each with a field only
  // objects of its kind have, so workers add columns concurrently.
  void WriteObjects(int objects, int lines, int bad_every) {
    for (int i = 0; i < objects; ++i) {
      std::string text;
      for (int l = 0; l < lines; ++l) {
        if (bad_every && l % bad_every == 0) {
          text += "2016-08-01T0" + std::to_string(i % 3) + ":00:00Z\tapp\t{not json\n";
          continue;
        }
        text += "2016-08-01T0" + std::to_string(i % 3) + ":00:" + std::to_string(10 + l % 50) +
                "Z\tapp\t{\"n\":" + std::to_string(l) + ",\"kind" + std::to_string(i % 7) + "\":\"v\"}\n";
      }
      char name[64];
      snprintf(name, sizeof name, "201608010%d_%d.gz", i % 3, i);
      WriteGzip(dir_ / "src" / name, text);
    }
  }

  fs::path dir_;
  std::unique_ptr<Config> config_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(PipelineStage, ManyWorkersStageEveryObjectOnceAndCountEveryLine) {
  constexpr int kObjects = 48, kLines = 300, kBadEvery = 50;
  WriteObjects(kObjects, kLines, kBadEvery);
  Open(4);
  TableRuntime& t = *pipeline_->table("access");
  auto discovered = pipeline_->Discover(t);
  ASSERT_TRUE(discovered.ok()) << discovered.status().ToString();
  EXPECT_EQ(*discovered, kObjects);
  std::atomic<bool> stop{false};
  PassStats stats;
  ASSERT_TRUE(pipeline_->Stage(t, stop, &stats).ok());
  EXPECT_EQ(stats.staged_objects, kObjects);
  EXPECT_EQ(stats.failed_objects, 0);
  EXPECT_EQ(stats.bad_records, kObjects * (kLines / kBadEvery));
  EXPECT_EQ(stats.rows_staged + stats.bad_records, kObjects * kLines);

  auto counts = ledger_->Counts("access", 0);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->objects_staged, kObjects);
  EXPECT_EQ(counts->rows_staged, stats.rows_staged);
  auto parts = ledger_->LiveParts("access", std::nullopt);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->size(), static_cast<size_t>(kObjects)) << "one part per (object, hour)";
  for (int k = 0; k < 7; ++k)
    EXPECT_NE(t.schema->Find(t.schema->root(), "kind" + std::to_string(k)), nullptr) << "kind" << k;

  // A second pass finds nothing new.
  discovered = pipeline_->Discover(t);
  ASSERT_TRUE(discovered.ok());
  EXPECT_EQ(*discovered, 0);
}

// Each line ~100 bytes of hex digits, which gzip cannot shrink much.
void WriteLargeObject(const fs::path& path, int hour, size_t bytes) {
  std::string text;
  uint64_t x = 0x9e3779b97f4a7c15ULL ^ bytes ^ static_cast<uint64_t>(hour) ^ std::hash<std::string>{}(path);
  while (text.size() < bytes) {
    char digits[65];
    for (int i = 0; i < 64; i += 16) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      snprintf(digits + i, 17, "%016llx", static_cast<unsigned long long>(x));
    }
    text += "2016-08-01T0" + std::to_string(hour) + ":00:00Z\tapp\t{\"h\":\"" + digits + "\"}\n";
  }
  WriteGzip(path, text);
}

// A worker claims about 2 MiB of source per staging thread, not 8 objects:
// with objects of a megabyte or more, a second worker sharing the ledger
// finds all but the object the first is on, so two split a backlog evenly
// instead of one staging 8 objects while the other waits for its pass to end.
TEST_F(PipelineStage, LargeObjectsAreClaimedOneAtATimeSoASecondWorkerSharesTheBacklog) {
  constexpr int kObjects = 12;
  for (int i = 0; i < kObjects; ++i) {
    char name[64];
    snprintf(name, sizeof name, "201608010%d_%d.gz", i % 3, i);
    WriteLargeObject(dir_ / "src" / name, i % 3, 3 << 20);
  }
  Open(1);
  TableRuntime& a = *pipeline_->table("access");
  ASSERT_TRUE(pipeline_->Discover(a).ok());
  ASSERT_GE(fs::file_size(dir_ / "src" / "2016080100_0.gz"), 1u << 20) << "the objects must be large";

  auto ledger_b = Ledger::Open((dir_ / "state" / "ledger.db").string());
  ASSERT_TRUE(ledger_b.ok()) << ledger_b.status().ToString();
  Pipeline b(*config_, ledger_b->get());
  b.set_worker("worker-b");
  ASSERT_TRUE(b.Init().ok());
  // Worker b runs its whole staging step when a has committed its second
  // object: a's first claim takes one object whatever its size, the second
  // is sized from it.
  std::atomic<bool> stop{false};
  PassStats stats_b;
  int commits_a = 0;
  pipeline_->set_progress([&](const std::string&) {
    if (++commits_a != 2) return;
    Status staged = b.Stage(*b.table("access"), stop, &stats_b);
    EXPECT_TRUE(staged.ok()) << staged.ToString();
  });
  PassStats stats_a;
  ASSERT_TRUE(pipeline_->Stage(a, stop, &stats_a).ok());
  ASSERT_GE(commits_a, 2);
  EXPECT_EQ(stats_a.staged_objects + stats_b.staged_objects, kObjects);
  EXPECT_EQ(stats_a.staged_objects, 2) << "a held no claim on the rest when its second object committed";
  EXPECT_EQ(stats_b.staged_objects, kObjects - 2);
  EXPECT_EQ(stats_a.failed_objects + stats_b.failed_objects, 0);
}

}  // namespace
}  // namespace logferry
