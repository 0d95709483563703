// A table's schema as BigQuery takes it: the JSON array of fields that
// tables.insert, load jobs and `bq mk --schema FILE` accept
// ({"name", "type", "mode", "fields" for a RECORD}).
#pragma once

#include <string>
#include <vector>

#include "schema/schema.h"

namespace logferry {

// One JSON document: the array of fields. indent < 0: on one line; else
// pretty-printed with that many spaces per level.
std::string BigQuerySchemaJson(const std::vector<ColumnSchema>& columns, int indent = -1);

}  // namespace logferry
