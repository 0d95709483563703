// Credentials and plain http: what the HTTP client refuses to send, and what
// it removes from error responses before anyone quotes them.
#include <gtest/gtest.h>

#include "aws/client.h"
#include "gcp/client.h"
#include "http/http_client.h"
#include "local_http_server.h"

namespace logferry {
namespace {

using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

// TEST-NET-1 (RFC 5737): never routed, so nothing can answer there.
constexpr const char* kFarHost = "http://192.0.2.1:9/";

HttpClient ShortConnectClient() {
  HttpClientOptions o;
  o.connect_timeout_ms = 300;  // bounds the test if the refusal were missing
  return HttpClient(o);
}

TEST(Transport, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "LocalHost", "minio.localhost", "[::1]", "[::1]:9000",
                           "[::ffff:127.0.0.1]"})
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  for (const char* host : {"127.example.com", "128.0.0.1", "10.0.0.1", "localhost.example.com", "example.com", "[::2]",
                           "0.0.0.0", "169.254.169.254", "localhost."})
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
}

TEST(Transport, BearerTokenIsNeverSentOverPlainHttpToAFarHost) {
  HttpRequest request;
  request.url = std::string(kFarHost) + "storage/v1/b/bucket/o";
  request.headers = {{"Authorization", "Bearer ya29.secret-token-0123456789"}};
  auto r = ShortConnectClient().Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("plain http"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find("ya29"), std::string::npos);
}

TEST(Transport, AssertionBodyIsNeverSentOverPlainHttpToAFarHost) {
  HttpRequest request;
  request.method = "POST";
  request.url = std::string(kFarHost) + "token";
  request.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJhbGciOi.x.y";
  request.carries_credentials = true;
  auto r = ShortConnectClient().Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
}

TEST(Transport, CredentialsMayGoToLoopbackOverHttp) {
  LocalHttpServer server([](const LocalHttpRequest&) { return LocalHttpResponse{200, {}, "ok"}; });
  HttpRequest request;
  request.url = server.Url() + "/x";
  request.headers = {{"Authorization", "Bearer ya29.secret-token-0123456789"}};
  auto r = HttpClient::Default().Send(request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "ok");
}

// Documented choice: a SigV4 signature reveals no secret, so the HTTP layer
// lets it through (the config decides whether such an endpoint is allowed).
TEST(Transport, SigV4IsNotRefusedByTheHttpLayer) {
  HttpRequest request;
  request.url = std::string(kFarHost) + "bucket/key";
  request.headers = {{"Authorization",
                      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, "
                      "SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef"}};
  auto r = ShortConnectClient().Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

// A server that quotes the request's credentials back in its error body.
LocalHttpServer EchoingServer(int status, bool xml) {
  return LocalHttpServer([status, xml](const LocalHttpRequest& r) {
    // Short enough that the callers' excerpts (300 bytes for AWS) keep all of it.
    std::string echoed = "tok=" + r.Header("x-amz-security-token") + " auth=" + r.Header("authorization");
    if (xml)
      return LocalHttpResponse{
          status,
          {},
          "<Error><Code>AccessDenied</Code><Message>" + echoed + "</Message><RequestId>R1</RequestId></Error>"};
    return LocalHttpResponse{
        status,
        {{"Www-Authenticate", "Bearer realm=x, got " + r.Header("authorization")}},
        R"({"error":{"code":403,"message":")" + echoed + R"(","errors":[{"reason":"forbidden"}]}})"};
  });
}

TEST(Transport, GoogleErrorEchoingTheBearerTokenIsRedacted) {
  const std::string token = "ya29.a0AfH6SMBsecretbearertokenvalue0123456789";
  LocalHttpServer server = EchoingServer(403, false);
  RetryPolicy once;
  once.max_attempts = 1;
  gcp::Client client(std::shared_ptr<gcp::TokenProvider>(gcp::MakeStaticTokenProvider(token)), once);
  HttpRequest request;
  request.url = server.Url() + "/storage/v1/b/bucket/o";
  auto r = client.Send("GCS list gs://bucket/", request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().message().find(token), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find("secretbearer"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("[redacted]"), std::string::npos) << r.status().message();
  // The raw response the caller may inspect is clean too.
  auto raw = client.SendOnce("GCS list gs://bucket/", request);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->body.find(token), std::string::npos);
  EXPECT_EQ(std::string(raw->Header("www-authenticate")).find(token), std::string::npos);
}

TEST(Transport, AwsErrorEchoingTheSignatureAndSessionTokenIsRedacted) {
  const std::string session_token = "IQoJb3JpZ2luX2VjEsecretsessiontoken0123456789";
  LocalHttpServer server = EchoingServer(403, true);
  aws::ClientOptions o;
  o.service = "s3";
  o.region = "us-east-1";
  o.credentials = aws::MakeStaticProvider(
      {.access_key_id = "AKID", .secret_access_key = "never-in-messages", .session_token = session_token});
  o.retry.max_attempts = 1;
  o.s3_signing = true;
  HttpRequest request;
  request.url = server.Url() + "/bucket/key";
  auto r = aws::Client(o).Send("S3 GetObject s3://bucket/key", request);
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_EQ(m.find(session_token), std::string::npos) << m;
  std::string signature = server.Requests().at(0).Header("authorization");
  signature = signature.substr(signature.find("Signature=") + 10);
  ASSERT_EQ(signature.size(), 64u);
  EXPECT_EQ(m.find(signature), std::string::npos) << m;
  EXPECT_NE(m.find("AccessDenied"), std::string::npos) << m;
}

TEST(Transport, RedactionCoversFormValuesAndPatterns) {
  HttpRequest request;
  request.carries_credentials = true;
  request.body = "grant_type=refresh_token&refresh_token=1%2F%2Fsecret-refresh-token&client_secret=GOCSPX-abcdefgh";
  std::string out = RedactCredentials(
      "echo: 1//secret-refresh-token 1%2F%2Fsecret-refresh-token GOCSPX-abcdefgh; Bearer some.other.token.12345 "
      "Signature=00112233445566778899aabbccddeeff",
      request);
  EXPECT_EQ(out.find("secret-refresh"), std::string::npos) << out;
  EXPECT_EQ(out.find("GOCSPX"), std::string::npos) << out;
  EXPECT_EQ(out.find("some.other"), std::string::npos) << out;
  EXPECT_EQ(out.find("00112233"), std::string::npos) << out;
  EXPECT_NE(out.find("echo: "), std::string::npos) << out;
}

TEST(Transport, SuccessBodiesAreLeftExactlyAsSent) {
  const std::string token = "ya29.a0AfH6SMBsecretbearertokenvalue0123456789";
  LocalHttpServer server = EchoingServer(200, false);
  HttpRequest request;
  request.url = server.Url() + "/data";
  request.headers = {{"Authorization", "Bearer " + token}};
  auto r = HttpClient::Default().Send(request);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->body.find(token), std::string::npos);  // data, not an error text
}

}  // namespace
}  // namespace logferry
