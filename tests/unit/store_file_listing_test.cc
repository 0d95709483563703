// file:// windowed listings over one flat directory, as Fluentd writes it:
// a listing from a key on answers from an earlier read of the directory
// while the directory is unchanged (store/directory_cache.h), and never
// misses what was created, renamed in, rewritten or removed since.
//
// The store's clock (a FakeEnv) runs an hour ahead of the file system's, so
// that directories made by the test look older than the trust margin; the
// test that needs them recent uses the real time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "store/directory_cache.h"
#include "store/file_store.h"
#include "support/fake_env.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using testutil::FakeEnv;

int64_t RealNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t kHourMicros = 3'600'000'000;

class FlatListingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-flat-listing-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/web");
    // Old slices and the window's, in one directory.
    for (int h = 0; h < 24; ++h)
      for (int i = 0; i < 5; ++i) Create(Key(2016073100 + h, i), "old\n");
    for (int i = 0; i < 3; ++i) Create(Key(2016080100, i), "new\n");
    Open(RealNowMicros() + kHourMicros);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void Open(int64_t now_us) {
    env_ = std::make_unique<FakeEnv>(now_us);
    auto s = FileStore::Open(FileUri(dir_ + "/"), env_.get());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  static std::string Key(int64_t slice, int index) {
    return "web/" + std::to_string(slice) + "_" + std::to_string(index) + ".gz";
  }
  // Written in place, as a writer other than logferry would.
  void Create(const std::string& key, const std::string& data, int flags = O_CREAT | O_TRUNC) {
    int fd = open((dir_ + "/" + key).c_str(), O_WRONLY | flags, 0644);
    ASSERT_GE(fd, 0) << key;
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  // The window's keys and etags: from the slice after `after` on.
  std::map<std::string, std::string> Window(const std::string& after = "web/2016073123_99") {
    auto page = store_->List("web/", after, store_->list_page_keys());
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::map<std::string, std::string> out;
    if (page.ok())
      for (auto& o : page->objects) out[o.key] = o.etag;
    return out;
  }
  int64_t reads() const { return static_cast<FileStore&>(*store_).directory_reads(); }

  std::string dir_;
  std::unique_ptr<FakeEnv> env_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(FlatListingTest, AnUnchangedDirectoryIsNotReadAgain) {
  auto first = Window();
  EXPECT_EQ(first.size(), 3u);
  int64_t after_first = reads();
  EXPECT_EQ(after_first, 2) << "the root and web/";
  EXPECT_EQ(Window(), first);
  EXPECT_EQ(Window("web/2016080100_0.gz"),
            (std::map<std::string, std::string>{{Key(2016080100, 1), first[Key(2016080100, 1)]},
                                                {Key(2016080100, 2), first[Key(2016080100, 2)]}}))
      << "a window that moved on keeps the names after its start";
  EXPECT_EQ(reads(), after_first);
}

TEST_F(FlatListingTest, AFileCreatedInTheWindowAfterAListingIsFound) {
  Window();
  int64_t before = reads();
  Create(Key(2016080101, 0), "newer\n");
  auto next = Window();
  EXPECT_EQ(next.size(), 4u);
  EXPECT_TRUE(next.count(Key(2016080101, 0)));
  EXPECT_GT(reads(), before);
}

// Copies (cp -p, rsync -t, tar) keep the file's old mtime and may set the
// directory's back too: the directory's ctime still moves.
TEST_F(FlatListingTest, AFileCreatedWithOldTimesIsFound) {
  Window();
  struct stat dir_before;
  ASSERT_EQ(stat((dir_ + "/web").c_str(), &dir_before), 0);
  Create(Key(2016080100, 7), "copied\n");
  struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ + "/" + Key(2016080100, 7)).c_str(), old, 0), 0);
  struct timespec dir_times[2] = {dir_before.st_atim, dir_before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ + "/web").c_str(), dir_times, 0), 0);
  EXPECT_TRUE(Window().count(Key(2016080100, 7)));
}

TEST_F(FlatListingTest, ARewriteInPlaceIsFound) {
  auto first = Window();
  int64_t before = reads();
  Create(Key(2016080100, 1), "rewritten, longer\n", O_TRUNC);
  auto next = Window();
  EXPECT_EQ(reads(), before) << "a rewrite in place leaves the directory as it was";
  ASSERT_TRUE(next.count(Key(2016080100, 1)));
  EXPECT_NE(next[Key(2016080100, 1)], first[Key(2016080100, 1)]);
}

TEST_F(FlatListingTest, ARemovedOrRenamedFileIsGone) {
  Window();
  ASSERT_EQ(unlink((dir_ + "/" + Key(2016080100, 0)).c_str()), 0);
  ASSERT_EQ(rename((dir_ + "/" + Key(2016080100, 1)).c_str(), (dir_ + "/" + Key(2016080102, 1)).c_str()), 0);
  auto next = Window();
  EXPECT_EQ(next.size(), 2u);
  EXPECT_TRUE(next.count(Key(2016080100, 2)));
  EXPECT_TRUE(next.count(Key(2016080102, 1)));
}

TEST_F(FlatListingTest, ADirectoryChangedRecentlyIsReadAgain) {
  Open(RealNowMicros());  // the directory was just written: within the margin
  Window();
  int64_t before = reads();
  EXPECT_EQ(Window().size(), 3u);
  EXPECT_EQ(reads(), before + 2);
}

TEST_F(FlatListingTest, AnEarlierWindowReadsTheDirectoryAgain) {
  Window("web/2016080100_0.gz");
  int64_t before = reads();
  auto earlier = Window("web/2016073122_99");
  EXPECT_EQ(earlier.size(), 3u + 5u);
  EXPECT_GT(reads(), before);
}

TEST_F(FlatListingTest, ANewHourDirectoryIsFound) {
  fs::create_directories(dir_ + "/web/2016/08/01/00");
  Create("web/2016/08/01/00/a.gz", "x\n");
  auto first = store_->List("web/2016/", "web/2016/07", SIZE_MAX);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->objects.size(), 1u);
  fs::create_directories(dir_ + "/web/2016/08/01/01");
  Create("web/2016/08/01/01/b.gz", "x\n");
  Create("web/2016/08/01/00/c.gz", "x\n");
  auto next = store_->List("web/2016/", "web/2016/07", SIZE_MAX);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->objects.size(), 3u);
  EXPECT_EQ(next->objects[1].key, "web/2016/08/01/00/c.gz");
  EXPECT_EQ(next->objects[2].key, "web/2016/08/01/01/b.gz");
}

TEST(DirectoryCacheTest, KeepsTrustedReadsWithinItsBounds) {
  DirectoryCache cache;
  DirectoryStamp stamp{1, 2, 1'000'000'000'000'000'000, 1'000'000'000'000'000'000};
  int64_t start_us = stamp.ctime_ns / 1000 + DirectoryCache::kTrustMarginMicros + 1;
  std::vector<DirectoryName> names = {{"web/a", false}};
  cache.Remember("web/", stamp, start_us - 1, "web/", "web/", names);
  EXPECT_FALSE(cache.Lookup("web/", stamp, "web/", "web/")) << "changed within the margin";
  cache.Remember("web/", stamp, start_us, "web/", "web/", names);
  EXPECT_TRUE(cache.Lookup("web/", stamp, "web/", "web/"));
  EXPECT_FALSE(cache.Lookup("web/", stamp, "app/", "web/")) << "another prefix";
  DirectoryStamp moved = stamp;
  ++moved.ctime_ns;
  EXPECT_FALSE(cache.Lookup("web/", moved, "web/", "web/"));
  EXPECT_FALSE(cache.Lookup("web/", stamp, "web/", "web/")) << "forgotten once seen changed";
  std::vector<DirectoryName> many(DirectoryCache::kMaxNames + 1, {"web/x", false});
  cache.Remember("big/", stamp, start_us, "", "", many);
  EXPECT_FALSE(cache.Lookup("big/", stamp, "", "")) << "more names than it keeps";
  for (size_t i = 0; i <= DirectoryCache::kMaxDirectories; ++i)
    cache.Remember("d" + std::to_string(i) + "/", stamp, start_us, "", "", names);
  EXPECT_FALSE(cache.Lookup("d0/", stamp, "", "")) << "the least recently used went first";
  EXPECT_TRUE(cache.Lookup("d1/", stamp, "", ""));
}

}  // namespace
}  // namespace logferry
