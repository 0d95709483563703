// The three SQS calls discovery needs, over the AWS JSON 1.0 protocol
// (what current AWS SDKs speak). The queue is addressed by its URL exactly as
// AWS prints it: requests go to that URL's origin, so a local server's URL
// works unchanged.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "aws/client.h"
#include "common/retry.h"
#include "common/status.h"

namespace logferry::aws {

struct SqsMessage {
  std::string message_id;
  std::string receipt_handle;  // needed to delete or extend; changes on every receive
  std::string body;
  int receive_count = 0;  // ApproximateReceiveCount
};

class SqsQueue {
 public:
  // region empty: taken from the URL's host (sqs.REGION.amazonaws.com,
  // REGION.queue.amazonaws.com), else the environment.
  static StatusOr<std::unique_ptr<SqsQueue>> Open(const std::string& queue_url, const std::string& region,
                                                  std::shared_ptr<CredentialsProvider> credentials, RetryPolicy retry);

  // Up to max_messages (1..10), waiting up to wait_seconds (0..20) for the
  // first; each received message stays invisible for visibility_seconds.
  StatusOr<std::vector<SqsMessage>> Receive(int max_messages, int wait_seconds, int visibility_seconds) const;
  // Deleting a message whose receipt handle expired fails (kInvalidArgument):
  // it was already redelivered, and the new receipt will delete it.
  Status Delete(const std::string& receipt_handle) const;
  Status ExtendVisibility(const std::string& receipt_handle, int visibility_seconds) const;
  // Approximate visible and in-flight message counts (GetQueueAttributes):
  // a read-only probe for `check` and `status`.
  StatusOr<std::pair<int64_t, int64_t>> Depth() const;

  const std::string& url() const { return url_; }

 private:
  SqsQueue(std::string url, Client client) : url_(std::move(url)), client_(std::move(client)) {}
  StatusOr<HttpResponse> Call(const std::string& action, const std::string& body) const;

  std::string url_;
  Client client_;
};

// The region in an SQS endpoint host, or "" for a host that names none.
std::string RegionFromSqsHost(const std::string& host);

}  // namespace logferry::aws
