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
// Tokens are cached and refreshed five minutes before they expire. Secret
// values (private keys, refresh tokens, access tokens) never appear in a
// Status message or a log line.
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
  std::string source;         // "service account x@y.iam.gserviceaccount.com", "authorized user", "environment", "metadata"
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
  std::string metadata_host;  // default: GCE_METADATA_HOST or 169.254.169.254
  // Overrides the key's token_uri (tests); empty: the key's own, else
  // https://oauth2.googleapis.com/token.
  std::string token_uri;
  const HttpClient* http = nullptr;  // default: HttpClient::Default()
  std::function<int64_t()> now_us;   // default: the wall clock
};

std::unique_ptr<TokenProvider> MakeTokenProvider(TokenOptions options = {});

// A fixed token (tests, emulators).
std::unique_ptr<TokenProvider> MakeStaticTokenProvider(std::string token);

// RS256 JWT for a service account (exposed for tests): header and claims
// as Google documents for the OAuth 2.0 JWT bearer flow.
StatusOr<std::string> SignServiceAccountJwt(const std::string& client_email, const std::string& private_key_pem,
                                            const std::string& scope, const std::string& audience, int64_t now_s);

}  // namespace logferry::gcp
