// Text from a bucket printed for people: one visible line, no terminal
// controls, whatever it holds; and every log line goes through that.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/strings.h"
#include "support/fake_env.h"
#include "support/log_capture.h"

namespace logferry {
namespace {

constexpr const char* kForged = "evil\n[info] pass: all good\x1b[2J";

TEST(EscapeForDisplay, ControlCharactersBecomeVisibleEscapes) {
  EXPECT_EQ(EscapeForDisplay(kForged), "evil\\n[info] pass: all good\\x1b[2J");
  EXPECT_EQ(EscapeForDisplay(std::string("a\0b\r\t\x7f", 6)), "a\\x00b\\r\\t\\x7f");
  EXPECT_EQ(EscapeForDisplay("\x01\x1f"), "\\x01\\x1f");
}

TEST(EscapeForDisplay, C1SeparatorsAndBidiControlsAreEscaped) {
  EXPECT_EQ(EscapeForDisplay("a\xc2\x9b"
                             "2Jb"),
            "a\\u009b2Jb");                                                       // U+009B CSI
  EXPECT_EQ(EscapeForDisplay("x\xc2\x85y"), "x\\u0085y");                         // U+0085 NEL
  EXPECT_EQ(EscapeForDisplay("x\xe2\x80\xa8y\xe2\x80\xa9"), "x\\u2028y\\u2029");  // line/paragraph separators
  EXPECT_EQ(EscapeForDisplay("txt.\xe2\x80\xae"
                             "gpj.exe"),
            "txt.\\u202egpj.exe");  // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(EscapeForDisplay("\xe2\x81\xa6\xe2\x81\xa9\xe2\x80\x8f\xd8\x9c"), "\\u2066\\u2069\\u200f\\u061c");
}

TEST(EscapeForDisplay, OrdinaryTextAndUtf8AreKept) {
  EXPECT_EQ(EscapeForDisplay("logs/2016080100_0.gz"), "logs/2016080100_0.gz");
  EXPECT_EQ(EscapeForDisplay("東京/ログ é ü 🙂 a\\b"), "東京/ログ é ü 🙂 a\\b");
  EXPECT_EQ(EscapeForDisplay("\xc2\xa0"), "\xc2\xa0");  // U+00A0 is printable
}

TEST(EscapeForDisplay, BytesThatAreNotUtf8AreHexEscaped) {
  EXPECT_EQ(EscapeForDisplay("a\x9b"
                             "b\xff\xc3"),
            "a\\x9bb\\xff\\xc3");
  EXPECT_EQ(EscapeForDisplay("\xe0\x80\x80"), "\\xe0\\x80\\x80");  // overlong NUL
}

// The process's logger over a captured output, its clock at the fixtures' day.
struct CapturedLog {
  testutil::FakeEnv env;
  std::unique_ptr<testutil::LogCapture> capture;
  CapturedLog() {
    LogOptions options;
    options.env = &env;
    capture = std::make_unique<testutil::LogCapture>(std::move(options));
  }
};

TEST(Logging, EveryMessageIsEscapedWhateverTheCallSiteFormats) {
  CapturedLog c;
  log::Warn("object {} failed: {}", std::string("logs/") + kForged + "/2016080100_0.gz", "bad\rgzip");
  EXPECT_EQ(c.capture->lines(),
            std::vector<std::string>{"2016-08-01T00:00:00.000Z warning object logs/evil\\n[info] pass: all "
                                     "good\\x1b[2J/2016080100_0.gz failed: bad\\rgzip"});
}

TEST(Logging, LongMessagesAreCutAtTheBound) {
  CapturedLog c;
  log::Info("{}", std::string(kMaxLogMessageBytes * 4, 'k'));
  ASSERT_EQ(c.capture->lines().size(), 1u);
  std::string line = c.capture->lines()[0];
  EXPECT_LT(line.size(), kMaxLogMessageBytes + 100);
  EXPECT_NE(line.find(std::to_string(kMaxLogMessageBytes * 3) + " more bytes not logged"), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(Logging, LinesBelowTheLevelAreNotWritten) {
  testutil::FakeEnv env;
  LogOptions options;
  options.level = LogLevel::kWarn;
  options.env = &env;
  testutil::LogCapture capture(std::move(options));
  log::Debug("d");
  log::Info("i");
  log::Warn("w");
  log::Error("e");
  EXPECT_EQ(capture.lines(),
            (std::vector<std::string>{"2016-08-01T00:00:00.000Z warning w", "2016-08-01T00:00:00.000Z error e"}));
}

TEST(Logging, LevelNamesParseAndUnknownOnesAreRefused) {
  EXPECT_EQ(ParseLogLevel("debug").value(), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("trace").value(), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info").value(), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("warn").value(), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("error").value(), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("off").value(), LogLevel::kOff);
  for (const char* bad : {"INFO", "warning", "", "verbose"}) {
    auto level = ParseLogLevel(bad);
    ASSERT_FALSE(level.ok()) << bad;
    EXPECT_EQ(level.status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace logferry
