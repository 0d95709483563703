// AWS credentials resolved the way the AWS CLI resolves them:
//   1. environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN);
//      skipped when ChainOptions::profile is set (like the CLI's --profile),
//      not when only AWS_PROFILE is
//   2. web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN → STS
//      AssumeRoleWithWebIdentity), from the environment or the profile
//      (web_identity_token_file + role_arn)
//   3. shared files (~/.aws/credentials, ~/.aws/config; AWS_PROFILE,
//      AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE): "[name]" in credentials,
//      "[profile name]" (or "[default]") in config, credentials file first
//   4. ECS container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
//      _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]); a FULL_URI
//      over plain http must be loopback or the ECS/EKS agent address
//   5. EC2 instance metadata, IMDSv2 (token PUT, then role credentials;
//      IMDSv1 only when the token PUT is refused with 403/404/405, as the CLI
//      does); AWS_EC2_METADATA_DISABLED=true skips it,
//      AWS_EC2_METADATA_SERVICE_ENDPOINT moves it
// The first source that is configured decides: if it fails, Get fails naming
// it (a half-configured source is reported, not skipped). Not supported, and
// said so in the error: credential_process, SSO profiles, and role_arn with
// source_profile/credential_source (STS AssumeRole).
//
// Errors: kFailedPrecondition when no source has credentials (the message
// lists each source and why); kUnavailable for a transient failure of the
// chosen source (metadata or STS unreachable, 5xx, throttling);
// kPermissionDenied when it refuses (401/403, an invalid web identity
// token); kInvalidArgument for a configuration mistake; kCorruption for a
// response that cannot be parsed. Messages never carry response bodies or
// secret values (keys, session tokens, web identity or container tokens).
//
// Temporary credentials are refreshed five minutes before they expire, one
// refresh at a time; while one runs, other callers keep using the current
// credentials if they have not expired, and a failed early refresh keeps
// them until they do.
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
  std::string source;         // "environment", "web identity[ (profile P)]", "profile P", "ecs", "imds", "static"
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
  // STS: sts_endpoint, else AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, else the
  // regional endpoint https://sts.REGION.amazonaws.com (as the AWS CLI v2)
  // for region, else AWS_REGION / AWS_DEFAULT_REGION / the profile's region,
  // else the global https://sts.amazonaws.com.
  std::string region;
  std::string sts_endpoint;
  std::string ecs_host = "http://169.254.170.2";
  std::string imds_endpoint = "http://169.254.169.254";  // or AWS_EC2_METADATA_SERVICE_ENDPOINT
  // Default: HttpClient::Default() for STS, and for the metadata endpoints a
  // client with a 1 s connect timeout (2 s per request) so that a machine
  // without them fails fast.
  const HttpClient* http = nullptr;
  std::function<int64_t()> now_us;  // default: the wall clock
};

std::unique_ptr<CredentialsProvider> MakeDefaultChain(ChainOptions options = {});

// `region` of the profile the chain would read (options.profile, AWS_PROFILE,
// AWS_DEFAULT_PROFILE, else default) in the shared config or credentials
// file, as the AWS CLI reads it; "" when it names none or cannot be read.
std::string RegionFromProfile(ChainOptions options = {});

// Fixed credentials (tests, and keys given explicitly).
std::unique_ptr<CredentialsProvider> MakeStaticProvider(Credentials credentials);

}  // namespace logferry::aws
