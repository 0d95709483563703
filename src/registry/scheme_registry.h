// The scheme registry: the one place that maps a URI to its backend. Config
// validation, OpenObjectStore, OpenWarehouse and the core's choices
// (credentials, load budget) all ask it, so no code outside the backends
// tests for a scheme name, and the lists of supported URIs in messages come
// from what is registered.
//
// Schemes() holds the built-in backends (file, s3, gs, duckdb, bigquery).
// Tests register more (an in-memory store, a fake warehouse); production
// code registers nothing else, so configs cannot reach them.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "registry/scheme.h"
#include "store/object_store.h"
#include "warehouse/warehouse.h"

namespace logferry {

class SchemeRegistry {
 public:
  // Adds the backend for info.name, replacing one of that name. Messages list
  // schemes in registration order. Thread-safe.
  void Register(SchemeInfo info);
  // Removes a scheme. Its SchemeInfo stays allocated, so a pointer from an
  // earlier Claim stays valid. Thread-safe.
  void Unregister(std::string_view name);

  // The backend that claims `uri` (by its scheme, case-insensitive), or
  // nullptr if none does or it is not a URI. Thread-safe.
  const SchemeInfo* Claim(std::string_view uri) const;
  const SchemeInfo* Find(std::string_view name) const;
  // The examples of every scheme with one of `roles`, joined by sep:
  // "file:///dir/, s3://bucket/prefix/, gs://bucket/prefix/".
  std::string Examples(unsigned roles, std::string_view sep = ", ") const;
  // The schemes with one of `roles`, or with `property` set, as "s3://, gs://".
  std::string Names(unsigned roles, std::string_view sep = ", ") const;
  std::string Names(bool SchemeInfo::*property, std::string_view sep = ", ") const;

  StatusOr<std::unique_ptr<ObjectStore>> OpenStore(std::string_view uri, const StoreOptions& options) const;
  StatusOr<std::unique_ptr<Warehouse>> OpenWarehouse(const std::string& uri, const WarehouseOptions& options) const;

 private:
  std::vector<const SchemeInfo*> Matching(const std::function<bool(const SchemeInfo&)>& pred) const;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const SchemeInfo>> schemes_;
  std::vector<std::shared_ptr<const SchemeInfo>> retired_;  // unregistered, kept for pointers handed out
};

// The process's registry, with the built-in backends registered.
SchemeRegistry& Schemes();

// Opens the store or warehouse for a URI through Schemes().
StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(std::string_view uri, const StoreOptions& options = {});
StatusOr<std::unique_ptr<Warehouse>> OpenWarehouse(const std::string& uri, const WarehouseOptions& options);

}  // namespace logferry
