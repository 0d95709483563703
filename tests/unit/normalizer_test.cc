#include "format/normalizer.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "warehouse/bigquery_schema.h"

namespace logferry {
namespace {

using nlohmann::json;

int64_t T(const char* iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(0);
}

FormatOptions OutFile() {
  return FormatOptions{};
}

// Duplicate keys in a row make the warehouse reject the whole part
// (DuckDB: "has duplicate key"), so no row may have them at any level.
bool HasDuplicateKeys(std::string_view row) {
  std::vector<std::set<std::string>> open;
  bool dup = false;
  try {
    json doc = json::parse(row, [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start)
        open.emplace_back();
      else if (ev == json::parse_event_t::object_end)
        open.pop_back();
      else if (ev == json::parse_event_t::key && !open.back().insert(parsed.get<std::string>()).second)
        dup = true;
      return true;
    });
    (void)doc;
  } catch (const std::exception&) {
  }
  return dup;
}

bool LegalColumnName(const std::string& name) {
  if (name.empty() || name.size() > kMaxColumnName || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

FormatOptions Json(std::string time_key = "time") {
  FormatOptions o;
  o.format = LogFormat::kJson;
  o.time_key = std::move(time_key);
  return o;
}

// One normalizer with its own schema, fed lines the way staging does: with
// readable padding after the line (simdjson reads up to 64 bytes past it).
class Harness {
 public:
  explicit Harness(FormatOptions opts) : schema_(FixedColumns(opts.format)), norm_(&schema_, opts) {}

  bool Run(std::string_view line, std::optional<int64_t> fallback = std::nullopt) {
    buf_.assign(line);
    size_t len = buf_.size();
    // Padding of garbage, not spaces, so nothing can rely on its content.
    buf_.append(kJsonPadding + 16, 'x');
    return norm_.Normalize(std::string_view(buf_.data(), len), buf_.size(), fallback, &err_);
  }

  // Runs a line that must succeed and returns the parsed row.
  json Row(std::string_view line, std::optional<int64_t> fallback = std::nullopt) {
    bool ok = Run(line, fallback);
    EXPECT_TRUE(ok) << "line: " << line << "\nerror: " << err_.field << ": " << err_.reason;
    if (!ok) return json();
    std::string_view row = norm_.row();
    EXPECT_FALSE(row.empty());
    if (row.empty()) return json();
    EXPECT_EQ(row.back(), '\n') << "rows end with a newline";
    EXPECT_EQ(row.find('\n'), row.size() - 1) << "one row is one line: " << row;
    json j;
    try {
      j = json::parse(row);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "row is not valid JSON: " << row << " (" << e.what() << ")";
    }
    EXPECT_FALSE(HasDuplicateKeys(row)) << "row has duplicate keys: " << row;
    for (auto& [name, type] : schema_.DuckDbColumns())
      EXPECT_TRUE(LegalColumnName(name)) << "illegal column name '" << name << "' (" << name.size() << " bytes)";
    return j;
  }

  // Runs a line that must fail; returns the error.
  LineError Fail(std::string_view line, std::optional<int64_t> fallback = std::nullopt) {
    bool ok = Run(line, fallback);
    EXPECT_FALSE(ok) << "accepted: " << line << "\nrow: " << norm_.row();
    EXPECT_FALSE(err_.reason.empty()) << line;
    return err_;
  }

  RowNormalizer& norm() { return norm_; }
  SchemaRegistry& schema() { return schema_; }

 private:
  SchemaRegistry schema_;
  RowNormalizer norm_;
  std::string buf_;
  LineError err_;
};

std::string Line(const std::string& record, const std::string& tag = "app.access",
                 const std::string& time = "2016-08-01T12:34:56+09:00") {
  return time + "\t" + tag + "\t" + record;
}

std::set<std::string> Keys(const json& j) {
  std::set<std::string> out;
  if (j.is_object())
    for (auto& [k, v] : j.items()) out.insert(k);
  return out;
}

TEST(Normalizer, OutFileBasicRow) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"response-time":12,"path":"/x","ok":true,"ratio":1.5,"neg":-3})"));
  EXPECT_EQ(row["_time"], "2016-08-01T03:34:56Z");
  EXPECT_EQ(row["_tag"], "app.access");
  EXPECT_EQ(row["response_time"], 12);
  EXPECT_EQ(row["path"], "/x");
  EXPECT_EQ(row["ok"], true);
  EXPECT_EQ(row["ratio"], 1.5);
  EXPECT_EQ(row["neg"], -3);
  EXPECT_EQ(Keys(row), (std::set<std::string>{"_time", "_tag", "response_time", "path", "ok", "ratio", "neg"}));
  EXPECT_EQ(h.norm().time(), T("2016-08-01T03:34:56Z"));
  EXPECT_EQ(h.norm().warnings(), 0u);
}

TEST(Normalizer, FractionalAndOffsetlessTimes) {
  Harness h(OutFile());
  json row = h.Row(Line("{}", "t", "2016-08-01T12:34:56.123+09:00"));
  EXPECT_EQ(row["_time"], "2016-08-01T03:34:56.123000Z");

  FormatOptions jst = OutFile();
  jst.zone = TimeZone::Fixed(9 * 3600);
  Harness h2(jst);
  row = h2.Row(Line(R"({"a":1})", "t", "2016-08-01T12:00:00"));
  EXPECT_EQ(row["_time"], "2016-08-01T03:00:00Z") << "times without an offset use the configured zone";
  row = h2.Row(Line(R"({"a":1})", "t", "1470052800"));
  EXPECT_EQ(row["_time"], "2016-08-01T12:00:00Z") << "epoch seconds are zone-free";
}

TEST(Normalizer, EmptyRecordStillHasTimeAndTag) {
  Harness h(OutFile());
  json row = h.Row(Line("{}", "t"));
  EXPECT_EQ(Keys(row), (std::set<std::string>{"_time", "_tag"}));
  row = h.Row(Line(R"({"a":null})", "t"));
  EXPECT_EQ(Keys(row), (std::set<std::string>{"_time", "_tag"}));
}

TEST(Normalizer, TagIsEscaped) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"a":1})", "we\"ird\\tag"));
  EXPECT_EQ(row["_tag"], "we\"ird\\tag");
}

TEST(Normalizer, NestedKeysAreMapped) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"req":{"user-agent":"curl","h.x":{"a-b":1,"c d":[1,2]}},"top level":"y"})"));
  EXPECT_EQ(row["req"]["user_agent"], "curl");
  EXPECT_EQ(row["req"]["h_x"]["a_b"], 1);
  EXPECT_EQ(row["req"]["h_x"]["c_d"], json::array({1, 2}));
  EXPECT_EQ(row["top_level"], "y");
  EXPECT_EQ(Keys(row["req"]), (std::set<std::string>{"user_agent", "h_x"}));
}

TEST(Normalizer, EscapedKeysAreUnescapedBeforeMapping) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"a\"b":1,"caf\u00e9":2})"));
  EXPECT_EQ(row["a_b"], 1);
  EXPECT_EQ(row["caf_"], 2);
}

TEST(Normalizer, NullsAndEmptiesAreDropped) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"a":null,"b":{},"c":[],"d":[null,null],"e":{"x":null,"y":{}},"keep":1,"z":null})"));
  EXPECT_EQ(Keys(row), (std::set<std::string>{"_time", "_tag", "keep"})) << row.dump();
  EXPECT_EQ(row["keep"], 1);
  // Nulls inside arrays are dropped, the rest kept.
  row = h.Row(Line(R"({"arr":[1,null,2]})"));
  EXPECT_EQ(row["arr"], json::array({1, 2}));
}

TEST(Normalizer, ArraysOfObjects) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"items":[{"id":1},{"id":2,"item-name":"x"},{},{"n":null}]})"));
  json expected = json::parse(R"([{"id":1},{"id":2,"item_name":"x"}])");
  EXPECT_EQ(row["items"], expected);
  auto cols = h.schema().DuckDbColumns();
  bool found = false;
  for (auto& [name, type] : cols)
    if (name == "items") {
      found = true;
      EXPECT_EQ(type, "JSON");
    }
  EXPECT_TRUE(found);
  Column* items = h.schema().Child(h.schema().root(), "items");
  EXPECT_EQ(items->type(), ColumnType::kRecord);
  EXPECT_TRUE(items->repeated());
}

TEST(Normalizer, NumericArraysWiden) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"v":[1,2.5,3]})"));
  EXPECT_EQ(row["v"], json::parse("[1,2.5,3]"));
  Column* v = h.schema().Child(h.schema().root(), "v");
  EXPECT_EQ(v->type(), ColumnType::kFloat64);
  EXPECT_TRUE(v->repeated());
}

TEST(Normalizer, MixedArraysGoToCompanionAsText) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"m":[1,"a",true],"keep":0})"));
  EXPECT_FALSE(row.contains("m")) << row.dump();
  ASSERT_TRUE(row.contains("m_str")) << row.dump();
  ASSERT_TRUE(row["m_str"].is_string());
  EXPECT_EQ(json::parse(row["m_str"].get<std::string>()), json::parse(R"([1,"a",true])"));
  EXPECT_EQ(row["keep"], 0);
  EXPECT_GE(h.norm().warnings(), 1u);

  row = h.Row(Line(R"({"nested":[[1,2],[3]]})"));
  ASSERT_TRUE(row.contains("nested_str")) << row.dump();
  EXPECT_EQ(json::parse(row["nested_str"].get<std::string>()), json::parse("[[1,2],[3]]"));
}

TEST(Normalizer, TypeConflictsAcrossRows) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"v":1,"s":"text","o":{"a":1}})"));
  EXPECT_EQ(row["v"], 1);

  row = h.Row(Line(R"({"v":"x"})"));
  EXPECT_FALSE(row.contains("v"));
  EXPECT_EQ(row["v_str"], "x") << row.dump();

  row = h.Row(Line(R"({"v":2.5})"));
  EXPECT_EQ(row["v"], 2.5) << "a float widens an INT64 column";

  row = h.Row(Line(R"({"v":{"a":1}})"));
  ASSERT_TRUE(row["v_str"].is_string()) << row.dump();
  EXPECT_EQ(json::parse(row["v_str"].get<std::string>()), json::parse(R"({"a":1})"));

  row = h.Row(Line(R"({"s":5,"t":true})"));
  EXPECT_EQ(row["s"], "5") << "a number into a STRING column is written as its text";

  row = h.Row(Line(R"({"s":false})"));
  EXPECT_EQ(row["s"], "false");

  row = h.Row(Line(R"({"o":7})"));
  EXPECT_FALSE(row.contains("o"));
  EXPECT_EQ(row["o_str"], "7");

  row = h.Row(Line(R"({"v":[1,2]})"));
  ASSERT_TRUE(row["v_str"].is_string()) << row.dump();
  EXPECT_EQ(json::parse(row["v_str"].get<std::string>()), json::parse("[1,2]"));
}

TEST(Normalizer, OutOfRangeNumbersKeptAsTextWithWarning) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"big":1e400,"huge":18446744073709551616,"ok":9007199254740993})"));
  EXPECT_EQ(row["big"], "1e400") << row.dump();
  EXPECT_EQ(row["huge"], "18446744073709551616") << row.dump();
  EXPECT_GE(h.norm().warnings(), 2u);
  EXPECT_NE(h.norm().last_warning().find("out of range"), std::string::npos) << h.norm().last_warning();
  // In-range integers keep every digit (no trip through double).
  EXPECT_NE(h.norm().row().find("9007199254740993"), std::string_view::npos) << h.norm().row();
  EXPECT_EQ(row["ok"].get<int64_t>(), 9007199254740993LL);
}

TEST(Normalizer, InvalidUtf8IsRepairedWithWarning) {
  Harness h(OutFile());
  json row =
      h.Row(Line("{\"s\":\"a\xff"
                 "b\",\"t\":\"ok\"}",
                 "ta\xc3g"));
  EXPECT_EQ(row["s"],
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(row["t"], "ok");
  EXPECT_EQ(row["_tag"], "ta\xEF\xBF\xBDg");
  EXPECT_GE(h.norm().warnings(), 1u);
  EXPECT_NE(h.norm().last_warning().find("UTF-8"), std::string::npos) << h.norm().last_warning();
}

TEST(Normalizer, UnpairedSurrogateEscapesAreRepairedWithWarning) {
  // simdjson rejects these strings; the policy keeps the row with U+FFFD, as
  // for invalid UTF-8, and counts one warning per repaired value.
  Harness h(OutFile());
  json row =
      h.Row(Line(R"({"a":"x\ud800y","b":"\udc00","c":"\ud800\u0041","d":"\ud83d\ude00","e":"\ud800\ud83d\ude00z"})"));
  EXPECT_EQ(row["a"], "x\xEF\xBF\xBDy");
  EXPECT_EQ(row["b"], "\xEF\xBF\xBD");
  EXPECT_EQ(row["c"],
            "\xEF\xBF\xBD"
            "A");                           // the escape after a lone high one stands alone
  EXPECT_EQ(row["d"], "\xF0\x9F\x98\x80");  // a valid pair is untouched
  EXPECT_EQ(row["e"], "\xEF\xBF\xBD\xF0\x9F\x98\x80z");
  EXPECT_EQ(h.norm().warnings(), 4u);
  EXPECT_NE(h.norm().last_warning().find("field 'e'"), std::string::npos) << h.norm().last_warning();
  EXPECT_NE(h.norm().last_warning().find("U+FFFD"), std::string::npos) << h.norm().last_warning();

  // Inside arrays, and in a field name (every record with it counts).
  json arr = h.Row(Line(R"({"arr":["ok","\udfff"],"k\ud800":1})"));
  EXPECT_EQ(arr["arr"], json::array({"ok", "\xEF\xBF\xBD"}));
  EXPECT_EQ(arr["k_"], 1) << arr.dump();
  EXPECT_EQ(h.norm().warnings(), 6u);
  h.Row(Line(R"({"k\ud800":2})"));
  EXPECT_EQ(h.norm().warnings(), 7u);

  // Other invalid strings are still bad records, and a dead-lettered line counts no warning.
  EXPECT_NE(h.Fail(Line(R"({"s":"\ud800","t":"\x41"})")).reason.find("invalid string"), std::string::npos);
  EXPECT_NE(h.Fail(Line(R"({"s":"\ud80"})")).reason.find("invalid string"), std::string::npos);
  EXPECT_EQ(h.norm().warnings(), 7u);
}

TEST(Normalizer, UnpairedSurrogateInTheTimeIsNoTime) {
  Harness h(Json());
  LineError e = h.Fail(R"({"time":"2016-08-01T00:00:00Z\ud800","x":1})", T("2016-08-01T05:00:00Z"));
  EXPECT_EQ(e.field, "time");
  EXPECT_NE(e.reason.find("unparseable time"), std::string::npos) << e.reason;
  // An escaped but valid time still parses.
  h.Row(R"({"time":"2016-08-01T01:02:03\u005a"})");
  EXPECT_EQ(h.norm().time(), T("2016-08-01T01:02:03Z"));
}

TEST(Normalizer, UnescapeJsonLossy) {
  std::string out;
  EXPECT_EQ(UnescapeJsonLossy(R"(plain)", &out), 0);
  EXPECT_EQ(out, "plain");
  EXPECT_EQ(UnescapeJsonLossy(R"(\"\\\/\b\f\n\r\t\u00e9\u0000)", &out), 0);
  EXPECT_EQ(out, std::string("\"\\/\b\f\n\r\t\xC3\xA9\0", 11));
  EXPECT_EQ(UnescapeJsonLossy(R"(\ud800\udc00)", &out), 0);
  EXPECT_EQ(out, "\xF0\x90\x80\x80");
  EXPECT_EQ(UnescapeJsonLossy(R"(\uDBFF\uDFFF\uDC00\uD800)", &out), 2);
  EXPECT_EQ(out, "\xF4\x8F\xBF\xBF\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(UnescapeJsonLossy(R"(\ud800\u12)", &out), -1);  // truncated escape
  EXPECT_EQ(UnescapeJsonLossy(R"(\ud800\ug000)", &out), -1);
  EXPECT_EQ(UnescapeJsonLossy(R"(\x)", &out), -1);
  EXPECT_EQ(UnescapeJsonLossy("\\", &out), -1);
  EXPECT_EQ(UnescapeJsonLossy(std::string_view("a\x01", 2), &out), -1);
}

TEST(Normalizer, StringEscapesArePreserved) {
  Harness h(OutFile());
  json row = h.Row(Line(
      R"({"q":"say \"hi\"","b":"back\\slash","n":"line\nbreak","u":"caf\u00e9","t":"tab\there","e":"\ud83d\ude00","s":"\/","z":"nul\u0000byte","plain":"caf)"
      "\xC3\xA9"
      R"("})"));
  EXPECT_EQ(row["q"], "say \"hi\"");
  EXPECT_EQ(row["b"], "back\\slash");
  EXPECT_EQ(row["n"], "line\nbreak");
  EXPECT_EQ(row["u"], "caf\xC3\xA9");
  EXPECT_EQ(row["t"], "tab\there");
  EXPECT_EQ(row["e"], "\xF0\x9F\x98\x80");
  EXPECT_EQ(row["s"], "/");
  EXPECT_EQ(row["z"], std::string("nul\0byte", 8));
  EXPECT_EQ(row["plain"], "caf\xC3\xA9");
}

TEST(Normalizer, RawControlCharacterInStringIsAnError) {
  Harness h(OutFile());
  h.Fail(
      Line("{\"s\":\"a\x01"
           "b\"}"));
  h.Fail(Line("{\"s\":\"a\tb\"}"));
  // The normalizer recovers for the next line.
  json row = h.Row(Line(R"({"s":"fine"})"));
  EXPECT_EQ(row["s"], "fine");
}

TEST(Normalizer, InvalidEscapeIsAnError) {
  Harness h(OutFile());
  h.Fail(Line(R"({"s":"bad \x escape"})"));
  h.Fail(Line(R"({"s":"\ud80"})"));  // (an unpaired surrogate is repaired: UnpairedSurrogateEscapes...)
}

TEST(Normalizer, LineErrors) {
  Harness h(OutFile());
  LineError e = h.Fail(R"(2016-08-01T12:00:00Z {"a":1})");
  EXPECT_EQ(e.field, "time");
  e = h.Fail("2016-08-01T12:00:00Z\ttag-without-record");
  EXPECT_EQ(e.field, "tag");
  e = h.Fail(Line(R"({"a":1})", "t", "not a time"));
  EXPECT_EQ(e.field, "time");
  EXPECT_NE(e.reason.find("not a time"), std::string::npos) << e.reason;
  e = h.Fail(Line("[1,2]"));
  EXPECT_NE(e.reason.find("not a JSON object"), std::string::npos) << e.reason;
  h.Fail(Line(R"("just a string")"));
  h.Fail(Line("42"));
  h.Fail(Line(R"({"a":1} trailing)"));
  h.Fail(Line(R"({"a":1} 2)"));
  h.Fail(Line(R"({"a":1}{"b":2})"));
  h.Fail(Line(R"({"a":1}})"));
  h.Fail(Line(R"({"a":})"));
  h.Fail(Line(R"({"a":1)"));
  h.Fail(Line(R"({"a":tru})"));
  h.Fail(Line(R"({"a":1,})"));
  h.Fail(Line(""));
  // Trailing whitespace is not garbage.
  json row = h.Row(Line("{\"a\":1}  \r"));
  EXPECT_EQ(row["a"], 1);
}

TEST(Normalizer, MalformedNumbersAreErrorsNotOutOfRange) {
  // Only numbers that are valid JSON but exceed the warehouse's range are
  // "kept as text"; a malformed token is invalid JSON like any other.
  Harness h(OutFile());
  for (const char* rec : {R"({"n":01})", R"({"n":1.})", R"({"n":1.2.3})", R"({"n":1e})", R"({"n":-01})"}) {
    bool ok = h.Run(Line(rec));
    EXPECT_FALSE(ok) << rec << " accepted as " << h.norm().row() << " warning: " << h.norm().last_warning();
  }
}

TEST(Normalizer, ErrorsNameTheField) {
  Harness h(OutFile());
  LineError e = h.Fail(Line(R"({"ok":1,"bad-field":"x\u12"})"));
  EXPECT_EQ(e.field, "bad_field") << e.reason;
}

TEST(Normalizer, FixedColumnNamesAreNotShadowed) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"_time":"fake","_tag":"fake","_TIME":1})", "real", "2016-08-01T00:00:00Z"));
  EXPECT_EQ(row["_time"], "2016-08-01T00:00:00Z");
  EXPECT_EQ(row["_tag"], "real");
  EXPECT_EQ(row["_time_2"], "fake");
  EXPECT_EQ(row["_tag_2"], "fake");
  EXPECT_EQ(row["_TIME_3"], 1);
}

TEST(Normalizer, OutFileWithoutTimeOrTag) {
  FormatOptions o = OutFile();
  o.output_time = false;
  o.output_tag = false;
  Harness h(o);
  int64_t slice = T("2016-08-01T05:00:00Z");
  json row = h.Row(R"({"a":1})", slice);
  EXPECT_EQ(row["_time"], "2016-08-01T05:00:00Z");
  EXPECT_FALSE(row.contains("_tag")) << row.dump();
  h.Fail(R"({"a":1})");  // and no slice to fall back on

  FormatOptions comma = OutFile();
  comma.delimiter = ',';
  Harness hc(comma);
  row = hc.Row(R"(2016-08-01T00:00:00Z,tag,{"a":1})");
  EXPECT_EQ(row["_tag"], "tag");
  EXPECT_EQ(row["a"], 1);
}

TEST(Normalizer, JsonFormatTimeKeyAsString) {
  Harness h(Json());
  json row = h.Row(R"({"time":"2016-08-01T12:00:00+09:00","msg":"x"})");
  EXPECT_EQ(row["_time"], "2016-08-01T03:00:00Z");
  // The time field is still a regular column, typed TIMESTAMP and written in
  // the canonical UTC form every warehouse parses.
  EXPECT_EQ(row["time"], "2016-08-01T03:00:00Z");
  EXPECT_EQ(h.schema().Find(h.schema().root(), "time")->type(), ColumnType::kTimestamp);
  EXPECT_EQ(row["msg"], "x");
  EXPECT_FALSE(row.contains("_tag")) << "json format has no tag";
}

TEST(Normalizer, TimestampStringsAreInferredAndCanonical) {
  Harness h(Json());
  json row =
      h.Row(R"({"time":"2016-08-01T12:00:00+09:00","seen":"2016-08-01 10:00:00.25","word":"2016-08-01 is a date"})");
  EXPECT_EQ(row["seen"], "2016-08-01T10:00:00.250000Z") << "no offset: the configured timezone (UTC here)";
  EXPECT_EQ(row["word"], "2016-08-01 is a date");
  EXPECT_EQ(h.schema().Find(h.schema().root(), "seen")->type(), ColumnType::kTimestamp);
  EXPECT_EQ(h.schema().Find(h.schema().root(), "word")->type(), ColumnType::kString);
  // A later value that is not a valid time keeps its text in the companion.
  row = h.Row(R"({"time":"2016-08-01T12:00:00+09:00","seen":"2016-02-30 10:00:00"})");
  EXPECT_FALSE(row.contains("seen"));
  EXPECT_EQ(row["seen_str"], "2016-02-30 10:00:00");
  // A timestamp into an established STRING column stays as written.
  row = h.Row(R"({"time":"2016-08-01T12:00:00+09:00","word":"2016-08-01T00:00:00+09:00"})");
  EXPECT_EQ(row["word"], "2016-08-01T00:00:00+09:00");
}

TEST(Normalizer, JsonFormatTimeKeyAsEpoch) {
  Harness h(Json("ts"));
  json row = h.Row(R"({"msg":"x","ts":1470052800})");
  EXPECT_EQ(row["_time"], "2016-08-01T12:00:00Z");
  row = h.Row(R"({"ts":1470052800.5})");
  EXPECT_EQ(row["_time"], "2016-08-01T12:00:00.500000Z");
  row = h.Row(R"({"ts":"1470052800"})");
  EXPECT_EQ(row["_time"], "2016-08-01T12:00:00Z");

  FormatOptions ms = Json("ts");
  ms.time_kind = TimeFormatKind::kUnixMs;
  Harness hm(ms);
  row = hm.Row(R"({"ts":1470052800123})");
  EXPECT_EQ(row["_time"], "2016-08-01T12:00:00.123000Z");
}

TEST(Normalizer, JsonFormatTimeLayout) {
  FormatOptions o = Json("t");
  o.time_kind = TimeFormatKind::kLayout;
  o.time_layout = *TimeLayout::Compile("%d/%b/%Y:%H:%M:%S %z");
  Harness h(o);
  json row = h.Row(R"({"t":"01/Aug/2016:12:00:00 +0900"})");
  EXPECT_EQ(row["_time"], "2016-08-01T03:00:00Z");
}

TEST(Normalizer, JsonFormatMissingTimeUsesFallback) {
  Harness h(Json());
  int64_t slice = T("2016-08-01T07:00:00Z");
  json row = h.Row(R"({"msg":"no time here"})", slice);
  EXPECT_EQ(row["_time"], "2016-08-01T07:00:00Z");
  EXPECT_EQ(h.norm().time(), slice);
  // A nested "time" is not the event time.
  row = h.Row(R"({"inner":{"time":"2020-01-01T00:00:00Z"}})", slice);
  EXPECT_EQ(row["_time"], "2016-08-01T07:00:00Z");

  LineError e = h.Fail(R"({"msg":"no time and no slice"})");
  EXPECT_EQ(e.field, "time");
}

TEST(Normalizer, JsonFormatUnparseableTimeIsAnErrorNamingTheField) {
  Harness h(Json("when"));
  LineError e = h.Fail(R"({"when":"yesterday","msg":"x"})", T("2016-08-01T00:00:00Z"));
  EXPECT_EQ(e.field, "when");
  EXPECT_NE(e.reason.find("yesterday"), std::string::npos) << e.reason;
  e = h.Fail(R"({"when":1e300})", T("2016-08-01T00:00:00Z"));
  EXPECT_EQ(e.field, "when");
  // The next line is judged on its own.
  json row = h.Row(R"({"when":"2016-08-01T00:00:00Z"})");
  EXPECT_EQ(row["_time"], "2016-08-01T00:00:00Z");
}

TEST(Normalizer, DeepNestingBeyond15LevelsIsWrittenAsText) {
  constexpr int kDepth = 20;
  std::string record;
  for (int i = 0; i < kDepth; ++i) record += "{\"a\":";
  record += "1";
  for (int i = 0; i < kDepth; ++i) record += "}";
  Harness h(OutFile());
  json row = h.Row(Line(record));
  ASSERT_TRUE(row.is_object());

  // Walk down "a" until the text companion takes over.
  const json* cur = &row;
  int object_levels = 0;  // levels below the row that are real objects
  while (cur->contains("a")) {
    cur = &(*cur)["a"];
    ++object_levels;
    ASSERT_LE(object_levels, kDepth);
  }
  ASSERT_TRUE(cur->contains("a_str")) << row.dump();
  ASSERT_TRUE((*cur)["a_str"].is_string());
  json rest = json::parse((*cur)["a_str"].get<std::string>());
  int text_levels = 0;
  const json* r = &rest;
  while (r->is_object()) {
    r = &(*r)["a"];
    ++text_levels;
  }
  EXPECT_EQ(*r, 1);
  EXPECT_EQ(1 + object_levels + text_levels, kDepth) << "no level may be lost or invented";
  // The row itself (top level + nested objects) stays within 15 levels.
  EXPECT_LE(object_levels + 1, kMaxNestingDepth);
  EXPECT_NE(h.norm().last_warning().find("15"), std::string::npos) << h.norm().last_warning();
}

TEST(Normalizer, DeepArraysOfObjectsAreBounded) {
  constexpr int kDepth = 20;
  std::string record;
  for (int i = 0; i < kDepth; ++i) record += "{\"a\":[";
  record += "1";
  for (int i = 0; i < kDepth; ++i) record += "]}";
  Harness h(OutFile());
  json row = h.Row(Line(record));
  std::function<int(const json&)> depth = [&](const json& j) -> int {
    int d = 0;
    if (j.is_object())
      for (auto& [k, v] : j.items()) d = std::max(d, 1 + depth(v));
    if (j.is_array())
      for (auto& v : j) d = std::max(d, depth(v));
    return d;
  };
  EXPECT_LE(depth(row), kMaxNestingDepth) << row.dump();
}

TEST(Normalizer, ObjectsWithoutFieldsDoNotBecomeEmptyRecords) {
  // BigQuery rejects a RECORD with no fields; a column only ever seen as {}
  // or with all-null members must not be published as one.
  Harness h(OutFile());
  (void)h.Row(Line(R"({"empty":{},"nulls":{"x":null},"a":1})"));
  std::function<void(const json&)> check = [&](const json& fields) {
    for (const json& f : fields) {
      if (f["type"] == "RECORD") {
        ASSERT_TRUE(f.contains("fields"));
        EXPECT_FALSE(f["fields"].empty()) << "RECORD without fields: " << f.dump();
        check(f["fields"]);
      }
    }
  };
  check(json::parse(BigQuerySchemaJson(h.schema().Columns())));
}

TEST(Normalizer, DuplicateKeysDoNotReachTheRow) {
  Harness h(OutFile());
  json row = h.Row(Line(R"({"a":1,"a":2})"));
  EXPECT_TRUE(row["a"] == 1 || row["a"] == 2) << row.dump();
  // Different spellings of one key.
  row = h.Row(Line(R"({"b":"x","\u0062":"y"})"));
  EXPECT_TRUE(row.contains("b")) << row.dump();
  // Nested, and inside arrays of objects.
  row = h.Row(Line(R"({"o":{"x":1,"x":2}})"));
  row = h.Row(Line(R"({"arr":[{"k":1,"k":2}]})"));
}

TEST(Normalizer, NulInFieldNamesCannotReachFixedOrCompanionColumns) {
  // Fixed columns and companions use raw keys with a NUL byte, which a JSON
  // key can carry as \u0000. Such a field must not overwrite _tag/_time nor
  // create a column whose name contains a NUL (which breaks CREATE TABLE).
  Harness h(OutFile());
  json row = h.Row(
      Line(R"({"\u0000_tag":"evil","\u0000_time":"x","n\u0000str":1,"ok":1})", "real-tag", "2016-08-01T00:00:00Z"));
  EXPECT_EQ(row["_tag"], "real-tag") << row.dump();
  EXPECT_EQ(row["_time"], "2016-08-01T00:00:00Z") << row.dump();
  EXPECT_EQ(row["ok"], 1);
}

TEST(Normalizer, ColumnCountIsBounded) {
  // Records keyed by ids ({"<uuid>": ...}) would otherwise add a column per
  // record; schema.h declares kMaxColumns for this, and BigQuery enforces it.
  Harness h(OutFile());
  for (size_t i = 0; i < kMaxColumns + 50; ++i) (void)h.Run(Line("{\"id" + std::to_string(i) + "\":1}"));
  EXPECT_LE(h.schema().column_count(), kMaxColumns);
}

TEST(Normalizer, ManyRowsOfOneShapeStayCorrect) {
  // The per-position key cache must notice when the shape changes.
  Harness h(OutFile());
  for (int i = 0; i < 50; ++i) {
    std::string rec = i % 3 == 0   ? R"({"a":1,"b":"x","c":{"d":2}})"
                      : i % 3 == 1 ? R"({"b":"y","a":2,"c":{"e":3}})"
                                   : R"({"a":3,"bb":"z"})";
    json row = h.Row(Line(rec));
    if (i % 3 == 0) {
      EXPECT_EQ(row["b"], "x");
      EXPECT_EQ(row["c"]["d"], 2);
    } else if (i % 3 == 1) {
      EXPECT_EQ(row["a"], 2);
      EXPECT_EQ(row["c"]["e"], 3);
      EXPECT_FALSE(row["c"].contains("d"));
    } else {
      EXPECT_EQ(row["bb"], "z");
      EXPECT_FALSE(row.contains("b"));
    }
  }
}

TEST(ParseEventTime, Variants) {
  FormatOptions o;
  EXPECT_EQ(*ParseEventTime("2016-08-01T00:00:00Z", o), T("2016-08-01T00:00:00Z"));
  EXPECT_EQ(*ParseEventTime("1470009600", o), T("2016-08-01T00:00:00Z"));
  EXPECT_EQ(*ParseEventTime("-1", o), -kMicrosPerSecond);
  EXPECT_FALSE(ParseEventTime("", o));
  EXPECT_FALSE(ParseEventTime("abc", o));
  EXPECT_FALSE(ParseEventTime("1e300", o));
  EXPECT_FALSE(ParseEventTime("1470009600x", o));
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

TEST(Normalizer, IntToFloatWideningOnlyWhileExact) {
  Harness h(Json());
  // 2^60 fits INT64 but not a double exactly: the column may not widen later.
  json row = h.Row(R"({"time":"2016-08-01T00:00:00Z","n":1152921504606846976})");
  EXPECT_EQ(row["n"], 1152921504606846976LL);
  row = h.Row(R"({"time":"2016-08-01T00:00:00Z","n":1.5})");
  EXPECT_FALSE(row.contains("n"));
  EXPECT_EQ(row["n_str"], "1.5");
  EXPECT_EQ(h.schema().Find(h.schema().root(), "n")->type(), ColumnType::kInt64);

  // Small integers widen to FLOAT64; a huge integer then goes to the companion.
  row = h.Row(R"({"time":"2016-08-01T00:00:00Z","m":3})");
  row = h.Row(R"({"time":"2016-08-01T00:00:00Z","m":2.5})");
  EXPECT_EQ(row["m"], 2.5);
  EXPECT_EQ(h.schema().Find(h.schema().root(), "m")->type(), ColumnType::kFloat64);
  row = h.Row(R"({"time":"2016-08-01T00:00:00Z","m":9007199254740993})");
  EXPECT_FALSE(row.contains("m"));
  EXPECT_EQ(row["m_str"], "9007199254740993");
}

TEST(Normalizer, InexactFlagSurvivesRestore) {
  SchemaRegistry a(FixedColumns(LogFormat::kJson));
  Column* n = a.Child(a.root(), "n");
  ASSERT_EQ(a.Offer(n, ColumnType::kInt64, false), Fit::kOk);
  a.MarkInexactInts(n);
  auto records = a.TakeUnpersisted();
  SchemaRegistry b(FixedColumns(LogFormat::kJson));
  b.Restore(records);
  Column* nb = b.Find(b.root(), "n");
  ASSERT_NE(nb, nullptr);
  EXPECT_TRUE(nb->inexact_ints());
  EXPECT_EQ(b.Offer(nb, ColumnType::kFloat64, false), Fit::kCompanion);
}

// Every top-level key of every row written is reported, on both paths, and
// nothing else: loads read exactly these columns.
TEST(Normalizer, ReportsTheTopLevelColumnsItWrote) {
  for (bool fast : {true, false}) {
    Harness h(OutFile());
    h.norm().set_fast_path(fast);
    std::set<std::string> keys;
    for (const char* rec :
         {R"({"a":1,"b":{"c":2}})", R"({"a":1,"b":{"c":2}})", R"({"d":"x","a":"text"})", R"({"e":null,"f":[]})"}) {
      json row = h.Row(Line(rec));
      for (auto& [k, v] : row.items()) keys.insert(k);
    }
    auto written = h.norm().TakeColumnsWritten();
    std::set<std::string> got(written.begin(), written.end());
    EXPECT_EQ(got.size(), written.size()) << "each column once";
    for (const std::string& k : keys) {
      EXPECT_TRUE(got.count(k)) << k << " (fast " << fast << ")";
    }
    EXPECT_FALSE(got.count("c")) << "nested fields belong to their top-level column";
    EXPECT_TRUE(h.norm().TakeColumnsWritten().empty()) << "taken";
    h.Row(Line(R"({"d":"y"})"));
    written = h.norm().TakeColumnsWritten();
    EXPECT_EQ(std::set<std::string>(written.begin(), written.end()), (std::set<std::string>{"_time", "_tag", "d"}));
  }
}

// Values that fit no column are written as quoted text; nested in arrays of
// misfits they used to be quoted again at every level (a 400 KB line became
// a 13.6 MB row). Past 8 times its line the record is a bad record instead.
TEST(Normalizer, RowsCannotOutgrowTheirLineByRequoting) {
  for (bool fast : {true, false}) {
    Harness h(OutFile());
    h.norm().set_fast_path(fast);
    std::string v;
    for (int i = 0; i < 20000; ++i) v += R"([1,{"k":1,"a":)";
    v += "2";
    for (int i = 0; i < 20000; ++i) v += "}]";
    LineError err = h.Fail(Line(R"({"v":)" + v + "}"));
    EXPECT_NE(err.reason.find("more than 8 times the size of its line"), std::string::npos) << err.reason;
    // One level of misfit is quoted once, and loads.
    json row = h.Row(Line(R"({"w":[1,{"k":"x\"y"}]})"));
    EXPECT_EQ(row["w_str"], R"([1,{"k":"x\"y"}])");
    EXPECT_LT(h.norm().row().size(), 200u);
  }
}

// A field that gets no column (a name over the bound) leaves a gap in the
// shape cache; an empty key at that position must not "match" the gap
// (found by the 10-minute fuzz_normalizer_ltsv run: a null column, UB).
TEST(Normalizer, AnEmptyKeyNeverMatchesAGapInTheShapeCache) {
  for (bool fast : {true, false}) {
    Harness h(OutFile());
    h.norm().set_fast_path(fast);
    std::string long_key(1100, 'x');
    h.Row(Line(R"({")" + long_key + R"(":1,"b":2})"));
    for (int i = 0; i < 3; ++i) {
      json row = h.Row(Line(R"({"":1,"b":2})"));
      EXPECT_EQ(row["b"], 2);
      EXPECT_EQ(row["field"], 1) << "an empty key maps to 'field' (docs/schema.md)";
    }
  }
}

}  // namespace
}  // namespace logferry
