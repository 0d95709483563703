// The AWS credential chain against local stand-ins that follow AWS's
// documented protocols: STS AssumeRoleWithWebIdentity (Query API, XML), the
// ECS container credentials endpoint (JSON), and EC2 instance metadata with
// IMDSv2 session tokens (401 for requests without one). Every endpoint of
// every test points at 127.0.0.1: the real metadata addresses are never used.
#include "aws/credentials.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aws/client.h"
#include "common/strings.h"
#include "common/time.h"
#include "local_http_server.h"
#include "store/s3_store.h"

namespace logferry::aws {
namespace {

namespace fs = std::filesystem;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

// Nothing listens on port 1: a source that should not be reached fails
// fast, locally, if it is.
constexpr const char* kNowhere = "http://127.0.0.1:1";
constexpr int64_t kNow = 1'700'000'000LL * kMicrosPerSecond;
constexpr int64_t kHour = kMicrosPerHour;
constexpr int64_t kMinute = 60 * kMicrosPerSecond;

std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  for (const std::string& item : Split(body, '&')) {
    size_t eq = item.find('=');
    out[UriDecode(item.substr(0, eq), true)] = eq == std::string::npos ? "" : UriDecode(item.substr(eq + 1), true);
  }
  return out;
}

// --- Stand-ins -------------------------------------------------------------

// EC2 instance metadata, IMDSv2: PUT /latest/api/token with a TTL header gives
// a token; every GET must carry it in X-aws-ec2-metadata-token or gets 401.
// Each credentials GET hands out the next key id (ASIAIMDS1, ASIAIMDS2, ...).
class ImdsStandIn {
 public:
  std::string role = "logferry-role";
  std::atomic<int64_t> expires_at_us{kNow + kHour};
  std::atomic<bool> fail_credentials{false};
  std::atomic<bool> v1_only{false};  // answers the token PUT with 405, serves GETs without a token
  std::string credentials_body_override;

  ImdsStandIn() : server_([this](const LocalHttpRequest& r) { return Handle(r); }) {}

  std::string Url() const { return server_.Url(); }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }
  int TokenRequests() const {
    int n = 0;
    for (const auto& r : Requests()) n += r.method == "PUT";
    return n;
  }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    if (r.method == "PUT" && r.path == "/latest/api/token") {
      if (v1_only) return {405, {}, ""};
      std::string ttl = r.Header("x-aws-ec2-metadata-token-ttl-seconds");
      int seconds = ttl.empty() ? 0 : std::atoi(ttl.c_str());
      if (seconds < 1 || seconds > 21600) return {400, {}, ""};
      return {200, {{"X-aws-ec2-metadata-token-ttl-seconds", ttl}}, "AQAEAIMDSv2-session-token=="};
    }
    if (r.method != "GET") return {405, {}, ""};
    if (!v1_only && r.Header("x-aws-ec2-metadata-token") != "AQAEAIMDSv2-session-token==") return {401, {}, ""};
    const std::string base = "/latest/meta-data/iam/security-credentials/";
    if (r.path == base) return role.empty() ? LocalHttpResponse{404, {}, ""} : LocalHttpResponse{200, {}, role};
    if (r.path == base + role) {
      if (fail_credentials) return {500, {}, ""};
      if (!credentials_body_override.empty()) return {200, {}, credentials_body_override};
      int n = ++served_;
      return {
          200,
          {{"Content-Type", "text/plain"}},
          "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2023-11-14T22:13:20Z\",\n  \"Type\" : \"AWS-HMAC\",\n"
          "  \"AccessKeyId\" : \"ASIAIMDS" +
              std::to_string(n) + "\",\n  \"SecretAccessKey\" : \"imds-secret-" + std::to_string(n) +
              "\",\n  \"Token\" : \"imds-session-" + std::to_string(n) + "\",\n  \"Expiration\" : \"" +
              FormatIso8601(expires_at_us.load()) + "\"\n}"};
    }
    return {404, {}, ""};
  }

  std::atomic<int> served_{0};
  LocalHttpServer server_;  // last: stopped first, before the fields its handler reads
};

// ECS container credentials: GET <path> (with the Authorization header when
// the task has a token) → JSON.
class EcsStandIn {
 public:
  std::string path = "/v2/credentials/3f1a7c2e";
  std::string required_authorization;  // empty: none required
  std::string body_override;

  EcsStandIn() : server_([this](const LocalHttpRequest& r) { return Handle(r); }) {}
  std::string Url() const { return server_.Url(); }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    if (r.method != "GET" || r.path != path) return {404, {}, ""};
    if (!required_authorization.empty() && r.Header("authorization") != required_authorization)
      return {401, {}, "{\"code\":\"Unauthorized\"}"};
    if (!body_override.empty()) return {200, {}, body_override};
    return {200,
            {{"Content-Type", "application/json"}},
            "{\"RoleArn\":\"arn:aws:iam::123456789012:role/task\",\"AccessKeyId\":\"ASIAECS\","
            "\"SecretAccessKey\":\"ecs-secret\",\"Token\":\"ecs-session\",\"Expiration\":\"" +
                FormatIso8601(kNow + kHour) + "\"}"};
  }
  LocalHttpServer server_;
};

// STS AssumeRoleWithWebIdentity, Query API over POST, XML response.
class StsStandIn {
 public:
  int error_status = 0;  // non-zero: answer with an ErrorResponse
  std::string error_code = "InvalidIdentityToken";
  std::string error_message = "Incorrect token audience";
  std::string body_override;

  StsStandIn() : server_([this](const LocalHttpRequest& r) { return Handle(r); }) {}
  std::string Url() const { return server_.Url(); }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    auto form = ParseForm(r.body);
    if (r.method != "POST" || form["Action"] != "AssumeRoleWithWebIdentity") return {400, {}, ""};
    if (error_status)
      return {error_status,
              {{"Content-Type", "text/xml"}},
              "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>" +
                  error_code + "</Code><Message>" + error_message +
                  "</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"};
    if (!body_override.empty()) return {200, {{"Content-Type", "text/xml"}}, body_override};
    return {200,
            {{"Content-Type", "text/xml"}},
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
            "  <AssumeRoleWithWebIdentityResult>\n"
            "    <SubjectFromWebIdentityToken>system:serviceaccount:logs:logferry</SubjectFromWebIdentityToken>\n"
            "    <Audience>sts.amazonaws.com</Audience>\n"
            "    <AssumedRoleUser>\n"
            "      <Arn>arn:aws:sts::123456789012:assumed-role/logferry/" +
                form["RoleSessionName"] +
                "</Arn>\n"
                "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:session</AssumedRoleId>\n"
                "    </AssumedRoleUser>\n"
                "    <Credentials>\n"
                "      <SessionToken>sts-session-token</SessionToken>\n"
                "      <SecretAccessKey>sts-secret</SecretAccessKey>\n"
                "      <Expiration>" +
                FormatIso8601(kNow + kHour) +
                "</Expiration>\n"
                "      <AccessKeyId>ASIASTS</AccessKeyId>\n"
                "    </Credentials>\n"
                "    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.example</Provider>\n"
                "  </AssumeRoleWithWebIdentityResult>\n"
                "  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>\n"
                "</AssumeRoleWithWebIdentityResponse>\n"};
  }
  LocalHttpServer server_;
};

// --- Fixture ---------------------------------------------------------------

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-aws-creds-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    fs::create_directories(home_ + "/.aws");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(home_, ec);
  }

  ChainOptions Options() {
    ChainOptions o;
    o.getenv = [this](const std::string& name) {
      auto it = env_.find(name);
      return it == env_.end() ? std::string() : it->second;
    };
    o.home = home_;
    o.sts_endpoint = kNowhere;
    o.ecs_host = kNowhere;
    o.imds_endpoint = kNowhere;
    o.now_us = [this] { return now_.load(); };
    return o;
  }

  StatusOr<Credentials> Resolve() { return MakeDefaultChain(Options())->Get(); }

  void Write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

  // Every error message a test saw; checked for secrets at the end.
  std::string Error(const StatusOr<Credentials>& r) {
    EXPECT_FALSE(r.ok());
    if (r.ok()) return {};
    errors_.push_back(r.status().message());
    return r.status().message();
  }

  std::string home_;
  std::map<std::string, std::string> env_;
  std::atomic<int64_t> now_{kNow};
  std::vector<std::string> errors_;
};

// --- Sources ---------------------------------------------------------------

TEST_F(CredentialsTest, Environment) {
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}, {"AWS_SESSION_TOKEN", "env-tok"}};
  auto c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAENV");
  EXPECT_EQ(c->secret_access_key, "env-secret");
  EXPECT_EQ(c->session_token, "env-tok");
  EXPECT_EQ(c->expires_at_us, 0);
  EXPECT_EQ(c->source, "environment");

  env_ = {{"AWS_SECRET_ACCESS_KEY", "half-configured-secret"}};
  std::string e = Error(Resolve());
  EXPECT_NE(e.find("environment"), std::string::npos) << e;
  EXPECT_EQ(e.find("half-configured-secret"), std::string::npos) << e;
}

TEST_F(CredentialsTest, ProfilesFromCredentialsAndConfigFiles) {
  Write(home_ + "/.aws/credentials",
        "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n"
        "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key=dev-secret\naws_session_token = dev-token\n");
  Write(home_ + "/.aws/config",
        "[default]\nregion = eu-west-1\n; comment\n[profile ops]\nregion = us-west-2\n"
        "aws_access_key_id = AKIAOPS\naws_secret_access_key = ops-secret\ns3 =\n  addressing_style = path\n"
        "[ops]\naws_access_key_id = AKIAWRONG\n");

  auto c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIADEFAULT");
  EXPECT_EQ(c->source, "profile default");

  env_["AWS_PROFILE"] = "dev";
  c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIADEV");
  EXPECT_EQ(c->session_token, "dev-token");
  EXPECT_EQ(c->source, "profile dev");

  // "[profile ops]" in config, not "[ops]"; ChainOptions::profile beats AWS_PROFILE.
  ChainOptions o = Options();
  o.profile = "ops";
  c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAOPS");

  env_["AWS_PROFILE"] = "missing";
  std::string e = Error(Resolve());
  EXPECT_NE(e.find("profile \"missing\""), std::string::npos) << e;

  // Other file locations.
  Write(home_ + "/elsewhere", "[default]\naws_access_key_id = AKIAELSE\naws_secret_access_key = else-secret\n");
  env_ = {{"AWS_SHARED_CREDENTIALS_FILE", home_ + "/elsewhere"}, {"AWS_CONFIG_FILE", home_ + "/none"}};
  c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAELSE");
}

// The region comes from the chosen profile when the environment names none,
// as the AWS CLI does it: "[profile NAME]" or "[default]" in the config file.
TEST_F(CredentialsTest, RegionFromTheChosenProfile) {
  Write(home_ + "/.aws/config", "[default]\nregion = eu-west-1\n[profile ops]\nregion = us-west-2\n[profile bare]\n");
  EXPECT_EQ(RegionFromProfile(Options()), "eu-west-1");
  env_["AWS_PROFILE"] = "ops";
  EXPECT_EQ(RegionFromProfile(Options()), "us-west-2");
  ChainOptions o = Options();
  o.profile = "default";  // an explicit profile beats AWS_PROFILE
  EXPECT_EQ(RegionFromProfile(o), "eu-west-1");
  env_["AWS_PROFILE"] = "bare";
  EXPECT_EQ(RegionFromProfile(Options()), "");
  env_["AWS_PROFILE"] = "missing";
  EXPECT_EQ(RegionFromProfile(Options()), "");
  env_ = {{"AWS_CONFIG_FILE", home_ + "/other-config"}};
  Write(home_ + "/other-config", "[default]\nregion = ap-south-1\n");
  EXPECT_EQ(RegionFromProfile(Options()), "ap-south-1");
  Write(home_ + "/other-config", "region = before-any-section\n");
  EXPECT_EQ(RegionFromProfile(Options()), "") << "an unreadable file names no region";
}

// Through the process environment, where the S3 store and the SQS client
// take their default region from.
TEST_F(CredentialsTest, StoresAndQueuesTakeTheProfileRegionWhenTheEnvironmentHasNone) {
  Write(home_ + "/.aws/config", "[default]\nregion = eu-west-1\n[profile dev]\nregion = eu-north-1\n");
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                           "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"})
    unsetenv(name);
  setenv("HOME", home_.c_str(), 1);
  setenv("AWS_PROFILE", "dev", 1);
  EXPECT_EQ(RegionFromEnvironment(), "eu-north-1");
  auto a = ResolveS3Addressing("logs", StoreOptions{});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->region, "eu-north-1");
  EXPECT_EQ(a->origin, "https://logs.s3.eu-north-1.amazonaws.com");
  unsetenv("AWS_PROFILE");
  EXPECT_EQ(RegionFromEnvironment(), "eu-west-1");
  // The environment wins over the profile, AWS_REGION over AWS_DEFAULT_REGION.
  setenv("AWS_DEFAULT_REGION", "ca-central-1", 1);
  EXPECT_EQ(RegionFromEnvironment(), "ca-central-1");
  setenv("AWS_REGION", "sa-east-1", 1);
  EXPECT_EQ(RegionFromEnvironment(), "sa-east-1");
  unsetenv("AWS_REGION");
  unsetenv("AWS_DEFAULT_REGION");
  fs::remove(home_ + "/.aws/config");
  EXPECT_EQ(RegionFromEnvironment(), "us-east-1");
}

TEST_F(CredentialsTest, ExplicitProfileSkipsEnvironmentKeys) {
  Write(home_ + "/.aws/credentials", "[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = dev-secret\n");
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}, {"AWS_PROFILE", "dev"}};
  auto c = Resolve();  // AWS_PROFILE does not beat keys in the environment...
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIAENV");
  ChainOptions o = Options();
  o.profile = "dev";  // ...an explicit profile (the CLI's --profile) does
  c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIADEV");
}

TEST_F(CredentialsTest, UnsupportedProfileKindsSaySo) {
  Write(home_ + "/.aws/config",
        "[profile proc]\ncredential_process = /usr/bin/get-creds --secret proc-secret-arg\n"
        "[profile chained]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n"
        "[profile sso]\nsso_session = corp\n");
  for (auto [profile, words] : std::vector<std::pair<std::string, std::string>>{
           {"proc", "credential_process is not supported"}, {"chained", "source_profile"}, {"sso", "SSO"}}) {
    env_ = {{"AWS_PROFILE", profile}};
    std::string e = Error(Resolve());
    EXPECT_NE(e.find(words), std::string::npos) << e;
    EXPECT_NE(e.find("profile " + profile), std::string::npos) << e;
    EXPECT_EQ(e.find("proc-secret-arg"), std::string::npos) << e;
  }
}

TEST_F(CredentialsTest, WebIdentityFromEnvironment) {
  StsStandIn sts;
  Write(home_ + "/token", "eyJhbGciOiJSUzI1NiJ9.web-identity-jwt.sig\n");
  env_ = {{"AWS_WEB_IDENTITY_TOKEN_FILE", home_ + "/token"},
          {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/logferry"},
          {"AWS_ROLE_SESSION_NAME", "logferry-pod"}};
  ChainOptions o = Options();
  o.sts_endpoint = sts.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIASTS");
  EXPECT_EQ(c->secret_access_key, "sts-secret");
  EXPECT_EQ(c->session_token, "sts-session-token");
  EXPECT_EQ(c->expires_at_us, kNow + kHour);
  EXPECT_EQ(c->source, "web identity");

  auto requests = sts.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/");
  EXPECT_FALSE(requests[0].HasHeader("authorization"));  // the token is the proof; the call is unsigned
  EXPECT_TRUE(StartsWith(requests[0].Header("content-type"), "application/x-www-form-urlencoded"));
  auto form = ParseForm(requests[0].body);
  EXPECT_EQ(form["Action"], "AssumeRoleWithWebIdentity");
  EXPECT_EQ(form["Version"], "2011-06-15");
  EXPECT_EQ(form["RoleArn"], "arn:aws:iam::123456789012:role/logferry");
  EXPECT_EQ(form["RoleSessionName"], "logferry-pod");
  EXPECT_EQ(form["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.web-identity-jwt.sig");

  // AWS_ENDPOINT_URL_STS is honoured as the AWS tools do.
  o.sts_endpoint.clear();
  env_["AWS_ENDPOINT_URL_STS"] = sts.Url();
  c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(sts.Requests().size(), 2u);
}

TEST_F(CredentialsTest, WebIdentityFromProfile) {
  StsStandIn sts;
  Write(home_ + "/token", "profile-jwt");
  Write(home_ + "/.aws/config",
        "[profile eks]\nrole_arn = arn:aws:iam::123456789012:role/eks\n"
        "web_identity_token_file = " +
            home_ + "/token\n");
  env_ = {{"AWS_PROFILE", "eks"}};
  ChainOptions o = Options();
  o.sts_endpoint = sts.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIASTS");
  EXPECT_EQ(c->source, "web identity (profile eks)");
  auto form = ParseForm(sts.Requests().at(0).body);
  EXPECT_EQ(form["RoleArn"], "arn:aws:iam::123456789012:role/eks");
  EXPECT_EQ(form["WebIdentityToken"], "profile-jwt");
  EXPECT_TRUE(StartsWith(form["RoleSessionName"], "logferry-"));
}

TEST_F(CredentialsTest, WebIdentityErrors) {
  StsStandIn sts;
  const std::string jwt = "eyJ.secret-web-identity-token.sig";
  Write(home_ + "/token", jwt);
  env_ = {{"AWS_WEB_IDENTITY_TOKEN_FILE", home_ + "/token"}, {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}};
  ChainOptions o = Options();
  o.sts_endpoint = sts.Url();

  sts.error_status = 400;
  auto r = MakeDefaultChain(o)->Get();
  std::string e = Error(r);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(e.find("web identity"), std::string::npos) << e;
  EXPECT_NE(e.find("InvalidIdentityToken"), std::string::npos) << e;

  // A server that echoes the token back in its message: redacted (by the
  // HTTP client already, as "[redacted]"; the chain's own pass says
  // "<redacted>").
  sts.error_message = "token " + jwt + " rejected";
  e = Error(MakeDefaultChain(o)->Get());
  EXPECT_EQ(e.find(jwt), std::string::npos) << e;
  EXPECT_NE(e.find("token [redacted] rejected"), std::string::npos) << e;

  sts.error_status = 503;
  sts.error_code = "ServiceUnavailable";
  EXPECT_EQ(MakeDefaultChain(o)->Get().status().code(), StatusCode::kUnavailable);
  sts.error_status = 400;
  sts.error_code = "IDPCommunicationError";
  EXPECT_EQ(MakeDefaultChain(o)->Get().status().code(), StatusCode::kUnavailable);

  // Malformed success responses that carry secrets.
  sts.error_status = 0;
  sts.body_override =
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
      "<SecretAccessKey>sts-leaky-secret</SecretAccessKey><SessionToken>sts-leaky-token</Sess";
  e = Error(MakeDefaultChain(o)->Get());
  EXPECT_NE(e.find("not XML"), std::string::npos) << e;
  sts.body_override =
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
      "<AccessKeyId>ASIA</AccessKeyId><SecretAccessKey>sts-leaky-secret</SecretAccessKey>"
      "<SessionToken>sts-leaky-token</SessionToken><Expiration>sts-leaky-expiration</Expiration>"
      "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
  e = Error(MakeDefaultChain(o)->Get());
  EXPECT_NE(e.find("Expiration"), std::string::npos) << e;

  env_.erase("AWS_ROLE_ARN");
  e = Error(MakeDefaultChain(o)->Get());
  EXPECT_NE(e.find("role ARN"), std::string::npos) << e;
  env_["AWS_ROLE_ARN"] = "arn:aws:iam::1:role/r";
  env_["AWS_WEB_IDENTITY_TOKEN_FILE"] = home_ + "/no-such-token";
  e = Error(MakeDefaultChain(o)->Get());
  EXPECT_NE(e.find("no-such-token"), std::string::npos) << e;

  for (const std::string& m : errors_) {
    EXPECT_EQ(m.find(jwt), std::string::npos) << m;
    EXPECT_EQ(m.find("sts-leaky"), std::string::npos) << m;
  }
}

TEST_F(CredentialsTest, EcsRelativeUriWithAuthorization) {
  EcsStandIn ecs;
  ecs.required_authorization = "Bearer ecs-auth-token-123";
  env_ = {{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ecs.path},
          {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer ecs-auth-token-123"}};
  ChainOptions o = Options();
  o.ecs_host = ecs.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAECS");
  EXPECT_EQ(c->secret_access_key, "ecs-secret");
  EXPECT_EQ(c->session_token, "ecs-session");
  EXPECT_EQ(c->expires_at_us, kNow + kHour);
  EXPECT_EQ(c->source, "ecs");
  auto requests = ecs.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, ecs.path);
  EXPECT_EQ(requests[0].Header("authorization"), "Bearer ecs-auth-token-123");

  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer wrong";
  auto r = MakeDefaultChain(o)->Get();
  std::string e = Error(r);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(e.find("ecs"), std::string::npos) << e;
  EXPECT_NE(e.find("401"), std::string::npos) << e;
}

TEST_F(CredentialsTest, EcsFullUriOnlyForLoopbackOrHttps) {
  EcsStandIn ecs;
  ecs.required_authorization = "pod-identity-token";
  Write(home_ + "/ecs-token", "pod-identity-token\n");
  env_ = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", ecs.Url() + ecs.path},
          {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", home_ + "/ecs-token"},
          {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-the-file-is-set"}};
  auto c = Resolve();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAECS");
  EXPECT_EQ(ecs.Requests().at(0).Header("authorization"), "pod-identity-token");

  // Not loopback, not https: refused before any request is made.
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://0.0.0.0:1/creds";
  std::string e = Error(Resolve());
  EXPECT_NE(e.find("not allowed"), std::string::npos) << e;
  EXPECT_EQ(ecs.Requests().size(), 1u);
}

TEST_F(CredentialsTest, ImdsV2TokenFlow) {
  ImdsStandIn imds;
  ChainOptions o = Options();
  o.imds_endpoint = imds.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(c->secret_access_key, "imds-secret-1");
  EXPECT_EQ(c->session_token, "imds-session-1");
  EXPECT_EQ(c->expires_at_us, kNow + kHour);
  EXPECT_EQ(c->source, "imds");

  auto requests = imds.Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].path, "/latest/api/token");
  EXPECT_EQ(requests[0].Header("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].path, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(requests[1].Header("x-aws-ec2-metadata-token"), "AQAEAIMDSv2-session-token==");
  EXPECT_EQ(requests[2].path, "/latest/meta-data/iam/security-credentials/logferry-role");
  EXPECT_EQ(requests[2].Header("x-aws-ec2-metadata-token"), "AQAEAIMDSv2-session-token==");

  // AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the configured endpoint.
  ImdsStandIn other;
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = other.Url() + "/";
  o.imds_endpoint = kNowhere;
  c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(other.Requests().size(), 3u);

  // AWS_EC2_METADATA_DISABLED: not asked at all.
  env_["AWS_EC2_METADATA_DISABLED"] = "true";
  std::string e = Error(MakeDefaultChain(o)->Get());
  EXPECT_NE(e.find("no AWS credentials found"), std::string::npos) << e;
  EXPECT_NE(e.find("AWS_EC2_METADATA_DISABLED"), std::string::npos) << e;
  EXPECT_EQ(other.Requests().size(), 3u);
}

TEST_F(CredentialsTest, ImdsStandInRefusesRequestsWithoutToken) {
  // The stand-in follows IMDSv2-only instances: a GET without the token is 401.
  ImdsStandIn imds;
  HttpRequest r;
  r.url = imds.Url() + "/latest/meta-data/iam/security-credentials/";
  auto response = HttpClient::Default().Send(r);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 401);
}

TEST_F(CredentialsTest, ImdsV1FallbackAndNoRole) {
  ImdsStandIn imds;
  imds.v1_only = true;  // token PUT answered 405, as on an IMDSv1-only endpoint
  ChainOptions o = Options();
  o.imds_endpoint = imds.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
  for (const auto& r : imds.Requests()) {
    EXPECT_FALSE(r.HasHeader("x-aws-ec2-metadata-token"));
  }

  ImdsStandIn no_role;
  no_role.role = "";
  o.imds_endpoint = no_role.Url();
  auto r = MakeDefaultChain(o)->Get();
  std::string e = Error(r);
  EXPECT_NE(e.find("no IAM role"), std::string::npos) << e;
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(CredentialsTest, NothingConfiguredFailsFastNamingEachSource) {
  auto r = Resolve();  // every endpoint is the closed loopback port
  std::string e = Error(r);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  for (const char* part : {"environment", "web identity", "profile \"default\"", "ECS", "not reachable"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " in " << e;
}

// --- Order -----------------------------------------------------------------

TEST_F(CredentialsTest, ResolutionOrder) {
  StsStandIn sts;
  EcsStandIn ecs;
  ImdsStandIn imds;
  Write(home_ + "/token", "jwt");
  Write(home_ + "/.aws/credentials", "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n");
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIAENV"},
          {"AWS_SECRET_ACCESS_KEY", "e"},
          {"AWS_WEB_IDENTITY_TOKEN_FILE", home_ + "/token"},
          {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
          {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ecs.path}};
  ChainOptions o = Options();
  o.sts_endpoint = sts.Url();
  o.ecs_host = ecs.Url();
  o.imds_endpoint = imds.Url();
  auto winner = [&] {
    auto c = MakeDefaultChain(o)->Get();
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c->source : "";
  };
  auto seen = [&] { return std::vector<size_t>{sts.Requests().size(), ecs.Requests().size(), imds.Requests().size()}; };

  EXPECT_EQ(winner(), "environment");
  EXPECT_EQ(seen(), (std::vector<size_t>{0, 0, 0}));  // later sources are not asked
  env_.erase("AWS_ACCESS_KEY_ID");
  env_.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(winner(), "web identity");
  EXPECT_EQ(seen(), (std::vector<size_t>{1, 0, 0}));
  env_.erase("AWS_WEB_IDENTITY_TOKEN_FILE");
  EXPECT_EQ(winner(), "profile default");
  EXPECT_EQ(seen(), (std::vector<size_t>{1, 0, 0}));
  fs::remove(home_ + "/.aws/credentials");
  EXPECT_EQ(winner(), "ecs");
  EXPECT_EQ(seen(), (std::vector<size_t>{1, 1, 0}));
  env_.erase("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  EXPECT_EQ(winner(), "imds");
  EXPECT_EQ(seen(), (std::vector<size_t>{1, 1, 3}));
}

TEST_F(CredentialsTest, ProfileWithoutKeysFallsThroughToContainer) {
  // A named profile that only sets the region, in a container: the keys come from ECS.
  EcsStandIn ecs;
  Write(home_ + "/.aws/config", "[profile prod]\nregion = eu-central-1\n");
  env_ = {{"AWS_PROFILE", "prod"}, {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ecs.path}};
  ChainOptions o = Options();
  o.ecs_host = ecs.Url();
  auto c = MakeDefaultChain(o)->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->source, "ecs");
}

// --- Refresh ---------------------------------------------------------------

TEST_F(CredentialsTest, RefreshesFiveMinutesBeforeExpiration) {
  ImdsStandIn imds;
  ChainOptions o = Options();
  o.imds_endpoint = imds.Url();
  auto chain = MakeDefaultChain(o);

  auto c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(imds.TokenRequests(), 1);

  now_ = kNow + kHour - 6 * kMinute;  // more than five minutes left: cached
  c = chain->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(imds.Requests().size(), 3u);

  imds.expires_at_us = kNow + 2 * kHour;
  now_ = kNow + kHour - 4 * kMinute;  // inside the five minutes: refreshed
  c = chain->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "ASIAIMDS2");
  EXPECT_EQ(c->expires_at_us, kNow + 2 * kHour);
  EXPECT_EQ(imds.TokenRequests(), 2);

  // Static credentials never refresh.
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIAENV"}, {"AWS_SECRET_ACCESS_KEY", "e"}};
  auto static_chain = MakeDefaultChain(Options());
  ASSERT_TRUE(static_chain->Get().ok());
  now_ = kNow + 1000 * kHour;
  ASSERT_TRUE(static_chain->Get().ok());
}

TEST_F(CredentialsTest, ConcurrentCallersShareOneRefresh) {
  ImdsStandIn imds;
  ChainOptions o = Options();
  o.imds_endpoint = imds.Url();
  auto chain = MakeDefaultChain(o);
  ASSERT_TRUE(chain->Get().ok());
  imds.expires_at_us = kNow + 2 * kHour;
  now_ = kNow + kHour - kMinute;

  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto c = chain->Get();
      std::lock_guard<std::mutex> lock(mu);
      ids.push_back(c.ok() ? c->access_key_id : c.status().ToString());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(imds.TokenRequests(), 2);  // the first fetch and exactly one refresh
  for (const std::string& id : ids) {
    EXPECT_TRUE(id == "ASIAIMDS1" || id == "ASIAIMDS2") << id;
  }
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS2");
}

TEST_F(CredentialsTest, FailedRefreshKeepsValidCredentialsUntilTheyExpire) {
  ImdsStandIn imds;
  ChainOptions o = Options();
  o.imds_endpoint = imds.Url();
  auto chain = MakeDefaultChain(o);
  ASSERT_TRUE(chain->Get().ok());

  imds.fail_credentials = true;
  now_ = kNow + kHour - 2 * kMinute;
  auto c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");

  now_ = kNow + kHour + 1;
  auto r = chain->Get();
  std::string e = Error(r);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(e.find("imds"), std::string::npos) << e;
  EXPECT_NE(e.find("500"), std::string::npos) << e;

  imds.fail_credentials = false;
  c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS2");
}

// --- Secrets never in messages ----------------------------------------------

TEST_F(CredentialsTest, MalformedResponsesDoNotLeakSecrets) {
  const std::vector<std::string> secrets = {"LEAKY-SECRET-KEY", "LEAKY-SESSION-TOKEN", "LEAKY-AUTH-TOKEN",
                                            "LEAKY-INI-SECRET"};
  EcsStandIn ecs;
  env_ = {{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ecs.path}, {"AWS_CONTAINER_AUTHORIZATION_TOKEN", secrets[2]}};
  ChainOptions o = Options();
  o.ecs_host = ecs.Url();
  for (const std::string& body : {
           // Truncated JSON, the error right after the secret.
           std::string("{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"LEAKY-SECRET-KEY\",\"Token\":\"LEAKY-SESS"),
           // Valid JSON, bad or missing fields next to secrets.
           std::string("{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"LEAKY-SECRET-KEY\","
                       "\"Token\":\"LEAKY-SESSION-TOKEN\",\"Expiration\":\"LEAKY-SECRET-KEY\"}"),
           std::string("{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"LEAKY-SECRET-KEY\"}"),
           std::string("{\"AccessKeyId\":1,\"SecretAccessKey\":[\"LEAKY-SECRET-KEY\"],\"Token\":{}}"),
           std::string("[\"LEAKY-SECRET-KEY\"]"),
           std::string("LEAKY-SECRET-KEY"),
       }) {
    ecs.body_override = body;
    std::string e = Error(MakeDefaultChain(o)->Get());
    EXPECT_NE(e.find("ecs"), std::string::npos) << e;
  }

  ImdsStandIn imds;
  imds.credentials_body_override =
      "{\"Code\":\"LEAKY-SECRET-KEY\",\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"LEAKY-SECRET-KEY\"}";
  ChainOptions io = Options();
  io.imds_endpoint = imds.Url();
  env_.clear();
  Error(MakeDefaultChain(io)->Get());

  // Half-configured keys, and a malformed shared file around a secret.
  Write(home_ + "/.aws/credentials", "[default]\naws_secret_access_key = LEAKY-SECRET-KEY\n");
  Error(Resolve());
  Write(home_ + "/.aws/credentials", "[default]\naws_access_key_id AKIA LEAKY-INI-SECRET\n");
  Error(Resolve());
  Write(home_ + "/.aws/credentials", "[default\naws_secret_access_key = LEAKY-INI-SECRET\n");
  Error(Resolve());

  ASSERT_GE(errors_.size(), 10u);
  for (const std::string& m : errors_)
    for (const std::string& s : secrets) {
      EXPECT_EQ(m.find(s), std::string::npos) << m;
    }
}

TEST_F(CredentialsTest, StaticProvider) {
  auto p = MakeStaticProvider({"AKIASTATIC", "static-secret", "", 0, ""});
  auto c = p->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIASTATIC");
  EXPECT_EQ(c->source, "static");
  EXPECT_FALSE(MakeStaticProvider({})->Get().ok());
}

}  // namespace
}  // namespace logferry::aws
