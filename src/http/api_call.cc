#include "http/api_call.h"

namespace logferry {

StatusOr<HttpResponse> SendAuthorized(const HttpClient& http, std::string_view what, const HttpRequest& request,
                                      const Authorize& authorize) {
  HttpRequest authorized = request;
  LF_RETURN_IF_ERROR(authorize(&authorized));
  auto response = http.Send(authorized);
  if (!response.ok()) return response.status().WithContext(what);
  return response;
}

StatusOr<HttpResponse> SendWithRetry(const HttpClient& http, const RetryPolicy& policy, std::string_view what,
                                     const HttpRequest& request, const Authorize& authorize,
                                     const ResponseCheck& check) {
  return WithRetry(policy, [&]() -> StatusOr<HttpResponse> {
    LF_ASSIGN_OR_RETURN(HttpResponse response, SendAuthorized(http, what, request, authorize));
    LF_RETURN_IF_ERROR(check(response));
    return response;
  });
}

}  // namespace logferry
