// The rule behind windowed listing (format/key_format.h: WindowBlocker,
// SlicePrefix, WindowStart, PastWindow). Being wrong here would delay
// objects until the next full listing, so the property is checked
// exhaustively: every key whose slice holds an instant of the window sorts
// after the window's start, for many layouts, zones and boundaries.
#include <gtest/gtest.h>

#include "format/key_format.h"

namespace logferry {
namespace {

int64_t T(const char* iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(0);
}

TimeZone Zone(const char* name) {
  auto z = TimeZone::Parse(name);
  EXPECT_TRUE(z.ok()) << name;
  return z.ok() ? *z : TimeZone();
}

KeyFormat Compile(std::string_view fmt, std::string_view slice = "%Y%m%d%H", const TimeZone& zone = TimeZone()) {
  auto kf = KeyFormat::Compile(fmt, slice, zone);
  EXPECT_TRUE(kf.ok()) << fmt << " " << kf.status().ToString();
  return kf.ok() ? *kf : *KeyFormat::Compile("x", "%Y", TimeZone());
}

constexpr int64_t kMinute = 60 * kMicrosPerSecond;

// For every `now` in [from, to) (every step) and every instant t of
// [now - lookback, now] (every minute): the key written at t with `path`
// has the same prefix before its slice as the others, sorts after the
// window's start and is not past the window's end.
void ExpectWindowHolds(const KeyFormat& kf, std::string_view path, int64_t from, int64_t to, int64_t step,
                       int64_t lookback) {
  auto prefix = kf.SlicePrefix(kf.Format(path, from, 7, "gz"));
  ASSERT_TRUE(prefix) << kf.Format(path, from, 7, "gz");
  for (int64_t now = from; now < to; now += step) {
    std::string start = kf.WindowStart(*prefix, now - lookback, now);
    for (int64_t t = now - lookback; t <= now; t += kMinute) {
      std::string key = kf.Format(path, t, 7, "gz");
      ASSERT_GT(key, start) << "now " << FormatIso8601(now) << ", written at " << FormatIso8601(t);
      ASSERT_FALSE(kf.PastWindow(*prefix, key, now + 2 * kMicrosPerDay)) << key;
      ASSERT_EQ(kf.SlicePrefix(key), *prefix) << key;
    }
  }
}

TEST(KeyWindow, LayoutsThatAllowAWindow) {
  const std::pair<const char*, const char*> formats[] = {
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y-%m-%d-%H"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y/%m/%d/%H"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H%M"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%F/%H"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%j%H"},
      {"%{path}%{time_slice}_%{index}.%{file_extension}", "year=%Y/month=%m/day=%d/hour=%H"},
      {"%{path}%{time_slice}/%{hostname}-%{uuid_flush}.%{file_extension}", "%Y%m%d%H"},
      {"%{path}%{hostname}/%{time_slice}_%{hex_random}.gz", "%Y%m%d%H"},
      {"fixed/%{time_slice}_%{index}.gz", "%Y%m%d%H"},
      {"%{path}%Y/%m/%d/%H/%{hostname}_%{index}.%{file_extension}", ""},
      {"%{path}%{time_slice}", "%Y%m%d%H"},
      {"%{path}%{time_slice}.%{file_extension}", "%Y%m%d%H%M%S"},
  };
  for (auto [fmt, slice] : formats) {
    SCOPED_TRACE(std::string(fmt) + " / " + slice);
    KeyFormat kf = Compile(fmt, slice);
    EXPECT_EQ(kf.WindowBlocker(), "");
    std::string path = "logs/web/";
    // Across a day, a month, a year (and a leap day) boundary.
    ExpectWindowHolds(kf, path, T("2027-12-31T21:00:00Z"), T("2028-01-01T03:00:00Z"), 17 * kMinute, 3 * kMicrosPerHour);
    ExpectWindowHolds(kf, path, T("2028-02-28T23:00:00Z"), T("2028-03-01T01:00:00Z"), 59 * kMinute, 2 * kMicrosPerHour);
  }
}

TEST(KeyWindow, LayoutsThatDoNot) {
  const std::pair<const char*, const char*> formats[] = {
      {"%{path}%{index}_%{time_slice}.gz", "%Y%m%d%H"},
      {"%{path}%{hex_random}/%{time_slice}_%{index}.gz", "%Y%m%d%H"},
      {"%{path}%{uuid_flush}/%{time_slice}.gz", "%Y%m%d%H"},
      {"%{path}%{file_extension}/%{time_slice}_%{index}", "%Y%m%d%H"},
      {"%{path}%{index}.%{file_extension}", "%Y%m%d%H"},
      {"%{path}%{time_slice}_%{index}.gz", "%d%m%Y%H"},
      {"%{path}%{time_slice}_%{index}.gz", "%y%m%d%H"},
      {"%{path}%{time_slice}_%{index}.gz", "%Y%b%d%H"},
      {"%{path}%{time_slice}_%{index}.gz", "%Y%m%H"},
      {"%{path}%{time_slice}_%{index}.gz", "%Y%m%d%e"},
      {"%{path}%{time_slice}_%{index}.gz", "%s"},
      {"%{path}%{time_slice}_%{index}.gz", "%Y%m%d%H%z"},
      {"%{path}%{time_slice}_%{index}.gz", "%H%Y%m%d"},
      {"%{path}%d/%m/%Y/%{index}.gz", ""},
  };
  for (auto [fmt, slice] : formats) {
    SCOPED_TRACE(std::string(fmt) + " / " + slice);
    auto kf = KeyFormat::Compile(fmt, slice, TimeZone());
    if (!kf.ok()) continue;  // rejected outright is fine too
    EXPECT_NE(kf->WindowBlocker(), "");
  }
  EXPECT_EQ(Compile("%{path}%{index}_%{time_slice}.gz").WindowBlocker(), "%{index} comes before the time slice");
  EXPECT_EQ(Compile("%{path}%{index}.gz").WindowBlocker(), "key_format has no time slice");
}

TEST(KeyWindow, StartIsTheSliceOfNowMinusLookback) {
  KeyFormat kf = Compile("%{path}%{time_slice}_%{index}.%{file_extension}");
  EXPECT_EQ(kf.WindowStart("logs/", T("2026-01-01T00:00:00Z") - kMicrosPerHour, T("2026-01-01T00:00:00Z")),
            "logs/2025123123");
  // An instant inside a slice starts the window at that slice's start.
  EXPECT_EQ(kf.WindowStart("logs/", T("2025-12-31T23:59:59Z"), T("2026-01-01T02:59:59Z")), "logs/2025123123");
  EXPECT_GT("logs/2025123123_0.gz", kf.WindowStart("logs/", T("2025-12-31T23:00:00Z"), T("2026-01-01T02:00:00Z")));
  EXPECT_LT("logs/2025123122_9.gz", kf.WindowStart("logs/", T("2025-12-31T23:00:00Z"), T("2026-01-01T02:00:00Z")));
  // Nothing after the slice: the key of the first slice is the start's text
  // itself, so the start sorts just before it.
  KeyFormat bare = Compile("%{path}%{time_slice}");
  std::string start = bare.WindowStart("a/", T("2026-01-01T10:30:00Z"), T("2026-01-01T12:00:00Z"));
  EXPECT_LT(start, "a/2026010110");
  EXPECT_GT(start, "a/2026010109");
}

TEST(KeyWindow, ZonesWithFixedOffsets) {
  for (const char* zone : {"+09:00", "-05:30", "+14:00", "-12:00"}) {
    SCOPED_TRACE(zone);
    KeyFormat kf = Compile("%{path}%{time_slice}_%{index}.gz", "%Y%m%d%H", Zone(zone));
    ExpectWindowHolds(kf, "logs/", T("2026-12-31T10:00:00Z"), T("2027-01-01T16:00:00Z"), 53 * kMinute,
                      2 * kMicrosPerHour);
  }
  KeyFormat tokyo = Compile("%{path}%{time_slice}_%{index}.gz", "%Y%m%d%H", Zone("+09:00"));
  EXPECT_EQ(tokyo.WindowStart("p/", T("2026-12-31T15:00:00Z"), T("2026-12-31T17:00:00Z")), "p/2027010100");
}

TEST(KeyWindow, DaylightSavingClocksGoingBackAndForward) {
  // New York falls back at 2026-11-01 06:00Z (02:00 EDT becomes 01:00 EST)
  // and springs forward at 2026-03-08 07:00Z; Lord Howe moves by half an
  // hour. Minute slices show the repeated wall-clock hour.
  for (const char* zone : {"America/New_York", "Australia/Lord_Howe", "Europe/London"}) {
    for (const char* slice : {"%Y%m%d%H%M", "%Y%m%d%H", "%Y%m%d"}) {
      SCOPED_TRACE(std::string(zone) + " " + slice);
      KeyFormat kf = Compile("%{path}%{time_slice}_%{index}.gz", slice, Zone(zone));
      ExpectWindowHolds(kf, "logs/", T("2026-11-01T03:00:00Z"), T("2026-11-01T09:00:00Z"), 13 * kMinute,
                        2 * kMicrosPerHour);
      ExpectWindowHolds(kf, "logs/", T("2026-03-08T04:00:00Z"), T("2026-03-08T10:00:00Z"), 29 * kMinute,
                        2 * kMicrosPerHour);
      ExpectWindowHolds(kf, "logs/", T("2026-10-03T14:00:00Z"), T("2026-10-03T17:00:00Z"), 31 * kMinute,
                        2 * kMicrosPerHour);
      ExpectWindowHolds(kf, "logs/", T("2026-04-04T14:00:00Z"), T("2026-04-04T17:00:00Z"), 31 * kMinute,
                        2 * kMicrosPerHour);
    }
  }
}

TEST(KeyWindow, LookbackEdges) {
  KeyFormat kf = Compile("%{path}%{time_slice}_%{index}.gz");
  // A lookback shorter than a slice still covers the whole current slice,
  // and one of days covers them all.
  ExpectWindowHolds(kf, "l/", T("2026-06-01T00:00:00Z"), T("2026-06-01T02:00:00Z"), 7 * kMinute, kMinute);
  ExpectWindowHolds(kf, "l/", T("2026-06-01T00:00:00Z"), T("2026-06-01T00:10:00Z"), 7 * kMinute, 3 * kMicrosPerDay);
  // Exactly on a slice boundary: the slice that starts there, not the one before.
  EXPECT_EQ(kf.WindowStart("l/", T("2026-06-01T05:00:00Z"), T("2026-06-01T08:00:00Z")), "l/2026060105");
}

TEST(KeyWindow, PrefixesAndTheWindowsEnd) {
  KeyFormat kf = Compile("%{path}%{time_slice}_%{index}.%{file_extension}");
  EXPECT_EQ(kf.SlicePrefix("logs/web/2026060105_3.gz"), "logs/web/");
  EXPECT_EQ(kf.SlicePrefix("2026060105_3.gz"), "");
  EXPECT_EQ(kf.SlicePrefix("logs/not-ours.txt"), std::nullopt);
  int64_t until = T("2026-06-03T00:00:00Z");
  // A longer path under the same prefix sorts after its slices.
  EXPECT_TRUE(kf.PastWindow("logs/", "logs/web/2026060105_3.gz", until));
  EXPECT_TRUE(kf.PastWindow("", "logs/2026060105_3.gz", until));
  EXPECT_TRUE(kf.PastWindow("logs/", "logs/2026060401_0.gz", until));
  EXPECT_FALSE(kf.PastWindow("logs/", "logs/2026060223_0.gz", until));
  EXPECT_FALSE(kf.PastWindow("logs/", "logs/20", until));
  KeyFormat hosts = Compile("%{path}%{hostname}/%{time_slice}_%{index}.gz");
  EXPECT_EQ(hosts.SlicePrefix("logs/web-1/2026060105_3.gz"), "logs/web-1/");
}

}  // namespace
}  // namespace logferry
