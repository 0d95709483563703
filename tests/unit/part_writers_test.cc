// The part-writer set: one gzip NDJSON part per hour, with a bounded number
// of parts open at once whatever the number of hours.
#include "core/part_writers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "common/strings.h"
#include "format/compression.h"
#include "registry/scheme_registry.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = 3'600'000'000LL;

long OpenFds() {
  return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator());
}

class PartWriterSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-parts-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = OpenObjectStore("file://" + dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  std::unique_ptr<ObjectStore> store_;
};

// 200 hours, each written to 20 times in turn, through at most 8 open parts:
// every part is suspended and taken up again many times. Each part still
// holds exactly its rows (as one gzip stream of many members), and the size
// and CRC32C reported are those of the file.
TEST_F(PartWriterSetTest, OpenPartsStayBoundedAndEveryPartHoldsItsRows) {
  PartWriterSet set(
      *store_, [](int64_t hour) { return "p/" + std::to_string(hour / kHour) + ".ndjson.gz"; }, 8);
  std::map<int64_t, std::string> expected;
  // The store holds one descriptor of its filesystem (for syncfs) from its
  // first write synced later on.
  auto warm = store_->OpenWriteSyncedLater("warm");
  ASSERT_TRUE(warm.ok() && (*warm)->Commit().ok());
  warm->reset();
  long baseline = OpenFds(), most = 0;
  for (int round = 0; round < 20; ++round) {
    for (int h = 0; h < 200; ++h) {
      std::string row = "{\"h\":" + std::to_string(h) + ",\"r\":" + std::to_string(round) + "}\n";
      ASSERT_TRUE(set.Append(h * kHour, row).ok());
      expected[h * kHour] += row;
      ASSERT_LE(set.open_parts(), 8u);
      most = std::max(most, OpenFds() - baseline);
    }
  }
  EXPECT_LE(most, 8);
  EXPECT_EQ(set.parts(), 200u);
  auto finished = set.Finish();
  ASSERT_TRUE(finished.ok()) << finished.status().ToString();
  ASSERT_EQ(finished->size(), 200u);
  EXPECT_EQ(OpenFds(), baseline) << "every part is closed once finished";
  for (size_t i = 0; i < finished->size(); ++i) {
    const FinishedPart& p = (*finished)[i];
    EXPECT_EQ(p.hour_us, static_cast<int64_t>(i) * kHour) << "parts come in hour order";
    EXPECT_EQ(p.rows, 20);
    auto bytes = store_->ReadAll(p.key);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_EQ(p.written.size, bytes->size());
    EXPECT_EQ(p.written.crc32c, Crc32cHex(Crc32c(0, bytes->data(), bytes->size())));
    auto text = Decompress(*bytes, Compression::kGzip);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_EQ(*text, expected[p.hour_us]) << p.key;
  }
}

// A set dropped without Finish (staging failed) leaves nothing visible.
TEST_F(PartWriterSetTest, ASetDroppedBeforeFinishLeavesNoParts) {
  {
    PartWriterSet set(
        *store_, [](int64_t hour) { return "r/" + std::to_string(hour / kHour); }, 2);
    for (int h = 0; h < 5; ++h) {
      ASSERT_TRUE(set.Append(h * kHour, "{}\n").ok());
    }
  }
  auto left = store_->ListAll("r/");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  EXPECT_FALSE(fs::exists(dir_ + "/r") && !fs::is_empty(dir_ + "/r")) << "no temp files either";
}

}  // namespace
}  // namespace logferry
