// Discovery by S3 event notifications received from an SQS queue.
//
// Each pass long-polls the queue (a bounded number of batches), checks each
// announced object with a HEAD (the event may be older than an overwrite: the
// ledger records the version that exists now) and records it (found_by =
// "event"). A message is held in memory, kept invisible while its objects
// stage (Extend), and deleted once every object it names is staged or
// superseded (Acknowledge). A crash loses only the hold: the message comes
// back after its visibility timeout and is deleted then. A body that is not
// an S3 event, or one naming an object that keeps failing, is recorded in the
// ledger's notifications and left on the queue for its redrive policy.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/retry.h"
#include "discovery/discovery.h"

namespace logferry {

struct ObjectInfo;
namespace aws {
class CredentialsProvider;
class SqsQueue;
struct SqsMessage;
struct S3EventMessage;
}  // namespace aws

struct SqsDiscoveryOptions {
  std::string queue_url;  // exactly as AWS prints it
  std::string region;     // "": from the queue URL's host, else the environment
  std::shared_ptr<aws::CredentialsProvider> credentials;
  RetryPolicy retry;  // per request
  // s3://bucket/prefix/ of the table: events for other buckets or prefixes
  // are not the table's.
  std::string source_uri;
  int64_t wait_us = 20'000'000;         // long poll of a pass's first receive
  int64_t visibility_us = 300'000'000;  // how long a received message stays hidden
};

class SqsDiscovery : public Discovery {
 public:
  static StatusOr<std::unique_ptr<SqsDiscovery>> Open(DiscoveryContext context, const SqsDiscoveryOptions& options);
  ~SqsDiscovery() override;

  Status Poll(const PollOptions& options, DiscoveryStats* stats) override;
  Status Acknowledge(DiscoveryStats* stats) override;
  void BeginStaging(const std::vector<ObjectVersion>& objects) override;
  void FinishedStaging(const ObjectVersion& object) override;
  void EndStaging() override;
  // A message that also waits on an object not being staged now (failing,
  // backing off) is left to time out, so the queue's redrive policy sees
  // each of its deliveries.
  void Extend() override;
  // A third of the visibility timeout (at least a second), so a slow or
  // missed beat does not let a message reappear.
  int64_t extend_every_us() const override;
  int64_t held() const override;

 private:
  // A message received but not yet deleted: it is deleted only once every
  // object it announced is durably staged (ledger committed).
  struct HeldMessage {
    std::string receipt_handle;
    int receive_count = 0;
    std::vector<ObjectVersion> objects;  // in the source store
    int64_t received_us = 0;
  };

  SqsDiscovery(DiscoveryContext context, const SqsDiscoveryOptions& options, std::unique_ptr<aws::SqsQueue> queue);
  StatusOr<int64_t> Handle(const aws::SqsMessage& m);
  // The objects an event announces that are the table's, as they are now.
  Status CheckAnnounced(const aws::S3EventMessage& event, std::vector<ObjectInfo>* found);
  Status RecordFailing(const std::string& message_id, int receive_count, const std::string& detail,
                       const std::string& excerpt);
  void Hold(const std::string& message_id, HeldMessage held);
  void Forget(const std::string& message_id, const std::string& receipt_handle);
  // Whether a listing shows that key is no longer in the source.
  bool GoneFromListing(const std::string& key);
  // Whether m's objects are all done; sets *failing to the last one failing
  // for good, if any.
  StatusOr<bool> AllStaged(const HeldMessage& m, std::string* failing);
  // Forgets a deleted message, and marks it done where the ledger has it failing.
  Status Settled(const std::string& id, const HeldMessage& m);
  bool WaitsElsewhere(const HeldMessage& m, const std::set<ObjectVersion>& staging_now);

  DiscoveryContext context_;
  SqsDiscoveryOptions options_;
  std::unique_ptr<aws::SqsQueue> queue_;
  std::string bucket_, prefix_;  // of the source

  mutable std::mutex held_mu_;
  std::map<std::string, HeldMessage> held_;  // by message id; guarded by held_mu_
  // The objects the running Stage step has yet to finish; guarded by
  // held_mu_. Only messages waiting on these are worth keeping invisible.
  std::set<ObjectVersion> staging_now_;
};

}  // namespace logferry
