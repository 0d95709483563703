#include "aws/s3_events.h"

#include <gtest/gtest.h>

namespace logferry::aws {
namespace {

// Shaped like the documented S3 event message structure (version 2.1).
const char* kS3Event = R"({"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
  "eventTime":"2016-08-01T12:00:01.123Z","eventName":"ObjectCreated:Put",
  "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"app-logs","arn":"arn:aws:s3:::app-logs"},
  "object":{"key":"logs/2016080112_0+with+space%2B%C3%A9.gz","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
  "sequencer":"0055AED6DCD90281E5"}}},
  {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"app-logs"},"object":{"key":"gone.gz"}}}]})";

TEST(S3Events, DecodesKeysAndKeepsOnlyCreations) {
  auto m = ParseS3EventMessage(kS3Event);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->created.size(), 1u);
  EXPECT_EQ(m->ignored, 1);
  const S3EventObject& o = m->created[0];
  EXPECT_EQ(o.bucket, "app-logs");
  // '+' is a space, %2B a plus, %C3%A9 an é.
  EXPECT_EQ(o.key, "logs/2016080112_0 with space+\xc3\xa9.gz");
  EXPECT_EQ(o.size, 1024u);
  EXPECT_EQ(o.etag, "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(o.event_name, "ObjectCreated:Put");
  EXPECT_GT(o.event_time_us, 0);
}

TEST(S3Events, TestEventIsRecognized) {
  auto m = ParseS3EventMessage(
      R"({"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2016-08-01T12:00:00.000Z","Bucket":"app-logs"})");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->test_event);
  EXPECT_TRUE(m->created.empty());
}

TEST(S3Events, SnsWrappedNotification) {
  std::string inner = kS3Event;
  std::string escaped;
  for (char c : inner) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  std::string body = R"({"Type":"Notification","MessageId":"x","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":")" +
                     escaped + R"("})";
  auto m = ParseS3EventMessage(body);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->created.size(), 1u);
  EXPECT_EQ(m->created[0].key, "logs/2016080112_0 with space+\xc3\xa9.gz");
}

TEST(S3Events, EventBridgeKeysAreNotEncoded) {
  auto m = ParseS3EventMessage(R"({"version":"0","detail-type":"Object Created","source":"aws.s3",
    "time":"2016-08-01T12:00:01Z","detail":{"bucket":{"name":"app-logs"},
    "object":{"key":"logs/a+b c.gz","size":7,"etag":"abc"}}})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->created.size(), 1u);
  EXPECT_EQ(m->created[0].key, "logs/a+b c.gz");
  EXPECT_EQ(m->created[0].size, 7u);
  auto deleted = ParseS3EventMessage(
      R"({"detail-type":"Object Deleted","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"k"}}})");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->created.empty());
  EXPECT_EQ(deleted->ignored, 1);
}

TEST(S3Events, OtherBodiesAreRejectedWithAReason) {
  for (const char* body : {"not json", "[1,2]", R"({"hello":"world"})", R"({"Records":5})",
                           R"({"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{}}}]})",
                           R"({"Type":"Notification","Message":"{oops"})"}) {
    auto m = ParseS3EventMessage(body);
    ASSERT_FALSE(m.ok()) << body;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(m.status().message().empty());
  }
}

}  // namespace
}  // namespace logferry::aws
