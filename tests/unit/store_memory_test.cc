// The in-memory store keeps the object-store contract the core relies on,
// and configs reach it only where a test registers it.
#include <gtest/gtest.h>

#include <string>

#include "core/config.h"
#include "registry/scheme_registry.h"
#include "store/memory_store.h"

namespace logferry {
namespace {

std::unique_ptr<ObjectStore> Open(const std::shared_ptr<MemoryObjects>& objects, const std::string& uri) {
  auto s = OpenMemoryStore(uri, objects);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(MemoryStore, WritesAreVisibleOnlyOnCommitAndAbortLeavesNoTrace) {
  auto objects = NewMemoryObjects();
  auto store = Open(objects, "mem://b/root/");
  {
    auto w = store->OpenWrite("a/x");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("hello").ok());
    EXPECT_TRUE(store->Stat("a/x").status().IsNotFound());
  }  // dropped without Commit
  EXPECT_TRUE(store->Stat("a/x").status().IsNotFound());
  auto written = store->WriteAll("a/x", "hello");
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written->crc32c, Crc32cHex(Crc32c(0, "hello", 5)));
  auto read = store->ReadAll("a/x");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "hello");
  // Another store over the same bucket sees it; another bucket does not.
  EXPECT_TRUE(Open(objects, "mem://b/")->Stat("root/a/x").ok());
  EXPECT_TRUE(Open(objects, "mem://other/root/")->Stat("a/x").status().IsNotFound());
  EXPECT_TRUE(store->Delete("a/x").ok());
  EXPECT_TRUE(store->Delete("a/x").ok()) << "deleting a missing object succeeds";
  EXPECT_EQ(store->Stat("../x").status().code(), StatusCode::kInvalidArgument);
}

TEST(MemoryStore, ListsInPagesAfterTheTokenAndPinsReadsToAnEtag) {
  auto store = Open(NewMemoryObjects(), "mem://b/");
  for (const char* key : {"p/1", "p/2", "p/3", "q/1"}) {
    ASSERT_TRUE(store->WriteAll(key, key).ok());
  }
  auto page = store->List("p/", "", 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[1].key, "p/2");
  EXPECT_EQ(page->next_token, "p/2");
  page = store->List("p/", page->next_token, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "p/3");
  EXPECT_TRUE(page->next_token.empty());
  auto all = store->ListAll("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);

  auto info = store->Stat("p/1");
  ASSERT_TRUE(info.ok());
  ReadOptions pinned;
  pinned.if_etag = info->etag;
  auto reader = store->OpenRead("p/1", pinned);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(store->WriteAll("p/1", "replaced").ok());
  char buf[16];
  auto n = (*reader)->Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, *n), "p/1") << "an open reader keeps the version it opened";
  EXPECT_EQ(store->OpenRead("p/1", pinned).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->DeleteIfUnchanged("p/1", info->etag).code(), StatusCode::kFailedPrecondition);
}

// mem:// data dies with the process, so a config can name it only where a
// test registered it.
TEST(MemoryStore, ConfigsReachItOnlyWhenATestRegistersIt) {
  std::string text =
      "state_dir = \"/s\"\n\n[[table]]\nname = \"access\"\nsource = \"mem://src/\"\nstaging = \"mem://stg/\"\n"
      "warehouse = \"duckdb:///w.duckdb\"\n";
  auto c = ParseConfig(text, "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is not a supported store URI"), std::string::npos) << c.status().message();
  EXPECT_FALSE(OpenObjectStore("mem://src/").ok());
  Schemes().Register(MemoryScheme(NewMemoryObjects()));
  c = ParseConfig(text, "t.toml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(OpenObjectStore("mem://src/").ok());
  Schemes().Unregister("mem");
}

}  // namespace
}  // namespace logferry
