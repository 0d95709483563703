// Discovery by listing: every object of the source whose key is ours, handed
// to the ledger, which records the versions it does not know (found_by =
// "listing"). Nothing to acknowledge. A whole listing per poll: the
// always-correct baseline and the reconcile behind events.
//
// A listing also sees what is not ours: keys that do not match key_format
// are counted in the ledger, with a few examples (status shows them), and a
// source with nothing in it at all is warned about, since both usually mean
// a wrong `source` or `key_format` rather than a quiet bucket.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "discovery/discovery.h"

namespace logferry {

class ListingDiscovery : public Discovery {
 public:
  explicit ListingDiscovery(DiscoveryContext context) : context_(std::move(context)) {}

  Status Poll(const PollOptions& options, DiscoveryStats* stats) override;

 private:
  void WarnIfEmpty(size_t listed);
  void WarnIfIgnored(int64_t ignored, const std::string& example);

  DiscoveryContext context_;
  bool warned_empty_ = false;   // once per stretch of empty listings
  int64_t ignored_warned_ = 0;  // warned again only when more keys are ignored
};

// The directory of a local store (file://) when it does not exist; nullopt
// when it exists or the store is remote (an empty remote prefix is not an
// error: nothing may have been written yet).
std::optional<std::string> MissingLocalRoot(const ObjectStore& store);

}  // namespace logferry
