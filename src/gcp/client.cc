#include "gcp/client.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace logferry::gcp {

GoogleError ParseGoogleError(const HttpResponse& response) {
  GoogleError e;
  e.code = response.status;
  auto j = nlohmann::json::parse(response.body, nullptr, false);
  if (!j.is_object()) {
    e.message = Excerpt(response.body, 200);
    return e;
  }
  auto err = j.find("error");
  if (err == j.end()) return e;
  if (err->is_string()) {  // OAuth endpoints: {"error": "invalid_grant", ...}
    e.reason = err->get<std::string>();
    e.message = j.value("error_description", "");
    return e;
  }
  if (!err->is_object()) return e;
  e.message = err->value("message", "");
  auto errors = err->find("errors");
  if (errors != err->end() && errors->is_array() && !errors->empty() && (*errors)[0].is_object())
    e.reason = (*errors)[0].value("reason", "");
  if (e.reason.empty()) e.reason = err->value("status", "");
  return e;
}

StatusCode ClassifyReason(std::string_view reason, StatusCode by_status) {
  if (reason == "rateLimitExceeded" || reason == "backendError" || reason == "internalError" ||
      reason == "jobRateLimitExceeded")
    return StatusCode::kUnavailable;
  if (reason == "quotaExceeded") return StatusCode::kResourceExhausted;
  if (reason == "conditionNotMet") return StatusCode::kFailedPrecondition;
  return by_status;
}

Status ErrorStatus(std::string_view what, const HttpResponse& response) {
  GoogleError e = ParseGoogleError(response);
  StatusCode code = ClassifyReason(e.reason, ClassifyHttpStatus(response.status));
  if (code == StatusCode::kOk) code = StatusCode::kInternal;
  std::string message = std::string(what) + ": HTTP " + std::to_string(response.status);
  if (!e.reason.empty()) message += " " + e.reason;
  if (!e.message.empty()) message += ": " + Excerpt(e.message, 400);
  return Status(code, std::move(message));
}

Client::Client(std::shared_ptr<TokenProvider> tokens, RetryPolicy retry, const HttpClient* http)
    : tokens_(std::move(tokens)), retry_(retry), http_(http ? http : &HttpClient::Default()) {}

Status Client::Authorize(std::string_view what, HttpRequest* request) const {
  if (!tokens_) return Status::PermissionDenied(std::string(what) + ": no Google credentials");
  LF_ASSIGN_OR_RETURN(AccessToken token, tokens_->Get());
  request->headers.emplace_back("Authorization", "Bearer " + token.token);
  return Status::Ok();
}

StatusOr<HttpResponse> Client::SendOnce(std::string_view what, const HttpRequest& request) const {
  return SendAuthorized(*http_, what, request, [&](HttpRequest* r) { return Authorize(what, r); });
}

StatusOr<HttpResponse> Client::Send(std::string_view what, const HttpRequest& request,
                                    const ResponseCheck& check) const {
  auto accept_success = [&](const HttpResponse& r) { return IsSuccess(r) ? Status::Ok() : ErrorStatus(what, r); };
  return SendWithRetry(
      *http_, retry_, what, request, [&](HttpRequest* r) { return Authorize(what, r); },
      check ? check : accept_success);
}

}  // namespace logferry::gcp
