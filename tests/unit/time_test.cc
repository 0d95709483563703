#include "common/time.h"

#include <gtest/gtest.h>

namespace logferry {
namespace {

TEST(Time, Iso8601RoundTrip) {
  auto t = ParseIso8601("2016-08-01T12:34:56+09:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatIso8601(*t), "2016-08-01T03:34:56Z");
  EXPECT_EQ(*ParseIso8601("2016-08-01T03:34:56.5Z"), *t + 500000);
  EXPECT_EQ(*ParseIso8601("2016-08-01 03:34:56+0000"), *t);
  EXPECT_EQ(*ParseIso8601("2016-08-01T12:34:56", 9 * 3600), *t);
}

TEST(Time, Iso8601RejectsNonsense) {
  EXPECT_FALSE(ParseIso8601("2016-13-01T00:00:00Z"));
  EXPECT_FALSE(ParseIso8601("2016-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseIso8601("10000-01-01T00:00:00Z"));
  EXPECT_FALSE(ParseIso8601("2016-08-01T25:00:00Z"));
  EXPECT_FALSE(ParseIso8601("2016-08-01T00:00:00Zjunk"));
  EXPECT_FALSE(ParseIso8601(""));
}

TEST(Time, LayoutParsesApacheTime) {
  auto layout = TimeLayout::Compile("%d/%b/%Y:%H:%M:%S %z");
  ASSERT_TRUE(layout.ok());
  auto t = layout->Parse("17/May/2015:10:05:03 +0000", TimeZone());
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatIso8601(*t), "2015-05-17T10:05:03Z");
}

TEST(Time, LayoutFormatsSlices) {
  auto layout = TimeLayout::Compile("%Y/%m/%d/%H");
  ASSERT_TRUE(layout.ok());
  int64_t t = *ParseIso8601("2016-08-01T03:00:00Z");
  EXPECT_EQ(layout->Format(t, TimeZone::Fixed(9 * 3600)), "2016/08/01/12");
  EXPECT_EQ(*layout->Parse("2016/08/01/12", TimeZone::Fixed(9 * 3600)), t);
  EXPECT_EQ(layout->Resolution(), kMicrosPerHour);
}

TEST(Time, Durations) {
  EXPECT_EQ(*ParseDuration("10m"), 600 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("1h30m"), 5400 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("500ms"), 500000);
  EXPECT_FALSE(ParseDuration("10 minutes").ok());
  EXPECT_FALSE(ParseDuration("").ok());
}

TEST(Time, FloorHandlesNegative) {
  EXPECT_EQ(FloorTo(-1, kMicrosPerHour), -kMicrosPerHour);
  EXPECT_EQ(FloorTo(kMicrosPerHour + 5, kMicrosPerHour), kMicrosPerHour);
}

}  // namespace
}  // namespace logferry
