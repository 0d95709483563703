// AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
// The steps are exposed one by one so tests can check each against the
// official test suite (canonical request, string to sign, authorization).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "common/status.h"
#include "http/http_client.h"

namespace logferry::aws {

// S3 streams bodies it does not hash up front with this payload value.
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct SigningParams {
  std::string service;    // "s3", "sqs", "sts"
  std::string region;     // "us-east-1"
  int64_t unix_time = 0;  // signing time, seconds
  // S3 signs its paths as they are sent (already encoded once); every other
  // service encodes each path segment again in the canonical request.
  bool double_encode_path = true;
  // Adds x-amz-content-sha256 (S3 requires it).
  bool add_content_sha256 = false;
};

// The canonical request for request (whose headers must already include Host
// and X-Amz-Date) with the given hex payload hash, and the signed-headers list.
std::string CanonicalRequest(const HttpRequest& request, std::string_view payload_hash, bool double_encode_path,
                             std::string* signed_headers);
std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request);

// Signs request in place: sets Host (from the URL) and X-Amz-Date, the
// session token header when the credentials have one, x-amz-content-sha256
// when asked, and Authorization. payload_hash is the hex SHA-256 of the body
// or kUnsignedPayload; empty means "hash request.body".
Status SignRequest(HttpRequest* request, const Credentials& credentials, const SigningParams& params,
                   std::string_view payload_hash = {});

}  // namespace logferry::aws
