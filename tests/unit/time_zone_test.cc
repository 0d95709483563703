// IANA zones: offsets across daylight-saving transitions, and what a skipped
// or repeated wall-clock time becomes (see TimeZone in common/time.h).
#include <gtest/gtest.h>

#include "common/time.h"
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
  EXPECT_TRUE(z.ok()) << name << ": " << z.status().ToString();
  return z.ok() ? *z : TimeZone();
}

TEST(TimeZone, ParsesOffsetsAndNames) {
  EXPECT_TRUE(Zone("+09:00").is_fixed());
  EXPECT_EQ(Zone("+09:00").Name(), "+09:00");
  EXPECT_EQ(Zone("UTC").Name(), "+00:00");
  EXPECT_EQ(Zone("-0530").OffsetAt(0), -(5 * 3600 + 30 * 60));
  EXPECT_FALSE(Zone("Asia/Tokyo").is_fixed());
  EXPECT_EQ(Zone("Asia/Tokyo").Name(), "Asia/Tokyo");
  EXPECT_EQ(Zone("Asia/Tokyo").OffsetAt(T("2016-08-01T00:00:00Z")), 9 * 3600);
  EXPECT_TRUE(TimeZone::Parse("localtime").ok());
  for (const char* bad : {"Tokyo", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "Asia/Tokyo "})
    EXPECT_FALSE(TimeZone::Parse(bad).ok()) << bad;
}

TEST(TimeZone, NewYorkOffsetsAcrossTransitions) {
  TimeZone ny = Zone("America/New_York");
  // 2016-03-13 02:00 EST → 03:00 EDT (07:00Z); 2016-11-06 02:00 EDT → 01:00 EST (06:00Z).
  EXPECT_EQ(ny.OffsetAt(T("2016-03-13T06:59:59Z")), -5 * 3600);
  EXPECT_EQ(ny.OffsetAt(T("2016-03-13T07:00:00Z")), -4 * 3600);
  EXPECT_EQ(ny.OffsetAt(T("2016-11-06T05:59:59Z")), -4 * 3600);
  EXPECT_EQ(ny.OffsetAt(T("2016-11-06T06:00:00Z")), -5 * 3600);
}

TEST(TimeZone, WallClockTimesAroundTransitions) {
  TimeZone ny = Zone("America/New_York");
  EXPECT_EQ(*ParseIso8601("2016-03-13T01:59:59", ny), T("2016-03-13T06:59:59Z"));
  EXPECT_EQ(*ParseIso8601("2016-03-13T03:00:00", ny), T("2016-03-13T07:00:00Z"));
  // Skipped: as if EST still held, so 02:30 is 03:30 EDT.
  EXPECT_EQ(*ParseIso8601("2016-03-13T02:30:00", ny), T("2016-03-13T07:30:00Z"));
  // Repeated: the first occurrence (EDT).
  EXPECT_EQ(*ParseIso8601("2016-11-06T01:30:00", ny), T("2016-11-06T05:30:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-11-06T02:00:00", ny), T("2016-11-06T07:00:00Z"));
  // An explicit offset wins over the zone.
  EXPECT_EQ(*ParseIso8601("2016-11-06T01:30:00-05:00", ny), T("2016-11-06T06:30:00Z"));

  TimeZone berlin = Zone("Europe/Berlin");
  // 2016-03-27 02:00 CET → 03:00 CEST; 2016-10-30 03:00 CEST → 02:00 CET.
  EXPECT_EQ(*ParseIso8601("2016-03-27T01:59:59", berlin), T("2016-03-27T00:59:59Z"));
  EXPECT_EQ(*ParseIso8601("2016-03-27T02:30:00", berlin), T("2016-03-27T01:30:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-03-27T03:00:00", berlin), T("2016-03-27T01:00:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-10-30T02:30:00", berlin), T("2016-10-30T00:30:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-10-30T03:00:00", berlin), T("2016-10-30T02:00:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-07-01T12:00:00", berlin), T("2016-07-01T10:00:00Z"));
  EXPECT_EQ(*ParseIso8601("2016-01-01T12:00:00", berlin), T("2016-01-01T11:00:00Z"));
}

// The per-hour cache must give what an uncached lookup gives: every wall
// second of two transition days, parsed twice (the second time cached).
TEST(TimeZone, CachedConversionsMatchAcrossWholeDays) {
  for (const char* day : {"2016-03-13", "2016-11-06"}) {
    TimeZone warm = Zone("America/New_York");
    int64_t midnight = T((std::string(day) + "T00:00:00Z").c_str()) / kMicrosPerSecond;
    for (int64_t s = 0; s < 86400; s += 7) (void)warm.LocalToUtcSeconds(midnight + s);
    for (int64_t s = 0; s < 86400; s += 7) {
      TimeZone fresh = Zone("America/New_York");
      ASSERT_EQ(warm.LocalToUtcSeconds(midnight + s), fresh.LocalToUtcSeconds(midnight + s)) << day << " +" << s;
    }
  }
}

TEST(TimeZone, LayoutsUseTheZone) {
  TimeZone tokyo = Zone("Asia/Tokyo");
  auto layout = TimeLayout::Compile("%d/%b/%Y:%H:%M:%S");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(*layout->Parse("01/Aug/2016:09:00:00", tokyo), T("2016-08-01T00:00:00Z"));
  auto slice = TimeLayout::Compile("%Y%m%d%H");
  TimeZone ny = Zone("America/New_York");
  EXPECT_EQ(slice->Format(T("2016-03-13T06:00:00Z"), ny), "2016031301");
  EXPECT_EQ(slice->Format(T("2016-03-13T07:00:00Z"), ny), "2016031303") << "02 is skipped";
  EXPECT_EQ(slice->Format(T("2016-11-06T05:00:00Z"), ny), "2016110601");
  EXPECT_EQ(slice->Format(T("2016-11-06T06:00:00Z"), ny), "2016110601") << "01 repeats";
  EXPECT_EQ(slice->Format(T("2016-11-06T07:00:00Z"), ny), "2016110602");
}

// Fluentd names a slice by the zone's wall clock; a key's slice is the
// first instant of that wall-clock hour.
TEST(TimeZone, KeySlicesInAZoneWithDst) {
  auto kf = KeyFormat::Compile("%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H", Zone("Europe/Berlin"));
  ASSERT_TRUE(kf.ok());
  EXPECT_EQ(kf->Match("logs/2016072512_0.gz")->time_slice_us, T("2016-07-25T10:00:00Z"));
  EXPECT_EQ(kf->Match("logs/2016012512_0.gz")->time_slice_us, T("2016-01-25T11:00:00Z"));
  EXPECT_EQ(kf->Match("logs/2016103002_1.gz")->time_slice_us, T("2016-10-30T00:00:00Z"));
  EXPECT_EQ(kf->Format("logs/", T("2016-10-30T01:00:00Z"), 1, "gz"), "logs/2016103002_1.gz");
}

}  // namespace
}  // namespace logferry
