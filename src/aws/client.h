// One signed AWS call with the core's retry policy: signs each attempt afresh
// (the date moves, credentials refresh) and classifies the response; the
// shared layer (http/api_call.h, common/retry.h) retries only what the
// classification calls transient. S3 and SQS build on it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "common/retry.h"
#include "common/status.h"
#include "http/api_call.h"
#include "http/http_client.h"

namespace logferry::aws {

// An AWS error as the service reported it: S3's <Error> XML, the query
// protocol's <ErrorResponse>, or JSON 1.0's {"__type", "message"}.
struct AwsError {
  std::string code;  // "SlowDown", "NoSuchKey", "AWS.SimpleQueueService.NonExistentQueue"
  std::string message;
  std::string request_id;
};
AwsError ParseAwsError(const HttpResponse& response);

// What an AWS error code means, or by_status when the code adds nothing. The
// one place that decides which AWS errors are transient, for every AWS
// service logferry calls (S3, SQS, STS): throttling, timeouts and a damaged
// body are kUnavailable; a refused credential or signature is permanent.
StatusCode ClassifyErrorCode(std::string_view code, StatusCode by_status);

// The classification of a non-2xx response: by status, refined by the error
// code (ClassifyErrorCode). The message names the operation and the resource,
// the status and the code, never a header or a credential.
Status ErrorStatus(std::string_view what, const HttpResponse& response);

struct ClientOptions {
  std::string service;  // signing name: "s3", "sqs"
  std::string region;
  std::shared_ptr<CredentialsProvider> credentials;
  RetryPolicy retry;
  const HttpClient* http = nullptr;  // default: HttpClient::Default()
  bool s3_signing = false;           // single-encoded paths + x-amz-content-sha256
};

class Client {
 public:
  explicit Client(ClientOptions options);

  // Sends request (body, if any, hashed for the signature), retrying
  // transient failures. check turns a response into OK or an error; the
  // default accepts 2xx and otherwise returns ErrorStatus(what, response).
  // The returned response passed check.
  StatusOr<HttpResponse> Send(std::string_view what, const HttpRequest& request, const ResponseCheck& check = {}) const;

  const ClientOptions& options() const { return options_; }

 private:
  ClientOptions options_;
};

// The region the AWS tools would use: AWS_REGION, AWS_DEFAULT_REGION, the
// profile's region (RegionFromProfile), else fallback.
std::string RegionFromEnvironment(std::string_view fallback = "us-east-1");

}  // namespace logferry::aws
