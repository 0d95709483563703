// The logger's JSON lines, its table/object scope, and repeat suppression,
// on a fake clock (no waiting: the clock moves when the test says).
#include "common/logging.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "support/fake_env.h"
#include "support/log_capture.h"

namespace logferry {
namespace {

using nlohmann::json;

struct Captured {
  testutil::FakeEnv env;
  std::unique_ptr<testutil::LogCapture> capture;
  explicit Captured(LogLineFormat format = LogLineFormat::kText) {
    LogOptions options;
    options.format = format;
    options.env = &env;
    capture = std::make_unique<testutil::LogCapture>(std::move(options));
  }
  std::vector<std::string> lines() const { return capture->lines(); }
};

void FailOnce(const std::string& what) {
  log::Error("load of {} failed: warehouse unreachable", what);
}

TEST(LogLines, NamesParseAndUnknownOnesAreRefused) {
  EXPECT_EQ(ParseLogLineFormat("text").value(), LogLineFormat::kText);
  EXPECT_EQ(ParseLogLineFormat("json").value(), LogLineFormat::kJson);
  for (const char* bad : {"JSON", "", "logfmt"}) EXPECT_FALSE(ParseLogLineFormat(bad).ok()) << bad;
}

TEST(LogLines, JsonLinesCarryTimeLevelMessageAndTheScope) {
  Captured c(LogLineFormat::kJson);
  log::Info("starting");
  {
    LogScope table("access");
    log::Warn("slow");
    {
      LogScope object("access", "file:///b/logs/2016080100_0.gz");
      log::Error("bad gzip");
    }
    log::Info("back to the table");
  }
  std::vector<std::string> lines = c.lines();
  ASSERT_EQ(lines.size(), 4u);
  std::vector<json> j;
  for (const std::string& line : lines) j.push_back(json::parse(line));
  EXPECT_EQ(j[0], (json{{"time", "2016-08-01T00:00:00.000Z"}, {"level", "info"}, {"message", "starting"}}));
  EXPECT_EQ(j[1]["level"], "warn");
  EXPECT_EQ(j[1]["table"], "access");
  EXPECT_FALSE(j[1].contains("object"));
  EXPECT_EQ(j[2]["level"], "error");
  EXPECT_EQ(j[2]["table"], "access");
  EXPECT_EQ(j[2]["object"], "file:///b/logs/2016080100_0.gz");
  EXPECT_EQ(j[3]["table"], "access");
  EXPECT_FALSE(j[3].contains("object")) << "a scope puts back what was there";
  EXPECT_EQ(lines[0].rfind("{\"time\":", 0), 0u) << "time first: " << lines[0];
}

// Whatever a bucket key holds (newlines, quotes, terminal escapes, bytes that
// are not UTF-8), each line is one valid JSON object, escaped for display.
TEST(LogLines, JsonLinesStayValidWhateverAKeyHolds) {
  Captured c(LogLineFormat::kJson);
  std::string key = std::string("logs/\"evil\n{\"level\":\"info\"}\x1b[2J\xff\xc3\x28\\") + std::string(1, '\0') + "x";
  {
    LogScope scope("access", "s3://b/" + key);
    log::Warn("object {} failed", key);
  }
  log::Info("{}", std::string(kMaxLogMessageBytes * 2, '"'));
  std::vector<std::string> lines = c.lines();
  ASSERT_EQ(lines.size(), 2u);
  for (const std::string& line : lines) {
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(line.find('\x1b'), std::string::npos);
    json j = json::parse(line);  // throws on invalid JSON or UTF-8
    EXPECT_TRUE(j["message"].is_string());
  }
  json first = json::parse(lines[0]);
  EXPECT_EQ(first["message"].get<std::string>().find("\\n"), 17u) << first["message"];
  EXPECT_NE(first["object"].get<std::string>().find("\\x1b[2J\\xff"), std::string::npos) << first["object"];
  EXPECT_NE(json::parse(lines[1])["message"].get<std::string>().find("more bytes not logged"), std::string::npos);
}

TEST(LogScope, IsPerThread) {
  Captured c(LogLineFormat::kJson);
  LogScope scope("access");
  std::thread([] { log::Info("from a worker without a scope"); }).join();
  log::Info("from the pass");
  std::vector<std::string> lines = c.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_FALSE(json::parse(lines[0]).contains("table"));
  EXPECT_EQ(json::parse(lines[1])["table"], "access");
}

// An error every 10 s (a pass interval): written at once, then held back for
// 1 minute, 2, 4, ... and each time it is written again it says how often
// it recurred meanwhile.
TEST(LogRepeats, ARepeatedErrorBacksOffAndCountsWhatItHeldBack) {
  Captured c;
  for (int pass = 0; pass <= 60 * 6 / 10 + 1; ++pass) {  // 7 minutes of passes, 10 s apart
    FailOnce("access 2016-08-01T00");
    c.env.Advance(10 * kMicrosPerSecond);
  }
  std::vector<std::string> lines = c.lines();
  ASSERT_EQ(lines.size(), 3u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines[0], "2016-08-01T00:00:00.000Z error load of access 2016-08-01T00 failed: warehouse unreachable");
  EXPECT_EQ(lines[1],
            "2016-08-01T00:01:00.000Z error load of access 2016-08-01T00 failed: warehouse unreachable "
            "(repeated 6 times in the last 1m00s)");
  EXPECT_EQ(lines[2],
            "2016-08-01T00:03:00.000Z error load of access 2016-08-01T00 failed: warehouse unreachable "
            "(repeated 12 times in the last 2m00s)");
}

TEST(LogRepeats, TheSpacingIsCappedAtAnHour) {
  Captured c;
  for (int minute = 0; minute < 6 * 60; ++minute) {
    FailOnce("access");
    c.env.Advance(60 * kMicrosPerSecond);
  }
  std::vector<std::string> lines = c.lines();
  // Written at 0, 1, 3, 7, 15, 31, 63 min, then hourly: 123, 183, 243, 303.
  ASSERT_EQ(lines.size(), 11u) << ::testing::PrintToString(lines);
  EXPECT_NE(lines.back().find("(repeated 60 times in the last 1h00m)"), std::string::npos) << lines.back();
}

// Another message, another call site, or a level below warn is not held
// back; and an error that stopped for an hour is written as new.
TEST(LogRepeats, OnlyTheSameTextFromTheSameSiteAtWarnOrAboveIsHeldBack) {
  Captured c;
  FailOnce("access");
  FailOnce("errors");                                                      // other text
  log::Error("load of {} failed: {}", "access", "warehouse unreachable");  // same text, other site
  log::Info("pass: 0 new objects");
  log::Info("pass: 0 new objects");
  FailOnce("access");  // held back
  EXPECT_EQ(c.lines().size(), 5u) << ::testing::PrintToString(c.lines());
  c.env.Advance(3600 * kMicrosPerSecond);
  FailOnce("access");
  ASSERT_EQ(c.lines().size(), 6u);
  EXPECT_EQ(c.lines().back().find("repeated"), std::string::npos) << "forgotten after an hour: " << c.lines().back();
}

}  // namespace
}  // namespace logferry
