#include "warehouse/warehouse.h"

#include "common/strings.h"

namespace logferry {

StatusOr<std::unique_ptr<Warehouse>> OpenDuckDbWarehouse(const std::string& path, const WarehouseOptions& opts);
StatusOr<std::unique_ptr<Warehouse>> OpenBigQueryWarehouse(const std::string& project, const std::string& dataset,
                                                           const WarehouseOptions& opts);

StatusOr<std::unique_ptr<Warehouse>> OpenWarehouse(const std::string& uri, const WarehouseOptions& options) {
  Uri u;
  if (!ParseUri(uri, &u))
    return Status::InvalidArgument("not a warehouse URI: '" + uri +
                                   "' (expected duckdb:///path/file.duckdb or bigquery://project/dataset)");
  if (u.scheme == "duckdb") {
    std::string path = u.authority.empty() ? "/" + u.path : u.authority + "/" + u.path;
    return OpenDuckDbWarehouse(path, options);
  }
  if (u.scheme == "bigquery") {
    std::string dataset = u.path;
    while (!dataset.empty() && dataset.back() == '/') dataset.pop_back();
    if (u.authority.empty() || dataset.empty() || dataset.find('/') != std::string::npos)
      return Status::InvalidArgument("'" + uri + "' is not bigquery://project/dataset");
    return OpenBigQueryWarehouse(u.authority, dataset, options);
  }
  return Status::InvalidArgument("unsupported warehouse scheme '" + u.scheme +
                                 "://' (supported: duckdb://, bigquery://)");
}

}  // namespace logferry
