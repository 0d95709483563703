// JSON string quoting takes vectorized shortcuts (short strings quoted in a
// stack buffer, long runs checked sixteen bytes at a time); every length
// around those block edges, with each kind of special byte at every
// position, must come out exactly as a plain byte-by-byte quoting would.
#include "common/strings.h"

#include <gtest/gtest.h>

#include <random>

namespace logferry {
namespace {

// The reference: one byte at a time, no shortcuts.
std::string Reference(std::string_view s, size_t* replaced) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  *replaced = 0;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // The sequence its lead byte announces, copied only if valid.
      size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (len > 1 && i + len <= s.size() && IsValidUtf8(s.substr(i, len))) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out.append("\xEF\xBF\xBD");
        ++*replaced;
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out += "\"";
  return out;
}

void ExpectSame(const std::string& s) {
  size_t want_replaced = 0;
  std::string want = Reference(s, &want_replaced);
  std::string got = "prefix:";
  size_t replaced = AppendJsonString(&got, s);
  EXPECT_EQ(got, "prefix:" + want) << "input of " << s.size() << " bytes";
  EXPECT_EQ(replaced, want_replaced) << "input of " << s.size() << " bytes";
}

TEST(AppendJsonString, EverySpecialByteAtEveryPositionAroundBlockEdges) {
  const std::vector<std::string> specials = {"\"",
                                             "\\",
                                             "\n",
                                             std::string(1, '\0'),
                                             "\x1f",
                                             "\x7f",
                                             "\xC3\xA9",          // é, valid
                                             "\xE2\x82\xAC",      // €, valid
                                             "\xF0\x9F\x98\x80",  // 😀, valid
                                             "\xFF",
                                             "\xC3",
                                             "\xED\xA0\x80"};  // invalid
  for (size_t len : {0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 66, 80, 127, 128, 129, 200}) {
    ExpectSame(std::string(len, 'a'));
    for (const std::string& sp : specials) {
      for (size_t pos = 0; pos <= len; ++pos) {
        std::string s(len, 'x');
        s.insert(pos, sp);
        ExpectSame(s);
      }
    }
  }
}

// msgpack-cxx hands an empty str over as (nullptr, 0).
TEST(AppendJsonString, EmptyViewWithoutStorage) {
  std::string out;
  EXPECT_EQ(AppendJsonString(&out, std::string_view(nullptr, 0)), 0u);
  EXPECT_EQ(out, "\"\"");
}

TEST(AppendJsonString, RandomBytesMatchTheReference) {
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 3000; ++round) {
    size_t len = rng() % 150;
    std::string s(len, '\0');
    // Mostly printable ASCII with a sprinkling of everything else.
    for (char& c : s) c = static_cast<char>(rng() % 8 == 0 ? rng() % 256 : 0x20 + rng() % 95);
    ExpectSame(s);
  }
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

TEST(Strings, ClosestMatchForTypos) {
  const std::vector<std::string> commands = {"run", "status", "reload", "verify", "query", "check", "schema"};
  EXPECT_EQ(ClosestMatch("statsu", commands), "status") << "adjacent swap";
  EXPECT_EQ(ClosestMatch("verfy", commands), "verify") << "deletion";
  EXPECT_EQ(ClosestMatch("chekc", commands), "check");
  EXPECT_EQ(ClosestMatch("querry", commands), "query") << "insertion";
  EXPECT_EQ(ClosestMatch("frobnicate", commands), "") << "nothing close";
  EXPECT_EQ(ClosestMatch("rn", commands), "") << "too short to guess from";
  EXPECT_EQ(ClosestMatch("status", commands), "") << "not a typo";
  EXPECT_EQ(ClosestMatch(std::string(1000, 'x'), commands), "");
}

}  // namespace
}  // namespace logferry
