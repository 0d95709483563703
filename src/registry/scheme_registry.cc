#include "registry/scheme_registry.h"

#include "store/file_store.h"
#include "store/gcs_store.h"
#include "store/s3_store.h"

namespace logferry {

namespace {

constexpr unsigned kStoreRoles = kRoleSource | kRoleStaging;

std::string JoinNames(const std::vector<const SchemeInfo*>& schemes, std::string_view sep) {
  std::string out;
  for (const SchemeInfo* s : schemes) out += (out.empty() ? "" : std::string(sep)) + s->name + "://";
  return out;
}

}  // namespace

void SchemeRegistry::Register(SchemeInfo info) {
  auto entry = std::make_shared<const SchemeInfo>(std::move(info));
  std::lock_guard lock(mu_);
  for (auto& s : schemes_) {
    if (s->name != entry->name) continue;
    retired_.push_back(std::move(s));
    s = std::move(entry);
    return;
  }
  schemes_.push_back(std::move(entry));
}

void SchemeRegistry::Unregister(std::string_view name) {
  std::lock_guard lock(mu_);
  for (auto it = schemes_.begin(); it != schemes_.end(); ++it) {
    if ((*it)->name != name) continue;
    retired_.push_back(std::move(*it));
    schemes_.erase(it);
    return;
  }
}

const SchemeInfo* SchemeRegistry::Find(std::string_view name) const {
  std::lock_guard lock(mu_);
  for (const auto& s : schemes_)
    if (s->name == name) return s.get();
  return nullptr;
}

const SchemeInfo* SchemeRegistry::Claim(std::string_view uri) const {
  Uri u;
  if (!ParseUri(uri, &u)) return nullptr;
  return Find(u.scheme);
}

std::vector<const SchemeInfo*> SchemeRegistry::Matching(const std::function<bool(const SchemeInfo&)>& pred) const {
  std::lock_guard lock(mu_);
  std::vector<const SchemeInfo*> out;
  for (const auto& s : schemes_)
    if (pred(*s)) out.push_back(s.get());
  return out;
}

std::string SchemeRegistry::Examples(unsigned roles, std::string_view sep) const {
  std::string out;
  for (const SchemeInfo* s : Matching([&](const SchemeInfo& s) { return (s.roles & roles) != 0; }))
    out += (out.empty() ? "" : std::string(sep)) + s->example;
  return out;
}

std::string SchemeRegistry::Names(unsigned roles, std::string_view sep) const {
  return JoinNames(Matching([&](const SchemeInfo& s) { return (s.roles & roles) != 0; }), sep);
}

std::string SchemeRegistry::Names(bool SchemeInfo::*property, std::string_view sep) const {
  return JoinNames(Matching([&](const SchemeInfo& s) { return s.*property; }), sep);
}

StatusOr<std::unique_ptr<ObjectStore>> SchemeRegistry::OpenStore(std::string_view uri,
                                                                 const StoreOptions& options) const {
  Uri u;
  if (!ParseUri(uri, &u))
    return Status::InvalidArgument("not a URI: '" + std::string(uri) + "' (expected e.g. " +
                                   Examples(kStoreRoles, " or ") + ")");
  const SchemeInfo* s = Find(u.scheme);
  if (!s || !s->open_store)
    return Status::InvalidArgument("unsupported store scheme '" + u.scheme + "://' in '" + std::string(uri) +
                                   "' (supported: " + Names(kStoreRoles) + ")");
  return s->open_store(uri, options);
}

StatusOr<std::unique_ptr<Warehouse>> SchemeRegistry::OpenWarehouse(const std::string& uri,
                                                                   const WarehouseOptions& options) const {
  Uri u;
  if (!ParseUri(uri, &u))
    return Status::InvalidArgument("not a warehouse URI: '" + uri + "' (expected " + Examples(kRoleWarehouse, " or ") +
                                   ")");
  const SchemeInfo* s = Find(u.scheme);
  if (!s || !s->open_warehouse)
    return Status::InvalidArgument("unsupported warehouse scheme '" + u.scheme +
                                   "://' (supported: " + Names(kRoleWarehouse) + ")");
  if (s->validate) {
    std::string problem = s->validate(u);
    if (!problem.empty()) return Status::InvalidArgument("'" + uri + "' " + problem);
  }
  return s->open_warehouse(u, options);
}

SchemeRegistry& Schemes() {
  // Built in explicitly, in the order messages list them: self-registering
  // statics would be dropped by the linker from a static library.
  static SchemeRegistry* registry = [] {
    auto* r = new SchemeRegistry;
    for (SchemeInfo info : {FileScheme(), S3Scheme(), GcsScheme(), DuckDbScheme(), BigQueryScheme()})
      r->Register(std::move(info));
    return r;
  }();
  return *registry;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(std::string_view uri, const StoreOptions& options) {
  return Schemes().OpenStore(uri, options);
}

StatusOr<std::unique_ptr<Warehouse>> OpenWarehouse(const std::string& uri, const WarehouseOptions& options) {
  return Schemes().OpenWarehouse(uri, options);
}

}  // namespace logferry
