// One authorized API request under the core's retry policy: the plumbing the
// protocol clients (aws::Client, gcp::Client) share. Each attempt is
// authorized afresh (a signature carries the time, a token may have been
// refreshed), sent, and judged by the caller's check; common/retry.h alone
// decides whether to try again, from the Status the check or the transport
// returned. The protocols only classify: aws::ErrorStatus by AWS error code,
// gcp::ErrorStatus by Google error reason.
#pragma once

#include <functional>
#include <string_view>

#include "common/retry.h"
#include "common/status.h"
#include "http/http_client.h"

namespace logferry {

// Adds credentials to a copy of the request; an error stops the call (it is
// retried only when transient, as a refresh that timed out is).
using Authorize = std::function<Status(HttpRequest*)>;
// Turns a response into OK or a classified error.
using ResponseCheck = std::function<Status(const HttpResponse&)>;

// One attempt: authorize a copy of request and send it. A transport failure
// comes back with `what` as context; any HTTP status is a response.
StatusOr<HttpResponse> SendAuthorized(const HttpClient& http, std::string_view what, const HttpRequest& request,
                                      const Authorize& authorize);

// Attempts until check passes, a failure is permanent, or policy's attempts
// run out. The returned response passed check.
StatusOr<HttpResponse> SendWithRetry(const HttpClient& http, const RetryPolicy& policy, std::string_view what,
                                     const HttpRequest& request, const Authorize& authorize,
                                     const ResponseCheck& check);

inline bool IsSuccess(const HttpResponse& r) {
  return r.status >= 200 && r.status < 300;
}

}  // namespace logferry
