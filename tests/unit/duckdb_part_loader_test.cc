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
  Status Load(const std::string& ndjson, size_t step = 7) {
    LF_ASSIGN_OR_RETURN(auto loader, DuckDbPartLoader::Open(con_, "t", Columns()));
    TextStream in(ndjson, step);
    LF_RETURN_IF_ERROR(loader->Append(in, "mem://part"));
    LF_RETURN_IF_ERROR(loader->Finish());
    rows_ = loader->rows();
    return Status::Ok();
  }

  duckdb_database db_ = nullptr;
  duckdb_connection con_ = nullptr;
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

}  // namespace
}  // namespace logferry
