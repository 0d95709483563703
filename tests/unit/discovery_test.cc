// Discovery implementations without a server: the listing over an in-memory
// source and a real ledger, and the reconcile schedule that backs events
// with a listing, driven by a fake clock.
#include "discovery/discovery.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/strings.h"
#include "discovery/listing_discovery.h"
#include "format/key_format.h"
#include "ledger/ledger.h"
#include "store/memory_store.h"
#include "support/fake_env.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using testutil::FakeEnv;

class ListingDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lf-discovery-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto ledger = Ledger::Open(dir_ / "ledger.db");
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    auto source = OpenMemoryStore("mem://src/logs/", objects_);
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    source_ = std::move(*source);
  }
  void TearDown() override { fs::remove_all(dir_); }

  DiscoveryContext Context() {
    return DiscoveryContext{"access", source_.get(),
                            [](std::string_view key) { return EndsWith(std::string(key), ".log"); }, ledger_.get(),
                            &env_};
  }
  int64_t Poll(Discovery& d) {
    DiscoveryStats stats;
    Status s = d.Poll(PollOptions{}, &stats);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return stats.recorded;
  }

  fs::path dir_;
  FakeEnv env_;
  std::shared_ptr<MemoryObjects> objects_ = NewMemoryObjects();
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<ObjectStore> source_;
};

TEST_F(ListingDiscoveryTest, RecordsNewAndChangedVersionsOfOurKeysOnly) {
  ASSERT_TRUE(source_->WriteAll("2016080100_0.log", "a\n").ok());
  ASSERT_TRUE(source_->WriteAll("2016080101_0.log", "b\n").ok());
  ASSERT_TRUE(source_->WriteAll("README.txt", "not ours\n").ok());
  ListingDiscovery listing(Context());
  EXPECT_EQ(Poll(listing), 2);
  EXPECT_EQ(Poll(listing), 0) << "known versions are not new";
  // A rewritten object is a new version (new etag) of a known key.
  ASSERT_TRUE(source_->WriteAll("2016080100_0.log", "a\na2\n").ok());
  EXPECT_EQ(Poll(listing), 1);
  auto rows = ledger_->Objects("access");
  ASSERT_TRUE(rows.ok());
  for (const ObjectRow& o : *rows) {
    EXPECT_NE(o.key, "README.txt");
    EXPECT_EQ(o.found_by, "listing");
    EXPECT_EQ(o.discovered_us, env_.NowMicros()) << "recorded at the Env's time";
  }
  DiscoveryStats stats;
  EXPECT_TRUE(listing.Acknowledge(&stats).ok()) << "a listing has nothing to acknowledge";
  EXPECT_EQ(listing.extend_every_us(), 0);
}

// Windowed: the whole source at the first poll and every full_every_us; in
// between, under each prefix the last full listing saw, only the keys from
// the slice of now - lookback on, one LIST per prefix when they fit a page.
TEST_F(ListingDiscoveryTest, WindowsListRecentSlicesAndFullListingsFindTheRest) {
  auto kf = KeyFormat::Compile("%{path}%{time_slice}_%{index}.log", "%Y%m%d%H", TimeZone());
  ASSERT_TRUE(kf.ok());
  const KeyFormat* key_format = &*kf;
  ListingWindow window;
  window.lookback_us = 3 * kMicrosPerHour;
  window.full_every_us = kMicrosPerHour;
  window.slice_of = [key_format](std::string_view key) -> std::optional<std::pair<std::string, int64_t>> {
    auto m = key_format->Match(key);
    if (!m) return std::nullopt;
    return std::pair(std::string(key.substr(0, m->time_slice_pos)), *m->time_slice_us);
  };
  window.start_after = [key_format](std::string_view p, int64_t from, int64_t now) {
    return key_format->WindowStart(p, from, now);
  };
  window.past = [key_format](std::string_view p, std::string_view key, int64_t until) {
    return key_format->PastWindow(p, key, until);
  };
  DiscoveryContext context = Context();
  context.ours = [key_format](std::string_view key) { return key_format->Match(key).has_value(); };
  // 2,500 objects of July 2016 under web/ (three pages), ten under app/.
  int64_t now = env_.NowMicros();
  for (int i = 0; i < 2500; ++i)
    ASSERT_TRUE(
        source_->WriteAll(key_format->Format("web/", now - (i / 10 + 24) * kMicrosPerHour, i, "log"), "x\n").ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(source_->WriteAll(key_format->Format("app/", now - 48 * kMicrosPerHour, i, "log"), "x\n").ok());
  ListingDiscovery listing(context, window);
  DiscoveryStats first;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &first).ok());
  EXPECT_EQ(first.recorded, 2510);
  EXPECT_EQ(first.full_listings, 1);

  env_.Advance((60 * kMicrosPerSecond));
  ASSERT_TRUE(source_->WriteAll("web/2016080100_0.log", "new\n").ok());
  ASSERT_TRUE(source_->WriteAll("app/2016073122_0.log", "new, in the window\n").ok());
  ASSERT_TRUE(source_->WriteAll("web/2016072000_9999.log", "late, in an old slice\n").ok());
  ASSERT_TRUE(source_->WriteAll("db/2016080100_0.log", "under a new path\n").ok());
  int64_t lists = source_->list_requests();
  DiscoveryStats windowed;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &windowed).ok());
  EXPECT_EQ(windowed.windowed_listings, 1);
  EXPECT_EQ(windowed.full_listings, 0);
  EXPECT_EQ(windowed.recorded, 2) << "the two in the window's slices";
  EXPECT_EQ(source_->list_requests() - lists, 2) << "one LIST per prefix";

  env_.Advance(kMicrosPerHour);
  DiscoveryStats full;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &full).ok());
  EXPECT_EQ(full.full_listings, 1);
  EXPECT_EQ(full.recorded, 2) << "the late object and the new path";
  // The new path is now one of the window's prefixes.
  env_.Advance((60 * kMicrosPerSecond));
  ASSERT_TRUE(source_->WriteAll("db/2016080101_0.log", "new\n").ok());
  DiscoveryStats next;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &next).ok());
  EXPECT_EQ(next.windowed_listings, 1);
  EXPECT_EQ(next.recorded, 1);
}

// A source replaying old days is windowed from its own newest slice: a
// later day of the replay is found by the next window, an earlier one by
// the next full listing.
TEST_F(ListingDiscoveryTest, WindowsOfAReplayStartAtItsNewestSlice) {
  env_.Advance(10 * 365 * kMicrosPerDay);
  ListingWindow window;
  window.lookback_us = 3 * kMicrosPerHour;
  window.full_every_us = kMicrosPerHour;
  window.slice_of = [](std::string_view key) -> std::optional<std::pair<std::string, int64_t>> {
    auto t = ParseIso8601(std::string(key.substr(4, 13)));
    if (!t) return std::nullopt;
    return std::pair(std::string(key.substr(0, 4)), *t);
  };
  window.start_after = [](std::string_view p, int64_t from, int64_t) {
    return std::string(p) + FormatIso8601(from).substr(0, 13);
  };
  window.past = [](std::string_view, std::string_view, int64_t) { return false; };
  DiscoveryContext context = Context();
  context.ours = [](std::string_view key) { return ParseIso8601(std::string(key.substr(4, 13))).has_value(); };
  ListingDiscovery listing(context, window);
  ASSERT_TRUE(source_->WriteAll("web/2016-07-31T10.log", "x\n").ok());
  DiscoveryStats full, windowed;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &full).ok());
  EXPECT_EQ(full.recorded, 1);
  ASSERT_TRUE(source_->WriteAll("web/2016-08-01T05.log", "the next day\n").ok());
  ASSERT_TRUE(source_->WriteAll("web/2016-07-31T08.log", "within lookback of the newest\n").ok());
  ASSERT_TRUE(source_->WriteAll("web/2016-07-30T05.log", "older\n").ok());
  ASSERT_TRUE(listing.Poll(PollOptions{}, &windowed).ok());
  EXPECT_EQ(windowed.windowed_listings, 1);
  EXPECT_EQ(windowed.recorded, 2);
}

// An empty source teaches no prefix: passes list it all until objects show.
TEST_F(ListingDiscoveryTest, WindowsWaitForAFullListingThatSawPrefixes) {
  ListingWindow window;
  window.lookback_us = kMicrosPerHour;
  window.full_every_us = kMicrosPerHour;
  window.slice_of = [](std::string_view key) {
    return std::optional(std::pair(std::string(key.substr(0, key.find('/') + 1)), int64_t{0}));
  };
  ListingDiscovery listing(Context(), window);
  DiscoveryStats a, b;
  ASSERT_TRUE(listing.Poll(PollOptions{}, &a).ok());
  ASSERT_TRUE(source_->WriteAll("web/2016080100_0.log", "x\n").ok());
  ASSERT_TRUE(listing.Poll(PollOptions{}, &b).ok());
  EXPECT_EQ(b.full_listings, 1);
  EXPECT_EQ(b.recorded, 1);
}

// Stands in for event discovery: counts polls, fails when told to.
class ScriptedEvents : public Discovery {
 public:
  Status Poll(const PollOptions&, DiscoveryStats* stats) override {
    ++polls;
    stats->received += 1;
    return next_error;
  }
  Status Acknowledge(DiscoveryStats* stats) override {
    ++acknowledged;
    return Status::Ok();
  }
  int64_t extend_every_us() const override { return 7; }
  int polls = 0, acknowledged = 0;
  Status next_error;
};

// Counts the polls of the listing behind the events.
class CountedListing : public ListingDiscovery {
 public:
  using ListingDiscovery::ListingDiscovery;
  Status Poll(const PollOptions& options, DiscoveryStats* stats) override {
    ++polls;
    return ListingDiscovery::Poll(options, stats);
  }
  int polls = 0;
};

TEST_F(ListingDiscoveryTest, EventsAreReconciledFirstThenEveryIntervalAndAfterAFailure) {
  ASSERT_TRUE(source_->WriteAll("2016080100_0.log", "a\n").ok());
  auto events_owned = std::make_unique<ScriptedEvents>();
  auto listing_owned = std::make_unique<CountedListing>(Context());
  ScriptedEvents& events = *events_owned;
  CountedListing& listing = *listing_owned;
  const int64_t every = 10 * 60 * 1'000'000LL;
  auto d = WithReconcileListing(std::move(events_owned), std::move(listing_owned), every, Context());

  DiscoveryStats stats;
  ASSERT_TRUE(d->Poll(PollOptions{}, &stats).ok());
  EXPECT_EQ(listing.polls, 1) << "the first poll lists";
  EXPECT_EQ(stats.recorded, 1) << "what the listing found counts";
  EXPECT_EQ(stats.received, 1);
  env_.Advance(every - 1);
  ASSERT_TRUE(d->Poll(PollOptions{}, &stats).ok());
  EXPECT_EQ(listing.polls, 1) << "not again before reconcile_every";
  env_.Advance(1);
  ASSERT_TRUE(d->Poll(PollOptions{}, &stats).ok());
  EXPECT_EQ(listing.polls, 2);
  // Events that cannot be received: the listing runs at once, and the
  // events' error is still reported.
  events.next_error = Status::Unavailable("queue unreachable");
  Status s = d->Poll(PollOptions{}, &stats);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(listing.polls, 3);
  EXPECT_EQ(events.polls, 4);
  // The rest goes to the events.
  ASSERT_TRUE(d->Acknowledge(&stats).ok());
  EXPECT_EQ(events.acknowledged, 1);
  EXPECT_EQ(d->extend_every_us(), 7);
}

}  // namespace
}  // namespace logferry
