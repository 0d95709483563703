// BigQuery's schema fields as JSON values, for the BigQuery warehouse's
// requests (INTERNAL to the warehouse module: nlohmann stays out of its
// public headers).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "schema/schema.h"

namespace logferry {

nlohmann::json BigQueryFields(const std::vector<ColumnSchema>& columns);

}  // namespace logferry
