// Discovery: how a table learns which source objects are new or changed.
//
// An implementation finds object versions (key relative to the source root,
// etag) and records them in the ledger, which tells new versions from known
// ones; staging then works from the ledger alone. Announcements that must be
// acknowledged (an SQS message) are held by the implementation until the
// ledger has every object they name durably staged: "prefer a duplicate to a
// loss", and a duplicate announcement of a staged object is harmless.
//
// The implementations, side by side:
//   - listing (listing_discovery.h): the source listed and compared with the
//     ledger. Complete but costly; on its own, or as the safety net behind
//     events (WithReconcileListing below);
//   - SQS (sqs_discovery.h): S3 event notifications received from a queue.
// The core picks one per table from its configuration (core/pipeline.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace logferry {

class Ledger;
class ObjectStore;

// An object version as the ledger names it: (key, etag).
using ObjectVersion = std::pair<std::string, std::string>;

struct PollOptions {
  // A single pass (run --once) waits only briefly for announcements; the
  // daemon waits longer.
  bool single_pass = false;
};

// What Poll and Acknowledge did, added up over calls.
struct DiscoveryStats {
  int64_t recorded = 0;           // object versions the ledger did not know before
  int64_t received = 0;           // announcements received (queue messages)
  int64_t acknowledged = 0;       // announcements acknowledged (deleted from their queue)
  int64_t full_listings = 0;      // listings of the whole source
  int64_t windowed_listings = 0;  // listings of the recent key ranges only (listing_discovery.h)
};

// What every implementation works with; the pointers outlive it.
struct DiscoveryContext {
  std::string table;
  ObjectStore* source = nullptr;
  // Whether a key (relative to the source root) names one of the table's
  // objects (the Fluentd key format).
  std::function<bool(std::string_view key)> ours;
  Ledger* ledger = nullptr;
  Env* env = Env::Default();
};

// Not thread-safe, except where a method says otherwise: one pass calls
// Poll, then the staging calls (from its workers and its heartbeat), then
// Acknowledge.
class Discovery {
 public:
  virtual ~Discovery() = default;

  // Records in the ledger the object versions announced since the last poll.
  // An error may come after some were recorded; those stay recorded (and
  // counted), and an announcement is only held once its objects are.
  virtual Status Poll(const PollOptions& options, DiscoveryStats* stats) = 0;
  // Acknowledges every held announcement whose objects the ledger now has
  // staged (or superseded, or never needed: deleted before they were seen).
  // The others stay held; an announcement that waits on an object failing
  // again and again is recorded in the ledger's notifications.
  virtual Status Acknowledge(DiscoveryStats* stats) { return Status::Ok(); }

  // The staging step tells which object versions it works on, so that only
  // announcements waiting on those are kept from being redelivered: the
  // others must lapse, so their queue counts each delivery. Thread-safe.
  virtual void BeginStaging(const std::vector<ObjectVersion>& objects) {}
  virtual void FinishedStaging(const ObjectVersion& object) {}
  virtual void EndStaging() {}
  // Keeps the held announcements of objects being staged from being
  // redelivered for another while. Called every extend_every_us() while
  // staging runs, from a thread of its own. Thread-safe.
  virtual void Extend() {}
  // 0: Extend is never needed.
  virtual int64_t extend_every_us() const { return 0; }
  // Announcements received and not yet acknowledged (SQS messages in
  // flight), for metrics. Thread-safe.
  virtual int64_t held() const { return 0; }
};

// Events backed by a listing: `listing` runs on the first poll, after any
// poll whose events failed, and then every `every_us` (0: every poll), and
// finds what lost events never announced.
std::unique_ptr<Discovery> WithReconcileListing(std::unique_ptr<Discovery> events, std::unique_ptr<Discovery> listing,
                                                int64_t every_us, const DiscoveryContext& context);

}  // namespace logferry
