#include "aws/client.h"

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry::aws {

AwsError ParseAwsError(const HttpResponse& response) {
  AwsError error;
  error.request_id = std::string(response.Header("x-amz-request-id"));
  if (error.request_id.empty()) error.request_id = std::string(response.Header("x-amzn-requestid"));
  std::string_view body = response.body;
  size_t start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return error;
  if (body[start] == '{') {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
      std::string type = j.value("__type", j.value("code", ""));
      // "com.amazonaws.sqs#QueueDoesNotExist" → "QueueDoesNotExist"
      size_t hash = type.rfind('#');
      error.code = hash == std::string::npos ? type : type.substr(hash + 1);
      error.message = j.value("message", j.value("Message", ""));
    }
  } else if (body[start] == '<') {
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size())) {
      pugi::xml_node e = doc.child("Error");
      if (!e) e = doc.child("ErrorResponse").child("Error");
      error.code = e.child_value("Code");
      error.message = e.child_value("Message");
      if (error.request_id.empty()) error.request_id = e.child_value("RequestId");
      if (error.request_id.empty()) error.request_id = doc.child("ErrorResponse").child_value("RequestId");
    }
  }
  if (response.Header("x-amzn-query-error").size() && error.code.empty()) {
    std::string_view q = response.Header("x-amzn-query-error");
    error.code = std::string(q.substr(0, q.find(';')));
  }
  return error;
}

StatusCode ClassifyErrorCode(std::string_view code, StatusCode by_status) {
  // Worth retrying although some come with a 400 (RequestTimeout, BadDigest:
  // the body was damaged in transit; ExpiredToken: the next attempt signs
  // with refreshed credentials; IDPCommunicationError: STS could not reach
  // the identity provider).
  if (code == "RequestTimeout" || code == "BadDigest" || code == "SlowDown" || code == "InternalError" ||
      code == "ServiceUnavailable" || code == "RequestTimeTooSkewed" || code == "ExpiredToken" ||
      code == "Throttling" || code == "ThrottlingException" || code == "RequestThrottled" ||
      code == "IDPCommunicationError")
    return StatusCode::kUnavailable;
  if (code == "NoSuchKey" || code == "NoSuchBucket" || code == "NoSuchUpload" || code == "QueueDoesNotExist" ||
      code == "AWS.SimpleQueueService.NonExistentQueue")
    return StatusCode::kNotFound;
  if (code == "PreconditionFailed") return StatusCode::kFailedPrecondition;
  // STS refusing a web identity token (ExpiredTokenException: the token
  // file's, which only its issuer renews) is as final as a bad signature.
  if (code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
      code == "InvalidClientTokenId" || code == "UnrecognizedClientException" || code == "InvalidIdentityToken" ||
      code == "ExpiredTokenException" || code == "IDPRejectedClaim")
    return StatusCode::kPermissionDenied;
  return by_status;
}

Status ErrorStatus(std::string_view what, const HttpResponse& response) {
  AwsError e = ParseAwsError(response);
  StatusCode code = ClassifyErrorCode(e.code, ClassifyHttpStatus(response.status));
  if (code == StatusCode::kOk) code = StatusCode::kInternal;  // a 1xx/3xx we did not ask for
  std::string message = std::string(what) + ": HTTP " + std::to_string(response.status);
  if (!e.code.empty()) message += " " + e.code;
  if (!e.message.empty()) message += ": " + Excerpt(e.message, 300);
  if (!e.request_id.empty()) message += " (request id " + e.request_id + ")";
  return Status(code, std::move(message));
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  if (!options_.http) options_.http = &HttpClient::Default();
}

StatusOr<HttpResponse> Client::Send(std::string_view what, const HttpRequest& request,
                                    const ResponseCheck& check) const {
  std::string payload_hash = Sha256Hex(request.body);
  auto sign = [&](HttpRequest* r) -> Status {
    if (!options_.credentials) return Status::PermissionDenied(std::string(what) + ": no AWS credentials");
    LF_ASSIGN_OR_RETURN(Credentials creds, options_.credentials->Get());
    SigningParams params;
    params.service = options_.service;
    params.region = options_.region;
    params.unix_time = Env::Default()->NowMicros() / kMicrosPerSecond;
    params.double_encode_path = !options_.s3_signing;
    params.add_content_sha256 = options_.s3_signing;
    return SignRequest(r, creds, params, payload_hash);
  };
  auto accept_success = [&](const HttpResponse& r) { return IsSuccess(r) ? Status::Ok() : ErrorStatus(what, r); };
  return SendWithRetry(*options_.http, options_.retry, what, request, sign, check ? check : accept_success);
}

std::string RegionFromEnvironment(std::string_view fallback) {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::string v = Env::Default()->GetEnvOr(name);
    if (!v.empty()) return v;
  }
  std::string region = RegionFromProfile();
  return region.empty() ? std::string(fallback) : region;
}

}  // namespace logferry::aws
