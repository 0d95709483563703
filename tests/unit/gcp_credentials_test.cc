// Google OAuth2 credentials against local stand-ins that follow Google's
// documented protocols: an OAuth 2.0 token endpoint (JWT bearer grant for
// service accounts, which it verifies as Google does: RS256 signature with the
// service account's public key, kid, iss, scope, aud and the iat/exp window;
// refresh token grant for authorized users) and a GCE metadata server (403
// without Metadata-Flavor: Google, which it sends back on every answer).
// Every endpoint is on 127.0.0.1 and the environment is injected: the real
// metadata address and the real environment are never used.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "gcp/credentials.h"
#include "http/http_client.h"
#include "local_http_server.h"

namespace logferry::gcp {
namespace {

namespace fs = std::filesystem;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

// Nothing listens on port 1: a source that should not be reached fails
// fast, locally, if it is.
constexpr const char* kNowhereHost = "127.0.0.1:1";
constexpr const char* kNowhereUrl = "http://127.0.0.1:1/token";
constexpr const char* kCloudPlatform = "https://www.googleapis.com/auth/cloud-platform";
constexpr const char* kMetadataTokenPath = "/computeMetadata/v1/instance/service-accounts/default/token";
constexpr int64_t kNow = 1'700'000'000LL * kMicrosPerSecond;
constexpr int64_t kMinute = 60 * kMicrosPerSecond;

constexpr const char* kEmail = "loader@logferry-test.iam.gserviceaccount.com";
constexpr const char* kKeyId = "3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
constexpr const char* kClientId = "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com";
constexpr const char* kClientSecret = "d-FL95Q19q7MQmFpd7hHD0Ty";
constexpr const char* kRefreshToken = "1//0gRefreshTokenForTheLogferryTestsOnly-abcdefghijklmnop";

// --- Keys and JWTs ---------------------------------------------------------

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string PrivatePem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  // PKCS#8 ("BEGIN PRIVATE KEY"), as in the keys Google hands out.
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

struct TestKey {
  Pkey key;
  std::string pem;
};

// RSA keys are slow to make: one for the service account, one impostor.
const TestKey& ServiceAccountKey() {
  static TestKey* k = [] {
    auto* t = new TestKey{Pkey(EVP_RSA_gen(2048)), ""};
    t->pem = PrivatePem(t->key.get());
    return t;
  }();
  return *k;
}
const TestKey& OtherKey() {
  static TestKey* k = [] {
    auto* t = new TestKey{Pkey(EVP_RSA_gen(2048)), ""};
    t->pem = PrivatePem(t->key.get());
    return t;
  }();
  return *k;
}

std::optional<std::string> Base64UrlDecode(std::string s) {
  // base64url without padding: a '=' or a standard-alphabet character is a
  // malformed JWT.
  if (s.find_first_of("=+/") != std::string::npos) return std::nullopt;
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (s.size() % 4) s += '=';
  return Base64Decode(s);
}

bool VerifyRs256(EVP_PKEY* key, const std::string& signing_input, const std::string& signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

struct DecodedJwt {
  nlohmann::json header, claims;
  std::string signing_input, signature;
};

// Empty optional: not three base64url parts of JSON objects and a signature.
std::optional<DecodedJwt> DecodeJwt(const std::string& jwt) {
  std::vector<std::string> parts = Split(jwt, '.');
  if (parts.size() != 3) return std::nullopt;
  auto header = Base64UrlDecode(parts[0]);
  auto claims = Base64UrlDecode(parts[1]);
  auto signature = Base64UrlDecode(parts[2]);
  if (!header || !claims || !signature) return std::nullopt;
  DecodedJwt out;
  out.header = nlohmann::json::parse(*header, nullptr, false);
  out.claims = nlohmann::json::parse(*claims, nullptr, false);
  if (!out.header.is_object() || !out.claims.is_object()) return std::nullopt;
  out.signing_input = parts[0] + "." + parts[1];
  out.signature = *signature;
  return out;
}

std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  for (const std::string& item : Split(body, '&')) {
    size_t eq = item.find('=');
    out[UriDecode(item.substr(0, eq), true)] = eq == std::string::npos ? "" : UriDecode(item.substr(eq + 1), true);
  }
  return out;
}

LocalHttpResponse JsonResponse(int status, const nlohmann::json& body) {
  return {status, {{"Content-Type", "application/json; charset=utf-8"}}, body.dump()};
}

// --- Stand-ins -------------------------------------------------------------

// Google's OAuth 2.0 token endpoint at /token. Service accounts: grant_type
// urn:ietf:params:oauth:grant-type:jwt-bearer with the assertion checked as
// Google checks it. Authorized users: grant_type refresh_token with the
// client id, secret and refresh token. Refusals use Google's error shape
// ({"error": "invalid_grant", "error_description": ...}). Tokens are
// "ya29.sa-N" / "ya29.user-N" in issue order, valid 3599 s.
class OAuthStandIn {
 public:
  struct Config {
    EVP_PKEY* public_key = nullptr;  // the service account's
    std::string email = kEmail, key_id = kKeyId, scope = kCloudPlatform;
    std::function<int64_t()> now_us;  // the server's clock
  };
  // Answers instead of the protocol while set (errors, malformed bodies).
  using Override = std::function<std::optional<LocalHttpResponse>(const LocalHttpRequest&)>;

  explicit OAuthStandIn(Config config)
      : config_(std::move(config)), server_([this](const LocalHttpRequest& r) { return Handle(r); }) {}

  std::string TokenUrl() const { return server_.Url() + "/token"; }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }
  int Issued() const { return issued_; }
  std::string LastRefusal() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_refusal_;
  }
  void SetOverride(Override o) {
    std::lock_guard<std::mutex> lock(mu_);
    override_ = std::move(o);
  }

 private:
  LocalHttpResponse Refuse(int status, const std::string& error, const std::string& description) {
    std::lock_guard<std::mutex> lock(mu_);
    last_refusal_ = error + ": " + description;
    return JsonResponse(status, {{"error", error}, {"error_description", description}});
  }

  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (override_)
        if (auto response = override_(r)) return *response;
    }
    if (r.path != "/token") return {404, {}, "Not Found"};
    if (r.method != "POST") return {405, {}, ""};
    if (r.Header("content-type") != "application/x-www-form-urlencoded")
      return Refuse(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    auto form = ParseForm(r.body);
    if (form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer") return JwtBearer(form["assertion"]);
    if (form["grant_type"] == "refresh_token") return RefreshToken(form);
    return Refuse(400, "unsupported_grant_type", "Invalid grant_type: " + form["grant_type"]);
  }

  LocalHttpResponse JwtBearer(const std::string& assertion) {
    auto jwt = DecodeJwt(assertion);
    if (!jwt) return Refuse(400, "invalid_request", "Invalid JWT: not three base64url-encoded parts");
    const auto& h = jwt->header;
    if (h.value("alg", "") != "RS256" || h.value("typ", "") != "JWT")
      return Refuse(400, "invalid_grant", "Invalid JWT header: alg must be RS256 and typ JWT");
    if (h.value("kid", "") != config_.key_id) return Refuse(400, "invalid_grant", "Invalid JWT: unknown kid");
    if (!VerifyRs256(config_.public_key, jwt->signing_input, jwt->signature))
      return Refuse(400, "invalid_grant", "Invalid JWT Signature.");
    const auto& c = jwt->claims;
    if (c.value("iss", "") != config_.email) return Refuse(400, "invalid_grant", "Invalid grant: account not found");
    if (c.value("aud", "") != TokenUrl()) return Refuse(400, "invalid_grant", "Invalid JWT: aud is not the token URI");
    if (c.value("scope", "") != config_.scope) return Refuse(400, "invalid_scope", "Unexpected scope");
    if (!c.contains("iat") || !c["iat"].is_number_integer() || !c.contains("exp") || !c["exp"].is_number_integer())
      return Refuse(400, "invalid_grant", "Invalid JWT: iat and exp must be integers");
    int64_t iat = c["iat"].get<int64_t>(), exp = c["exp"].get<int64_t>();
    int64_t now_s = config_.now_us() / kMicrosPerSecond;
    // Google's rule: at most one hour long, not issued in the future, not
    // expired (a minute of clock skew allowed).
    if (exp <= iat || exp - iat > 3600 || iat > now_s + 60 || exp < now_s - 60)
      return Refuse(400, "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                    "Check your iat and exp values in the JWT claim.");
    return Issue("ya29.sa-");
  }

  LocalHttpResponse RefreshToken(std::map<std::string, std::string>& form) {
    if (form["client_id"] != kClientId || form["client_secret"] != kClientSecret)
      return Refuse(401, "invalid_client", "The OAuth client was not found.");
    if (form["refresh_token"] != kRefreshToken)
      return Refuse(400, "invalid_grant", "Token has been expired or revoked.");
    return Issue("ya29.user-");
  }

  LocalHttpResponse Issue(const std::string& prefix) {
    int n = ++issued_;
    return JsonResponse(200, {{"access_token", prefix + std::to_string(n) + "-AbCdEfGhIjKlMnOpQrStUvWxYz"},
                              {"expires_in", 3599},
                              {"token_type", "Bearer"}});
  }

  Config config_;
  mutable std::mutex mu_;
  Override override_;
  std::string last_refusal_;
  std::atomic<int> issued_{0};
  LocalHttpServer server_;  // last: its thread calls Handle, which uses the rest
};

// The GCE metadata server's token endpoint: every answer carries
// Metadata-Flavor: Google; a request without that header, or with
// X-Forwarded-For, is refused with 403. Tokens are "ya29.metadata-N".
class MetadataStandIn {
 public:
  std::atomic<bool> send_flavor{true};
  std::atomic<int> status{200};
  std::string body_override;  // set before use

  MetadataStandIn() : server_([this](const LocalHttpRequest& r) { return Handle(r); }) {}

  std::string Host() const { return "127.0.0.1:" + std::to_string(server_.Port()); }
  std::string Url() const { return server_.Url(); }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }
  int Issued() const { return issued_; }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    LocalHttpResponse response = Answer(r);
    if (send_flavor) response.headers.emplace_back("Metadata-Flavor", "Google");
    return response;
  }
  LocalHttpResponse Answer(const LocalHttpRequest& r) {
    if (r.Header("metadata-flavor") != "Google" || r.HasHeader("x-forwarded-for"))
      return {403, {{"Content-Type", "text/html"}}, "Missing Metadata-Flavor:Google header."};
    if (r.method != "GET" || r.path != kMetadataTokenPath) return {404, {}, "Not Found"};
    if (status != 200) return {status, {}, ""};
    if (!body_override.empty()) return {200, {{"Content-Type", "application/json"}}, body_override};
    int n = ++issued_;
    return JsonResponse(200, {{"access_token", "ya29.metadata-" + std::to_string(n) + "-ZyXwVuTsRqPoNmLk"},
                              {"expires_in", 3599},
                              {"token_type", "Bearer"}});
  }

  std::atomic<int> issued_{0};
  LocalHttpServer server_;  // last: its thread calls Handle
};

// --- Fixture -----------------------------------------------------------------

class GcpCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-gcp-credentials-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    home_ = dir_ + "/home";
    fs::create_directories(home_);
    oauth_ = std::make_unique<OAuthStandIn>(OAuthStandIn::Config{ServiceAccountKey().key.get(), kEmail, kKeyId,
                                                                 kCloudPlatform, [this] { return now_.load(); }});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Nothing is reachable and nothing is set unless a test says so.
  TokenOptions Options() {
    TokenOptions o;
    o.getenv = [this](const std::string& name) {
      std::lock_guard<std::mutex> lock(env_mu_);
      auto it = env_.find(name);
      return it == env_.end() ? std::string() : it->second;
    };
    o.home = home_;
    o.metadata_host = kNowhereHost;
    o.now_us = [this] { return now_.load(); };
    return o;
  }
  void SetEnv(const std::string& name, const std::string& value) {
    std::lock_guard<std::mutex> lock(env_mu_);
    env_[name] = value;
  }
  void UnsetEnv(const std::string& name) {
    std::lock_guard<std::mutex> lock(env_mu_);
    env_.erase(name);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // A key file as the Cloud console downloads it, its token_uri at the
  // stand-in.
  nlohmann::json ServiceAccountJson(const std::string& pem = ServiceAccountKey().pem) {
    return {{"type", "service_account"},
            {"project_id", "logferry-test"},
            {"private_key_id", kKeyId},
            {"private_key", pem},
            {"client_email", kEmail},
            {"client_id", "104729384756102938475"},
            {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
            {"token_uri", oauth_->TokenUrl()},
            {"auth_provider_x509_cert_url", "https://www.googleapis.com/oauth2/v1/certs"},
            {"client_x509_cert_url", "https://www.googleapis.com/robot/v1/metadata/x509/loader"}};
  }
  std::string WriteServiceAccountKey(const std::string& name = "key.json") {
    return Write(name, ServiceAccountJson().dump(2));
  }
  // gcloud auth application-default login's file: no token_uri in it.
  nlohmann::json AuthorizedUserJson() {
    return {{"client_id", kClientId},
            {"client_secret", kClientSecret},
            {"refresh_token", kRefreshToken},
            {"type", "authorized_user"}};
  }

  std::string dir_, home_;
  std::atomic<int64_t> now_{kNow};
  std::mutex env_mu_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<OAuthStandIn> oauth_;
};

// Every secret value a test could leak, for "appears in no message" checks:
// the private key's PEM lines, the refresh token, the client secret, and
// whatever access tokens and assertions crossed the wire.
std::vector<std::string> SecretsOf(const std::vector<LocalHttpRequest>& requests) {
  std::vector<std::string> secrets = {kRefreshToken, kClientSecret};
  for (const std::string& line : Split(ServiceAccountKey().pem, '\n'))
    if (!line.empty() && !StartsWith(line, "-----")) secrets.push_back(line);
  for (const auto& r : requests) {
    auto form = ParseForm(r.body);
    if (!form["assertion"].empty()) {
      secrets.push_back(form["assertion"]);
      secrets.push_back(Split(form["assertion"], '.').back());
    }
  }
  // As they travel in a form body, too (a refresh token's "1//" is "1%2F%2F").
  size_t n = secrets.size();
  for (size_t i = 0; i < n; ++i)
    if (UriEncode(secrets[i]) != secrets[i]) secrets.push_back(UriEncode(secrets[i]));
  return secrets;
}

void ExpectNoSecret(const Status& status, const std::vector<std::string>& secrets,
                    const std::vector<std::string>& extra = {}) {
  EXPECT_FALSE(status.ok());
  for (const auto& list : {secrets, extra})
    for (const std::string& secret : list)
      EXPECT_EQ(status.message().find(secret), std::string::npos)
          << "secret \"" << secret.substr(0, 12) << "...\" in: " << status.message();
}

// --- The JWT -----------------------------------------------------------------

TEST(GcpJwt, HeaderClaimsAndSignatureFollowGooglesJwtBearerFlow) {
  const int64_t now_s = 1'700'000'000;
  auto jwt = SignServiceAccountJwt(kEmail, ServiceAccountKey().pem, kCloudPlatform,
                                   "https://oauth2.googleapis.com/token", now_s, kKeyId);
  ASSERT_TRUE(jwt.ok()) << jwt.status().ToString();
  // base64url without padding in every part.
  EXPECT_EQ(jwt->find_first_of("=+/"), std::string::npos);
  auto decoded = DecodeJwt(*jwt);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->header, (nlohmann::json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kKeyId}}));
  EXPECT_EQ(decoded->claims, (nlohmann::json{{"iss", kEmail},
                                             {"scope", kCloudPlatform},
                                             {"aud", "https://oauth2.googleapis.com/token"},
                                             {"iat", now_s},
                                             {"exp", now_s + 3600}}));
  EXPECT_EQ(decoded->signature.size(), 256u);  // RSA-2048
  EXPECT_TRUE(VerifyRs256(ServiceAccountKey().key.get(), decoded->signing_input, decoded->signature));
  EXPECT_FALSE(VerifyRs256(OtherKey().key.get(), decoded->signing_input, decoded->signature));
  // The signature covers the claims: changing one breaks it.
  std::string other_claims = Base64Encode(R"({"iss":"attacker@example.com"})");
  EXPECT_FALSE(VerifyRs256(ServiceAccountKey().key.get(),
                           decoded->signing_input.substr(0, decoded->signing_input.find('.') + 1) + other_claims,
                           decoded->signature));

  auto without_kid = SignServiceAccountJwt(kEmail, ServiceAccountKey().pem, kCloudPlatform, "aud", now_s);
  ASSERT_TRUE(without_kid.ok());
  EXPECT_FALSE(DecodeJwt(*without_kid)->header.contains("kid"));
}

TEST(GcpJwt, KeysThatCannotSignRs256AreRefusedWithoutQuotingThem) {
  Pkey ec(EVP_EC_gen("P-256"));
  std::string ec_pem = PrivatePem(ec.get());
  const std::string truncated = ServiceAccountKey().pem.substr(0, ServiceAccountKey().pem.size() / 2);
  for (const std::string& pem : {std::string("not a key at all, but long enough"), truncated, ec_pem}) {
    auto jwt = SignServiceAccountJwt(kEmail, pem, kCloudPlatform, "aud", 1'700'000'000);
    ASSERT_FALSE(jwt.ok());
    EXPECT_EQ(jwt.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(jwt.status().message().find("private_key"), std::string::npos) << jwt.status().message();
    for (const std::string& line : Split(pem, '\n')) {
      if (line.size() > 8 && !StartsWith(line, "-----")) {
        EXPECT_EQ(jwt.status().message().find(line), std::string::npos) << jwt.status().message();
      }
    }
  }
  EXPECT_EQ(ERR_peek_error(), 0u);  // OpenSSL's error queue left clean
}

// --- Each source -------------------------------------------------------------

TEST_F(GcpCredentialsTest, ExplicitKeyFileIsSignedAndExchangedAtItsTokenUri) {
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  auto provider = MakeTokenProvider(o);
  auto token = provider->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString() << " / stand-in: " << oauth_->LastRefusal();
  EXPECT_EQ(token->token, "ya29.sa-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(token->source, std::string("service account ") + kEmail);
  EXPECT_EQ(token->expires_at_us, kNow + 3599 * kMicrosPerSecond);

  auto requests = oauth_->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/token");
  EXPECT_EQ(requests[0].Header("content-type"), "application/x-www-form-urlencoded");
  auto form = ParseForm(requests[0].body);
  EXPECT_EQ(form.size(), 2u);
  EXPECT_EQ(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
  auto jwt = DecodeJwt(form["assertion"]);
  ASSERT_TRUE(jwt);
  EXPECT_EQ(jwt->claims["iat"], kNow / kMicrosPerSecond);
  EXPECT_EQ(jwt->claims["exp"], kNow / kMicrosPerSecond + 3600);
  EXPECT_EQ(jwt->claims["aud"], oauth_->TokenUrl());
}

TEST_F(GcpCredentialsTest, GoogleApplicationCredentialsServiceAccount) {
  SetEnv("GOOGLE_APPLICATION_CREDENTIALS", WriteServiceAccountKey("sa/creds.json"));
  auto token = MakeTokenProvider(Options())->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString() << " / stand-in: " << oauth_->LastRefusal();
  EXPECT_EQ(token->token, "ya29.sa-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(token->source, std::string("service account ") + kEmail);
}

TEST_F(GcpCredentialsTest, ScopeOptionGoesIntoTheAssertion) {
  OAuthStandIn readonly({ServiceAccountKey().key.get(), kEmail, kKeyId,
                         "https://www.googleapis.com/auth/devstorage.read_only", [this] { return now_.load(); }});
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  o.token_uri = readonly.TokenUrl();  // overrides the key's own
  o.scope = "https://www.googleapis.com/auth/devstorage.read_only";
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString() << " / stand-in: " << readonly.LastRefusal();
  EXPECT_EQ(readonly.Issued(), 1);
  EXPECT_EQ(oauth_->Requests().size(), 0u);
}

TEST_F(GcpCredentialsTest, AuthorizedUserUsesTheRefreshTokenGrant) {
  SetEnv("GOOGLE_APPLICATION_CREDENTIALS", Write("user.json", AuthorizedUserJson().dump()));
  TokenOptions o = Options();
  o.token_uri = oauth_->TokenUrl();  // the file has none: Google's default otherwise
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString() << " / stand-in: " << oauth_->LastRefusal();
  EXPECT_EQ(token->token, "ya29.user-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(token->source, "authorized user");
  EXPECT_EQ(token->expires_at_us, kNow + 3599 * kMicrosPerSecond);
  auto requests = oauth_->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("content-type"), "application/x-www-form-urlencoded");
  auto form = ParseForm(requests[0].body);
  EXPECT_EQ(form, (std::map<std::string, std::string>{{"grant_type", "refresh_token"},
                                                      {"client_id", kClientId},
                                                      {"client_secret", kClientSecret},
                                                      {"refresh_token", kRefreshToken}}));
}

TEST_F(GcpCredentialsTest, GcloudAdcFileFromCloudsdkConfig) {
  SetEnv("CLOUDSDK_CONFIG", dir_ + "/gcloud-config");
  Write("gcloud-config/application_default_credentials.json", AuthorizedUserJson().dump());
  TokenOptions o = Options();
  o.token_uri = oauth_->TokenUrl();
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->source, "authorized user");
}

TEST_F(GcpCredentialsTest, GcloudAdcFileUnderHome) {
  Write("home/.config/gcloud/application_default_credentials.json", ServiceAccountJson().dump());
  auto token = MakeTokenProvider(Options())->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->source, std::string("service account ") + kEmail);

  // CLOUDSDK_CONFIG moves the whole directory: the file under HOME is not read.
  SetEnv("CLOUDSDK_CONFIG", dir_ + "/empty-config");
  auto moved = MakeTokenProvider(Options())->Get();
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(moved.status().message().find(dir_ + "/empty-config/application_default_credentials.json"),
            std::string::npos)
      << moved.status().message();
}

TEST_F(GcpCredentialsTest, EnvironmentAccessTokenNeedsNoNetworkAndNeverExpires) {
  SetEnv("CLOUDSDK_AUTH_ACCESS_TOKEN", "ya29.from-cloudsdk-env-0123456789");
  auto token = MakeTokenProvider(Options())->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->token, "ya29.from-cloudsdk-env-0123456789");
  EXPECT_EQ(token->source, "environment");
  EXPECT_EQ(token->expires_at_us, 0);

  SetEnv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-google-env-0123456789");
  auto provider = MakeTokenProvider(Options());
  token = provider->Get();
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->token, "ya29.from-google-env-0123456789");  // the first of the two names wins
  now_ += 1000 * kMicrosPerHour;
  EXPECT_EQ(provider->Get()->token, "ya29.from-google-env-0123456789");
  EXPECT_EQ(oauth_->Requests().size(), 0u);
}

TEST_F(GcpCredentialsTest, MetadataServerIsAskedWithTheFlavorHeaderItRequires) {
  MetadataStandIn metadata;
  // The stand-in refuses a request without the header, as Google's does...
  HttpRequest bare;
  bare.url = metadata.Url() + kMetadataTokenPath;
  auto refused = HttpClient::Default().Send(bare);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, 403);
  EXPECT_EQ(metadata.Issued(), 0);

  // ...so the provider's token proves it sent it.
  TokenOptions o = Options();
  o.metadata_host = metadata.Host();
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->token, "ya29.metadata-1-ZyXwVuTsRqPoNmLk");
  EXPECT_EQ(token->source, "metadata");
  EXPECT_EQ(token->expires_at_us, kNow + 3599 * kMicrosPerSecond);
  auto requests = metadata.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].target, kMetadataTokenPath);  // the default scope needs no ?scopes=
  EXPECT_EQ(requests[1].Header("metadata-flavor"), "Google");
}

TEST_F(GcpCredentialsTest, MetadataHostFromGceMetadataHost) {
  MetadataStandIn metadata;
  SetEnv("GCE_METADATA_HOST", metadata.Host());
  TokenOptions o = Options();
  o.metadata_host.clear();  // resolved from the environment
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->source, "metadata");
}

TEST_F(GcpCredentialsTest, MetadataServerIsAskedForANonDefaultScopeByName) {
  MetadataStandIn metadata;
  TokenOptions o = Options();
  o.metadata_host = metadata.Host();
  o.scope = "https://www.googleapis.com/auth/bigquery";
  ASSERT_TRUE(MakeTokenProvider(o)->Get().ok());
  ASSERT_EQ(metadata.Requests().size(), 1u);
  EXPECT_EQ(metadata.Requests()[0].query, "scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fbigquery");
}

TEST_F(GcpCredentialsTest, AnAnswerWithoutMetadataFlavorIsNotTrusted) {
  MetadataStandIn impostor;
  impostor.send_flavor = false;
  TokenOptions o = Options();
  o.metadata_host = impostor.Host();
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(token.status().message().find("Metadata-Flavor"), std::string::npos) << token.status().message();
  EXPECT_NE(token.status().message().find("metadata server at http://" + impostor.Host()), std::string::npos);
}

TEST_F(GcpCredentialsTest, MetadataWithoutAServiceAccountSaysSo) {
  MetadataStandIn metadata;
  metadata.status = 404;
  TokenOptions o = Options();
  o.metadata_host = metadata.Host();
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(token.status().message().find("no default service account"), std::string::npos) << token.status().message();
}

TEST_F(GcpCredentialsTest, NothingConfiguredNamesEverySource) {
  auto token = MakeTokenProvider(Options())->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kFailedPrecondition);
  const std::string& m = token.status().message();
  for (const std::string& part :
       {std::string("GOOGLE_APPLICATION_CREDENTIALS"), home_ + "/.config/gcloud/application_default_credentials.json",
        std::string("GOOGLE_OAUTH_ACCESS_TOKEN"), std::string("CLOUDSDK_AUTH_ACCESS_TOKEN"),
        std::string("metadata server"), std::string(kNowhereHost)})
    EXPECT_NE(m.find(part), std::string::npos) << part << " missing from: " << m;
}

// --- Order ---------------------------------------------------------------------

TEST_F(GcpCredentialsTest, SourcesAreTriedInTheDocumentedOrder) {
  MetadataStandIn metadata;
  // All five configured. GOOGLE_APPLICATION_CREDENTIALS and the gcloud file
  // are both authorized users, told apart by their refresh tokens.
  nlohmann::json gac_user = AuthorizedUserJson();
  nlohmann::json adc_user = AuthorizedUserJson();
  adc_user["refresh_token"] = "1//0gTheGcloudAdcRefreshToken-differs-from-the-other";
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  o.token_uri = oauth_->TokenUrl();
  o.metadata_host = metadata.Host();
  SetEnv("GOOGLE_APPLICATION_CREDENTIALS", Write("gac.json", gac_user.dump()));
  Write("home/.config/gcloud/application_default_credentials.json", adc_user.dump());
  SetEnv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-the-environment-0123456789");

  auto source_of = [&](const TokenOptions& options) {
    auto token = MakeTokenProvider(options)->Get();
    return token.ok() ? token->source : token.status().ToString();
  };
  auto last_refresh_token = [&] { return ParseForm(oauth_->Requests().back().body)["refresh_token"]; };

  EXPECT_EQ(source_of(o), std::string("service account ") + kEmail);
  o.key_file.clear();
  EXPECT_EQ(source_of(o), "authorized user");
  EXPECT_EQ(last_refresh_token(), kRefreshToken);
  UnsetEnv("GOOGLE_APPLICATION_CREDENTIALS");
  // The stand-in refuses the gcloud file's refresh token: the gcloud file was
  // chosen, and its refusal is reported rather than skipped.
  std::string adc = source_of(o);
  EXPECT_EQ(last_refresh_token(), adc_user["refresh_token"]);
  EXPECT_NE(adc.find("PERMISSION_DENIED"), std::string::npos) << adc;
  EXPECT_NE(adc.find("gcloud ADC file"), std::string::npos) << adc;
  fs::remove(home_ + "/.config/gcloud/application_default_credentials.json");
  EXPECT_EQ(source_of(o), "environment");
  UnsetEnv("GOOGLE_OAUTH_ACCESS_TOKEN");
  EXPECT_EQ(source_of(o), "metadata");
  EXPECT_EQ(metadata.Issued(), 1);
}

TEST_F(GcpCredentialsTest, ANamedKeyFileThatIsMissingIsAnErrorNotASkip) {
  SetEnv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-the-environment-0123456789");
  TokenOptions o = Options();
  o.key_file = dir_ + "/missing.json";
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(token.status().message().find("key file " + dir_ + "/missing.json"), std::string::npos)
      << token.status().message();

  SetEnv("GOOGLE_APPLICATION_CREDENTIALS", dir_ + "/also-missing.json");
  token = MakeTokenProvider(Options())->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(token.status().message().find("GOOGLE_APPLICATION_CREDENTIALS=" + dir_ + "/also-missing.json"),
            std::string::npos)
      << token.status().message();
}

TEST_F(GcpCredentialsTest, MalformedCredentialFilesAreNamedWithoutTheirSecrets) {
  struct Case {
    std::string text, expect;
  };
  nlohmann::json no_key = ServiceAccountJson();
  no_key.erase("private_key");
  nlohmann::json external = {{"type", "external_account"}, {"audience", "//iam.googleapis.com/x"}};
  nlohmann::json user_no_secret = AuthorizedUserJson();
  user_no_secret.erase("client_secret");
  // Not JSON, and the secret sits right where a parser would quote it.
  std::string broken = "{\"type\": \"service_account\", \"private_key\": \"" + ServiceAccountKey().pem.substr(40, 80);
  for (const Case& c : std::vector<Case>{{broken, "not a JSON object"},
                                         {no_key.dump(), "no string \"private_key\""},
                                         {external.dump(), "\"external_account\" are not supported"},
                                         {user_no_secret.dump(), "no string \"client_secret\""},
                                         {"[]", "not a JSON object"},
                                         {R"({"client_email": "x@y"})", "no \"type\""}}) {
    TokenOptions o = Options();
    o.key_file = Write("bad.json", c.text);
    auto token = MakeTokenProvider(o)->Get();
    ASSERT_FALSE(token.ok()) << c.text;
    EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(token.status().message().find("key file " + o.key_file), std::string::npos) << token.status().message();
    EXPECT_NE(token.status().message().find(c.expect), std::string::npos) << token.status().message();
    ExpectNoSecret(token.status(), SecretsOf({}), {ServiceAccountKey().pem.substr(40, 80)});
  }
  EXPECT_EQ(oauth_->Requests().size(), 0u);

  // A private_key that is not a key: named by the account, the text not quoted.
  TokenOptions o = Options();
  std::string not_a_key = "-----BEGIN PRIVATE KEY-----\nTm90QUtleUJ1dEFTZWNyZXRBbnl3YXk=\n-----END PRIVATE KEY-----\n";
  o.key_file = Write("garbled.json", ServiceAccountJson(not_a_key).dump());
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(token.status().message().find(std::string("service account ") + kEmail), std::string::npos);
  EXPECT_EQ(token.status().message().find("Tm90QUtleUJ1dEFTZWNyZXRBbnl3YXk"), std::string::npos)
      << token.status().message();
}

// --- Caching and refresh ---------------------------------------------------------

TEST_F(GcpCredentialsTest, OneTokenRequestServesManyGetsAcrossThreads) {
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  auto provider = MakeTokenProvider(o);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) ok += provider->Get().ok();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 400);
  EXPECT_EQ(oauth_->Issued(), 1);
  EXPECT_EQ(oauth_->Requests().size(), 1u);
}

TEST_F(GcpCredentialsTest, RefreshesFiveMinutesBeforeExpiry) {
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  auto provider = MakeTokenProvider(o);
  ASSERT_EQ(provider->Get()->token, "ya29.sa-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  // Valid 3599 s: refreshed from 3299 s (54 min 59 s) on.
  now_ = kNow + 54 * kMinute;
  EXPECT_EQ(provider->Get()->token, "ya29.sa-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(oauth_->Issued(), 1);
  now_ = kNow + 55 * kMinute;
  auto refreshed = provider->Get();
  ASSERT_TRUE(refreshed.ok()) << refreshed.status().ToString() << " / stand-in: " << oauth_->LastRefusal();
  EXPECT_EQ(refreshed->token, "ya29.sa-2-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(refreshed->expires_at_us, kNow + 55 * kMinute + 3599 * kMicrosPerSecond);
  // The new assertion was signed at the new time (the stand-in checked its
  // window too).
  auto jwt = DecodeJwt(ParseForm(oauth_->Requests().back().body)["assertion"]);
  ASSERT_TRUE(jwt);
  EXPECT_EQ(jwt->claims["iat"], (kNow + 55 * kMinute) / kMicrosPerSecond);
  EXPECT_EQ(provider->Get()->token, "ya29.sa-2-AbCdEfGhIjKlMnOpQrStUvWxYz");
  EXPECT_EQ(oauth_->Issued(), 2);
}

TEST_F(GcpCredentialsTest, AFailedEarlyRefreshKeepsTheTokenUntilItExpires) {
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  auto provider = MakeTokenProvider(o);
  ASSERT_TRUE(provider->Get().ok());
  oauth_->SetOverride([](const LocalHttpRequest&) {
    return std::optional<LocalHttpResponse>(JsonResponse(503, {{"error", "internal_failure"}}));
  });
  now_ = kNow + 56 * kMinute;
  auto early = provider->Get();
  ASSERT_TRUE(early.ok()) << early.status().ToString();
  EXPECT_EQ(early->token, "ya29.sa-1-AbCdEfGhIjKlMnOpQrStUvWxYz");
  now_ = kNow + 59 * kMinute;
  EXPECT_TRUE(provider->Get().ok());
  EXPECT_EQ(oauth_->Requests().size(), 3u);  // each Get in the window tried again

  now_ = kNow + 60 * kMinute;  // past 3599 s
  auto expired = provider->Get();
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(expired.status().message().find(std::string("service account ") + kEmail), std::string::npos)
      << expired.status().message();

  oauth_->SetOverride(nullptr);
  auto recovered = provider->Get();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(recovered->token, "ya29.sa-2-AbCdEfGhIjKlMnOpQrStUvWxYz");
}

TEST_F(GcpCredentialsTest, AMetadataServerThatAnsweredOnceIsTransientWhenItGoesAway) {
  auto metadata = std::make_unique<MetadataStandIn>();
  TokenOptions o = Options();
  o.metadata_host = metadata->Host();
  auto provider = MakeTokenProvider(o);
  ASSERT_TRUE(provider->Get().ok());
  metadata.reset();  // the port now refuses connections
  now_ = kNow + 61 * kMinute;
  auto token = provider->Get();
  ASSERT_FALSE(token.ok());
  // Not "no credentials found": this machine has a metadata server.
  EXPECT_EQ(token.status().code(), StatusCode::kUnavailable) << token.status().ToString();
  EXPECT_NE(token.status().message().find("metadata server at"), std::string::npos) << token.status().message();
}

// --- Errors ------------------------------------------------------------------------

TEST_F(GcpCredentialsTest, TokenEndpointErrorsAreClassifiedAndNameTheSource) {
  struct Case {
    int status;
    std::string error;
    StatusCode code;
  };
  for (const Case& c : std::vector<Case>{{400, "invalid_grant", StatusCode::kPermissionDenied},
                                         {401, "invalid_client", StatusCode::kPermissionDenied},
                                         {403, "access_denied", StatusCode::kPermissionDenied},
                                         {429, "rate_limit_exceeded", StatusCode::kUnavailable},
                                         {500, "internal_failure", StatusCode::kUnavailable},
                                         {503, "temporarily_unavailable", StatusCode::kUnavailable}}) {
    oauth_->SetOverride([&](const LocalHttpRequest&) {
      return std::optional<LocalHttpResponse>(
          JsonResponse(c.status, {{"error", c.error}, {"error_description", "described by the stand-in"}}));
    });
    TokenOptions o = Options();
    o.key_file = WriteServiceAccountKey();
    auto token = MakeTokenProvider(o)->Get();
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.status().code(), c.code) << c.status << ": " << token.status().ToString();
    const std::string& m = token.status().message();
    EXPECT_NE(m.find(std::string("service account ") + kEmail + " (key file " + o.key_file + ")"), std::string::npos)
        << m;
    EXPECT_NE(m.find("HTTP " + std::to_string(c.status) + " " + c.error + ": described by the stand-in"),
              std::string::npos)
        << m;
  }
}

TEST_F(GcpCredentialsTest, RefusalsByTheRealProtocolArePermanent) {
  // Signed with a key that is not the service account's: Google's answer
  // is 400 invalid_grant "Invalid JWT Signature.".
  TokenOptions o = Options();
  o.key_file = Write("impostor.json", ServiceAccountJson(OtherKey().pem).dump());
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(token.status().message().find("invalid_grant: Invalid JWT Signature."), std::string::npos)
      << token.status().message();

  // A clock an hour and more ahead: the assertion is from the future.
  TokenOptions late = Options();
  late.key_file = WriteServiceAccountKey();
  late.now_us = [] { return kNow + 2 * kMicrosPerHour; };
  token = MakeTokenProvider(late)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(token.status().message().find("short-lived token"), std::string::npos) << token.status().message();

  // A revoked refresh token.
  nlohmann::json revoked = AuthorizedUserJson();
  revoked["refresh_token"] = "1//0gRevokedRefreshToken-0123456789abcdef";
  TokenOptions user = Options();
  user.key_file = Write("revoked.json", revoked.dump());
  user.token_uri = oauth_->TokenUrl();
  token = MakeTokenProvider(user)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(token.status().message().find("authorized user (key file " + user.key_file + ")"), std::string::npos)
      << token.status().message();
  EXPECT_NE(token.status().message().find("invalid_grant: Token has been expired or revoked."), std::string::npos);
  ExpectNoSecret(token.status(), {}, {revoked["refresh_token"]});
}

// The assertion (or refresh token) would cross the network in clear text:
// refused before anything is signed or sent, naming the field.
TEST_F(GcpCredentialsTest, PlainHttpTokenUriToAFarHostIsRefused) {
  for (const char* uri : {"http://oauth.internal/token", "http://127.example.com/token"}) {
    nlohmann::json key = ServiceAccountJson();
    key["token_uri"] = uri;
    TokenOptions o = Options();
    o.key_file = Write("far-key.json", key.dump());
    auto token = MakeTokenProvider(o)->Get();
    ASSERT_FALSE(token.ok()) << uri;
    EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument) << token.status().ToString();
    EXPECT_NE(token.status().message().find("token_uri"), std::string::npos) << token.status().message();
  }
  EXPECT_TRUE(oauth_->TokenUrl().find("http://127.0.0.1") == 0) << "loopback stays allowed (every other test)";
}

TEST_F(GcpCredentialsTest, TransportFailuresAreTransient) {
  TokenOptions o = Options();
  o.key_file = WriteServiceAccountKey();
  o.token_uri = kNowhereUrl;
  auto token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(token.status().message().find(std::string("service account ") + kEmail), std::string::npos)
      << token.status().message();
  EXPECT_NE(token.status().message().find(kNowhereUrl), std::string::npos) << token.status().message();

  // A connection closed without an answer.
  oauth_->SetOverride([](const LocalHttpRequest&) {
    LocalHttpResponse reset;
    reset.close_without_reply = true;
    return std::optional<LocalHttpResponse>(reset);
  });
  o.token_uri.clear();
  token = MakeTokenProvider(o)->Get();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), StatusCode::kUnavailable) << token.status().ToString();
}

TEST_F(GcpCredentialsTest, NoSecretInAnyErrorMessageEvenWhenTheServerEchoesOne) {
  const std::string leaked_token = "ya29.a0LeakedAccessTokenInAMalformedResponse-0123456789";
  const std::string pem_line = Split(ServiceAccountKey().pem, '\n')[3];
  using Responder = std::function<LocalHttpResponse(const LocalHttpRequest&)>;
  std::vector<std::pair<std::string, Responder>> cases = {
      {"error_description echoes the assertion",
       [](const LocalHttpRequest& r) {
         return JsonResponse(400, {{"error", "invalid_grant"},
                                   {"error_description", "bad assertion " + ParseForm(r.body)["assertion"]}});
       }},
      {"error_description echoes the secret fields as they were form-encoded",
       [](const LocalHttpRequest& r) {
         std::string echo;
         for (const std::string& item : Split(r.body, '&'))
           if (!StartsWith(item, "grant_type=") && !StartsWith(item, "client_id=")) echo += item + "&";
         return JsonResponse(401, {{"error", "invalid_client"}, {"error_description", "request had " + echo}});
       }},
      {"error code and description echo what the source signed with or sent",
       [&](const LocalHttpRequest& r) {
         auto form = ParseForm(r.body);
         if (form["grant_type"] == "refresh_token")
           return JsonResponse(400, {{"error", form["client_secret"]}, {"error_description", form["refresh_token"]}});
         std::string signature = Split(form["assertion"], '.').back();
         return JsonResponse(400, {{"error", signature}, {"error_description", pem_line}});
       }},
      {"error body carries an access token",
       [&](const LocalHttpRequest&) {
         return JsonResponse(500, {{"error", "internal_failure"}, {"access_token", leaked_token}});
       }},
      {"200 with a non-numeric expires_in",
       [&](const LocalHttpRequest&) {
         return JsonResponse(200,
                             {{"access_token", leaked_token}, {"expires_in", "an hour"}, {"token_type", "Bearer"}});
       }},
      {"200 with a token_type that is not Bearer",
       [&](const LocalHttpRequest&) {
         return JsonResponse(200, {{"access_token", leaked_token}, {"expires_in", 3599}, {"token_type", leaked_token}});
       }},
      {"200 with truncated JSON",
       [&](const LocalHttpRequest&) {
         return LocalHttpResponse{200, {}, "{\"access_token\": \"" + leaked_token + "\", \"expires_in\": 35"};
       }},
      {"200 with the token as plain text",
       [&](const LocalHttpRequest&) {
         return LocalHttpResponse{200, {}, "access_token=" + leaked_token};
       }},
      {"200 without access_token",
       [&](const LocalHttpRequest&) {
         return JsonResponse(200, {{"id_token", leaked_token}, {"expires_in", 3599}});
       }},
  };
  for (const auto& [name, responder] : cases) {
    SCOPED_TRACE(name);
    // A copy: clang before 16 cannot capture a structured binding.
    Responder respond = responder;
    oauth_->SetOverride([respond](const LocalHttpRequest& r) { return std::optional<LocalHttpResponse>(respond(r)); });
    TokenOptions sa = Options();
    sa.key_file = WriteServiceAccountKey();
    auto token = MakeTokenProvider(sa)->Get();
    ASSERT_FALSE(token.ok());
    EXPECT_NE(token.status().message().find(std::string("service account ") + kEmail), std::string::npos)
        << token.status().message();
    ExpectNoSecret(token.status(), SecretsOf(oauth_->Requests()), {leaked_token});

    TokenOptions user = Options();
    user.key_file = Write("user.json", AuthorizedUserJson().dump());
    user.token_uri = oauth_->TokenUrl();
    token = MakeTokenProvider(user)->Get();
    ASSERT_FALSE(token.ok());
    EXPECT_NE(token.status().message().find("authorized user"), std::string::npos) << token.status().message();
    ExpectNoSecret(token.status(), SecretsOf(oauth_->Requests()), {leaked_token});
  }

  // The metadata server's answers too.
  MetadataStandIn metadata;
  TokenOptions o = Options();
  o.metadata_host = metadata.Host();
  for (const std::string& body :
       {"{\"access_token\": \"" + leaked_token + "\", \"expires_in\": -5}", "{\"access_token\": \"" + leaked_token,
        "{\"access_token\": \"" + leaked_token + "\", \"token_type\": \"" + leaked_token + "\"}"}) {
    metadata.body_override = body;
    auto token = MakeTokenProvider(o)->Get();
    ASSERT_FALSE(token.ok()) << body;
    EXPECT_EQ(token.status().code(), StatusCode::kCorruption) << token.status().ToString();
    EXPECT_NE(token.status().message().find("metadata server at"), std::string::npos) << token.status().message();
    ExpectNoSecret(token.status(), {}, {leaked_token});
  }
}

TEST(GcpStaticTokenProvider, ReturnsItsTokenAndRefusesAnEmptyOne) {
  auto provider = MakeStaticTokenProvider("ya29.static-token");
  auto token = provider->Get();
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->token, "ya29.static-token");
  EXPECT_EQ(token->expires_at_us, 0);
  EXPECT_EQ(token->source, "static");
  EXPECT_EQ(MakeStaticTokenProvider("")->Get().status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace logferry::gcp
