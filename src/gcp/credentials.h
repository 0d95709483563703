// Google OAuth2 access tokens for GCS and BigQuery, resolved like Google's
// client libraries resolve Application Default Credentials:
//   1. an explicit key file (`credentials = "path"` in config), else
//   2. GOOGLE_APPLICATION_CREDENTIALS (a service-account JSON key, or an
//      authorized_user file), else
//   3. the gcloud ADC file (~/.config/gcloud/application_default_credentials.json,
//      or $CLOUDSDK_CONFIG/application_default_credentials.json), else
//   4. an access token from the environment (GOOGLE_OAUTH_ACCESS_TOKEN or
//      CLOUDSDK_AUTH_ACCESS_TOKEN; no refresh), else
//   5. the GCE / Cloud Run metadata server (GCE_METADATA_HOST overrides
//      169.254.169.254; Metadata-Flavor: Google).
// A service-account key is signed into a JWT (RS256, scope
// cloud-platform) and exchanged at its token_uri for an access token.
// The first source that is configured decides, and keeps deciding for the
// provider's lifetime: a broken key file is reported, not skipped, and a
// metadata server that has answered once is never taken for "absent".
// Tokens are cached and refreshed five minutes before they expire. Secret
// values (private keys, refresh tokens, access tokens) never appear in a
// Status message or a log line.
//
// Errors from Get: kFailedPrecondition when no source applies (the message
// says why for each); kInvalidArgument for an unreadable or malformed
// credentials file or an unsupported type (external_account, ...);
// kPermissionDenied when the token endpoint or metadata server refuses
// (HTTP 400/401/403: invalid_grant, a revoked refresh token, a disabled
// account); kUnavailable for transport failures and 408/429/5xx;
// kCorruption for a 200 whose body is not a token response. Messages name
// the source ("service account x@y (key file P)", "authorized user (...)",
// "metadata server at H") and Google's error code.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/http_client.h"

namespace logferry::gcp {

struct AccessToken {
  std::string token;
  int64_t expires_at_us = 0;  // 0: unknown / does not expire
  std::string source;  // "service account x@y.iam.gserviceaccount.com", "authorized user", "environment", "metadata"
};

class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A current token; refreshes when it expires within five minutes.
  // Thread-safe; one refresh at a time.
  virtual StatusOr<AccessToken> Get() = 0;
};

struct TokenOptions {
  std::string key_file;  // explicit credentials file; empty: resolve as above
  std::string scope = "https://www.googleapis.com/auth/cloud-platform";
  std::function<std::string(const std::string&)> getenv;  // default: ::getenv
  std::string home;                                       // default: $HOME
  std::string metadata_host;                              // default: GCE_METADATA_HOST or 169.254.169.254
  // Overrides the key's token_uri (tests); empty: the key's own, else
  // https://oauth2.googleapis.com/token.
  std::string token_uri;
  // For the token endpoints; default: HttpClient::Default(). The metadata
  // server is always asked through a client with a 1 s connect timeout, so
  // a machine without one fails fast.
  const HttpClient* http = nullptr;
  std::function<int64_t()> now_us;  // default: the wall clock
};

std::unique_ptr<TokenProvider> MakeTokenProvider(TokenOptions options = {});

// A fixed token (tests, emulators).
std::unique_ptr<TokenProvider> MakeStaticTokenProvider(std::string token);

// RS256 JWT for a service account (exposed for tests): header and claims
// as Google documents for the OAuth 2.0 JWT bearer flow, valid one hour from
// now_s. key_id (the key file's private_key_id) goes into the header's "kid"
// so Google can pick the public key without trying each; empty leaves it out.
// kInvalidArgument when the PEM is not an RSA private key (the message never
// quotes it).
StatusOr<std::string> SignServiceAccountJwt(const std::string& client_email, const std::string& private_key_pem,
                                            const std::string& scope, const std::string& audience, int64_t now_s,
                                            const std::string& key_id = {});

}  // namespace logferry::gcp
