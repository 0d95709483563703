// Fluentd's other formatters: ltsv, csv, tsv, single_value (lines turned into
// JSON objects of strings) and msgpack (a stream of maps).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "format/key_format.h"
#include "format/msgpack_json.h"
#include "format/msgpack_object.h"
#include "format/normalizer.h"

namespace logferry {
namespace {

using json = nlohmann::json;

struct Result {
  bool ok;
  json row;
  std::string reason;
};

Result Normalize1(const FormatOptions& opts, const std::string& line) {
  static std::vector<std::unique_ptr<SchemaRegistry>> keep;
  keep.push_back(std::make_unique<SchemaRegistry>(FixedColumns(opts.format)));
  RowNormalizer n(keep.back().get(), opts);
  std::string buf = line + std::string(simdjson::SIMDJSON_PADDING, ' ');
  LineError err;
  int64_t slice = 1470009600LL * 1000000;  // 2016-08-01T00:00:00Z
  bool ok = n.Normalize(std::string_view(buf.data(), line.size()), buf.size(), slice, &err);
  return {ok, ok ? json::parse(n.row()) : json(), err.reason};
}

FormatOptions Opts(LogFormat f) {
  FormatOptions o;
  o.format = f;
  return o;
}

TEST(Formats, LtsvLabelsBecomeColumnsAndTimeKeyIsEventTime) {
  FormatOptions o = Opts(LogFormat::kLtsv);
  Result r = Normalize1(o, "time:2016-08-01T12:00:00+09:00\thost:1.2.3.4\treq:GET / HTTP/1.1\tua:a:b:c\tempty:");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.row["_time"], "2016-08-01T03:00:00Z");
  EXPECT_EQ(r.row["host"], "1.2.3.4");
  EXPECT_EQ(r.row["req"], "GET / HTTP/1.1");
  EXPECT_EQ(r.row["ua"], "a:b:c") << "only the first label delimiter splits";
  EXPECT_EQ(r.row["empty"], "");
}

TEST(Formats, LtsvCustomDelimitersAndMissingTime) {
  FormatOptions o = Opts(LogFormat::kLtsv);
  o.delimiter = ',';
  o.label_delimiter = '=';
  Result r = Normalize1(o, "a=1,b=x=y");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.row["a"], "1");
  EXPECT_EQ(r.row["b"], "x=y");
  EXPECT_EQ(r.row["_time"], "2016-08-01T00:00:00Z") << "no time field: the key's time slice";
}

TEST(Formats, LtsvFieldWithoutLabelIsABadRecord) {
  Result r = Normalize1(Opts(LogFormat::kLtsv), "a:1\tjusttext\tb:2");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("field 2 has no label"), std::string::npos) << r.reason;
}

TEST(Formats, CsvQuotedAsFluentdWritesIt) {
  FormatOptions o = Opts(LogFormat::kCsv);
  o.delimiter = ',';
  o.keys = {"time", "host", "msg"};
  Result r = Normalize1(o, R"("2016-08-01T03:00:00Z","1.2.3.4","said ""hi"", then left")");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.row["_time"], "2016-08-01T03:00:00Z");
  EXPECT_EQ(r.row["msg"], "said \"hi\", then left");
  Result unquoted = Normalize1(o, "2016-08-01T03:00:00Z,1.2.3.4,plain");
  ASSERT_TRUE(unquoted.ok) << unquoted.reason;
  EXPECT_EQ(unquoted.row["msg"], "plain");
}

TEST(Formats, CsvWrongFieldCountOrBrokenQuotesAreBadRecords) {
  FormatOptions o = Opts(LogFormat::kCsv);
  o.delimiter = ',';
  o.keys = {"a", "b"};
  Result few = Normalize1(o, "1");
  EXPECT_FALSE(few.ok);
  EXPECT_NE(few.reason.find("expected 2 fields"), std::string::npos) << few.reason;
  Result open = Normalize1(o, "\"1,2");
  EXPECT_FALSE(open.ok);
  EXPECT_NE(open.reason.find("unterminated"), std::string::npos) << open.reason;
}

TEST(Formats, CsvLineEndingInsideQuotesAsksForTheNextLine) {
  FormatOptions o = Opts(LogFormat::kCsv);
  o.delimiter = ',';
  o.keys = {"a", "b"};
  SchemaRegistry schema(FixedColumns(o.format));
  RowNormalizer n(&schema, o);
  auto run = [&](const std::string& line, LineError* err) {
    std::string buf = line + std::string(simdjson::SIMDJSON_PADDING, ' ');
    return n.Normalize(std::string_view(buf.data(), line.size()), buf.size(), 0, err);
  };
  LineError err;
  EXPECT_FALSE(run("\"1\",\"first line", &err));
  EXPECT_TRUE(err.open_quote) << err.reason;
  EXPECT_FALSE(run("\"1\",\"say \"\"hi\"\"", &err));  // a doubled quote, then the line ends inside the value
  EXPECT_TRUE(err.open_quote) << err.reason;
  // Joined, the record parses, line breaks kept.
  ASSERT_TRUE(run("\"1\",\"first line\nsecond\r\nthird\"", &err)) << err.reason;
  EXPECT_EQ(json::parse(n.row())["b"], "first line\nsecond\r\nthird");
  EXPECT_FALSE(err.open_quote);
  // Other quoting errors and field counts are not an open quote.
  EXPECT_FALSE(run("\"1\",\"x\"y", &err));
  EXPECT_FALSE(err.open_quote) << err.reason;
  EXPECT_FALSE(run("\"1\"", &err));
  EXPECT_FALSE(err.open_quote) << err.reason;
}

TEST(Formats, CsvContinuationFindsTheRecordEnd) {
  using R = CsvContinuation::Result;
  // Each call continues after the first line, which ended inside quotes.
  auto scan_all = [](const std::string& rest, size_t piece, size_t* pos) {
    CsvContinuation c(',');
    *pos = 0;
    for (size_t upto = std::min(piece, rest.size());; upto = std::min(upto + piece, rest.size())) {
      R r = c.Scan(rest.data(), upto, pos);
      if (r != R::kMore || upto == rest.size()) return std::make_pair(r, c.CanEndHere());
    }
  };
  for (size_t piece : {1, 2, 3, 1000}) {
    size_t pos;
    // The value goes on over a line break and a doubled quote, then more fields, then the next record.
    std::string rest = "more \"\"quoted\"\"\nstill\",\"x\",plain\n\"next\",\"record\"\n";
    auto [r, can_end] = scan_all(rest, piece, &pos);
    EXPECT_EQ(r, R::kEnd) << piece;
    EXPECT_EQ(pos, rest.find("\n\"next\"")) << piece;
    // CRLF after the closing quote ends the record too.
    std::string crlf = "tail\"\r\n\"next\"\n";
    std::tie(r, can_end) = scan_all(crlf, piece, &pos);
    EXPECT_EQ(r, R::kEnd);
    EXPECT_EQ(pos, 6u);
    // Text after a closing quote: not a continuation.
    std::tie(r, can_end) = scan_all("\"csv\",\"2\"\n", piece, &pos);
    EXPECT_EQ(r, R::kMalformed);
    EXPECT_EQ(pos, 1u);
    std::tie(r, can_end) = scan_all("x\"\ry\n", piece, &pos);
    EXPECT_EQ(r, R::kMalformed);
    // The input ends: inside the quotes it is no record; after them it is.
    std::tie(r, can_end) = scan_all("no closing quote\nat all", piece, &pos);
    EXPECT_EQ(r, R::kMore);
    EXPECT_FALSE(can_end);
    std::tie(r, can_end) = scan_all("closed\",last", piece, &pos);
    EXPECT_EQ(r, R::kMore);
    EXPECT_TRUE(can_end);
  }
}

TEST(Formats, TsvSplitsOnTabsWithoutQuoting) {
  FormatOptions o = Opts(LogFormat::kTsv);
  o.keys = {"a", "b"};
  Result r = Normalize1(o, "\"x\"\ty z");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.row["a"], "\"x\"");
  EXPECT_EQ(r.row["b"], "y z");
}

TEST(Formats, SingleValueKeepsTheWholeLine) {
  FormatOptions o = Opts(LogFormat::kSingleValue);
  o.message_key = "log";
  Result r = Normalize1(o, "Aug  1 12:00:00 host sshd[1]: Accepted \"key\" \\ for root");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.row["log"], "Aug  1 12:00:00 host sshd[1]: Accepted \"key\" \\ for root");
  EXPECT_EQ(r.row["_time"], "2016-08-01T00:00:00Z");
}

TEST(Formats, RepairWarningsNameTheFieldInTextFormats) {
  // The warning is the operator's only sign of a repair: it names the field
  // the bad byte is in (csv/tsv: by column, single_value: message_key).
  auto warning = [](const FormatOptions& o, const std::string& line) {
    SchemaRegistry schema(FixedColumns(o.format));
    RowNormalizer n(&schema, o);
    std::string buf = line + std::string(simdjson::SIMDJSON_PADDING, ' ');
    LineError err;
    EXPECT_TRUE(n.Normalize(std::string_view(buf.data(), line.size()), buf.size(), 0, &err)) << err.reason;
    EXPECT_EQ(n.warnings(), 1u);
    return n.last_warning();
  };
  FormatOptions sv = Opts(LogFormat::kSingleValue);
  sv.message_key = "log";
  EXPECT_EQ(warning(sv, "bad\xff"), "field 'log': invalid UTF-8 replaced with U+FFFD");
  FormatOptions csv = Opts(LogFormat::kCsv);
  csv.delimiter = ',';
  csv.keys = {"a", "b", "c"};
  EXPECT_EQ(warning(csv, "\"x,y\",\"1\",\"b\xffz\""), "field 'c': invalid UTF-8 replaced with U+FFFD");
  FormatOptions tsv = Opts(LogFormat::kTsv);
  tsv.keys = {"a", "b"};
  EXPECT_EQ(warning(tsv, "x\tb\xff"), "field 'b': invalid UTF-8 replaced with U+FFFD");
}

// Found by fuzz_key_format (fuzz/corpus/fuzz_key_format/regression-three-
// variable-placeholders): every variable-width placeholder backtracks over
// its span, so three of them took time cubic in the key length. Object keys
// come from the bucket, so an odd key must not stall discovery.
TEST(Formats, KeyFormatWithSeveralVariablePlaceholdersMatchesInPolynomialTime) {
  auto kf = KeyFormat::Compile("%{path}%{tag}%{path}%{hostname}%{time_slice}/%{index}.%{file_extension}", "%Y%m%d%H",
                               TimeZone());
  ASSERT_TRUE(kf.ok()) << kf.status().ToString();
  // No match: every split of 1,000 bytes over four spans is ruled out once, not once per route to it.
  EXPECT_FALSE(kf->Match(std::string(1000, 'a')).has_value());
  EXPECT_FALSE(kf->Match(std::string(500, 'a') + "2016080112/" + std::string(489, 'b')).has_value());
  // What matches still matches, with its slice and index.
  auto m = kf->Match("logs/app/web1/srv2016080112/7.json.gz");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->time_slice_us, ParseIso8601("2016-08-01T12:00:00Z"));
  EXPECT_EQ(m->index, 7);
}

std::string Pack(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fn) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(&buf);
  fn(pk);
  return std::string(buf.data(), buf.size());
}

std::string ToJson(const std::string& packed) {
  msgpack::object_handle oh = msgpack::unpack(packed.data(), packed.size());
  std::string out;
  MsgpackToJson(oh.get(), &out);
  return out;
}

TEST(Formats, MsgpackValuesBecomeJson) {
  std::string packed = Pack([](auto& pk) {
    pk.pack_map(8);
    pk.pack(std::string("s"));
    pk.pack(std::string("caf\xc3\xa9 \"q\""));
    pk.pack(std::string("i"));
    pk.pack(int64_t{-5});
    pk.pack(std::string("u"));
    pk.pack(uint64_t{18446744073709551615ULL});
    pk.pack(std::string("f"));
    pk.pack_double(1.5);  // (msgpack-cxx unpacks an integral double as an integer)
    pk.pack(std::string("b"));
    pk.pack_bin(3);
    pk.pack_bin_body("\x00\x01\x02", 3);
    pk.pack(std::string("n"));
    pk.pack_nil();
    pk.pack(std::string("a"));
    pk.pack_array(2);
    pk.pack(true);
    pk.pack(std::string("x"));
    pk.pack(int64_t{7});  // a non-string key
    pk.pack(std::string("seven"));
  });
  json j = json::parse(ToJson(packed));
  EXPECT_EQ(j["s"], "caf\xc3\xa9 \"q\"");
  EXPECT_EQ(j["i"], -5);
  EXPECT_EQ(j["u"].get<uint64_t>(), 18446744073709551615ULL);
  EXPECT_TRUE(j["f"].is_number_float());
  EXPECT_EQ(j["b"], "AAEC");
  EXPECT_TRUE(j["n"].is_null());
  EXPECT_EQ(j["a"], json::array({true, "x"}));
  EXPECT_EQ(j["7"], "seven");
}

TEST(Formats, MsgpackEventTimeExtBecomesIsoTime) {
  // Fluentd's EventTime: ext type 0, seconds and nanoseconds as big-endian uint32.
  std::string packed = Pack([](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("time"));
    const char body[8] = {
        0x57, static_cast<char>(0x9E), static_cast<char>(0xB8), 0x00, 0x07, 0x5B, static_cast<char>(0xCD), 0x15};
    pk.pack_ext(8, 0);
    pk.pack_ext_body(body, 8);
  });
  json j = json::parse(ToJson(packed));
  // 0x579EB800 = 1470019584 s; 0x075BCD15 = 123456789 ns.
  EXPECT_EQ(j["time"], "2016-08-01T02:46:24.123456Z");
}

TEST(Formats, MsgpackNonFiniteFloatsAreStrings) {
  std::string packed = Pack([](auto& pk) {
    pk.pack_array(2);
    pk.pack(std::numeric_limits<double>::quiet_NaN());
    pk.pack(-std::numeric_limits<double>::infinity());
  });
  EXPECT_EQ(ToJson(packed), "[\"NaN\",\"-Infinity\"]");
}

}  // namespace
}  // namespace logferry
