// Error classification and per-request retries of signed AWS calls, against
// a local stand-in that answers with S3's and SQS's documented error shapes.
#include <gtest/gtest.h>

#include <atomic>

#include "aws/client.h"
#include "local_http_server.h"

namespace logferry::aws {
namespace {

using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

HttpResponse Response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string S3Error(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code +
         "</Code><Message>m</Message><RequestId>R1</RequestId></Error>";
}

TEST(AwsErrors, ParsesS3QueryAndJsonShapes) {
  AwsError e = ParseAwsError(Response(404, S3Error("NoSuchKey")));
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "m");
  EXPECT_EQ(e.request_id, "R1");
  e = ParseAwsError(Response(400,
                             "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code>"
                             "<Message>bad</Message></Error><RequestId>R2</RequestId></ErrorResponse>"));
  EXPECT_EQ(e.code, "InvalidParameterValue");
  EXPECT_EQ(e.request_id, "R2");
  e = ParseAwsError(Response(400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})"));
  EXPECT_EQ(e.code, "QueueDoesNotExist");
  EXPECT_EQ(e.message, "gone");
}

TEST(AwsErrors, ClassifiesByStatusAndCode) {
  struct Case {
    int status;
    std::string code;
    StatusCode want;
  };
  for (const Case& c : std::vector<Case>{{503, "SlowDown", StatusCode::kUnavailable},
                                         {500, "InternalError", StatusCode::kUnavailable},
                                         {400, "RequestTimeout", StatusCode::kUnavailable},
                                         {400, "BadDigest", StatusCode::kUnavailable},
                                         {400, "ExpiredToken", StatusCode::kUnavailable},
                                         {403, "AccessDenied", StatusCode::kPermissionDenied},
                                         {403, "SignatureDoesNotMatch", StatusCode::kPermissionDenied},
                                         {404, "NoSuchKey", StatusCode::kNotFound},
                                         {404, "NoSuchBucket", StatusCode::kNotFound},
                                         {412, "PreconditionFailed", StatusCode::kFailedPrecondition},
                                         {400, "InvalidArgument", StatusCode::kInvalidArgument}}) {
    Status s = ErrorStatus("S3 GetObject s3://b/k", Response(c.status, S3Error(c.code)));
    EXPECT_EQ(s.code(), c.want) << c.status << " " << c.code;
    EXPECT_NE(s.message().find("s3://b/k"), std::string::npos);
    EXPECT_NE(s.message().find(c.code), std::string::npos);
  }
}

struct Counted {
  std::atomic<int> calls{0};
};

Client TestClient(int attempts) {
  ClientOptions o;
  o.service = "s3";
  o.region = "us-east-1";
  o.credentials = MakeStaticProvider({.access_key_id = "AKID", .secret_access_key = "never-in-messages"});
  o.retry.max_attempts = attempts;
  o.retry.initial_backoff_us = 1000;
  o.retry.max_backoff_us = 2000;
  o.s3_signing = true;
  return Client(o);
}

TEST(AwsErrors, OneClassifierServesS3SqsAndSts) {
  EXPECT_EQ(ClassifyErrorCode("SlowDown", StatusCode::kInternal), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyErrorCode("QueueDoesNotExist", StatusCode::kInvalidArgument), StatusCode::kNotFound);
  // STS AssumeRoleWithWebIdentity's codes.
  EXPECT_EQ(ClassifyErrorCode("IDPCommunicationError", StatusCode::kInvalidArgument), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyErrorCode("InvalidIdentityToken", StatusCode::kInvalidArgument), StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyErrorCode("ExpiredTokenException", StatusCode::kInvalidArgument), StatusCode::kPermissionDenied);
  // A code that says nothing more leaves the status's verdict.
  EXPECT_EQ(ClassifyErrorCode("SomethingElse", StatusCode::kInvalidArgument), StatusCode::kInvalidArgument);
}

TEST(AwsClient, RetriesTransientFailuresAndSignsEachAttempt) {
  Counted n;
  LocalHttpServer server([&](const LocalHttpRequest& r) {
    int call = ++n.calls;
    if (call == 1) return LocalHttpResponse{503, {}, S3Error("SlowDown")};
    if (call == 2) {
      LocalHttpResponse reset{};
      reset.close_without_reply = true;
      return reset;
    }
    return LocalHttpResponse{200, {}, "ok"};
  });
  HttpRequest req;
  req.url = server.Url() + "/bucket/key";
  auto r = TestClient(5).Send("S3 GetObject s3://bucket/key", req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "ok");
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& q : requests) {
    EXPECT_NE(q.Header("authorization").find("AWS4-HMAC-SHA256 Credential=AKID/"), std::string::npos);
    EXPECT_FALSE(q.Header("x-amz-content-sha256").empty());
  }
}

TEST(AwsClient, PermanentErrorsAreNotRetried) {
  for (const auto& status_code : std::vector<std::pair<int, std::string>>{{403, "AccessDenied"}, {404, "NoSuchKey"}}) {
    const auto& [status, code] = status_code;
    Counted n;
    LocalHttpServer server([&](const LocalHttpRequest&) {
      ++n.calls;
      return LocalHttpResponse{status_code.first, {}, S3Error(status_code.second)};
    });
    HttpRequest req;
    req.url = server.Url() + "/bucket/key";
    auto r = TestClient(5).Send("S3 HeadObject s3://bucket/key", req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(n.calls.load(), 1) << code;
    EXPECT_EQ(r.status().message().find("never-in-messages"), std::string::npos);
  }
}

TEST(AwsClient, GivesUpAfterTheAttemptBudget) {
  Counted n;
  LocalHttpServer server([&](const LocalHttpRequest&) {
    ++n.calls;
    return LocalHttpResponse{500, {}, S3Error("InternalError")};
  });
  HttpRequest req;
  req.url = server.Url() + "/bucket/key";
  auto r = TestClient(3).Send("S3 GetObject s3://bucket/key", req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsTransient());
  EXPECT_EQ(n.calls.load(), 3);
}

// A server that accepts the request and then says nothing: the request's
// time limit, or the stall limit (too few bytes for too long), ends the
// attempt as a transient failure, and the next attempt gets the answer.
TEST(AwsClient, RetriesAfterATimeoutOrAStall) {
  struct Limit {
    const char* name;
    int64_t timeout_ms;
    int64_t low_speed_time_s;
  };
  for (const Limit& limit : {Limit{"timeout", 300, 30}, Limit{"stall", 60'000, 1}}) {
    SCOPED_TRACE(limit.name);
    Counted n;
    LocalHttpServer server([&](const LocalHttpRequest&) {
      if (++n.calls == 1) {
        LocalHttpResponse stall;
        stall.stall = true;
        return stall;
      }
      return LocalHttpResponse{200, {}, "answer"};
    });
    HttpRequest req;
    req.url = server.Url() + "/bucket/key";
    req.timeout_ms = limit.timeout_ms;
    req.low_speed_time_s = limit.low_speed_time_s;
    auto r = TestClient(3).Send("S3 GetObject s3://bucket/key", req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "answer");
    EXPECT_EQ(n.calls.load(), 2);
    // One attempt alone ends with the stall, as a transient error.
    n.calls = 0;
    auto once = TestClient(1).Send("S3 GetObject s3://bucket/key", req);
    ASSERT_FALSE(once.ok());
    EXPECT_EQ(once.status().code(), StatusCode::kUnavailable) << once.status().ToString();
    EXPECT_EQ(n.calls.load(), 1);
  }
}

}  // namespace
}  // namespace logferry::aws
