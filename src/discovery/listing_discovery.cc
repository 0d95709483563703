#include "discovery/listing_discovery.h"

#include "ledger/ledger.h"
#include "store/object_store.h"

namespace logferry {

Status ListingDiscovery::Poll(const PollOptions& options, DiscoveryStats* stats) {
  ObjectStore& source = *context_.source;
  int64_t now = context_.env->NowMicros();
  auto listed = source.ListAll("");
  if (!listed.ok()) return listed.status().WithContext("listing " + source.uri());
  std::vector<ObjectInfo> ours;
  for (ObjectInfo& o : *listed)
    if (context_.ours(o.key)) ours.push_back(std::move(o));
  LF_ASSIGN_OR_RETURN(int64_t found, context_.ledger->RecordDiscovered(context_.table, ours, "listing", now));
  stats->recorded += found;
  return Status::Ok();
}

}  // namespace logferry
