#include "warehouse/bigquery_schema.h"

#include "warehouse/bigquery_fields.h"

namespace logferry {
namespace {

nlohmann::json FieldJson(const ColumnSchema& c) {
  nlohmann::json f;
  f["name"] = c.name;
  f["type"] = ColumnTypeName(c.type == ColumnType::kNone ? ColumnType::kString : c.type);
  f["mode"] = c.repeated ? "REPEATED" : "NULLABLE";
  if (c.type == ColumnType::kRecord) f["fields"] = BigQueryFields(c.fields);
  return f;
}

}  // namespace

nlohmann::json BigQueryFields(const std::vector<ColumnSchema>& columns) {
  nlohmann::json fields = nlohmann::json::array();
  for (const ColumnSchema& c : columns) fields.push_back(FieldJson(c));
  return fields;
}

// Names come from SanitizeName ([A-Za-z0-9_]), so the text is ASCII; replace
// is a second guard that keeps the document valid whatever a name holds.
std::string BigQuerySchemaJson(const std::vector<ColumnSchema>& columns, int indent) {
  return BigQueryFields(columns).dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace logferry
