// Discovery by listing: every object of the source whose key is ours, handed
// to the ledger, which records the versions it does not know (found_by =
// "listing"). Nothing to acknowledge. A whole listing per poll: the
// always-correct baseline and the reconcile behind events.
#pragma once

#include <memory>

#include "discovery/discovery.h"

namespace logferry {

class ListingDiscovery : public Discovery {
 public:
  explicit ListingDiscovery(DiscoveryContext context) : context_(std::move(context)) {}

  Status Poll(const PollOptions& options, DiscoveryStats* stats) override;

 private:
  DiscoveryContext context_;
};

}  // namespace logferry
