// AWS credentials resolved the way the AWS CLI resolves them:
//   1. environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
//   2. web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN → STS
//      AssumeRoleWithWebIdentity), from the environment or the profile
//   3. shared files (~/.aws/credentials, ~/.aws/config; AWS_PROFILE,
//      AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)
//   4. ECS container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
//      _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE])
//   5. EC2 instance metadata, IMDSv2 (token PUT, then role credentials);
//      AWS_EC2_METADATA_DISABLED=true skips it
// Temporary credentials are refreshed before they expire. Secret values
// never appear in a Status message or a log line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "http/http_client.h"

namespace logferry::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  int64_t expires_at_us = 0;  // 0: does not expire
  std::string source;         // "environment", "profile default", "web identity", "ecs", "imds"
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials; refreshes them when they expire within the next
  // five minutes. Thread-safe.
  virtual StatusOr<Credentials> Get() = 0;
};

// What the chain reads from the outside world; tests replace the
// environment and point the endpoints at local stand-ins.
struct ChainOptions {
  std::function<std::string(const std::string&)> getenv;  // default: ::getenv
  std::string home;                                       // default: $HOME
  std::string profile;                                    // overrides AWS_PROFILE
  std::string region;                                     // for STS; default us-east-1
  std::string sts_endpoint;                               // default https://sts.amazonaws.com
  std::string ecs_host = "http://169.254.170.2";
  std::string imds_endpoint = "http://169.254.169.254";   // or AWS_EC2_METADATA_SERVICE_ENDPOINT
  const HttpClient* http = nullptr;                       // default: HttpClient::Default()
  std::function<int64_t()> now_us;                        // default: the wall clock
};

std::unique_ptr<CredentialsProvider> MakeDefaultChain(ChainOptions options = {});

// Fixed credentials (tests, and keys given explicitly).
std::unique_ptr<CredentialsProvider> MakeStaticProvider(Credentials credentials);

}  // namespace logferry::aws
