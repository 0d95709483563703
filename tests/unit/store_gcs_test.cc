// The GCS store's protocol paths that the Cloud Storage emulator cannot
// exercise (it finalizes chunked resumable uploads early and ignores
// preconditions), against a LOCAL STAND-IN written from Google's documented
// JSON API protocol: resumable uploads answer 308 with "Range: bytes=0-N",
// a status probe is a PUT with "Content-Range: bytes */TOTAL". The emulator
// itself is used by the end-to-end tests.
#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "common/strings.h"
#include "gcp/credentials.h"
#include "local_http_server.h"
#include "registry/scheme_registry.h"
#include "store/gcs_store.h"

namespace logferry {
namespace {

using nlohmann::json;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

StoreOptions Options(const std::string& endpoint) {
  StoreOptions o;
  o.endpoint = endpoint;
  o.gcp_tokens = gcp::MakeStaticTokenProvider("test-token-not-for-messages");
  o.retry.max_attempts = 4;
  o.retry.initial_backoff_us = 1000;
  o.retry.max_backoff_us = 2000;
  o.resumable_threshold = 256 << 10;
  o.part_bytes = 512 << 10;
  o.read_chunk_bytes = 100'000;
  return o;
}

TEST(GcsStore, Crc32cIsBase64OfBigEndianBytes) {
  // CRC32C("123456789") = 0xE3069283, the standard check value.
  EXPECT_EQ(Crc32cBase64(Crc32c(0, "123456789", 9)), "4waSgw==");
}

TEST(GcsStore, EndpointFollowsStorageEmulatorHost) {
  unsetenv("STORAGE_EMULATOR_HOST");
  EXPECT_EQ(GcsEndpoint({}), "https://storage.googleapis.com");
  setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9199", 1);
  EXPECT_EQ(GcsEndpoint({}), "http://127.0.0.1:9199");
  setenv("STORAGE_EMULATOR_HOST", "http://localhost:9023/", 1);
  EXPECT_EQ(GcsEndpoint({}), "http://localhost:9023");
  StoreOptions o;
  o.endpoint = "https://gcs.example.com";
  EXPECT_EQ(GcsEndpoint(o), "https://gcs.example.com");
  unsetenv("STORAGE_EMULATOR_HOST");
}

// A resumable-upload session that drops the connection in the middle of the
// second chunk after persisting part of it, as a real network might.
TEST(GcsStore, ResumableUploadContinuesFromWhatTheServerPersisted) {
  std::mutex mu;
  std::string base;  // the stand-in's own URL, for the session URI
  std::string stored;
  bool dropped = false;
  int probes = 0;
  std::string final_hash;  // X-Goog-Hash of the request that finished the upload
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method == "POST" && r.path == "/upload/storage/v1/b/bkt/o") {
      EXPECT_NE(r.query.find("uploadType=resumable"), std::string::npos);
      EXPECT_EQ(json::parse(r.body).value("name", ""), "pre/big.bin");
      EXPECT_EQ(r.Header("authorization"), "Bearer test-token-not-for-messages");
      return {200, {{"Location", base + "/session?upload_id=xyz"}}, ""};
    }
    if (r.method == "PUT" && r.path == "/session") {
      std::string range = r.Header("content-range");  // "bytes a-b/total" or "bytes */total"
      std::string total = range.substr(range.find('/') + 1);
      if (range.rfind("bytes */", 0) == 0) {
        ++probes;
      } else {
        size_t a = std::stoull(range.substr(6, range.find('-') - 6));
        EXPECT_EQ(a, stored.size()) << "a chunk must start where the server's data ends";
        if (!dropped && !stored.empty()) {
          dropped = true;
          stored += r.body.substr(0, 256 << 10);
          LocalHttpResponse reset;
          reset.close_without_reply = true;
          return reset;
        }
        stored += r.body;
      }
      if (total != "*" && stored.size() == std::stoull(total)) {
        final_hash = r.Header("x-goog-hash");
        json o = {{"name", "pre/big.bin"},
                  {"bucket", "bkt"},
                  {"generation", "1700000000000001"},
                  {"size", std::to_string(stored.size())},
                  {"crc32c", Crc32cBase64(Crc32c(0, stored.data(), stored.size()))}};
        return {200, {{"Content-Type", "application/json"}}, o.dump()};
      }
      if (stored.empty()) return {308, {}, ""};
      return {308, {{"Range", "bytes=0-" + std::to_string(stored.size() - 1)}}, ""};
    }
    return {404, {}, R"({"error":{"code":404,"message":"not here","errors":[{"reason":"notFound"}]}})"};
  });
  base = server.Url();
  auto store = OpenObjectStore("gs://bkt/pre/", Options(server.Url()));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::string data = RandomBytes((3 << 19) + 12345, 7);  // three 512 KiB chunks and a bit
  auto w = (*store)->OpenWrite("big.bin");
  ASSERT_TRUE(w.ok());
  for (size_t off = 0; off < data.size(); off += 100'000)
    ASSERT_TRUE((*w)->Write(std::string_view(data).substr(off, 100'000)).ok());
  auto done = (*w)->Commit();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_TRUE(dropped);
  EXPECT_GE(probes, 1) << "after the drop the client asks the session how much it has";
  EXPECT_EQ(stored.size(), data.size());
  EXPECT_TRUE(stored == data) << "the resumed upload is byte for byte the data written";
  EXPECT_EQ(done->etag, "1700000000000001");
  EXPECT_EQ(done->crc32c, Crc32cHex(Crc32c(0, data.data(), data.size())));
  // GCS validates the whole object against the hashes on the final request.
  EXPECT_EQ(final_hash,
            "crc32c=" + Crc32cBase64(Crc32c(0, data.data(), data.size())) + ",md5=" + Base64Encode(Md5Raw(data)));
}

// A resumable session whose final chunk is answered, PUT by PUT, as
// `answers` says: 'F' a 503, 'P' a 308 after keeping one quantum of it, 'S'
// a 308 keeping none of it, 'A' the finished object; past its end, 503. Status probes report what is kept.
struct FlakySession {
  std::string answers;
  std::string stored;
  int final_puts = 0;
  int probes = 0;

  char NextAnswer() {
    size_t i = final_puts++;
    return i < answers.size() ? answers[i] : 'F';
  }
};

StatusOr<WrittenObject> UploadThrough(FlakySession* s, const std::string& data) {
  std::mutex mu;
  std::string base;
  auto kept = [&]() -> LocalHttpResponse {
    if (s->stored.empty()) return {308, {}, ""};
    return {308, {{"Range", "bytes=0-" + std::to_string(s->stored.size() - 1)}}, ""};
  };
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method == "POST") return {200, {{"Location", base + "/session"}}, ""};
    std::string range = r.Header("content-range");
    if (range.rfind("bytes */", 0) == 0) {
      ++s->probes;
      return kept();
    }
    bool last = range.back() != '*';
    char answer = last ? s->NextAnswer() : 'A';
    if (answer == 'F') return {503, {}, R"({"error":{"code":503,"message":"try again"}})"};
    if (answer == 'S') return kept();
    s->stored += answer == 'P' ? r.body.substr(0, 256 << 10) : r.body;
    if (!last || answer == 'P') return kept();
    json o = {{"name", "pre/f"},
              {"generation", "5"},
              {"size", std::to_string(s->stored.size())},
              {"crc32c", Crc32cBase64(Crc32c(0, s->stored.data(), s->stored.size()))}};
    return {200, {}, o.dump()};
  });
  base = server.Url();
  LF_ASSIGN_OR_RETURN(auto store, OpenObjectStore("gs://bkt/pre/", Options(server.Url())));
  LF_ASSIGN_OR_RETURN(auto w, store->OpenWrite("f"));
  LF_RETURN_IF_ERROR(w->Write(data));
  return w->Commit();
}

// The retry layer bounds a chunk's attempts (4 here), probing the session
// before each retry; a 308 that kept part of the chunk starts the count over.
TEST(GcsStore, ResumableChunkRetriesAreBoundedAndProgressStartsTheCountOver) {
  std::string data = RandomBytes((1 << 20) + 100, 3);  // a 512 KiB chunk, then 512 KiB + 100 to finish
  FlakySession down;
  auto failed = UploadThrough(&down, data);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.status().IsTransient()) << failed.status().ToString();
  EXPECT_EQ(down.final_puts, 4);
  EXPECT_EQ(down.probes, 3);

  FlakySession flaky{"FFFPFFFA"};  // seven failures, yet never four in a row
  auto done = UploadThrough(&flaky, data);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(flaky.final_puts, 8);
  EXPECT_EQ(flaky.probes, 6);
  EXPECT_TRUE(flaky.stored == data);
  EXPECT_EQ(done->etag, "5");
}

// A server that answers every PUT with 308 and keeps nothing: each such
// answer counts as a failed attempt, so the upload gives up after
// max_attempts (4) instead of sending the chunk forever. There is nothing to
// probe: the 308 said what the session has.
TEST(GcsStore, ResumableUploadGivesUpOnA308ThatNeverProgresses) {
  std::string data = RandomBytes((1 << 20) + 100, 4);
  FlakySession stuck{std::string(1000, 'S')};  // bounded even if the bound broke
  auto failed = UploadThrough(&stuck, data);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.status().IsTransient()) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("keeps none"), std::string::npos) << failed.status().ToString();
  EXPECT_EQ(stuck.final_puts, 4);
  EXPECT_EQ(stuck.probes, 0);
}

// A multipart upload whose stored CRC32C differs from the bytes sent is
// rejected (and that generation removed), not recorded as written.
TEST(GcsStore, UploadWithWrongStoredChecksumIsRetriedNotAccepted) {
  std::mutex mu;
  int uploads = 0;
  std::vector<std::string> deletes;
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method == "POST" && r.path == "/upload/storage/v1/b/bkt/o") {
      EXPECT_NE(r.query.find("uploadType=multipart"), std::string::npos);
      EXPECT_NE(r.Header("content-type").find("multipart/related; boundary="), std::string::npos);
      // The metadata part names both checksums, for GCS to check on arrival.
      size_t meta_at = r.body.find("{\"");
      json meta = json::parse(r.body.substr(meta_at, r.body.find("\r\n", meta_at) - meta_at));
      EXPECT_EQ(meta.value("crc32c", ""), Crc32cBase64(Crc32c(0, "hello", 5)));
      EXPECT_EQ(meta.value("md5Hash", ""), Base64Encode(Md5Raw("hello")));
      ++uploads;
      // First a damaged CRC32C, then a damaged MD5, then the truth.
      json o = {{"name", "small"},
                {"generation", std::to_string(uploads)},
                {"size", "5"},
                {"crc32c", uploads == 1 ? "AAAAAA==" : Crc32cBase64(Crc32c(0, "hello", 5))},
                {"md5Hash", uploads == 2 ? Base64Encode(Md5Raw("hellp")) : Base64Encode(Md5Raw("hello"))}};
      return {200, {}, o.dump()};
    }
    if (r.method == "DELETE") {
      deletes.push_back(r.target);
      return {204, {}, ""};
    }
    return {404, {}, ""};
  });
  auto store = OpenObjectStore("gs://bkt/", Options(server.Url()));
  ASSERT_TRUE(store.ok());
  auto first = (*store)->WriteAll("small", "hello");
  ASSERT_FALSE(first.ok());
  EXPECT_TRUE(first.status().IsTransient()) << first.status().ToString();
  EXPECT_NE(first.status().message().find("crc32c"), std::string::npos) << first.status().ToString();
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_NE(deletes[0].find("ifGenerationMatch=1"), std::string::npos) << deletes[0];
  auto second = (*store)->WriteAll("small", "hello");
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsTransient()) << second.status().ToString();
  EXPECT_NE(second.status().message().find("md5"), std::string::npos) << second.status().ToString();
  ASSERT_EQ(deletes.size(), 2u);
  EXPECT_NE(deletes[1].find("ifGenerationMatch=2"), std::string::npos) << deletes[1];
  auto third = (*store)->WriteAll("small", "hello");
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->etag, "3");
}

// Reads are pinned to the generation seen at open and checked against the
// object's CRC32C at the end.
TEST(GcsStore, ReadsDetectReplacementAndDamage) {
  std::mutex mu;
  std::string content = RandomBytes(250'000, 9);
  std::string generation = "11";
  std::string served_generation = "11";
  bool damage = false;
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method == "GET" && r.path == "/storage/v1/b/bkt/o/f" && r.query.find("alt=media") == std::string::npos) {
      json o = {{"name", "f"},
                {"generation", generation},
                {"size", std::to_string(content.size())},
                {"crc32c", Crc32cBase64(Crc32c(0, content.data(), content.size()))},
                {"updated", "2016-08-01T00:00:00.000Z"}};
      return {200, {}, o.dump()};
    }
    if (r.method == "GET" && r.path == "/storage/v1/b/bkt/o/f") {
      EXPECT_NE(r.query.find("ifGenerationMatch=" + generation), std::string::npos) << r.query;
      std::string range = r.Header("range");  // bytes=a-b
      size_t a = std::stoull(range.substr(6, range.find('-') - 6));
      size_t b = std::stoull(range.substr(range.find('-') + 1));
      std::string body = content.substr(a, b - a + 1);
      if (damage && a > 0) body[0] ^= 1;
      return {206, {{"x-goog-generation", served_generation}}, body};
    }
    return {404, {}, ""};
  });
  auto store = OpenObjectStore("gs://bkt/", Options(server.Url()));
  ASSERT_TRUE(store.ok());
  auto whole = (*store)->ReadAll("f");
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_TRUE(*whole == content);

  damage = true;
  auto damaged = (*store)->ReadAll("f");
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.status().message().find("crc32c"), std::string::npos) << damaged.status().ToString();
  damage = false;

  auto r = (*store)->OpenRead("f");
  ASSERT_TRUE(r.ok());
  char buf[100'000];
  ASSERT_TRUE((*r)->Read(buf, sizeof buf).ok());
  {
    std::lock_guard lock(mu);
    served_generation = "12";  // replaced between two chunks
  }
  auto next = (*r)->Read(buf, sizeof buf);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), StatusCode::kFailedPrecondition) << next.status().ToString();
  EXPECT_EQ(next.status().message().find("test-token-not-for-messages"), std::string::npos);
}

// Listing pages through Google's pageToken and honours the interface's
// start-after token whether or not the server implements startOffset (the
// emulator does not; GCS does).
TEST(GcsStore, ListingPagesCompletelyWithOrWithoutStartOffset) {
  std::vector<std::string> names;
  for (int i = 0; i < 23; ++i) names.push_back("pre/k" + std::string(i < 10 ? "0" : "") + std::to_string(i));
  names.push_back("other/x");
  std::sort(names.begin(), names.end());
  for (bool honour_start_offset : {false, true}) {
    LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
      auto param = [&](const std::string& key) -> std::string {
        for (const std::string& kv : Split(r.query, '&'))
          if (kv.rfind(key + "=", 0) == 0) return UriDecode(kv.substr(key.size() + 1));
        return "";
      };
      std::string prefix = param("prefix"), token = param("pageToken"), start = param("startOffset");
      size_t max = std::stoul(param("maxResults"));
      json items = json::array();
      std::string next;
      for (const std::string& n : names) {
        if (n.rfind(prefix, 0) != 0 || (!token.empty() && n <= token)) continue;
        if (honour_start_offset && !start.empty() && n < start) continue;
        if (items.size() == std::min<size_t>(max, 5)) {  // the server pages at 5 whatever is asked
          next = items.back()["name"];
          break;
        }
        items.push_back({{"name", n}, {"generation", "1"}, {"size", "1"}});
      }
      json body = {{"items", items}};
      if (!next.empty()) body["nextPageToken"] = next;
      return {200, {}, body.dump()};
    });
    auto store = OpenObjectStore("gs://bkt/pre/", Options(server.Url()));
    ASSERT_TRUE(store.ok());
    auto all = (*store)->ListAll("");
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    ASSERT_EQ(all->size(), 23u) << "honour_start_offset=" << honour_start_offset;
    std::vector<std::string> want;
    for (const std::string& n : names)
      if (n.rfind("pre/", 0) == 0) want.push_back(n.substr(4));
    std::vector<std::string> got;
    for (const ObjectInfo& o : *all) got.push_back(o.key);
    EXPECT_EQ(got, want);
    for (size_t i = 1; i < all->size(); ++i) {
      EXPECT_LT((*all)[i - 1].key, (*all)[i].key);
    }
    // Start-after semantics: a page after "k07" begins at "k08".
    auto page = (*store)->List("", "k07", 3);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->objects.size(), 3u);
    EXPECT_EQ(page->objects[0].key, "k08");
    EXPECT_EQ(page->next_token, "k10");
  }
}

// Downloads are checked against every hash GCS reports: the metadata's
// crc32c and md5Hash, and x-goog-hash on the media responses (which may
// come as one header per algorithm or as one list).
TEST(GcsStore, ReadsCheckXGoogHashAndMd5) {
  std::mutex mu;
  std::string content = RandomBytes(150'000, 11);
  std::string crc = Crc32cBase64(Crc32c(0, content.data(), content.size()));
  std::string md5 = Base64Encode(Md5Raw(content));
  std::string meta_md5 = md5;
  std::vector<std::pair<std::string, std::string>> served;
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method == "GET" && r.query.find("alt=media") == std::string::npos) {
      json o = {{"name", "f"}, {"generation", "5"}, {"size", std::to_string(content.size())}};
      if (!meta_md5.empty()) o["md5Hash"] = meta_md5;
      return {200, {}, o.dump()};
    }
    std::string range = r.Header("range");
    size_t a = std::stoull(range.substr(6, range.find('-') - 6));
    size_t b = std::stoull(range.substr(range.find('-') + 1));
    LocalHttpResponse resp{206, served, content.substr(a, b - a + 1)};
    resp.headers.push_back({"x-goog-generation", "5"});
    return resp;
  });
  auto store = OpenObjectStore("gs://bkt/", Options(server.Url()));
  ASSERT_TRUE(store.ok());
  auto read = [&] { return (*store)->ReadAll("f"); };

  served = {{"x-goog-hash", "crc32c=" + crc}, {"x-goog-hash", "md5=" + md5}};
  auto good = read();
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_TRUE(*good == content);

  served = {{"x-goog-hash", "crc32c=" + crc + ",md5=" + Base64Encode(Md5Raw("other bytes"))}};
  auto bad_md5 = read();
  ASSERT_FALSE(bad_md5.ok());
  EXPECT_TRUE(bad_md5.status().IsTransient());
  EXPECT_NE(bad_md5.status().message().find("md5"), std::string::npos) << bad_md5.status().ToString();

  // Reading on after the failure fails again: a damaged stream never ends cleanly.
  {
    auto r = (*store)->OpenRead("f");
    ASSERT_TRUE(r.ok());
    std::vector<char> buf(1 << 16);
    StatusOr<size_t> n = size_t{0};
    for (int i = 0; i < 100 && (n = (*r)->Read(buf.data(), buf.size())).ok() && *n > 0; ++i) {
    }
    ASSERT_FALSE(n.ok());
    auto again = (*r)->Read(buf.data(), buf.size());
    EXPECT_FALSE(again.ok()) << "a second Read after a hash mismatch must not report a clean end";
  }

  served = {{"x-goog-hash", "crc32c=AAAAAA=="}};
  auto bad_crc = read();
  ASSERT_FALSE(bad_crc.ok());
  EXPECT_NE(bad_crc.status().message().find("crc32c"), std::string::npos) << bad_crc.status().ToString();

  // No x-goog-hash at all: the metadata's md5Hash still has to match.
  served = {};
  meta_md5 = Base64Encode(Md5Raw("other bytes"));
  auto bad_meta = read();
  ASSERT_FALSE(bad_meta.ok());
  EXPECT_NE(bad_meta.status().message().find("md5"), std::string::npos) << bad_meta.status().ToString();

  // Composite objects have no MD5 anywhere: CRC32C alone is enough.
  meta_md5.clear();
  served = {{"x-goog-hash", "crc32c=" + crc}};
  EXPECT_TRUE(read().ok());
}

// A delete that must not remove a newer object written under the same name
// is sent with ifGenerationMatch; GCS answers 412 when the generation is gone.
TEST(GcsStore, DeleteIfUnchangedIsConditionalOnTheGeneration) {
  std::mutex mu;
  std::string generation = "7";
  bool exists = true;
  std::vector<std::string> targets;
  LocalHttpServer server([&](const LocalHttpRequest& r) -> LocalHttpResponse {
    std::lock_guard lock(mu);
    if (r.method != "DELETE") return {404, {}, ""};
    targets.push_back(r.target);
    if (!exists) return {404, {}, R"({"error":{"code":404,"message":"No such object"}})"};
    if (r.query.find("ifGenerationMatch=" + generation) == std::string::npos)
      return {412, {}, R"({"error":{"code":412,"message":"conditionNotMet","errors":[{"reason":"conditionNotMet"}]}})"};
    exists = false;
    return {204, {}, ""};
  });
  auto store = OpenObjectStore("gs://bkt/pre/", Options(server.Url()));
  ASSERT_TRUE(store.ok());
  generation = "8";  // written again since generation 7 was listed
  Status kept = (*store)->DeleteIfUnchanged("_requests/r.json", "7");
  EXPECT_EQ(kept.code(), StatusCode::kFailedPrecondition) << kept.ToString();
  EXPECT_TRUE(exists);
  ASSERT_EQ(targets.size(), 1u) << "a failed precondition is final, not retried";
  EXPECT_NE(targets[0].find("/o/pre%2F_requests%2Fr.json?ifGenerationMatch=7"), std::string::npos) << targets[0];
  EXPECT_TRUE((*store)->DeleteIfUnchanged("_requests/r.json", "8").ok());
  EXPECT_FALSE(exists);
  EXPECT_TRUE((*store)->DeleteIfUnchanged("_requests/r.json", "8").ok()) << "a missing object is deleted already";
}

}  // namespace
}  // namespace logferry
