// Event-driven discovery in the pipeline (receive, hold, extend, settle)
// against local stand-ins for S3 and SQS that answer as AWS documents: the
// cases moto cannot produce on demand (a HeadObject refused with 403, a GET
// held until the test has seen what it waits for).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "http/http_client.h"
#include "ledger/ledger.h"
#include "local_http_server.h"
#include "support/fake_env.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

constexpr const char* kBucket = "app-logs";

std::string S3Error(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>m</Message></Error>";
}

std::string QueryParam(const std::string& query, const std::string& name) {
  for (const std::string& item : Split(query, '&')) {
    size_t eq = item.find('=');
    if (item.substr(0, eq) == name) return eq == std::string::npos ? "" : UriDecode(item.substr(eq + 1));
  }
  return {};
}

// Path-style S3: ListObjectsV2, HeadObject and ranged GetObject of one bucket.
class S3StandIn {
 public:
  struct Object {
    std::string body;
    int head_status = 200;  // anything else: HEAD and GET answer with it
    bool listed = true;
  };

  void Put(const std::string& key, std::string body, int head_status = 200, bool listed = true) {
    std::lock_guard lock(mu_);
    objects_[key] = Object{std::move(body), head_status, listed};
  }
  static std::string ETagOf(const std::string& body) { return HexEncode(Md5Raw(body).data(), 16); }
  // How HEAD answers for a key that does not exist: 404, or 403 as S3 does
  // when the caller may not list the bucket.
  void set_missing_status(int status) { missing_status_ = status; }
  // Runs before a GET of key is answered (on the server's thread).
  void set_before_get(std::function<void(const std::string& key)> fn) { before_get_ = std::move(fn); }
  std::string Url() const { return server_.Url(); }
  std::vector<LocalHttpRequest> Requests() const { return server_.Requests(); }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    std::string bucket_path = std::string("/") + kBucket;
    if (r.method == "GET" && (r.path == bucket_path || r.path == bucket_path + "/") &&
        QueryParam(r.query, "list-type") == "2")
      return List(QueryParam(r.query, "prefix"));
    if (!StartsWith(r.path, bucket_path + "/")) return {404, {}, S3Error("NoSuchBucket")};
    std::string key = UriDecode(r.path.substr(bucket_path.size() + 1));
    Object object;
    {
      std::lock_guard lock(mu_);
      auto it = objects_.find(key);
      if (it == objects_.end())
        return {missing_status_, {}, missing_status_ == 404 ? S3Error("NoSuchKey") : S3Error("AccessDenied")};
      object = it->second;
    }
    if (object.head_status != 200) return {object.head_status, {}, S3Error("AccessDenied")};
    std::vector<std::pair<std::string, std::string>> headers = {{"ETag", "\"" + ETagOf(object.body) + "\""},
                                                                {"Last-Modified", "Mon, 01 Aug 2016 01:00:00 GMT"}};
    if (r.method == "HEAD") return {200, headers, object.body};
    if (r.method != "GET") return {405, {}, S3Error("MethodNotAllowed")};
    if (before_get_) before_get_(key);
    std::string range = r.Header("range");
    if (!StartsWith(range, "bytes=")) return {200, headers, object.body};
    size_t dash = range.find('-');
    uint64_t from = std::stoull(range.substr(6, dash - 6));
    uint64_t to = std::min<uint64_t>(std::stoull(range.substr(dash + 1)), object.body.size() - 1);
    headers.emplace_back("Content-Range", "bytes " + std::to_string(from) + "-" + std::to_string(to) + "/" +
                                              std::to_string(object.body.size()));
    return {206, headers, object.body.substr(from, to - from + 1)};
  }

  LocalHttpResponse List(const std::string& prefix) {
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>" + std::string(kBucket) +
                      "</Name><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>";
    std::lock_guard lock(mu_);
    for (const auto& [key, object] : objects_) {
      if (!StartsWith(key, prefix) || !object.listed) continue;
      xml += "<Contents><Key>" + UriEncode(key, true) + "</Key><Size>" + std::to_string(object.body.size()) +
             "</Size><ETag>\"" + ETagOf(object.body) +
             "\"</ETag><LastModified>2016-08-01T01:00:00.000Z</LastModified></Contents>";
    }
    return {200, {}, xml + "</ListBucketResult>"};
  }

  std::mutex mu_;
  std::map<std::string, Object> objects_;
  int missing_status_ = 404;
  std::function<void(const std::string&)> before_get_;
  LocalHttpServer server_{[this](const LocalHttpRequest& r) { return Handle(r); }};
};

// SQS over the JSON 1.0 protocol: the first ReceiveMessage delivers the
// queued messages, later ones find the queue empty; every call is recorded.
class SqsStandIn {
 public:
  void Queue(const std::string& id, const std::string& receipt, const std::string& body) {
    std::lock_guard lock(mu_);
    pending_.push_back({{"MessageId", id},
                        {"ReceiptHandle", receipt},
                        {"Body", body},
                        {"Attributes", {{"ApproximateReceiveCount", "1"}}}});
  }
  std::string QueueUrl() const { return server_.Url() + "/123456789012/s3-events"; }
  // WaitTimeSeconds of every ReceiveMessage, in order.
  std::vector<int> WaitTimes() const {
    std::vector<int> out;
    for (const LocalHttpRequest& r : server_.Requests()) {
      if (r.Header("x-amz-target") != "AmazonSQS.ReceiveMessage") continue;
      json j = json::parse(r.body, nullptr, false);
      out.push_back(j.is_object() ? j.value("WaitTimeSeconds", -1) : -1);
    }
    return out;
  }
  // Receipt handles of every call of this action, in order.
  std::vector<std::string> Receipts(const std::string& action) const {
    std::vector<std::string> out;
    for (const LocalHttpRequest& r : server_.Requests()) {
      if (r.Header("x-amz-target") != "AmazonSQS." + action) continue;
      json j = json::parse(r.body, nullptr, false);
      if (j.is_object()) out.push_back(j.value("ReceiptHandle", ""));
    }
    return out;
  }

 private:
  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    std::string action = r.Header("x-amz-target");
    if (action == "AmazonSQS.ReceiveMessage") {
      std::lock_guard lock(mu_);
      json out = json::object();
      if (!pending_.empty()) out["Messages"] = std::move(pending_);
      pending_ = json::array();
      return {200, {{"Content-Type", "application/x-amz-json-1.0"}}, out.dump()};
    }
    if (action == "AmazonSQS.DeleteMessage" || action == "AmazonSQS.ChangeMessageVisibility")
      return {200, {{"Content-Type", "application/x-amz-json-1.0"}}, "{}"};
    return {400, {}, R"({"__type":"com.amazonaws.sqs#InvalidAction","message":"unexpected"})"};
  }

  std::mutex mu_;
  json pending_ = json::array();
  LocalHttpServer server_{[this](const LocalHttpRequest& r) { return Handle(r); }};
};

std::string S3Event(const std::string& key, const std::string& body) {
  json record = {{"eventVersion", "2.1"},
                 {"eventSource", "aws:s3"},
                 {"eventName", "ObjectCreated:Put"},
                 {"eventTime", "2016-08-01T01:00:00.000Z"},
                 {"s3",
                  {{"bucket", {{"name", kBucket}}},
                   {"object", {{"key", "logs/" + key}, {"size", body.size()}, {"eTag", S3StandIn::ETagOf(body)}}}}}};
  return json({{"Records", {record}}}).dump();
}

std::string LogLines(int hour, int n) {
  std::string out;
  char time[64];
  for (int i = 0; i < n; ++i) {
    snprintf(time, sizeof time, "2016-08-01T%02d:%02d:00+00:00", hour, i % 60);
    out += std::string(time) + "\ttest.access\t{\"n\":" + std::to_string(i) + "}\n";
  }
  return out;
}

class PipelineEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    // The pipeline takes the process's credential chain; nothing here may
    // reach a real AWS host or a metadata endpoint.
    setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "stand-in-secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    dir_ = fs::temp_directory_path() / ("lf-events-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "staging");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // One table reading s3://app-logs/logs/ from the S3 stand-in (through
  // source_endpoint), staging into a directory, events from the SQS stand-in.
  void Open() {
    std::string text = "state_dir = \"" + dir_.string() + "\"\nworkers = 1\n\n[[table]]\nname = \"access\"\n" +
                       "source = \"s3://" + kBucket + "/logs/\"\nsource_endpoint = \"" + s3_.Url() + "\"\n" +
                       "region = \"us-east-1\"\nstaging = \"file://" + (dir_ / "staging").string() + "/\"\n" +
                       "warehouse = \"duckdb://" + (dir_ / "w.duckdb").string() + "\"\nnotifications = \"" +
                       sqs_.QueueUrl() + "\"\nsqs_wait = \"5s\"\n";
    auto config = ParseConfig(text, "test.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::make_unique<Config>(std::move(*config));
    // Below SQS's 10 s floor for the config file, so the heartbeat is due
    // every second of the fake clock, which the test moves on.
    config_->tables[0].sqs_visibility_us = 3 * kMicrosPerSecond;
    auto ledger = Ledger::Open(dir_ / "ledger.db");
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    pipeline_ = std::make_unique<Pipeline>(*config_, ledger_.get(), &env_);
    Status s = pipeline_->Init();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::vector<NotificationRow> Failing() {
    auto rows = ledger_->Notifications("access", "failing");
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? *rows : std::vector<NotificationRow>{};
  }

  fs::path dir_;
  // Starts at the real time, which the ledger rows the tests make use. The
  // stores' retry backoffs pass on it too, instantly.
  testutil::FakeEnv env_{NowMicros()};
  S3StandIn s3_;
  SqsStandIn sqs_;
  std::unique_ptr<Config> config_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Pipeline> pipeline_;
};

// A message whose object keeps failing must time out and be delivered again
// (so the queue's maxReceiveCount moves it to the dead-letter queue), even
// while other objects stage and their messages are kept invisible.
TEST_F(PipelineEvents, OnlyMessagesOfObjectsBeingStagedAreExtended) {
  const std::string failing_key = "2016080100_0.log", slow_key = "2016080101_0.log";
  std::string failing_body = LogLines(0, 10), slow_body = LogLines(1, 20);
  s3_.Put("logs/" + failing_key, failing_body);
  s3_.Put("logs/" + slow_key, slow_body);
  ASSERT_NO_FATAL_FAILURE(Open());
  // The failing object has failed three times already and waits for its
  // next retry; the pass sees its message as failing.
  ObjectInfo info{failing_key, failing_body.size(), 0, S3StandIn::ETagOf(failing_body)};
  ASSERT_TRUE(ledger_->RecordDiscovered("access", {info}, "listing", NowMicros()).ok());
  auto row = ledger_->FindObject("access", failing_key, info.etag);
  ASSERT_TRUE(row.ok() && *row);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(ledger_->MarkFailed((*row)->id, "CORRUPTION: truncated", NowMicros() + kMicrosPerHour).ok());
  sqs_.Queue("m-failing", "receipt-failing", S3Event(failing_key, failing_body));
  sqs_.Queue("m-slow", "receipt-slow", S3Event(slow_key, slow_body));
  // The slow object's first GET is answered only once its message has been
  // extended: the test moves the clock on by a heartbeat's interval and
  // waits for the heartbeat thread to notice (bounded: a broken heartbeat
  // fails the assertions below).
  s3_.set_before_get([&](const std::string&) {
    for (int i = 0; i < 300; ++i) {
      auto extended = sqs_.Receipts("ChangeMessageVisibility");
      if (std::count(extended.begin(), extended.end(), "receipt-slow") > 0) return;
      env_.Advance(kMicrosPerSecond);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  std::atomic<bool> stop{false};
  auto pass = pipeline_->RunOnce(stop);
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_EQ(pass->staged_objects, 1);

  auto extended = sqs_.Receipts("ChangeMessageVisibility");
  EXPECT_GE(std::count(extended.begin(), extended.end(), "receipt-slow"), 1);
  EXPECT_EQ(std::count(extended.begin(), extended.end(), "receipt-failing"), 0)
      << "the failing object's message was kept in flight";
  EXPECT_EQ(sqs_.Receipts("DeleteMessage"), std::vector<std::string>{"receipt-slow"});
  // The first receive of the pass long-polls for sqs_wait; the ones that
  // drain the rest of the queue do not wait.
  auto waits = sqs_.WaitTimes();
  ASSERT_GE(waits.size(), 2u);
  EXPECT_EQ(waits[0], 5);
  for (size_t i = 1; i < waits.size(); ++i) {
    EXPECT_EQ(waits[i], 0);
  }
  auto failing = Failing();
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_EQ(failing[0].message_id, "m-failing");
}

// A HeadObject refused with 403 fails that message only: it is recorded (so
// status shows it) and left on the queue, while the rest of the batch is
// handled. An object deleted since its event (404) needs no work, so its
// message is deleted.
TEST_F(PipelineEvents, RefusedHeadIsRecordedAndTheBatchGoesOn) {
  const std::string refused = "2016080100_0.log", deleted = "2016080101_0.log", good = "2016080102_0.log";
  s3_.Put("logs/" + refused, LogLines(0, 5), /*head_status=*/403);
  s3_.Put("logs/" + good, LogLines(2, 7));
  ASSERT_NO_FATAL_FAILURE(Open());
  sqs_.Queue("m-1-refused", "receipt-refused", S3Event(refused, LogLines(0, 5)));
  sqs_.Queue("m-2-deleted", "receipt-deleted", S3Event(deleted, LogLines(1, 5)));
  sqs_.Queue("m-3-good", "receipt-good", S3Event(good, LogLines(2, 7)));

  std::atomic<bool> stop{false};
  for (int pass = 0; pass < 2; ++pass) {
    auto stats = pipeline_->RunOnce(stop);
    ASSERT_TRUE(stats.ok()) << "pass " << pass << ": " << stats.status().ToString();
  }
  auto deletes = sqs_.Receipts("DeleteMessage");
  EXPECT_EQ(std::set<std::string>(deletes.begin(), deletes.end()),
            (std::set<std::string>{"receipt-deleted", "receipt-good"}));
  auto failing = Failing();
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_EQ(failing[0].message_id, "m-1-refused");
  EXPECT_NE(failing[0].detail.find("s3://app-logs/logs/" + refused), std::string::npos) << failing[0].detail;
  EXPECT_NE(failing[0].detail.find("403"), std::string::npos) << failing[0].detail;
  EXPECT_NE(failing[0].excerpt.find("ObjectCreated"), std::string::npos) << failing[0].excerpt;
  auto staged = ledger_->FindObject("access", good, S3StandIn::ETagOf(LogLines(2, 7)));
  ASSERT_TRUE(staged.ok() && *staged);
  EXPECT_EQ((*staged)->state, ObjectState::kStaged);
  auto objects = ledger_->Objects("access");
  ASSERT_TRUE(objects.ok());
  for (const ObjectRow& o : *objects) {
    EXPECT_NE(o.key, deleted);
  }
}

// A HeadObject that keeps failing transiently (503 through every retry) is
// recorded too, but ends the receive loop: the source is struggling, the
// rest of the batch would wait as long, and the pass lists instead.
TEST_F(PipelineEvents, HeadObjectUnavailableRecordsTheMessageAndStopsReceiving) {
  const std::string unavailable = "2016080100_0.log", good = "2016080102_0.log";
  // Unlisted, so that only the event's HeadObject meets the 503s.
  s3_.Put("logs/" + unavailable, LogLines(0, 5), /*head_status=*/503, /*listed=*/false);
  s3_.Put("logs/" + good, LogLines(2, 7));
  ASSERT_NO_FATAL_FAILURE(Open());
  sqs_.Queue("m-1-unavailable", "receipt-unavailable", S3Event(unavailable, LogLines(0, 5)));
  sqs_.Queue("m-2-good", "receipt-good", S3Event(good, LogLines(2, 7)));

  std::atomic<bool> stop{false};
  auto stats = pipeline_->RunOnce(stop);
  ASSERT_FALSE(stats.ok());
  EXPECT_TRUE(stats.status().IsTransient()) << stats.status().ToString();
  EXPECT_NE(stats.status().message().find(unavailable), std::string::npos) << stats.status().ToString();
  auto failing = Failing();
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_EQ(failing[0].message_id, "m-1-unavailable");
  EXPECT_NE(failing[0].detail.find("503"), std::string::npos) << failing[0].detail;
  // Neither message is held: nothing is deleted; the good one comes back
  // when its visibility runs out, and the listing has found its object.
  EXPECT_TRUE(sqs_.Receipts("DeleteMessage").empty());
  EXPECT_EQ(sqs_.WaitTimes().size(), 1u) << "no further receive after the failure";
  auto staged = ledger_->FindObject("access", good, S3StandIn::ETagOf(LogLines(2, 7)));
  ASSERT_TRUE(staged.ok() && *staged);
  EXPECT_EQ((*staged)->found_by, "listing");
  EXPECT_EQ((*staged)->state, ObjectState::kStaged);
}

// Without s3:ListBucket (or with it granted only on a prefix), S3 answers
// HeadObject for a missing key with 403. A listing under the key tells that
// the object is gone, so its message is handled like a 404.
TEST_F(PipelineEvents, DeletedObjectRefusedWith403IsRecognisedByListing) {
  const std::string deleted = "2016080101_0.log", good = "2016080102_0.log";
  s3_.set_missing_status(403);
  s3_.Put("logs/" + good, LogLines(2, 7));
  ASSERT_NO_FATAL_FAILURE(Open());
  sqs_.Queue("m-1-deleted", "receipt-deleted", S3Event(deleted, LogLines(1, 5)));
  sqs_.Queue("m-2-good", "receipt-good", S3Event(good, LogLines(2, 7)));

  std::atomic<bool> stop{false};
  auto stats = pipeline_->RunOnce(stop);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  auto deletes = sqs_.Receipts("DeleteMessage");
  EXPECT_EQ(std::set<std::string>(deletes.begin(), deletes.end()),
            (std::set<std::string>{"receipt-deleted", "receipt-good"}));
  EXPECT_TRUE(Failing().empty());
  bool listed_under_key = false;
  for (const LocalHttpRequest& r : s3_.Requests())
    listed_under_key |= r.method == "GET" && QueryParam(r.query, "prefix") == "logs/" + deleted;
  EXPECT_TRUE(listed_under_key);
}

}  // namespace
}  // namespace logferry
