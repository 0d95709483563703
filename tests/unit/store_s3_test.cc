// The S3 store against a real S3 implementation (moto_server on 127.0.0.1).
#include <gtest/gtest.h>

#include <random>

#include "aws/client.h"
#include "aws/credentials.h"
#include "common/strings.h"
#include "store/s3_store.h"
#include "support/moto_server.h"

namespace logferry {
namespace {

std::shared_ptr<aws::CredentialsProvider> TestCredentials() {
  return aws::MakeStaticProvider({.access_key_id = "AKIDTEST", .secret_access_key = "test-secret-never-printed"});
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class S3StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LF_REQUIRE_MOTO(server);
    endpoint_ = server->endpoint();
    bucket_ = "lf-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : bucket_) c = c == '_' ? '-' : static_cast<char>(tolower(c));
    aws::Client client({.service = "s3", .region = "us-east-1", .credentials = TestCredentials(), .s3_signing = true});
    HttpRequest req;
    req.method = "PUT";
    req.url = endpoint_ + "/" + bucket_;
    auto r = client.Send("create bucket", req, [](const HttpResponse& r) {
      return r.status == 200 || r.status == 409 ? Status::Ok() : Status::Internal("HTTP " + std::to_string(r.status));
    });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::unique_ptr<ObjectStore> Open(const std::string& prefix = "root/", size_t chunk = 8 << 20,
                                    size_t part = 8 << 20) {
    StoreOptions o;
    o.endpoint = endpoint_;
    o.region = "us-east-1";
    o.aws_credentials = TestCredentials();
    o.read_chunk_bytes = chunk;
    o.part_bytes = part;
    o.retry.max_attempts = 2;
    o.retry.initial_backoff_us = 1000;
    auto s = OpenObjectStore("s3://" + bucket_ + "/" + prefix, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  std::string endpoint_;
  std::string bucket_;
};

TEST_F(S3StoreTest, WriteStatReadDelete) {
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->uri(), "s3://" + bucket_ + "/root/");
  auto w = store->WriteAll("a/b.txt", "hello\n");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->size, 6u);
  EXPECT_EQ(w->crc32c, Crc32cHex(Crc32c(0, "hello\n", 6)));
  // A single-part ETag is the MD5 of the content.
  EXPECT_EQ(w->etag, HexEncode(Md5Raw("hello\n").data(), 16));
  auto st = store->Stat("a/b.txt");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->size, 6u);
  EXPECT_EQ(st->etag, w->etag);
  EXPECT_GT(st->mtime_us, 0);
  auto body = store->ReadAll("a/b.txt");
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, "hello\n");
  ASSERT_TRUE(store->Delete("a/b.txt").ok());
  EXPECT_TRUE(store->Stat("a/b.txt").status().IsNotFound());
  // Deleting what is not there succeeds (idempotent cleanup).
  EXPECT_TRUE(store->Delete("a/b.txt").ok());
}

TEST_F(S3StoreTest, EmptyObjectReadsAsEmpty) {
  auto store = Open();
  ASSERT_TRUE(store->WriteAll("empty", "").ok());
  auto body = store->ReadAll("empty");
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, "");
}

TEST_F(S3StoreTest, ListsOddKeysInOrderAcrossPages) {
  auto store = Open();
  std::vector<std::string> keys = {"logs/a b.gz", "logs/a+b.gz", "logs/caf\xc3\xa9.gz", "logs/100%.gz",
                                   "logs/x/y/z.gz", "logs/~tilde&amp.gz", "other/skip.gz"};
  for (const auto& k : keys) ASSERT_TRUE(store->WriteAll(k, k).ok()) << k;
  // An object outside the store's root is never listed.
  auto outside = Open("");
  ASSERT_TRUE(outside->WriteAll("logs/outside.gz", "x").ok());

  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store->List("logs/", token, 2);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->objects.size(), 2u);
    for (const auto& o : page->objects) seen.push_back(o.key);
    token = page->next_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  std::vector<std::string> want(keys.begin(), keys.end() - 1);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(seen, want);
  EXPECT_GE(pages, 3);
  // Every listed key reads back as the object written under it.
  for (const auto& k : want) EXPECT_EQ(store->ReadAll(k).value_or("?"), k) << k;
}

TEST_F(S3StoreTest, ReadsInRangedChunks) {
  auto store = Open("root/", /*chunk=*/1000);
  std::string data = RandomBytes(10'500, 1);
  ASSERT_TRUE(store->WriteAll("big", data).ok());
  auto r = store->OpenRead("big");
  ASSERT_TRUE(r.ok());
  std::string got;
  char buf[777];
  for (int i = 0; i < 100; ++i) {
    auto n = (*r)->Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    got.append(buf, *n);
    EXPECT_EQ((*r)->Offset(), got.size());
  }
  EXPECT_EQ(got, data);
}

TEST_F(S3StoreTest, ObjectReplacedMidReadFailsInsteadOfMixing) {
  auto store = Open("root/", /*chunk=*/1000);
  ASSERT_TRUE(store->WriteAll("k", std::string(5000, 'a')).ok());
  auto r = store->OpenRead("k");
  ASSERT_TRUE(r.ok());
  char buf[1000];
  ASSERT_EQ((*r)->Read(buf, sizeof buf).value_or(0), 1000u);
  ASSERT_TRUE(store->WriteAll("k", std::string(5000, 'b')).ok());
  auto n = (*r)->Read(buf, sizeof buf);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kFailedPrecondition) << n.status().ToString();
  EXPECT_NE(n.status().message().find("replaced while it was read"), std::string::npos);
  // Pinning to an etag that is no longer current fails at open.
  auto stale = store->OpenRead("k", {.if_etag = HexEncode(Md5Raw(std::string(5000, 'a')).data(), 16)});
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(S3StoreTest, LargeObjectsUseMultipartUploads) {
  auto store = Open("root/", 8 << 20, /*part=*/5 << 20);
  std::string data = RandomBytes(12 << 20, 2);
  auto w = store->OpenWrite("multi");
  ASSERT_TRUE(w.ok());
  for (size_t off = 0; off < data.size(); off += 1 << 20)
    ASSERT_TRUE((*w)->Write(std::string_view(data).substr(off, 1 << 20)).ok());
  auto done = (*w)->Commit();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->size, data.size());
  EXPECT_EQ(done->crc32c, Crc32cHex(Crc32c(0, data.data(), data.size())));
  // S3 names a multipart object's ETag "<md5 of part md5s>-<parts>".
  EXPECT_NE(done->etag.find('-'), std::string::npos) << done->etag;
  auto back = store->ReadAll("multi", 64 << 20);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->size(), data.size());
  EXPECT_TRUE(*back == data);
}

TEST_F(S3StoreTest, DroppedWriterLeavesNoObjectAndNoUpload) {
  auto store = Open("root/", 8 << 20, /*part=*/5 << 20);
  {
    auto w = store->OpenWrite("abandoned");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(RandomBytes(9 << 20, 3)).ok());  // starts the multipart upload
  }
  EXPECT_TRUE(store->Stat("abandoned").status().IsNotFound());
  aws::Client client({.service = "s3", .region = "us-east-1", .credentials = TestCredentials(), .s3_signing = true});
  HttpRequest req;
  req.url = endpoint_ + "/" + bucket_ + "?uploads=";
  auto r = client.Send("list uploads", req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body.find("<UploadId>"), std::string::npos) << r->body;
}

TEST_F(S3StoreTest, ErrorsNameTheObjectAndTheS3Code) {
  StoreOptions o;
  o.endpoint = endpoint_;
  o.aws_credentials = TestCredentials();
  o.retry.max_attempts = 1;
  auto store = OpenObjectStore("s3://no-such-bucket-lf/x/", o);
  ASSERT_TRUE(store.ok());
  auto page = (*store)->List("", "", 10);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kNotFound) << page.status().ToString();
  EXPECT_NE(page.status().message().find("NoSuchBucket"), std::string::npos) << page.status().ToString();
  EXPECT_NE(page.status().message().find("s3://no-such-bucket-lf/x/"), std::string::npos);
  EXPECT_EQ(page.status().message().find("test-secret-never-printed"), std::string::npos);
  auto missing = Open()->Stat("nope");
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
}

TEST(S3Addressing, VirtualHostedOnAwsPathStyleOnCustomEndpoints) {
  StoreOptions o;
  o.region = "eu-west-1";
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_ENDPOINT_URL_S3");
  auto a = ResolveS3Addressing("logs", o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->origin, "https://logs.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(a->bucket_path, "");
  // Dots in a bucket name would not match the wildcard certificate.
  a = ResolveS3Addressing("my.logs", o);
  EXPECT_EQ(a->origin, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(a->bucket_path, "/my.logs");
  o.addressing = "path";
  EXPECT_EQ(ResolveS3Addressing("logs", o)->bucket_path, "/logs");
  o.addressing = "auto";
  o.endpoint = "http://127.0.0.1:9000";
  a = ResolveS3Addressing("logs", o);
  EXPECT_EQ(a->origin, "http://127.0.0.1:9000");
  EXPECT_EQ(a->bucket_path, "/logs");
  o.addressing = "virtual";
  o.endpoint = "https://r2.example.com";
  EXPECT_EQ(ResolveS3Addressing("logs", o)->origin, "https://logs.r2.example.com");
  o.addressing = "sideways";
  EXPECT_EQ(ResolveS3Addressing("logs", o).status().code(), StatusCode::kInvalidArgument);
  // The AWS tools' environment variables, specific before general.
  o = StoreOptions{};
  setenv("AWS_ENDPOINT_URL", "http://general:1", 1);
  setenv("AWS_ENDPOINT_URL_S3", "http://specific:2", 1);
  setenv("AWS_REGION", "ap-northeast-1", 1);
  a = ResolveS3Addressing("logs", o);
  EXPECT_EQ(a->origin, "http://specific:2");
  EXPECT_EQ(a->region, "ap-northeast-1");
  unsetenv("AWS_ENDPOINT_URL_S3");
  EXPECT_EQ(ResolveS3Addressing("logs", o)->origin, "http://general:1");
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_REGION");
}

}  // namespace
}  // namespace logferry
