#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/strings.h"
#include "registry/scheme_registry.h"
#include "store/object_store.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The store root lives one level down so the test also covers "created on first write".
    auto s = OpenObjectStore("file://" + dir_ + "/root");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void Put(const std::string& key, const std::string& data) {
    auto w = store_->WriteAll(key, data);
    ASSERT_TRUE(w.ok()) << key << ": " << w.status().ToString();
  }

  std::vector<std::string> Keys(const std::string& prefix) {
    auto all = store_->ListAll(prefix);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    std::vector<std::string> out;
    if (all.ok())
      for (auto& o : *all) out.push_back(o.key);
    return out;
  }

  // Every file under the root, as the filesystem sees it (temp files included).
  std::vector<std::string> FilesOnDisk() {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(dir_ + "/root")) return out;
    for (auto& e : fs::recursive_directory_iterator(dir_ + "/root", ec))
      if (e.is_regular_file()) out.push_back(e.path().filename().string());
    return out;
  }

  std::string dir_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(FileStoreTest, UriIsNormalizedWithTrailingSlash) {
  EXPECT_EQ(store_->uri(), "file://" + dir_ + "/root/");
  EXPECT_EQ(store_->UriOf("a/b"), "file://" + dir_ + "/root/a/b");
}

TEST_F(FileStoreTest, ListingOfMissingRootIsEmpty) {
  auto page = store_->List("", "", 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->objects.empty());
  EXPECT_TRUE(page->next_token.empty());
}

// Keys chosen so that naive directory-by-directory listing would get the
// order wrong: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30), and
// multi-byte UTF-8 sorts after all ASCII.
const std::vector<std::string> kTrickyKeys = {
    "a-b",
    "a.b",
    "a/b",
    "a/b/c",
    "a/b-c",
    "a0",
    "a b",
    "a/with space",
    "a\xC3\xA9",       // aé
    "a/\xE6\x97\xA5",  // a/日
    "b",
    "ab/c",
    "z/y/x/w",
    "A",
    "_",
};

TEST_F(FileStoreTest, ListsInByteOrderAcrossNestedDirectories) {
  // "a/b" as a file and "a/b/c" cannot both exist on a filesystem; drop the file.
  std::vector<std::string> keys;
  for (const auto& k : kTrickyKeys)
    if (k != "a/b") keys.push_back(k);
  for (const auto& k : keys) Put(k, "x" + k);

  std::vector<std::string> expected = keys;
  std::sort(expected.begin(), expected.end());  // std::string compares bytes as unsigned
  EXPECT_EQ(Keys(""), expected);

  auto all = store_->ListAll("");
  ASSERT_TRUE(all.ok());
  for (const auto& o : *all) {
    EXPECT_EQ(o.size, o.key.size() + 1) << o.key;
    EXPECT_FALSE(o.etag.empty());
    EXPECT_GT(o.mtime_us, 0);
  }
}

TEST_F(FileStoreTest, ListFiltersByPrefixIncludingPartialSegments) {
  for (const auto& k : {"a-b", "a.b", "a/b-c", "a/bc/d", "a/c", "a0", "ab/c", "b"}) Put(k, "v");
  EXPECT_EQ(Keys("a/"), (std::vector<std::string>{"a/b-c", "a/bc/d", "a/c"}));
  EXPECT_EQ(Keys("a/b"), (std::vector<std::string>{"a/b-c", "a/bc/d"}));
  EXPECT_EQ(Keys("a"), (std::vector<std::string>{"a-b", "a.b", "a/b-c", "a/bc/d", "a/c", "a0", "ab/c"}));
  EXPECT_EQ(Keys("a."), (std::vector<std::string>{"a.b"}));
  EXPECT_EQ(Keys("ab"), (std::vector<std::string>{"ab/c"}));
  EXPECT_TRUE(Keys("c").empty());
  EXPECT_TRUE(Keys("a/bc/d/").empty());
}

TEST_F(FileStoreTest, PaginationCoversEveryKeyExactlyOnce) {
  std::vector<std::string> keys;
  for (const auto& k : kTrickyKeys)
    if (k != "a/b") keys.push_back(k);
  for (int i = 0; i < 23; ++i)
    keys.push_back("logs/" + std::to_string(2016080100 + i % 24) + "_" + std::to_string(i) + ".gz");
  for (const auto& k : keys) Put(k, "v");
  std::sort(keys.begin(), keys.end());

  for (size_t page_size : {1, 2, 3, 7, 1000}) {
    std::vector<std::string> seen;
    std::string token;
    int pages = 0;
    do {
      auto page = store_->List("", token, page_size);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      EXPECT_LE(page->objects.size(), page_size);
      for (auto& o : page->objects) seen.push_back(o.key);
      if (!page->next_token.empty()) {
        EXPECT_EQ(page->next_token, page->objects.back().key);
      }
      token = page->next_token;
      ASSERT_LT(++pages, 200) << "pagination does not terminate";
    } while (!token.empty());
    EXPECT_EQ(seen, keys) << "page size " << page_size;
  }

  // With a prefix, pages stay inside it.
  std::vector<std::string> logs;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->List("logs/", token, 4);
    ASSERT_TRUE(page.ok());
    for (auto& o : page->objects) logs.push_back(o.key);
    token = page->next_token;
    ASSERT_LT(++pages, 100);
  } while (!token.empty());
  EXPECT_EQ(logs.size(), 23u);
  EXPECT_TRUE(std::is_sorted(logs.begin(), logs.end()));
}

TEST_F(FileStoreTest, PageTokenIsStartAfter) {
  for (const auto& k : {"a-b", "a/b", "a/c", "b"}) Put(k, "v");
  auto page = store_->List("", "a/b", 10);
  ASSERT_TRUE(page.ok());
  std::vector<std::string> got;
  for (auto& o : page->objects) got.push_back(o.key);
  EXPECT_EQ(got, (std::vector<std::string>{"a/c", "b"}));
  // A token that is not itself a key (a key may have vanished) still works.
  page = store_->List("", "a.zzz", 10);
  ASSERT_TRUE(page.ok());
  got.clear();
  for (auto& o : page->objects) got.push_back(o.key);
  EXPECT_EQ(got, (std::vector<std::string>{"a/b", "a/c", "b"}));
}

TEST_F(FileStoreTest, StatReportsSizeAndEtagChangesOnReplace) {
  Put("d/obj", "hello");
  auto a = store_->Stat("d/obj");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->key, "d/obj");
  EXPECT_EQ(a->size, 5u);
  EXPECT_FALSE(a->etag.empty());

  auto again = store_->Stat("d/obj");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->etag, a->etag) << "etag must be stable while the object is unchanged";

  // Same size, different content: the etag still has to change.
  Put("d/obj", "world");
  auto b = store_->Stat("d/obj");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size, 5u);
  EXPECT_NE(b->etag, a->etag);

  auto listed = store_->ListAll("d/");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].etag, b->etag) << "List and Stat must agree on the etag";
}

TEST_F(FileStoreTest, StatMissingIsNotFound) {
  auto s = store_->Stat("nope");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  Put("dir/x", "1");
  s = store_->Stat("dir");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound) << "a directory is not an object";
  s = store_->Stat("dir/x/y");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  auto r = store_->OpenRead("nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(FileStoreTest, StreamingReadReturnsAllBytesAndTracksOffset) {
  std::string data;
  for (int i = 0; i < 300000; ++i) data.push_back(static_cast<char>((i * 131) % 251));
  Put("big.bin", data);
  auto r = store_->OpenRead("big.bin");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string got;
  char buf[4093];
  for (int i = 0; i < 1000; ++i) {
    auto n = (*r)->Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    got.append(buf, *n);
    EXPECT_EQ((*r)->Offset(), got.size());
  }
  EXPECT_EQ(got, data);
  auto n = (*r)->Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u) << "reads after the end keep returning 0";

  auto all = store_->ReadAll("big.bin");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, data);
  auto small = store_->ReadAll("big.bin", 1000);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kResourceExhausted);
}

TEST_F(FileStoreTest, IfEtagFailsWhenObjectWasReplaced) {
  Put("o", "version one");
  auto info = store_->Stat("o");
  ASSERT_TRUE(info.ok());

  ReadOptions ro;
  ro.if_etag = info->etag;
  {
    auto r = store_->OpenRead("o", ro);
    ASSERT_TRUE(r.ok()) << "matching etag must read: " << r.status().ToString();
  }
  Put("o", "version two!");
  auto r = store_->OpenRead("o", ro);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
}

TEST_F(FileStoreTest, IfEtagFailsWhenObjectIsRewrittenInPlaceDuringRead) {
  Put("o", std::string(1000, 'a'));
  auto info = store_->Stat("o");
  ASSERT_TRUE(info.ok());
  ReadOptions ro;
  ro.if_etag = info->etag;
  auto r = store_->OpenRead("o", ro);
  ASSERT_TRUE(r.ok());
  char buf[100];
  auto n = (*r)->Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 100u);

  // A non-atomic writer appends to the same inode while we read; the size
  // changes, so the etag must differ regardless of timestamp granularity.
  {
    int fd = open((dir_ + "/root/o").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "tail", 4), 4);
    close(fd);
  }
  Status final_status;
  for (int i = 0; i < 100; ++i) {
    auto m = (*r)->Read(buf, sizeof buf);
    if (!m.ok()) {
      final_status = m.status();
      break;
    }
    if (*m == 0) break;
  }
  EXPECT_EQ(final_status.code(), StatusCode::kFailedPrecondition)
      << "a read that saw a changed object must not end successfully: " << final_status.ToString();
}

TEST_F(FileStoreTest, WriteIsInvisibleUntilCommit) {
  auto w = store_->OpenWrite("x/y/obj");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Write("part one, ").ok());
  ASSERT_TRUE((*w)->Write("part two").ok());

  EXPECT_TRUE(Keys("").empty()) << "uncommitted objects and temp files must not be listed";
  EXPECT_EQ(store_->Stat("x/y/obj").status().code(), StatusCode::kNotFound);

  auto done = (*w)->Commit();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->key, "x/y/obj");
  EXPECT_EQ(done->size, 18u);
  EXPECT_EQ(done->crc32c.size(), 8u);
  auto st = store_->Stat("x/y/obj");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->etag, done->etag) << "Commit's etag must be the object's";
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"x/y/obj"}));
  EXPECT_EQ(*store_->ReadAll("x/y/obj"), "part one, part two");

  EXPECT_FALSE((*w)->Write("more").ok()) << "writes after commit must fail";
  EXPECT_FALSE((*w)->Commit().ok()) << "a second commit must fail";
}

TEST_F(FileStoreTest, Crc32cOfKnownInput) {
  // CRC32C("123456789") = e3069283 (the standard check value).
  auto w = store_->WriteAll("c", "123456789");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->crc32c, "e3069283");
}

TEST_F(FileStoreTest, AbortedWriteLeavesNoTrace) {
  Put("keep", "old");
  {
    auto w = store_->OpenWrite("keep");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("new content that is never committed").ok());
    // Writer destroyed without Commit.
  }
  {
    auto w = store_->OpenWrite("sub/never");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("abandoned").ok());
  }
  EXPECT_EQ(*store_->ReadAll("keep"), "old") << "an aborted overwrite must leave the old object";
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"keep"}));
  std::vector<std::string> files = FilesOnDisk();
  EXPECT_EQ(files, (std::vector<std::string>{"keep"})) << "no temp file may be left on disk";
}

// A suspended writer holds no file descriptor; writing again appends where
// it stopped, and the commit's size and CRC32C cover everything written.
TEST_F(FileStoreTest, SuspendedWriterHoldsNoDescriptorAndResumesWhereItStopped) {
  auto open_fds = [] { return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()); };
  auto w = store_->OpenWrite("s/part.gz");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Write("first ").ok());
  auto before = open_fds();
  ASSERT_TRUE((*w)->Suspend().ok());
  EXPECT_EQ(open_fds(), before - 1);
  ASSERT_TRUE((*w)->Suspend().ok()) << "suspending twice is harmless";
  ASSERT_TRUE((*w)->Write("second").ok());
  EXPECT_EQ(open_fds(), before);
  ASSERT_TRUE((*w)->Suspend().ok());
  auto done = (*w)->Commit();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->size, 12u);
  EXPECT_EQ(done->crc32c, Crc32cHex(Crc32c(0, "first second", 12)));
  EXPECT_EQ(*store_->ReadAll("s/part.gz"), "first second");
  EXPECT_EQ(open_fds(), before - 1);

  // Dropped while suspended: nothing is left behind.
  auto aborted = store_->OpenWrite("s/aborted");
  ASSERT_TRUE(aborted.ok());
  ASSERT_TRUE((*aborted)->Write("x").ok());
  ASSERT_TRUE((*aborted)->Suspend().ok());
  aborted->reset();
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ + "/root/s"), fs::directory_iterator()), 1);
}

// Out of file descriptors is not transient: retrying at once fails the same
// way, so the error must not ask for a retry.
TEST_F(FileStoreTest, RunningOutOfDescriptorsIsResourceExhaustedNotTransient) {
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  // The lowest descriptor that is free now is where the limit goes.
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe, 0);
  close(probe);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  auto w = store_->OpenWrite("emfile/part");
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kResourceExhausted) << w.status().ToString();
  EXPECT_FALSE(w.status().IsTransient());
  EXPECT_NE(w.status().message().find("Too many open files"), std::string::npos) << w.status().ToString();
}

TEST_F(FileStoreTest, TempFilesOfOtherWritersAreNeverListed) {
  Put("a/real", "1");
  // A crashed writer's leftover temp file.
  {
    int fd = open((dir_ + "/root/a/.lf-tmp-123-0-abc").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"a/real"}));
}

TEST_F(FileStoreTest, DeleteRemovesAndMissingIsOk) {
  Put("d/1", "x");
  Put("d/2", "y");
  EXPECT_TRUE(store_->Delete("d/1").ok());
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"d/2"}));
  EXPECT_EQ(store_->Stat("d/1").status().code(), StatusCode::kNotFound);
  Status again = store_->Delete("d/1");
  EXPECT_TRUE(again.ok()) << again.ToString();
  Status never = store_->Delete("never/existed");
  EXPECT_TRUE(never.ok()) << never.ToString();
}

TEST_F(FileStoreTest, DeleteIfUnchangedKeepsANewerObject) {
  Put("r/req.json", "{\"from\":\"a\"}");
  auto first = store_->Stat("r/req.json");
  ASSERT_TRUE(first.ok());
  Put("r/req.json", "{\"from\":\"b\"}");  // written again after it was listed
  Status kept = store_->DeleteIfUnchanged("r/req.json", first->etag);
  EXPECT_EQ(kept.code(), StatusCode::kFailedPrecondition) << kept.ToString();
  auto body = store_->ReadAll("r/req.json");
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, "{\"from\":\"b\"}");
  auto second = store_->Stat("r/req.json");
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(store_->DeleteIfUnchanged("r/req.json", second->etag).ok());
  EXPECT_EQ(store_->Stat("r/req.json").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->DeleteIfUnchanged("r/req.json", second->etag).ok()) << "missing means deleted";
}

// Small groups are synced file by file, large ones (8 files or more) by one
// syncfs of the filesystem: both cover every key, and refuse bad ones.
TEST_F(FileStoreTest, AWriteSyncedLaterIsVisibleOnCommitAndSyncWrittenCoversGroupsOfEverySize) {
  std::vector<std::string> keys = {"t/dt=2016-08-01/hr=00/a.gz", "t/dt=2016-08-01/hr=00/b.gz",
                                   "t/dt=2016-08-01/hr=01/c.gz"};
  for (int i = 0; i < 10; ++i) keys.push_back("t/dt=2016-08-02/hr=00/many-" + std::to_string(i) + ".gz");
  for (const std::string& key : keys) {
    auto w = store_->OpenWriteSyncedLater(key);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->Write("rows of " + key).ok());
    auto done = (*w)->Commit();
    ASSERT_TRUE(done.ok()) << done.status().ToString();
  }
  auto listed = Keys("t/");
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), std::set<std::string>(keys.begin(), keys.end()))
      << "visible at once, like OpenWrite's";
  EXPECT_EQ(*store_->ReadAll(keys[2]), "rows of " + keys[2]);
  EXPECT_TRUE(store_->SyncWritten({keys.begin(), keys.begin() + 3}).ok()) << "file by file";
  EXPECT_TRUE(store_->SyncWritten(keys).ok()) << "the filesystem at once";
  EXPECT_TRUE(store_->SyncWritten({}).ok());
  EXPECT_FALSE(store_->SyncWritten({"../escape"}).ok());
  EXPECT_FALSE(store_->SyncWritten({"t/never-written/x.gz"}).ok()) << "a file that does not exist";
  std::vector<std::string> with_missing(keys.begin() + 3, keys.end());
  with_missing.push_back("t/never-written/x.gz");
  EXPECT_FALSE(store_->SyncWritten(with_missing).ok()) << "a directory that does not exist, in a large group";
}

TEST_F(FileStoreTest, LocalPathPointsAtTheFile) {
  Put("p/q", "data");
  auto p = store_->LocalPath("p/q");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, dir_ + "/root/p/q");
  EXPECT_TRUE(fs::exists(*p));
  EXPECT_FALSE(store_->LocalPath("../etc/passwd").has_value());
}

TEST(ValidateKey, RejectsKeysThatEscapeTheRoot) {
  for (std::string bad : {std::string(""), std::string(".."), std::string("../x"), std::string("a/../b"),
                          std::string("a/.."), std::string("/abs"), std::string("/"), std::string("a//b"),
                          std::string("a/./b"), std::string("."), std::string("./a"), std::string("a\0b", 3)}) {
    Status s = ValidateKey(bad);
    EXPECT_FALSE(s.ok()) << "accepted '" << bad << "'";
    if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  for (std::string good : {"a", "a/b", "a..b", "..a", "a/..b", ".hidden", "a b/c", "\xC3\xA9", "a-b.c_d"}) {
    Status s = ValidateKey(good);
    EXPECT_TRUE(s.ok()) << "rejected '" << good << "': " << s.ToString();
  }
}

TEST(ValidateKey, RejectsTrailingSlashAsEmptySegment) {
  // object_store.h: keys with empty segments are rejected; "a/" ends with one.
  // Accepting it lets OpenWrite("a/") create a temp file it can never rename.
  Status s = ValidateKey("a/");
  EXPECT_FALSE(s.ok()) << "ValidateKey accepted 'a/' (empty last segment)";
}

TEST_F(FileStoreTest, OperationsRejectInvalidKeys) {
  for (std::string bad : {std::string("../escape"), std::string("/etc/passwd"), std::string("a//b"),
                          std::string("a\0b", 3), std::string("")}) {
    EXPECT_EQ(store_->Stat(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store_->OpenRead(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store_->OpenWrite(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store_->Delete(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(fs::exists(dir_ + "/escape"));
}

TEST(OpenObjectStore, RejectsUnsupportedUris) {
  EXPECT_EQ(OpenObjectStore("ftp://bucket/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenObjectStore("/plain/path").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenObjectStore("file://host/x").status().code(), StatusCode::kInvalidArgument);
  auto ok = OpenObjectStore("file://localhost/tmp/x");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->uri(), "file:///tmp/x/");
}

}  // namespace
}  // namespace logferry
