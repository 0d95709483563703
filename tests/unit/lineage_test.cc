// Lineage columns (`lineage = ["source", "line"]`): the config key, the
// columns in the schema, and what the normalizer writes into every row.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "format/normalizer.h"
#include "warehouse/bigquery_schema.h"

namespace logferry {
namespace {

using nlohmann::json;

constexpr const char* kTable = R"(state_dir = "/var/lib/logferry"

[[table]]
name = "access"
source = "file:///data/bucket/logs/"
staging = "file:///data/staging"
warehouse = "duckdb:///data/logs.duckdb"
)";

StatusOr<Config> WithLineage(const std::string& line) {
  return ParseConfig(std::string(kTable) + line + "\n", "test.toml");
}

TEST(LineageConfig, OffByDefault) {
  auto c = WithLineage("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->tables[0].lineage.any());
  auto empty = WithLineage("lineage = []");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_FALSE(empty->tables[0].lineage.any());
}

TEST(LineageConfig, TakesAListOfColumns) {
  auto both = WithLineage(R"(lineage = ["source", "line"])");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_TRUE(both->tables[0].lineage.source);
  EXPECT_TRUE(both->tables[0].lineage.line);
  auto line = WithLineage(R"(lineage = ["line"])");
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_FALSE(line->tables[0].lineage.source);
  EXPECT_TRUE(line->tables[0].lineage.line);
}

TEST(LineageConfig, TopLevelIsTheDefaultForEveryTable) {
  std::string text = std::string("lineage = [\"source\"]\n") + kTable;
  auto c = ParseConfig(text, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->tables[0].lineage.source);
  EXPECT_FALSE(c->tables[0].lineage.line);
}

TEST(LineageConfig, UnknownValuesNameKeyLineAndAllowedValues) {
  for (const char* bad : {R"(lineage = ["source", "file"])", R"(lineage = ["Source"])", R"(lineage = [1])"}) {
    auto c = WithLineage(bad);
    ASSERT_FALSE(c.ok()) << bad;
    const std::string& m = c.status().message();
    EXPECT_NE(m.find("lineage"), std::string::npos) << m;
    EXPECT_NE(m.find("test.toml:8"), std::string::npos) << m;
    if (std::string(bad) != R"(lineage = [1])") {
      EXPECT_NE(m.find("allowed: source, line"), std::string::npos) << m;
    }
  }
}

TEST(LineageConfig, IsInTheReference) {
  std::string ref = ConfigReference();
  size_t at = ref.find("| `lineage` |");
  ASSERT_NE(at, std::string::npos);
  std::string row = ref.substr(at, ref.find('\n', at) - at);
  EXPECT_NE(row.find("`[]`"), std::string::npos) << row;
  EXPECT_NE(row.find("logical bytes"), std::string::npos) << row;
}

// A normalizer over its own registry, with the lineage the pipeline would
// set up (AddLineageColumns after the registry is restored).
class Lineaged {
 public:
  Lineaged(FormatOptions opts, Lineage lineage, const std::vector<ColumnRecord>& restored = {})
      : schema_(FixedColumns(opts.format)) {
    schema_.Restore(restored);
    added_ = AddLineageColumns(&schema_, lineage);
    norm_ = std::make_unique<RowNormalizer>(&schema_, opts, lineage);
  }

  json Row(std::string_view line, int64_t record, bool fast = true) {
    norm_->set_fast_path(fast);
    buf_.assign(line);
    size_t len = buf_.size();
    buf_.append(kJsonPadding, 'x');
    bool ok = norm_->Normalize(std::string_view(buf_.data(), len), buf_.size(), std::nullopt, &err_, record);
    EXPECT_TRUE(ok) << line << ": " << err_.reason;
    return ok ? json::parse(norm_->row()) : json();
  }

  RowNormalizer& norm() { return *norm_; }
  SchemaRegistry& schema() { return schema_; }
  const Status& added() const { return added_; }

 private:
  SchemaRegistry schema_;
  Status added_;
  std::unique_ptr<RowNormalizer> norm_;
  std::string buf_;
  LineError err_;
};

FormatOptions JsonFormat() {
  FormatOptions o;
  o.format = LogFormat::kJson;
  return o;
}

std::vector<std::string> ColumnNames(SchemaRegistry& s) {
  std::vector<std::string> out;
  for (auto& [name, type] : s.DuckDbColumns()) out.push_back(name);
  return out;
}

TEST(LineageRows, OffWritesNoLineageMembers) {
  Lineaged n(FormatOptions{}, Lineage{});
  n.norm().BeginObject("logs/2016080112_0.gz");
  json row = n.Row("2016-08-01T12:00:00Z\tapp\t{\"a\":1}", 7);
  EXPECT_EQ(row, json::parse(R"({"_tag":"app","a":1,"_time":"2016-08-01T12:00:00Z"})"));
  EXPECT_EQ(ColumnNames(n.schema()), (std::vector<std::string>{"_time", "_tag", "a"}));
}

TEST(LineageRows, EveryRowCarriesItsObjectsKeyAndItsLine) {
  for (bool fast : {true, false}) {
    Lineaged n(FormatOptions{}, Lineage{true, true});
    ASSERT_TRUE(n.added().ok()) << n.added().ToString();
    n.norm().BeginObject("logs/2016080112_0.gz");
    json a = n.Row("2016-08-01T12:00:00Z\tapp\t{\"a\":1}", 1, fast);
    json b = n.Row("2016-08-01T12:00:01Z\tapp\t{\"a\":2,\"b\":{\"c\":\"x\"}}", 3, fast);
    EXPECT_EQ(a["_source"], "logs/2016080112_0.gz");
    EXPECT_EQ(a["_line"], 1);
    EXPECT_EQ(b["_source"], "logs/2016080112_0.gz");
    EXPECT_EQ(b["_line"], 3);
    n.norm().BeginObject("logs/2016080113_0.gz");
    json c = n.Row("2016-08-01T13:00:00Z\tapp\t{\"a\":3}", 1234567890123, fast);
    EXPECT_EQ(c["_source"], "logs/2016080113_0.gz");
    EXPECT_EQ(c["_line"], 1234567890123);
  }
}

TEST(LineageRows, OnlyTheColumnsAskedFor) {
  Lineaged line_only(JsonFormat(), Lineage{false, true});
  line_only.norm().BeginObject("k");
  json row = line_only.Row(R"({"time":"2016-08-01T12:00:00Z","a":1})", 9);
  EXPECT_FALSE(row.contains("_source"));
  EXPECT_EQ(row["_line"], 9);
  Lineaged source_only(JsonFormat(), Lineage{true, false});
  source_only.norm().BeginObject("k");
  row = source_only.Row(R"({"time":"2016-08-01T12:00:00Z","a":1})", 9);
  EXPECT_EQ(row["_source"], "k");
  EXPECT_FALSE(row.contains("_line"));
}

TEST(LineageRows, KeysAreEscapedAndRepairedOnce) {
  Lineaged n(JsonFormat(), Lineage{true, false});
  n.norm().BeginObject(std::string("a \"quoted\"\\key\t\xff.gz"));
  json row = n.Row(R"({"time":"2016-08-01T12:00:00Z"})", 1);
  EXPECT_EQ(row["_source"], "a \"quoted\"\\key\t\xEF\xBF\xBD.gz");
}

TEST(LineageRows, MsgpackRecordsGetTheirOrdinal) {
  FormatOptions o;
  o.format = LogFormat::kMsgpack;
  Lineaged n(o, Lineage{true, true});
  n.norm().BeginObject("m.gz");
  std::string json_text = R"({"time":"2016-08-01T12:00:00Z","a":1})";
  json_text.append(kJsonPadding, ' ');
  LineError err;
  ASSERT_TRUE(n.norm().NormalizeJson(std::string_view(json_text.data(), json_text.size() - kJsonPadding),
                                     json_text.size(), std::nullopt, &err, 4));
  json row = json::parse(n.norm().row());
  EXPECT_EQ(row["_line"], 4);
  EXPECT_EQ(row["_source"], "m.gz");
}

TEST(LineageRows, PartsListTheLineageColumns) {
  Lineaged n(JsonFormat(), Lineage{true, true});
  n.norm().BeginObject("k");
  n.Row(R"({"time":"2016-08-01T12:00:00Z","a":1})", 1);
  std::vector<std::string> written = n.norm().TakeColumnsWritten();
  for (const char* c : {"_source", "_line", "_time", "a"})
    EXPECT_NE(std::find(written.begin(), written.end(), c), written.end()) << c;
}

TEST(LineageSchema, ColumnsComeBeforeTheSourcesFieldsWithTheirTypes) {
  Lineaged n(FormatOptions{}, Lineage{true, true});
  n.norm().BeginObject("k");
  n.Row("2016-08-01T12:00:00Z\tapp\t{\"a\":1}", 1);
  EXPECT_EQ(ColumnNames(n.schema()), (std::vector<std::string>{"_time", "_tag", "_source", "_line", "a"}));
  auto duck = n.schema().DuckDbColumns();
  EXPECT_EQ(duck[2].second, "VARCHAR");
  EXPECT_EQ(duck[3].second, "BIGINT");
  json bq = json::parse(BigQuerySchemaJson(n.schema().Columns()));
  EXPECT_EQ(bq[2], json::parse(R"({"name":"_source","type":"STRING","mode":"NULLABLE"})"));
  EXPECT_EQ(bq[3], json::parse(R"({"name":"_line","type":"INT64","mode":"NULLABLE"})"));
}

TEST(LineageSchema, ASourceFieldOfTheSameNameTakesTheSiblingSuffix) {
  for (bool fast : {true, false}) {
    Lineaged n(JsonFormat(), Lineage{true, true});
    n.norm().BeginObject("the/key");
    json row = n.Row(R"({"time":"2016-08-01T12:00:00Z","_source":"mine","_LINE":5})", 2, fast);
    EXPECT_EQ(row["_source"], "the/key");
    EXPECT_EQ(row["_source_2"], "mine");
    EXPECT_EQ(row["_line"], 2);
    EXPECT_EQ(row["_LINE_2"], 5);
  }
}

// The columns are ledger columns like any other: once on, a table keeps
// them (NULL in new rows) when lineage is turned off again.
TEST(LineageSchema, PersistedAndKeptWhenTurnedOff) {
  Lineaged on(JsonFormat(), Lineage{true, true});
  std::vector<ColumnRecord> records = on.schema().TakeUnpersisted();
  ASSERT_EQ(records.size(), 2u);
  Lineaged off(JsonFormat(), Lineage{}, records);
  EXPECT_EQ(ColumnNames(off.schema()), (std::vector<std::string>{"_time", "_source", "_line"}));
  off.norm().BeginObject("k");
  json row = off.Row(R"({"time":"2016-08-01T12:00:00Z","a":1})", 1);
  EXPECT_FALSE(row.contains("_source"));
  Lineaged again(JsonFormat(), Lineage{true, true}, records);
  EXPECT_TRUE(again.added().ok());
  EXPECT_TRUE(again.schema().TakeUnpersisted().empty()) << "nothing new: the restored columns are reused";
}

TEST(LineageSchema, RefusedWhenASourceFieldAlreadyHasTheName) {
  Lineaged before(JsonFormat(), Lineage{});
  before.norm().BeginObject("k");
  before.Row(R"({"time":"2016-08-01T12:00:00Z","_source":"mine"})", 1);
  std::vector<ColumnRecord> records = before.schema().TakeUnpersisted();
  Lineaged after(JsonFormat(), Lineage{true, true}, records);
  EXPECT_EQ(after.added().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(after.added().message().find("_source"), std::string::npos) << after.added().message();
  EXPECT_NE(after.added().message().find("'source'"), std::string::npos) << after.added().message();
  Lineaged line_only(JsonFormat(), Lineage{false, true}, records);
  EXPECT_TRUE(line_only.added().ok()) << "only the name taken is refused";
}

}  // namespace
}  // namespace logferry
