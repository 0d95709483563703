// One authorized Google API call with the core's retry policy: a bearer
// token from the TokenProvider on each attempt, Google's JSON error shape
// parsed into a Status; the shared layer (http/api_call.h, common/retry.h)
// retries what that Status calls transient. GCS and BigQuery build
// on it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/retry.h"
#include "common/status.h"
#include "gcp/credentials.h"
#include "http/api_call.h"
#include "http/http_client.h"

namespace logferry::gcp {

struct GoogleError {
  int code = 0;
  std::string reason;  // errors[0].reason: "notFound", "duplicate", "rateLimitExceeded", "conditionNotMet"
  std::string message;
};
GoogleError ParseGoogleError(const HttpResponse& response);

// What a Google error reason means, or by_status when the reason adds
// nothing. The one place that decides which Google errors are transient, for
// HTTP answers (ErrorStatus) and BigQuery job results alike: rate limits and
// backend errors pass within seconds (kUnavailable, retried per request);
// quotaExceeded does not (daily and per-table quotas), so it is
// kResourceExhausted and the load waits for its partition's backoff.
StatusCode ClassifyReason(std::string_view reason, StatusCode by_status);

// By status, refined by reason (ClassifyReason). The message names what was
// attempted, the status, the reason and Google's message; never a token.
Status ErrorStatus(std::string_view what, const HttpResponse& response);

class Client {
 public:
  Client(std::shared_ptr<TokenProvider> tokens, RetryPolicy retry, const HttpClient* http = nullptr);

  // check: response → OK or error (default: 2xx is OK, else ErrorStatus).
  StatusOr<HttpResponse> Send(std::string_view what, const HttpRequest& request, const ResponseCheck& check = {}) const;
  // Without retries, for callers that must look at each failure (resumable
  // uploads ask the server where to resume).
  StatusOr<HttpResponse> SendOnce(std::string_view what, const HttpRequest& request) const;

  const RetryPolicy& retry() const { return retry_; }

 private:
  // Adds a bearer token to the request (fetched or refreshed by the provider).
  Status Authorize(std::string_view what, HttpRequest* request) const;

  std::shared_ptr<TokenProvider> tokens_;
  RetryPolicy retry_;
  const HttpClient* http_;
};

}  // namespace logferry::gcp
