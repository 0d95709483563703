#include "format/key_format.h"

#include <gtest/gtest.h>

namespace logferry {
namespace {

constexpr const char* kDefaultFormat = "%{path}%{time_slice}_%{index}.%{file_extension}";

int64_t T(const char* iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(0);
}

KeyFormat Compile(std::string_view fmt, std::string_view slice = "%Y%m%d%H", int32_t offset = 0) {
  auto kf = KeyFormat::Compile(fmt, slice, TimeZone::Fixed(offset));
  EXPECT_TRUE(kf.ok()) << kf.status().ToString();
  return kf.ok() ? *kf : *KeyFormat::Compile("x", "%Y", TimeZone());
}

TEST(KeyFormat, FluentdDefault) {
  KeyFormat kf = Compile(kDefaultFormat);
  auto m = kf.Match("2016080112_0.gz");
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->time_slice_us);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T12:00:00Z"));
  EXPECT_EQ(m->index, 0);

  m = kf.Match("2016080112_17.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 17);

  // %{path} may carry directories and digits of its own.
  m = kf.Match("logs/web/2016080123_3.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T23:00:00Z"));
  EXPECT_EQ(m->index, 3);

  m = kf.Match("20160801/2016080105_1.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T05:00:00Z"));
  EXPECT_EQ(m->index, 1);

  // A directory named like a key: only the last segment is the slice.
  m = kf.Match("2016080112_0.gz/2016080113_1.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T13:00:00Z"));
  EXPECT_EQ(m->index, 1);
}

TEST(KeyFormat, FileExtensions) {
  KeyFormat kf = Compile(kDefaultFormat);
  for (const char* ext : {"gz", "json.gz", "txt", "zst", "json", "log.gz"}) {
    auto m = kf.Match(std::string("2016080112_4.") + ext);
    ASSERT_TRUE(m) << ext;
    EXPECT_EQ(m->index, 4) << ext;
    EXPECT_EQ(*m->time_slice_us, T("2016-08-01T12:00:00Z")) << ext;
  }
}

TEST(KeyFormat, NonMatchingKeys) {
  KeyFormat kf = Compile(kDefaultFormat);
  for (const char* key : {"", "README", "2016080112.gz", "2016080112_.gz", "2016080112_x.gz", "2016080112_0",
                          "2016080112_0.", "2016080112_0.gz/extra", "201608011_0.gz", "2016131012_0.gz",
                          "2016080125_0.gz", "2016023012_0.gz", "abcd080112_0.gz", "2016080112_1234567890123.gz"}) {
    EXPECT_FALSE(kf.Match(key)) << "matched '" << key << "'";
  }
}

TEST(KeyFormat, SlashedTimeSlice) {
  KeyFormat kf = Compile("%{path}%{time_slice}/%{index}.%{file_extension}", "%Y/%m/%d/%H");
  auto m = kf.Match("logs/2016/08/01/12/0.json.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T12:00:00Z"));
  EXPECT_EQ(m->index, 0);
  EXPECT_FALSE(kf.Match("logs/2016/08/01/0.gz"));
  EXPECT_FALSE(kf.Match("logs/2016/08/01/12/a.gz"));

  KeyFormat daily = Compile("%{path}dt=%{time_slice}/part_%{index}.%{file_extension}", "%Y-%m-%d");
  m = daily.Match("x/dt=2016-08-01/part_2.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T00:00:00Z"));
  EXPECT_EQ(m->index, 2);
  EXPECT_EQ(daily.time_slice().Resolution(), kMicrosPerDay);
}

TEST(KeyFormat, RandomAndUuidPlaceholders) {
  KeyFormat hex = Compile("%{path}%{time_slice}_%{hex_random}_%{index}.%{file_extension}");
  auto m = hex.Match("logs/2016080112_9f3a2c_0.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T12:00:00Z"));
  EXPECT_EQ(m->index, 0);
  EXPECT_FALSE(hex.Match("logs/2016080112_zz_0.gz")) << "hex_random must be hex";
  EXPECT_FALSE(hex.Match("logs/2016080112__0.gz")) << "hex_random must not be empty";

  KeyFormat uuid = Compile("%{path}%{time_slice}-%{uuid_flush}.%{file_extension}");
  m = uuid.Match("2016080112-c6a1f4e0-5b7d-11e6-8b77-86f30ca893d3.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T12:00:00Z"));
  EXPECT_EQ(m->index, -1) << "no %{index} in the format";
  EXPECT_FALSE(uuid.Match("2016080112-not-a-uuid.gz"));
}

TEST(KeyFormat, HostnamePlaceholderStopsAtSlash) {
  KeyFormat kf = Compile("%{hostname}/%{time_slice}_%{index}.%{file_extension}");
  auto m = kf.Match("web-01.example/2016080112_0.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 0);
  EXPECT_FALSE(kf.Match("a/b/2016080112_0.gz"));
}

TEST(KeyFormat, TimeZoneOffsetAppliesToSlices) {
  // Fluentd wrote the slice in +09:00 local time: 12h local is 03h UTC.
  KeyFormat jst = Compile(kDefaultFormat, "%Y%m%d%H", 9 * 3600);
  auto m = jst.Match("2016080112_0.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-01T03:00:00Z"));
  // Crossing a day backwards.
  m = jst.Match("2016080105_0.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-07-31T20:00:00Z"));

  KeyFormat west = Compile(kDefaultFormat, "%Y%m%d%H", -(5 * 3600 + 30 * 60));
  m = west.Match("2016080123_0.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->time_slice_us, T("2016-08-02T04:30:00Z"));
}

TEST(KeyFormat, FormatRoundTrips) {
  struct Case {
    const char* fmt;
    const char* slice;
    int32_t offset;
    const char* path;
    const char* ext;
  };
  for (const Case& c :
       {Case{kDefaultFormat, "%Y%m%d%H", 0, "logs/", "gz"}, Case{kDefaultFormat, "%Y%m%d%H", 9 * 3600, "", "json.gz"},
        Case{"%{path}%{time_slice}/%{index}.%{file_extension}", "%Y/%m/%d/%H", 9 * 3600, "a/b/", "gz"},
        Case{"%{path}%{time_slice}_%{hex_random}_%{index}.%{file_extension}", "%Y%m%d%H", -3600, "p/", "zst"},
        Case{"%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d", 0, "d/", "txt"}}) {
    KeyFormat kf = Compile(c.fmt, c.slice, c.offset);
    int64_t unit = kf.time_slice().Resolution();
    for (int64_t t :
         {T("2016-08-01T00:00:00Z"), T("2016-08-01T15:00:00Z"), T("2016-12-31T23:00:00Z"), T("2020-02-29T07:00:00Z")}) {
      // Slice starts are aligned in local time.
      int64_t local = t + int64_t{c.offset} * kMicrosPerSecond;
      int64_t slice_start = FloorTo(local, unit) - int64_t{c.offset} * kMicrosPerSecond;
      for (int index : {0, 1, 42}) {
        std::string key = kf.Format(c.path, slice_start, index, c.ext);
        auto m = kf.Match(key);
        ASSERT_TRUE(m) << c.fmt << " produced unmatched key '" << key << "'";
        EXPECT_EQ(*m->time_slice_us, slice_start) << key;
        EXPECT_EQ(m->index, index) << key;
      }
    }
  }
  EXPECT_EQ(Compile(kDefaultFormat, "%Y%m%d%H", 9 * 3600).Format("logs/", T("2016-08-01T03:00:00Z"), 0, "gz"),
            "logs/2016080112_0.gz");
}

TEST(KeyFormat, CompileErrors) {
  EXPECT_FALSE(KeyFormat::Compile("%{path}%{nope}.gz", "%Y%m%d%H", TimeZone()).ok());
  EXPECT_FALSE(KeyFormat::Compile("%{path", "%Y%m%d%H", TimeZone()).ok());
  EXPECT_FALSE(KeyFormat::Compile(kDefaultFormat, "%Q", TimeZone()).ok());
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

// Fluentd formats strftime directives written in s3_object_key_format itself;
// they are read as the key's time slice (time_slice_format is then unused).
TEST(KeyFormat, StrftimeDirectivesInKeyFormatAreTheTimeSlice) {
  KeyFormat kf = Compile("%{path}%Y/%m/%d/%H_%{index}.%{file_extension}", "%Y%m%d%H", 9 * 3600);
  auto m = kf.Match("logs/2016/08/01/12_3.gz");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->time_slice_us, T("2016-08-01T03:00:00Z"));
  EXPECT_EQ(m->index, 3);
  EXPECT_FALSE(kf.Match("logs/2016080112_3.gz"));
  EXPECT_EQ(kf.Format("logs/", T("2016-08-01T03:00:00Z"), 0, "gz"), "logs/2016/08/01/12_0.gz");
  EXPECT_FALSE(KeyFormat::Compile("%{path}%Y/%{index}/%m.gz", "%H", TimeZone()).ok()) << "split time parts";
  EXPECT_FALSE(KeyFormat::Compile("%{path}%{time_slice}/%H.gz", "%Y", TimeZone()).ok()) << "both kinds";
}

}  // namespace
}  // namespace logferry
