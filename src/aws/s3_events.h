// Parsing S3 event notifications as they arrive in an SQS message body:
// S3's own notification ({"Records": [...]}), the same wrapped by SNS
// ({"Type": "Notification", "Message": "<json>"}), and EventBridge's
// "Object Created" events. Only object-created events name work to do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace logferry::aws {

struct S3EventObject {
  std::string bucket;
  std::string key;  // decoded: S3 notifications form-encode keys ('+' for space)
  uint64_t size = 0;
  std::string etag;  // without quotes; may be empty
  int64_t event_time_us = 0;
  std::string event_name;  // "ObjectCreated:Put", "Object Created"
};

struct S3EventMessage {
  std::vector<S3EventObject> created;
  int ignored = 0;          // records of other event types (removals, restores, ...)
  bool test_event = false;  // s3:TestEvent, sent when a notification is configured
};

// kInvalidArgument when the body is not an S3 event in any of the shapes
// (the message says what was expected and what was found).
StatusOr<S3EventMessage> ParseS3EventMessage(const std::string& body);

}  // namespace logferry::aws
