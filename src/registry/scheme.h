// What a backend tells the scheme registry about itself: the URI scheme it
// claims, how to check and open a URI of that scheme, and the properties the
// core needs to know instead of testing for scheme names. Each backend
// defines its own SchemeInfo next to its code (FileScheme() in
// store/file_store.h, ...); registry/scheme_registry.h collects them, the way
// DuckDB's virtual file system lets each file system claim its paths.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace logferry {

class ObjectStore;
struct StoreOptions;
class Warehouse;
struct WarehouseOptions;

// What a URI of the scheme may be in a table's config.
enum SchemeRole : unsigned { kRoleSource = 1, kRoleStaging = 2, kRoleWarehouse = 4 };

// Whose credentials a backend of the scheme needs; the core shares one
// provider of each kind across all stores and warehouses of the process.
enum class CredentialKind { kNone, kAws, kGoogle };

struct SchemeInfo {
  std::string name;     // "s3" claims URIs that start with s3://
  std::string example;  // "s3://bucket/prefix/", shown in messages
  std::string service;  // "Cloud Storage": what the backend talks to, for messages
  unsigned roles = 0;   // SchemeRole bits
  // Reached over the network: endpoints apply, and so does their transport
  // check (plain http only where it is safe).
  bool remote = false;
  CredentialKind credentials = CredentialKind::kNone;
  bool bearer_token = false;      // requests carry a bearer token (never over plain http off loopback)
  bool shares_endpoint = false;   // takes the table-wide `endpoint` key, not only the per-side ones
  bool announces_events = false;  // S3 event notifications can announce its new objects
  bool daily_job_budget = false;  // warehouse: load jobs are limited per table and day
  std::string loads_from;         // warehouse: the scheme its staging must have ("" for any)

  // "" when a parsed URI of this scheme is usable, else why not, worded to
  // follow the quoted URI ("names no bucket (s3://bucket/prefix/)"). Unset:
  // every URI of the scheme is.
  std::function<std::string(const Uri&)> validate;
  // The endpoint the backend takes from the environment when none is
  // configured, as (variable, URL); nullopt when none is set. Unset: none.
  std::function<std::optional<std::pair<std::string, std::string>>()> environment_endpoint;
  // Whether an emulator stands in for the service, so that a store opened
  // with these options and this credentials file ("" = none configured)
  // wants no real credentials. Unset: never.
  std::function<bool(const StoreOptions&, const std::string& credentials_file)> emulated;

  // Exactly one of these is set, by the scheme's roles.
  std::function<StatusOr<std::unique_ptr<ObjectStore>>(std::string_view uri, const StoreOptions&)> open_store;
  std::function<StatusOr<std::unique_ptr<Warehouse>>(const Uri& uri, const WarehouseOptions&)> open_warehouse;
};

}  // namespace logferry
