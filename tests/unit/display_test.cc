// Text from a bucket printed for people: one visible line, no terminal
// controls, whatever it holds; and every log line goes through that.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "common/logging.h"
#include "common/strings.h"

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

// A logger wired like the process's (escaping sink) over a string stream.
struct CapturedLogger {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  CapturedLogger() {
    auto inner = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    logger = std::make_shared<spdlog::logger>("test", MakeEscapingSink(inner));
    logger->set_pattern("%l %v");
  }
};

TEST(Logging, EveryMessageIsEscapedWhateverTheCallSiteFormats) {
  CapturedLogger c;
  c.logger->warn("object {} failed: {}", std::string("logs/") + kForged + "/2016080100_0.gz", "bad\rgzip");
  c.logger->flush();
  EXPECT_EQ(c.out.str(),
            "warning object logs/evil\\n[info] pass: all good\\x1b[2J/2016080100_0.gz failed: bad\\rgzip\n");
}

TEST(Logging, LongMessagesAreCutAtTheBound) {
  CapturedLogger c;
  c.logger->info("{}", std::string(kMaxLogMessageBytes * 4, 'k'));
  c.logger->flush();
  std::string line = c.out.str();
  EXPECT_LT(line.size(), kMaxLogMessageBytes + 100);
  EXPECT_NE(line.find(std::to_string(kMaxLogMessageBytes * 3) + " more bytes not logged"), std::string::npos);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

}  // namespace
}  // namespace logferry
