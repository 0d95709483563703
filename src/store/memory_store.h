// mem://bucket/prefix/: objects held in this process's memory, for tests of
// the core (crash windows, exactly-once) without a filesystem or a server.
//
// Not registered in Schemes(): its objects vanish with the process, and the
// ledger records staged parts as durable, so a config naming mem:// would
// lose data that the ledger says is safe. A test registers it with
// Schemes().Register(MemoryScheme(objects)), and its stores then share
// `objects` (one namespace of buckets) across every Open, as a real bucket
// is shared by every client.
//
// Semantics follow the interface's contract: a write is visible only on
// Commit, all at once; a reader reads the version it opened (an if_etag read
// of a replaced object fails with kFailedPrecondition); etags change on
// every commit. Thread-safe.
#pragma once

#include <memory>
#include <string_view>

#include "registry/scheme.h"
#include "store/object_store.h"

namespace logferry {

// The objects of every mem:// bucket of one test.
class MemoryObjects;
std::shared_ptr<MemoryObjects> NewMemoryObjects();

StatusOr<std::unique_ptr<ObjectStore>> OpenMemoryStore(std::string_view uri, std::shared_ptr<MemoryObjects> objects);
// The mem scheme over `objects`: source and staging roles, a bucket required.
SchemeInfo MemoryScheme(const std::shared_ptr<MemoryObjects>& objects);

}  // namespace logferry
