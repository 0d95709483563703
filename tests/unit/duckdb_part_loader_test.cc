#include "warehouse/duckdb_part_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace logferry {
namespace {

// Hands out the text `step` bytes at a time, so rows straddle reads.
class TextStream final : public ReadStream {
 public:
  TextStream(std::string text, size_t step) : text_(std::move(text)), step_(step) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min({n, step_, text_.size() - pos_});
    std::memcpy(buf, text_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t Offset() const override { return pos_; }

 private:
  std::string text_;
  size_t step_;
  size_t pos_ = 0;
};

class DuckDbPartLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(duckdb_open(nullptr, &db_), DuckDBSuccess);
    ASSERT_EQ(duckdb_connect(db_, &con_), DuckDBSuccess);
    Exec("SET TimeZone='UTC'");
    Exec(
        "CREATE TABLE t (_time TIMESTAMPTZ, s VARCHAR, i BIGINT, d DOUBLE, b BOOLEAN, j JSON, "
        "unused VARCHAR)");
  }
  void TearDown() override {
    loader_.reset();
    duckdb_disconnect(&con_);
    duckdb_close(&db_);
  }
  void Exec(const std::string& sql) {
    duckdb_result r;
    ASSERT_EQ(duckdb_query(con_, sql.c_str(), &r), DuckDBSuccess) << duckdb_result_error(&r);
    duckdb_destroy_result(&r);
  }
  std::string Text(const std::string& sql) {
    duckdb_result r;
    EXPECT_EQ(duckdb_query(con_, sql.c_str(), &r), DuckDBSuccess) << duckdb_result_error(&r);
    std::string out;
    for (idx_t row = 0; row < duckdb_row_count(&r); ++row) {
      for (idx_t c = 0; c < duckdb_column_count(&r); ++c) {
        char* v = duckdb_value_varchar(&r, c, row);
        out += (c ? "|" : "") + std::string(v ? v : "NULL");
        duckdb_free(v);
      }
      out += "\n";
    }
    duckdb_destroy_result(&r);
    return out;
  }
  static std::vector<std::pair<std::string, std::string>> Columns() {
    return {{"_time", "TIMESTAMPTZ"}, {"s", "VARCHAR"}, {"i", "BIGINT"},
            {"d", "DOUBLE"},          {"b", "BOOLEAN"}, {"j", "JSON"}};
  }
  // Loads each text as a part named mem://part, mem://part2, ...
  Status LoadParts(const std::vector<std::string>& parts, size_t step = 7,
                   const std::vector<std::string>& skipped = {}) {
    if (!loader_) {
      LF_ASSIGN_OR_RETURN(loader_, DuckDbPartLoader::Create(con_));
    }
    size_t i = 0;
    NextPart next = [&]() -> StatusOr<PartRows> {
      if (i == parts.size()) return PartRows{};
      std::string name = "mem://part" + (i ? std::to_string(i + 1) : "");
      return PartRows{std::make_unique<TextStream>(parts[i++], step), name};
    };
    LF_ASSIGN_OR_RETURN(rows_, loader_->Load("t", Columns(), skipped, next));
    return Status::Ok();
  }
  Status Load(const std::string& ndjson, size_t step = 7) { return LoadParts({ndjson}, step); }

  duckdb_database db_ = nullptr;
  duckdb_connection con_ = nullptr;
  std::unique_ptr<DuckDbPartLoader> loader_;
  int64_t rows_ = 0;
};

TEST_F(DuckDbPartLoaderTest, TypedValuesNullsAndNestedJson) {
  ASSERT_TRUE(Load(R"({"_time":"2016-08-01T00:00:01.5Z","s":"a\"b\u00e9","i":-42,"d":1.5,"b":true,"j":{"x":[1,2]}}
{"_time":"2016-08-01T00:00:02Z","s":null,"i":9007199254740993,"d":3,"b":false,"j":"text"}
{"_time":"2016-08-01T00:00:03Z","j":[1,{"a":null}]}
)")
                  .ok());
  EXPECT_EQ(rows_, 3);
  EXPECT_EQ(Text("SELECT epoch_us(_time), s, i, d, b, j, unused FROM t ORDER BY _time"),
            "1470009601500000|a\"bé|-42|1.5|true|{\"x\":[1,2]}|NULL\n"
            "1470009602000000|NULL|9007199254740993|3.0|false|\"text\"|NULL\n"
            "1470009603000000|NULL|NULL|NULL|NULL|[1,{\"a\":null}]|NULL\n");
}

TEST_F(DuckDbPartLoaderTest, NonStringIntoVarcharKeepsItsJsonText) {
  ASSERT_TRUE(
      Load("{\"_time\":\"2016-08-01T00:00:00Z\",\"s\":{\"k\":1}}\n{\"_time\":\"2016-08-01T00:00:00Z\",\"s\":12}").ok());
  EXPECT_EQ(Text("SELECT s FROM t ORDER BY s"), "12\n{\"k\":1}\n");
}

TEST_F(DuckDbPartLoaderTest, ManyChunksAndLongRows) {
  std::string text;
  const std::string long_value(3 << 20, 'x');  // longer than the read block
  for (int i = 0; i < 5000; ++i) {
    text += "{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":" + std::to_string(i) + ",\"s\":\"" +
            (i == 4321 ? long_value : std::string("v")) + "\"}\n";
  }
  ASSERT_TRUE(Load(text, 1 << 16).ok());
  EXPECT_EQ(rows_, 5000);
  EXPECT_EQ(Text("SELECT count(*), sum(i), max(length(s)) FROM t"), "5000|12497500|3145728\n");
}

TEST_F(DuckDbPartLoaderTest, AValueThatDoesNotFitNamesPartLineAndColumn) {
  Status s = Load("{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":1}\n{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":1.5}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mem://part line 2 column i"), std::string::npos) << s.ToString();
  s = Load("{\"nope\":1}\n");
  EXPECT_NE(s.message().find("column nope is not in the table"), std::string::npos) << s.ToString();
  s = Load("{\"_time\":\"yesterday\"}\n");
  EXPECT_NE(s.message().find("line 1 column _time: not an RFC 3339 time"), std::string::npos) << s.ToString();
  s = Load("[1,2]\n");
  EXPECT_NE(s.message().find("not a JSON object"), std::string::npos) << s.ToString();
}

TEST_F(DuckDbPartLoaderTest, RowsJoinTheOpenTransaction) {
  Exec("BEGIN TRANSACTION");
  ASSERT_TRUE(Load("{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":1}\n").ok());
  EXPECT_EQ(Text("SELECT count(*) FROM t"), "1\n");
  Exec("ROLLBACK");
  EXPECT_EQ(Text("SELECT count(*) FROM t"), "0\n");
}

TEST_F(DuckDbPartLoaderTest, ManyPartsOneInsertLinesCountedPerPart) {
  const std::string row = "{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":1}\n";
  ASSERT_TRUE(LoadParts({row + row, "", "\n" + row, row + row + row}).ok());
  EXPECT_EQ(rows_, 6);
  EXPECT_EQ(Text("SELECT count(*), sum(i) FROM t"), "6|6\n");
  // A second load on the same loader; its error names the part and its own line.
  Status s = LoadParts({row, row + "{\"i\":\"x\"}\n"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("mem://part2 line 2 column i"), std::string::npos) << s.ToString();
  EXPECT_EQ(Text("SELECT count(*) FROM t"), "6\n");  // the failed insert left nothing
}

TEST_F(DuckDbPartLoaderTest, KeysInAnyOrderAndSkippedColumns) {
  ASSERT_TRUE(LoadParts({"{\"_time\":\"2016-08-01T00:00:00Z\",\"i\":1,\"s\":\"a\",\"gone\":5}\n"
                         "{\"s\":\"b\",\"gone\":6,\"i\":2,\"_time\":\"2016-08-01T00:00:01Z\"}\n"
                         "{\"i\":3,\"_time\":\"2016-08-01T00:00:02Z\"}\n"},
                        5, {"gone"})
                  .ok());
  EXPECT_EQ(Text("SELECT i, s FROM t ORDER BY i"), "1|a\n2|b\n3|NULL\n");
}

// A part the staging store cannot read keeps its code: the caller retries a
// transient failure and does not call it corruption.
class FailingStream final : public ReadStream {
 public:
  StatusOr<size_t> Read(char*, size_t) override { return Status::Unavailable("staging store: connection reset"); }
  uint64_t Offset() const override { return 0; }
};

TEST_F(DuckDbPartLoaderTest, AStoreFailureKeepsItsCode) {
  ASSERT_TRUE(DuckDbPartLoader::Create(con_).ok());  // a second loader on the connection has its own function
  auto loader = DuckDbPartLoader::Create(con_);
  ASSERT_TRUE(loader.ok());
  bool given = false;
  NextPart next = [&]() -> StatusOr<PartRows> {
    if (given) return PartRows{};
    given = true;
    return PartRows{std::make_unique<FailingStream>(), "mem://broken"};
  };
  auto rows = (*loader)->Load("t", Columns(), {}, next);
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kUnavailable) << rows.status().ToString();
  NextPart failing = []() -> StatusOr<PartRows> { return Status::NotFound("mem://gone: no such part"); };
  rows = (*loader)->Load("t", Columns(), {}, failing);
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kNotFound) << rows.status().ToString();
}

}  // namespace
}  // namespace logferry
