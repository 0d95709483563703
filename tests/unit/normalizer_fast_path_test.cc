// The fast path's contract: whenever it succeeds, its row is byte-for-byte
// the simdjson path's row. Checked on hand-picked lines and on a bounded
// number of random mutations of real-looking records.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <random>
#include <string>
#include <vector>

#include "format/normalizer.h"
#include "schema/schema.h"

namespace logferry {
namespace {

struct Outcome {
  bool ok;
  std::string row;
  std::string reason;
};

class Pair {
 public:
  explicit Pair(LogFormat format) {
    FormatOptions opts;
    opts.format = format;
    opts.zone = TimeZone::Fixed(9 * 3600);
    fast_schema_ = std::make_unique<SchemaRegistry>(FixedColumns(format));
    slow_schema_ = std::make_unique<SchemaRegistry>(FixedColumns(format));
    fast_ = std::make_unique<RowNormalizer>(fast_schema_.get(), opts);
    slow_ = std::make_unique<RowNormalizer>(slow_schema_.get(), opts);
    slow_->set_fast_path(false);
  }
  static Outcome Run(RowNormalizer& n, const std::string& line) {
    std::string buf = line;
    buf.append(simdjson::SIMDJSON_PADDING, '\0');
    LineError err;
    bool ok = n.Normalize(std::string_view(buf.data(), line.size()), buf.size(), int64_t{0}, &err);
    return {ok, ok ? std::string(n.row()) : "", err.reason};
  }
  int ok_count = 0;
  void Check(const std::string& line) {
    Outcome f = Run(*fast_, line);
    ok_count += f.ok;
    Outcome s = Run(*slow_, line);
    ASSERT_EQ(f.ok, s.ok) << "line: " << line << "\nfast: " << f.reason << "\nslow: " << s.reason;
    ASSERT_EQ(f.row, s.row) << "line: " << line;
    ASSERT_EQ(f.reason, s.reason) << "line: " << line;
  }

 private:
  std::unique_ptr<SchemaRegistry> fast_schema_, slow_schema_;
  std::unique_ptr<RowNormalizer> fast_, slow_;
};

const std::vector<std::string> kJsonLines = {
    R"({"host":"1.2.3.4","code":200,"size":1234,"ok":true,"x":null,"geo":{"country":"JP","asn":7},"time":"2016-08-01T12:00:00+09:00"})",
    R"({ "host" : "a" , "code" : -0 , "f" : 1.5e10 , "e" : {} , "n" : { "m" : { } } , "time" : 1470020400 })",
    R"({"time":"2016-08-01T12:00:00","a\"b":1,"c":"tab\tescape","u":"\u00e9"})",
    R"({"time":"2016-08-01T12:00:00","big":12345678901234567890,"huge":1e400,"neg":-9223372036854775808})",
    R"({"time":"2016-08-01T12:00:00","arr":[1,2,{"a":1}],"mixed":[1,"a"],"code":"now a string"})",
    R"({"time":"2016-08-01T12:00:00","code":1.25,"ok":"yes","geo":5})",
    R"({"time":"2016-08-01T12:00:00","a":1} trailing)",
    R"({"time":"2016-08-01T12:00:00","a":01})",
    R"({"time":"2016-08-01T12:00:00","a":1.})",
    R"({"time":"2016-08-01T12:00:00","a":tru})",
    R"({"time":"not a time","a":1})",
    R"({"time":true,"a":1})",
    R"({"a":1})",
    R"([1,2,3])",
    R"({"time":"2016-08-01T12:00:00","a":"x",})",
    R"({"time":"2016-08-01T12:00:00","":1,"1xx":2,"_PARTITIONTIME":3,"_time":4,"Host":"dup case"})",
};

TEST(NormalizerFastPath, HandPickedLinesMatchTheSimdjsonPath) {
  Pair pair(LogFormat::kJson);
  for (const std::string& line : kJsonLines) pair.Check(line);
}

TEST(NormalizerFastPath, EmptyTimeBeforeAnyTimeWasCached) {
  // Found by fuzz_normalizer_tsv: the parsed-time cache started out as the
  // empty string, so an empty time "matched" it and got time 0.
  Pair pair(LogFormat::kJson);
  pair.Check(R"({"time":"x","a":1})");
  pair.Check(R"({"time":"","a":1})");
}

TEST(NormalizerFastPath, OutFileLinesMatch) {
  Pair pair(LogFormat::kOutFile);
  for (const std::string& line : kJsonLines) pair.Check("2016-08-01T12:00:00+09:00\tapp.access\t" + line);
  pair.Check("2016-08-01T12:00:00+09:00\tapp.access\t{}");
  pair.Check("2016-08-01T12:00:00+09:00\tapp.access\t  {\"a\": 1}  ");
}

TEST(NormalizerFastPath, RandomMutationsMatch) {
  // Bounded: a fixed seed and a fixed number of mutations.
  std::mt19937_64 rng(20161101);
  const std::string alphabet = "{}[]\":,.-+eE0123456789 \t\\abcnrtfu\x01\xc3\xa9";
  for (LogFormat format : {LogFormat::kJson, LogFormat::kOutFile}) {
    Pair pair(format);
    for (int i = 0; i < 20000; ++i) {
      std::string line = kJsonLines[rng() % 3];
      int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        size_t pos = rng() % (line.size() + 1);
        switch (rng() % 3) {
          case 0:
            if (pos < line.size()) line.erase(pos, 1);
            break;
          case 1:
            line.insert(pos, 1, alphabet[rng() % alphabet.size()]);
            break;
          default:
            if (pos < line.size()) line[pos] = alphabet[rng() % alphabet.size()];
            break;
        }
      }
      if (format == LogFormat::kOutFile) line = "2016-08-01T12:00:00+09:00\tt\t" + line;
      pair.Check(line);
      if (HasFatalFailure()) return;
    }
    // Most single edits still leave a valid record: the comparison covered
    // both success and failure, not just errors.
    EXPECT_GT(pair.ok_count, 2000);
  }
}

}  // namespace
}  // namespace logferry
