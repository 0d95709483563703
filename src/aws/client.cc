#include "aws/client.h"

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

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

Status ErrorStatus(std::string_view what, const HttpResponse& response) {
  AwsError e = ParseAwsError(response);
  StatusCode code = ClassifyHttpStatus(response.status);
  // Codes whose HTTP status alone would be misread.
  if (e.code == "RequestTimeout" || e.code == "BadDigest" || e.code == "SlowDown" || e.code == "InternalError" ||
      e.code == "ServiceUnavailable" || e.code == "RequestTimeTooSkewed" || e.code == "ExpiredToken" ||
      e.code == "Throttling" || e.code == "ThrottlingException" || e.code == "RequestThrottled")
    code = StatusCode::kUnavailable;
  if (e.code == "NoSuchKey" || e.code == "NoSuchBucket" || e.code == "NoSuchUpload" ||
      e.code == "QueueDoesNotExist" || e.code == "AWS.SimpleQueueService.NonExistentQueue")
    code = StatusCode::kNotFound;
  if (e.code == "PreconditionFailed") code = StatusCode::kFailedPrecondition;
  if (e.code == "AccessDenied" || e.code == "InvalidAccessKeyId" || e.code == "SignatureDoesNotMatch" ||
      e.code == "InvalidClientTokenId" || e.code == "UnrecognizedClientException")
    code = StatusCode::kPermissionDenied;
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
                                    const std::function<Status(const HttpResponse&)>& check) const {
  std::string payload_hash = Sha256Hex(request.body);
  auto attempt = [&]() -> StatusOr<HttpResponse> {
    if (!options_.credentials) return Status::PermissionDenied(std::string(what) + ": no AWS credentials");
    LF_ASSIGN_OR_RETURN(Credentials creds, options_.credentials->Get());
    HttpRequest signed_request = request;
    SigningParams params;
    params.service = options_.service;
    params.region = options_.region;
    params.unix_time = Env::Default()->NowMicros() / kMicrosPerSecond;
    params.double_encode_path = !options_.s3_signing;
    params.add_content_sha256 = options_.s3_signing;
    LF_RETURN_IF_ERROR(SignRequest(&signed_request, creds, params, payload_hash));
    auto response = options_.http->Send(signed_request);
    if (!response.ok()) return response.status().WithContext(what);
    Status verdict = check ? check(*response)
                           : (response->status >= 200 && response->status < 300 ? Status::Ok()
                                                                                 : ErrorStatus(what, *response));
    if (!verdict.ok()) return verdict;
    return response;
  };
  return WithRetry(options_.retry, attempt);
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
