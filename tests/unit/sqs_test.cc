// The SQS client against moto_server's SQS (JSON protocol).
#include "aws/sqs.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "local_http_server.h"
#include "support/moto_server.h"

namespace logferry::aws {
namespace {

std::shared_ptr<CredentialsProvider> TestCredentials() {
  return MakeStaticProvider({.access_key_id = "AKIDTEST", .secret_access_key = "test-secret"});
}

// Creates a queue and returns its URL as SQS prints it.
std::string CreateQueue(const std::string& endpoint, const std::string& name) {
  Client client({.service = "sqs", .region = "us-east-1", .credentials = TestCredentials()});
  HttpRequest req;
  req.method = "POST";
  req.url = endpoint + "/";
  std::string body = nlohmann::json({{"QueueName", name}}).dump();
  req.body = body;
  req.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "AmazonSQS.CreateQueue"}};
  auto r = client.Send("CreateQueue", req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? nlohmann::json::parse(r->body).value("QueueUrl", "") : "";
}

void SendMessage(const std::string& endpoint, const std::string& queue_url, const std::string& text) {
  Client client({.service = "sqs", .region = "us-east-1", .credentials = TestCredentials()});
  HttpRequest req;
  req.method = "POST";
  req.url = endpoint + "/";
  std::string body = nlohmann::json({{"QueueUrl", queue_url}, {"MessageBody", text}}).dump();
  req.body = body;
  req.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "AmazonSQS.SendMessage"}};
  ASSERT_TRUE(client.Send("SendMessage", req).ok());
}

TEST(Sqs, RegionFromHost) {
  EXPECT_EQ(RegionFromSqsHost("sqs.eu-central-1.amazonaws.com"), "eu-central-1");
  EXPECT_EQ(RegionFromSqsHost("us-west-2.queue.amazonaws.com"), "us-west-2");
  EXPECT_EQ(RegionFromSqsHost("127.0.0.1"), "");
}

TEST(Sqs, ReceiveExtendDeleteAgainstMoto) {
  LF_REQUIRE_MOTO(server);
  std::string url = CreateQueue(server->endpoint(), "lf-receive");
  ASSERT_FALSE(url.empty());
  for (int i = 0; i < 3; ++i) SendMessage(server->endpoint(), url, "m" + std::to_string(i));
  // The queue URL is used exactly as printed.
  auto q = SqsQueue::Open(url, "us-east-1", TestCredentials(), RetryPolicy{});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  std::vector<SqsMessage> got;
  for (int i = 0; i < 10 && got.size() < 3; ++i) {
    auto batch = (*q)->Receive(10, 1, 30);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    got.insert(got.end(), batch->begin(), batch->end());
  }
  ASSERT_EQ(got.size(), 3u);
  for (const SqsMessage& m : got) {
    EXPECT_FALSE(m.receipt_handle.empty());
    EXPECT_EQ(m.receive_count, 1);
  }
  // Hidden while received: nothing more to receive.
  auto again = (*q)->Receive(10, 0, 30);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  ASSERT_TRUE((*q)->ExtendVisibility(got[0].receipt_handle, 60).ok());
  // Made visible at once, it is delivered again with a higher count.
  ASSERT_TRUE((*q)->ExtendVisibility(got[1].receipt_handle, 0).ok());
  auto redelivered = (*q)->Receive(10, 1, 30);
  ASSERT_TRUE(redelivered.ok());
  ASSERT_EQ(redelivered->size(), 1u);
  EXPECT_EQ((*redelivered)[0].message_id, got[1].message_id);
  EXPECT_EQ((*redelivered)[0].receive_count, 2);
  for (const SqsMessage& m : got) {
    EXPECT_TRUE((*q)->Delete(m.receipt_handle).ok() || &m == &got[1]);
  }
  EXPECT_TRUE((*q)->Delete((*redelivered)[0].receipt_handle).ok());
}

TEST(Sqs, MissingQueueIsNotFound) {
  LF_REQUIRE_MOTO(server);
  RetryPolicy once;
  once.max_attempts = 1;
  auto q = SqsQueue::Open(server->endpoint() + "/123456789012/no-such-queue", "us-east-1", TestCredentials(), once);
  ASSERT_TRUE(q.ok());
  auto r = (*q)->Receive(1, 0, 30);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
}

// ReceiveMessage is a long poll: WaitTimeSeconds goes out as asked (clamped to
// SQS's 0..20), so an empty queue costs one request per wait, not a busy loop.
TEST(Sqs, ReceiveSendsWaitTimeSecondsForALongPoll) {
  testutil::LocalHttpServer server([](const testutil::LocalHttpRequest&) {
    return testutil::LocalHttpResponse{200, {{"Content-Type", "application/x-amz-json-1.0"}}, "{}"};
  });
  auto q = SqsQueue::Open(server.Url() + "/123456789012/events", "us-east-1", TestCredentials(), RetryPolicy{});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_TRUE((*q)->Receive(10, 20, 300).ok());
  ASSERT_TRUE((*q)->Receive(50, 99, 30).ok());
  ASSERT_TRUE((*q)->Receive(1, 0, 30).ok());
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 3u);
  std::vector<int> waits, maxes;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/");
    EXPECT_EQ(r.Header("x-amz-target"), "AmazonSQS.ReceiveMessage");
    EXPECT_EQ(r.Header("content-type"), "application/x-amz-json-1.0");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j.value("QueueUrl", ""), server.Url() + "/123456789012/events");
    waits.push_back(j.value("WaitTimeSeconds", -1));
    maxes.push_back(j.value("MaxNumberOfMessages", -1));
  }
  EXPECT_EQ(waits, (std::vector<int>{20, 20, 0}));
  EXPECT_EQ(maxes, (std::vector<int>{10, 10, 1}));
  EXPECT_EQ(nlohmann::json::parse(requests[0].body).value("VisibilityTimeout", -1), 300);
}

}  // namespace
}  // namespace logferry::aws
