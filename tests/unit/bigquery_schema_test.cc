// The schema BigQuery is given (tables.insert, load jobs, `logferry schema
// --bigquery`): one JSON array of fields, RECORDs with their fields.
#include "warehouse/bigquery_schema.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace logferry {
namespace {

TEST(BigQuerySchema, FieldsNestModesAndLeaveUntypedColumnsOut) {
  SchemaRegistry reg({{"_time", ColumnType::kTimestamp}, {"_tag", ColumnType::kString}});
  Column* root = reg.root();
  Column* req = reg.Child(root, "req");
  ASSERT_EQ(reg.Offer(req, ColumnType::kRecord, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(req, "ua"), ColumnType::kString, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(req, "bytes"), ColumnType::kInt64, false), Fit::kOk);
  (void)reg.Child(req, "untyped");  // seen only as null: not in the schema
  Column* items = reg.Child(root, "items");
  ASSERT_EQ(reg.Offer(items, ColumnType::kRecord, true), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(items, "id"), ColumnType::kFloat64, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "ok"), ColumnType::kBool, false), Fit::kOk);

  nlohmann::json expected = nlohmann::json::parse(R"([
    {"name":"_time","type":"TIMESTAMP","mode":"NULLABLE"},
    {"name":"_tag","type":"STRING","mode":"NULLABLE"},
    {"name":"req","type":"RECORD","mode":"NULLABLE","fields":[
      {"name":"ua","type":"STRING","mode":"NULLABLE"},
      {"name":"bytes","type":"INT64","mode":"NULLABLE"}]},
    {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
      {"name":"id","type":"FLOAT64","mode":"NULLABLE"}]},
    {"name":"ok","type":"BOOL","mode":"NULLABLE"}
  ])");
  EXPECT_EQ(nlohmann::json::parse(BigQuerySchemaJson(reg.Columns())), expected) << BigQuerySchemaJson(reg.Columns(), 1);
}

TEST(BigQuerySchema, IsOneDocumentOnOneLineUnlessIndented) {
  SchemaRegistry reg({{"_time", ColumnType::kTimestamp}});
  std::string flat = BigQuerySchemaJson(reg.Columns());
  EXPECT_EQ(flat, R"([{"mode":"NULLABLE","name":"_time","type":"TIMESTAMP"}])");
  std::string pretty = BigQuerySchemaJson(reg.Columns(), 2);
  EXPECT_NE(pretty.find('\n'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(pretty), nlohmann::json::parse(flat));
}

}  // namespace
}  // namespace logferry
