// The normalizer's bounds against hostile records: nesting depth on every
// path and format that carries JSON, the column limit on the fast and the
// simdjson paths, field-name lengths, a per-object budget of new columns,
// and exceptions. Each case runs with the fast path on and off; rows from
// the two must be identical.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "format/msgpack_json.h"
#include "format/normalizer.h"
#include "schema/schema.h"

namespace logferry {
namespace {

using nlohmann::json;

constexpr int64_t kSlice = 1470009600LL * kMicrosPerSecond;  // the key's time slice

struct Result {
  bool ok = false;
  std::string row;
  LineError err;
};

// One normalizer and its schema.
class Norm {
 public:
  Norm(LogFormat format, bool fast) : schema_(FixedColumns(format)), norm_(&schema_, Options(format)) {
    norm_.set_fast_path(fast);
  }
  static FormatOptions Options(LogFormat format) {
    FormatOptions o;
    o.format = format;
    return o;
  }
  // A line, padded as staging pads its read window.
  Result Line(const std::string& line) {
    std::string buf = line + std::string(simdjson::SIMDJSON_PADDING, 'x');
    Result r;
    r.ok = norm_.Normalize(std::string_view(buf.data(), line.size()), buf.size(), kSlice, &r.err);
    if (r.ok) r.row = std::string(norm_.row());
    return r;
  }
  Result Json(const std::string& text) {
    std::string buf = text + std::string(simdjson::SIMDJSON_PADDING, ' ');
    Result r;
    r.ok = norm_.NormalizeJson(std::string_view(buf.data(), text.size()), buf.size(), kSlice, &r.err);
    if (r.ok) r.row = std::string(norm_.row());
    return r;
  }
  // Fills the table with ordinary columns until the registry refuses one.
  void FillToColumnLimit() {
    for (size_t i = 0;; ++i)
      if (!schema_.Child(schema_.root(), "fill" + std::to_string(i))) break;
  }
  SchemaRegistry& schema() { return schema_; }
  RowNormalizer& norm() { return norm_; }

 private:
  SchemaRegistry schema_;
  RowNormalizer norm_;
};

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

// A json record whose field "a" nests `levels` containers, each opened by
// `open` and closed by `close` (closed only if `closed`).
std::string Nested(std::string_view open, std::string_view close, size_t levels, bool closed) {
  std::string s = "{\"time\":1470009600,\"a\":" + Repeat(open, levels) + "1";
  if (closed) s += Repeat(close, levels) + "}";
  return s;
}

struct Shape {
  const char* name;
  const char* open;
  const char* close;
  size_t per;  // containers per repetition
};
const Shape kShapes[] = {{"arrays", "[", "]", 1}, {"objects", "{\"a\":", "}", 1}, {"mixed", "[{\"a\":", "}]", 2}};

std::string ForFormat(LogFormat format, const std::string& record) {
  return format == LogFormat::kOutFile ? "1470009600\ttag\t" + record : record;
}

TEST(NormalizerBounds, DeepRecordsAreBadRecordsNamingTheBoundOnEveryPath) {
  for (LogFormat format : {LogFormat::kJson, LogFormat::kOutFile})
    for (bool fast : {true, false})
      for (const Shape& shape : kShapes)
        for (size_t levels : {size_t{1'000'000}, size_t{3'000'000}}) {
          SCOPED_TRACE(std::string(shape.name) + " x" + std::to_string(levels) + (fast ? " fast" : " slow") +
                       (format == LogFormat::kJson ? " json" : " out_file"));
          Norm n(format, fast);
          Result r = n.Line(ForFormat(format, Nested(shape.open, shape.close, levels, true)));
          ASSERT_FALSE(r.ok);
          EXPECT_EQ(r.err.reason, "nested deeper than 1000000 levels");
          // The field where the value was cut: "a", or a path down "a" (a.a.a…).
          EXPECT_EQ(r.err.field.substr(0, 1), "a") << r.err.field;
          // Unclosed: invalid JSON, whatever its depth.
          r = n.Line(ForFormat(format, Nested(shape.open, shape.close, levels, false)));
          ASSERT_FALSE(r.ok);
          EXPECT_FALSE(r.err.reason.empty());
          // The normalizer goes on with the next record.
          r = n.Line(ForFormat(format, "{\"time\":1470009600,\"b\":1}"));
          ASSERT_TRUE(r.ok) << r.err.reason;
          EXPECT_EQ(json::parse(r.row)["b"], 1);
        }
}

TEST(NormalizerBounds, DepthUpToTheBoundIsKeptAsText) {
  // The record is level 1, so "a" may open 999,999 containers; one more is
  // too many. 30,000 levels of '[' overflowed the stack once.
  for (bool fast : {true, false})
    for (const Shape& shape : kShapes) {
      SCOPED_TRACE(std::string(shape.name) + (fast ? " fast" : " slow"));
      Norm n(LogFormat::kJson, fast);
      size_t levels = (kMaxJsonDepth - 1) / shape.per;
      std::string value = Repeat(shape.open, levels) + "1" + Repeat(shape.close, levels);
      Result r = n.Line("{\"time\":1470009600,\"a\":" + value + "}");
      ASSERT_TRUE(r.ok) << r.err.reason;
      // Below 15 levels the value is text in a companion column, as written.
      std::string text;
      std::function<void(const json&)> find = [&](const json& j) {
        if (!j.is_object() && !j.is_array()) return;
        for (auto& [k, v] : j.items()) {
          if (v.is_string() && k.size() > 4 && k.substr(k.size() - 4) == "_str") text = v.get<std::string>();
          find(v);
        }
      };
      json row = json::parse(r.row);
      find(row);
      ASSERT_FALSE(text.empty()) << r.row.substr(0, 300);
      EXPECT_NE(value.find(text), std::string::npos) << "the text is the input's own, cut at some level";
      EXPECT_NE(n.norm().last_warning().find("nested deeper than 15 levels"), std::string::npos)
          << n.norm().last_warning();
      if (shape.per == 1) {
        Result over = n.Line("{\"time\":1470009600,\"a\":" + Repeat(shape.open, levels + 1) + "1" +
                             Repeat(shape.close, levels + 1) + "}");
        ASSERT_FALSE(over.ok);
        EXPECT_EQ(over.err.reason, "nested deeper than 1000000 levels");
      }
    }
}

TEST(NormalizerBounds, DeepMsgpackRecordsLoad) {
  // 30,000 nested one-element arrays: the decoder writes null past
  // kMsgpackMaxDepth (with a warning); the rest is text in a_str.
  std::string stream = std::string("\x82\xa4time\xce\x57\x9e\x91\x00", 11) +
                       "\xa1"
                       "a" +
                       std::string(30'000, '\x91') + "\x01";  // {"time":1470009600,"a":[[[...1]]]}
  MsgpackStream ms;
  memcpy(ms.Reserve(stream.size()), stream.data(), stream.size());
  ms.Commit(stream.size());
  MsgpackStream::Record rec;
  ASSERT_EQ(ms.Next(&rec, true), MsgpackStream::Result::kRecord);
  for (bool fast : {true, false}) {
    Norm n(LogFormat::kMsgpack, fast);
    Result r = n.Json(rec.json);
    ASSERT_TRUE(r.ok) << r.err.reason;
    std::string text = json::parse(r.row)["a_str"];
    EXPECT_EQ(text.size(), rec.json.size() - std::string("{\"time\":1470009600,\"a\":}").size());
  }
}

TEST(NormalizerBounds, AtTheColumnLimitNewFieldsGoToOverflowOnBothPaths) {
  Norm fast(LogFormat::kJson, true), slow(LogFormat::kJson, false);
  fast.FillToColumnLimit();
  slow.FillToColumnLimit();
  for (int i = 0; i < 6; ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    std::string line = "{\"time\":1470009600,\"fill0\":" + std::to_string(i) + ",\"new\":" + std::to_string(i) +
                       ",\"n\":{\"x\":\"y\"}}";
    Result f = fast.Line(line), s = slow.Line(line);
    ASSERT_TRUE(f.ok) << f.err.reason;
    ASSERT_TRUE(s.ok) << s.err.reason;
    EXPECT_EQ(f.row, s.row);
    json row = json::parse(f.row);
    EXPECT_EQ(row["fill0"], i);
    ASSERT_TRUE(row.contains("_overflow")) << f.row;
    json overflow = json::parse(row["_overflow"].get<std::string>());
    EXPECT_EQ(overflow["new"], i);
    EXPECT_EQ(overflow["n"]["x"], "y");
  }
  EXPECT_LE(fast.schema().column_count(), kMaxColumns);
  EXPECT_NE(fast.norm().last_warning().find("column limit (10000) reached"), std::string::npos)
      << fast.norm().last_warning();
}

TEST(NormalizerBounds, LongFieldNamesGoToOverflowWholeAndNeverToTheSchema) {
  for (bool fast : {true, false}) {
    Norm n(LogFormat::kJson, fast);
    std::string at_bound(kMaxFieldNameBytes, 'k'), over(kMaxFieldNameBytes + 1, 'k'), huge(5 << 20, 'h');
    for (int i = 0; i < 3; ++i) {
      Result r = n.Line("{\"time\":1470009600,\"" + at_bound + "\":1,\"" + over + "\":2,\"" + huge + "\":3}");
      ASSERT_TRUE(r.ok) << r.err.reason;
      json row = json::parse(r.row);
      json overflow = json::parse(row["_overflow"].get<std::string>());
      EXPECT_EQ(overflow[over], 2) << "the whole name is kept";
      EXPECT_EQ(overflow[huge], 3);
      EXPECT_FALSE(overflow.contains(at_bound));
    }
    for (const auto& [raw, path] : n.schema().NameMapping()) {
      EXPECT_LE(raw.size(), kMaxFieldNameBytes + 32);
    }
    EXPECT_EQ(n.schema().Find(n.schema().root(), over), nullptr);
    EXPECT_NE(n.schema().Find(n.schema().root(), at_bound), nullptr);
    const std::string& warning = n.norm().last_warning();
    EXPECT_NE(warning.find("field name longer than 1024 bytes"), std::string::npos) << warning.substr(0, 400);
    EXPECT_LT(warning.size(), 400u);
    EXPECT_NE(warning.find("(5242880 bytes)"), std::string::npos) << warning.substr(0, 400);
  }
}

TEST(NormalizerBounds, AnInvalidEscapeInAHugeKeyIsReportedWithABoundedName) {
  for (bool fast : {true, false}) {
    Norm n(LogFormat::kJson, fast);
    std::string key = std::string(5 << 20, 'k') + "\\q";
    Result r = n.Line("{\"time\":1470009600,\"" + key + "\":1}");
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.err.reason, "invalid escape in field name");
    EXPECT_LT(r.err.field.size(), 300u);
    EXPECT_NE(r.err.field.find("… (5242882 bytes)"), std::string::npos) << r.err.field.substr(0, 300);
  }
}

TEST(NormalizerBounds, FieldNameForMessageCutsOnACharacterBoundary) {
  EXPECT_EQ(FieldNameForMessage("short"), "short");
  EXPECT_EQ(FieldNameForMessage(std::string(256, 'a')), std::string(256, 'a'));
  std::string name = std::string(255, 'a') + "é" + std::string(100, 'b');  // é straddles byte 256
  EXPECT_EQ(FieldNameForMessage(name), std::string(255, 'a') + "… (357 bytes)");
}

TEST(NormalizerBounds, OneObjectAddsAtMostABudgetOfNewColumns) {
  for (bool fast : {true, false}) {
    SCOPED_TRACE(fast ? "fast" : "slow");
    Norm n(LogFormat::kJson, fast);
    (void)n.Line("{\"time\":1470009600,\"old\":1}");
    n.norm().BeginObject();
    size_t before = n.schema().column_count();
    std::string wide = "{\"time\":1470009600";
    for (size_t i = 0; i < kMaxNewColumnsPerObject + 500; ++i) wide += ",\"k" + std::to_string(i) + "\":" + "1";
    wide += ",\"old\":2}";
    Result r = n.Line(wide);
    ASSERT_TRUE(r.ok) << r.err.reason;
    EXPECT_EQ(n.schema().column_count(), before + kMaxNewColumnsPerObject + 1) << "and _overflow";
    json row = json::parse(r.row);
    EXPECT_EQ(row["old"], 2) << "known columns still take values";
    EXPECT_EQ(row["k0"], 1);
    json overflow = json::parse(row["_overflow"].get<std::string>());
    EXPECT_EQ(overflow.size(), 500u) << "every field is in the row, as a column or in _overflow";
    EXPECT_EQ(overflow["k1499"], 1);
    EXPECT_NE(n.norm().last_warning().find("more than 1000 new columns in one object"), std::string::npos)
        << n.norm().last_warning();
    // The next object has a budget of its own.
    n.norm().BeginObject();
    r = n.Line(wide);
    ASSERT_TRUE(r.ok) << r.err.reason;
    EXPECT_EQ(n.schema().column_count(), before + kMaxNewColumnsPerObject + 1 + 500);
    EXPECT_FALSE(json::parse(r.row).contains("_overflow")) << r.row.substr(0, 200);
  }
}

}  // namespace
}  // namespace logferry
