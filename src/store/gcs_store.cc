#include "store/gcs_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "common/env.h"
#include "common/retry.h"
#include "common/strings.h"
#include "common/time.h"
#include "gcp/client.h"
#include "gcp/credentials.h"
#include "http/http_client.h"
#include "store/ranged_read_stream.h"

namespace logferry {
namespace {

using nlohmann::json;

constexpr size_t kResumableQuantum = 256 << 10;  // chunk sizes must be multiples of this

uint64_t JsonU64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::strtoull(it->get<std::string>().c_str(), nullptr, 10);
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  return 0;
}

ObjectInfo InfoFrom(const json& o, const std::string& prefix) {
  ObjectInfo info;
  std::string name = o.value("name", "");
  info.key = name.substr(std::min(prefix.size(), name.size()));
  info.size = JsonU64(o, "size");
  info.mtime_us = ParseIso8601(o.value("updated", "")).value_or(0);
  // The generation changes on every write of the object; GCS's etag field
  // also changes with metadata-only updates.
  info.etag = o.contains("generation")
                  ? (o["generation"].is_string() ? o["generation"].get<std::string>() : o["generation"].dump())
                  : "";
  return info;
}

// The object's hashes as the server reports them: x-goog-hash may come
// once per algorithm or as one comma-separated list ("crc32c=..,md5=..").
struct GoogHashes {
  std::string crc32c;  // base64
  std::string md5;     // base64; absent for composite objects
};

GoogHashes ParseGoogHash(const HttpResponse& r) {
  GoogHashes h;
  for (const auto& [name, value] : r.headers) {
    if (name != "x-goog-hash") continue;
    for (const std::string& item : Split(value, ',')) {
      std::string_view v = item;
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (StartsWith(v, "crc32c=")) h.crc32c = std::string(v.substr(7));
      if (StartsWith(v, "md5=")) h.md5 = std::string(v.substr(4));
    }
  }
  return h;
}

std::string RandomBoundary() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[48];
  snprintf(buf, sizeof buf, "logferry_%016llx%016llx", static_cast<unsigned long long>(rng()),
           static_cast<unsigned long long>(rng()));
  return buf;
}

class GcsStore;

class GcsReadStream final : public RangedReadStream {
 public:
  GcsReadStream(const GcsStore* store, std::string key, ObjectInfo info, GoogHashes want);

 private:
  StatusOr<std::string> FetchRange(uint64_t offset, uint64_t n) override;
  Status CheckComplete() override;

  const GcsStore* store_;
  std::string key_;
  ObjectInfo info_;
  // From the object's metadata, then from x-goog-hash of what was served;
  // checked once the last byte is read.
  GoogHashes want_;
  GoogHashes served_;
  bool checked_ = false;
  uint32_t crc_ = 0;
  // Whether an MD5 is kept: decided at the first chunk, as composite objects
  // have none anywhere.
  std::optional<bool> use_md5_;
  Md5 md5_;
};

class GcsWriteStream final : public WriteStream {
 public:
  GcsWriteStream(const GcsStore* store, std::string key) : store_(store), key_(std::move(key)) {}
  Status Write(std::string_view data) override;
  StatusOr<WrittenObject> Commit() override;

 private:
  size_t PartBytes() const;
  std::string What() const;
  Status SendChunk(bool last);
  Attempt PutChunk(bool last);
  HttpRequest ChunkRequest(size_t n, bool last) const;
  std::optional<Status> Resume(bool last);
  bool Acknowledge(uint64_t persisted);
  static uint64_t Persisted(const HttpResponse& r);
  Status Finished(const HttpResponse& r);

  const GcsStore* store_;
  std::string key_;
  std::string buffer_;  // not yet acknowledged by the server
  uint64_t sent_ = 0;   // bytes the server has persisted
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
  Md5 md5_;
  std::string session_;  // resumable upload session URI
  json result_;
  bool done_ = false;
};

class GcsStore final : public ObjectStore {
 public:
  GcsStore(std::string uri, std::string bucket, std::string prefix, std::string endpoint, StoreOptions options)
      : uri_(std::move(uri)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        endpoint_(std::move(endpoint)),
        options_(std::move(options)),
        client_(options_.gcp_tokens, options_.retry) {}

  const std::string& uri() const override { return uri_; }

  StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token, size_t max_keys) override {
    std::string full_prefix = prefix_ + std::string(prefix);
    std::string start = page_token.empty() ? "" : prefix_ + std::string(page_token);
    ListPage page;
    std::string google_token;
    // startOffset is inclusive; the interface's token is exclusive, so an
    // object named exactly like the token is skipped. A page can come back
    // short of max_keys: follow Google's own token until it is full.
    for (int round = 0; round < 1000 && page.objects.size() < max_keys; ++round) {
      std::string url = BucketUrl() + "/o?prefix=" + UriEncode(full_prefix) +
                        "&maxResults=" + std::to_string(std::clamp<size_t>(max_keys - page.objects.size(), 1, 1000));
      if (!start.empty()) url += "&startOffset=" + UriEncode(start);
      if (!google_token.empty()) url += "&pageToken=" + UriEncode(google_token);
      HttpRequest req;
      req.url = url;
      CountListRequest();
      LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("GCS list " + uri_ + std::string(prefix), req));
      json j = json::parse(resp.body, nullptr, false);
      if (!j.is_object()) return Status::Unavailable("GCS list " + uri_ + ": unparseable response");
      for (const json& o : j.value("items", json::array())) {
        ObjectInfo info = InfoFrom(o, prefix_);
        std::string name = prefix_ + info.key;
        if (!StartsWith(name, full_prefix) || (!start.empty() && name <= start)) continue;
        page.objects.push_back(std::move(info));
      }
      google_token = j.value("nextPageToken", "");
      if (google_token.empty()) break;
    }
    std::sort(page.objects.begin(), page.objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    if (page.objects.size() > max_keys) page.objects.resize(max_keys);
    if (!google_token.empty() || page.objects.size() == max_keys) {
      if (!page.objects.empty()) page.next_token = page.objects.back().key;
    }
    return page;
  }

  StatusOr<std::pair<ObjectInfo, GoogHashes>> StatWithHashes(std::string_view key) const {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    HttpRequest req;
    req.url = ObjectUrl(key);
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("GCS stat " + UriOf(key), req));
    json j = json::parse(resp.body, nullptr, false);
    if (!j.is_object()) return Status::Unavailable("GCS stat " + UriOf(key) + ": unparseable response");
    return std::make_pair(InfoFrom(j, prefix_), GoogHashes{j.value("crc32c", ""), j.value("md5Hash", "")});
  }

  StatusOr<ObjectInfo> Stat(std::string_view key) override {
    LF_ASSIGN_OR_RETURN(auto info, StatWithHashes(key));
    return info.first;
  }

  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& options) override {
    LF_ASSIGN_OR_RETURN(auto info, StatWithHashes(key));
    if (!options.if_etag.empty() && info.first.etag != options.if_etag)
      return Status::FailedPrecondition("GCS object " + UriOf(key) + " changed: generation is " + info.first.etag +
                                        ", expected " + options.if_etag);
    return std::unique_ptr<ReadStream>(
        new GcsReadStream(this, std::string(key), std::move(info.first), std::move(info.second)));
  }

  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    return std::unique_ptr<WriteStream>(new GcsWriteStream(this, std::string(key)));
  }

  Status Delete(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    HttpRequest req;
    req.method = "DELETE";
    req.url = ObjectUrl(key);
    std::string what = "GCS delete " + UriOf(key);
    auto check = [&](const HttpResponse& r) {
      return (r.status >= 200 && r.status < 300) || r.status == 404 ? Status::Ok() : gcp::ErrorStatus(what, r);
    };
    return client_.Send(what, req, check).status();
  }

  Status DeleteIfUnchanged(std::string_view key, std::string_view etag) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    HttpRequest req;
    req.method = "DELETE";
    req.url = ObjectUrl(key) + "?ifGenerationMatch=" + UriEncode(etag);
    std::string what = "GCS delete " + UriOf(key) + " (generation " + std::string(etag) + ")";
    auto check = [&](const HttpResponse& r) {
      if ((r.status >= 200 && r.status < 300) || r.status == 404) return Status::Ok();
      if (r.status == 412)
        return Status::FailedPrecondition(UriOf(key) + " was replaced (generation " + std::string(etag) +
                                          " is gone); not deleted");
      return gcp::ErrorStatus(what, r);
    };
    return client_.Send(what, req, check).status();
  }

  // ---- used by the streams ----

  std::string BucketUrl() const { return endpoint_ + "/storage/v1/b/" + UriEncode(bucket_); }
  std::string ObjectUrl(std::string_view key) const {
    return BucketUrl() + "/o/" + UriEncode(prefix_ + std::string(key));
  }
  std::string UploadUrl(const char* type) const {
    return endpoint_ + "/upload/storage/v1/b/" + UriEncode(bucket_) + "/o?uploadType=" + type;
  }
  std::string Name(std::string_view key) const { return prefix_ + std::string(key); }

  StatusOr<std::string> ReadRange(const std::string& key, const std::string& generation, uint64_t offset, uint64_t n,
                                  GoogHashes* served) const {
    HttpRequest req;
    req.url = ObjectUrl(key) + "?alt=media&ifGenerationMatch=" + generation;
    req.headers = {{"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + n - 1)}};
    std::string what = "GCS read " + UriOf(key) + " bytes " + std::to_string(offset) + "+" + std::to_string(n);
    auto check = [&](const HttpResponse& r) -> Status {
      std::string_view served = r.Header("x-goog-generation");
      if (r.status == 412 || (!served.empty() && served != generation))
        return Status::FailedPrecondition("GCS object " + UriOf(key) + " was replaced while it was read (generation " +
                                          generation + " is gone)");
      if (r.status != 206 && r.status != 200) return gcp::ErrorStatus(what, r);
      uint64_t want = r.status == 206 ? n : std::min<uint64_t>(n, r.body.size());
      if (r.body.size() != want) return Status::Unavailable(what + ": got " + std::to_string(r.body.size()) + " bytes");
      return Status::Ok();
    };
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send(what, req, check));
    *served = ParseGoogHash(resp);
    if (resp.status == 200) return offset >= resp.body.size() ? std::string() : resp.body.substr(offset, n);
    return std::move(resp.body);
  }

  // The object's checksums go into its metadata: GCS computes its own over
  // the bytes it received and refuses the upload when they differ.
  StatusOr<json> UploadWhole(const std::string& key, std::string_view data, uint32_t crc,
                             const std::string& md5) const {
    std::string boundary = RandomBoundary();
    json meta = {{"name", Name(key)}, {"crc32c", Crc32cBase64(crc)}, {"md5Hash", Base64Encode(md5)}};
    std::string body = "--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + meta.dump() +
                       "\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n\r\n";
    body.append(data);
    body += "\r\n--" + boundary + "--\r\n";
    HttpRequest req;
    req.method = "POST";
    req.url = UploadUrl("multipart");
    req.body = body;
    req.headers = {{"Content-Type", "multipart/related; boundary=" + boundary}};
    req.timeout_ms = 60'000 + static_cast<int64_t>(data.size() / 1000);
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("GCS upload " + UriOf(key), req));
    return ParseUploaded(key, resp, crc, md5);
  }

  StatusOr<json> ParseUploaded(const std::string& key, const HttpResponse& resp, uint32_t crc,
                               const std::string& md5) const {
    json j = json::parse(resp.body, nullptr, false);
    if (!j.is_object()) return Status::Unavailable("GCS upload " + UriOf(key) + ": unparseable response");
    // An md5Hash is absent where GCS keeps none (composite objects).
    std::string mismatch;
    std::string stored_crc = j.value("crc32c", ""), stored_md5 = j.value("md5Hash", "");
    if (!stored_crc.empty() && stored_crc != Crc32cBase64(crc))
      mismatch = "crc32c " + stored_crc + " but sent " + Crc32cBase64(crc);
    else if (!stored_md5.empty() && stored_md5 != Base64Encode(md5))
      mismatch = "md5 " + stored_md5 + " but sent " + Base64Encode(md5);
    if (!mismatch.empty()) {
      // The server stored other bytes than we sent: remove that generation
      // (only that one) and let the caller retry.
      HttpRequest del;
      del.method = "DELETE";
      del.url = ObjectUrl(key) + "?ifGenerationMatch=" + InfoFrom(j, prefix_).etag;
      (void)client_.SendOnce("GCS delete damaged " + UriOf(key), del);
      return Status::Unavailable("GCS upload " + UriOf(key) + ": stored " + mismatch);
    }
    return j;
  }

  StatusOr<std::string> StartResumable(const std::string& key) const {
    HttpRequest req;
    req.method = "POST";
    req.url = UploadUrl("resumable");
    std::string body = json({{"name", Name(key)}}).dump();
    req.body = body;
    req.headers = {{"Content-Type", "application/json; charset=UTF-8"}};
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("GCS start upload " + UriOf(key), req));
    std::string location(resp.Header("location"));
    if (location.empty()) return Status::Unavailable("GCS start upload " + UriOf(key) + ": no session URI");
    return location;
  }

  const gcp::Client& client() const { return client_; }
  const StoreOptions& options() const { return options_; }

 private:
  std::string uri_;
  std::string bucket_;
  std::string prefix_;
  std::string endpoint_;
  StoreOptions options_;
  gcp::Client client_;
};

GcsReadStream::GcsReadStream(const GcsStore* store, std::string key, ObjectInfo info, GoogHashes want)
    : RangedReadStream("GCS object " + store->UriOf(key), info.size, store->options().read_chunk_bytes),
      store_(store),
      key_(std::move(key)),
      info_(std::move(info)),
      want_(std::move(want)) {}

StatusOr<std::string> GcsReadStream::FetchRange(uint64_t offset, uint64_t n) {
  GoogHashes served;
  LF_ASSIGN_OR_RETURN(std::string chunk, store_->ReadRange(key_, info_.etag, offset, n, &served));
  // A ranged response still carries the whole object's hashes.
  if (!served.crc32c.empty()) served_.crc32c = served.crc32c;
  if (!served.md5.empty()) served_.md5 = served.md5;
  crc_ = Crc32c(crc_, chunk.data(), chunk.size());
  if (!use_md5_) use_md5_ = !want_.md5.empty() || !served_.md5.empty();
  if (*use_md5_) md5_.Update(chunk.data(), chunk.size());
  return chunk;
}

Status GcsReadStream::CheckComplete() {
  if (checked_) return Status::Ok();
  std::string crc = Crc32cBase64(crc_), md5 = Base64Encode(md5_.Digest());
  for (const GoogHashes& h : {want_, served_}) {
    if (!h.crc32c.empty() && h.crc32c != crc)
      return Status::Unavailable(described() + " read back with crc32c " + crc + ", expected " + h.crc32c);
    if (use_md5_.value_or(true) && !h.md5.empty() && h.md5 != md5)
      return Status::Unavailable(described() + " read back with md5 " + md5 + ", expected " + h.md5);
  }
  checked_ = true;  // only once the hashes matched: a retried Read fails again
  return Status::Ok();
}

Status GcsWriteStream::Write(std::string_view data) {
  if (done_) return Status::FailedPrecondition("write after commit: " + store_->UriOf(key_));
  crc_ = Crc32c(crc_, data.data(), data.size());
  md5_.Update(data.data(), data.size());
  size_ += data.size();
  buffer_.append(data);
  if (session_.empty() && buffer_.size() <= store_->options().resumable_threshold) return Status::Ok();
  if (session_.empty()) {
    LF_ASSIGN_OR_RETURN(session_, store_->StartResumable(key_));
  }
  while (buffer_.size() >= PartBytes() + kResumableQuantum) LF_RETURN_IF_ERROR(SendChunk(false));
  return Status::Ok();
}

// A chunk: part_bytes rounded down to the quantum, at least one quantum.
size_t GcsWriteStream::PartBytes() const {
  return std::max(kResumableQuantum, store_->options().part_bytes / kResumableQuantum * kResumableQuantum);
}

std::string GcsWriteStream::What() const {
  return "GCS upload " + store_->UriOf(key_);
}

// Sends the next chunk of a resumable upload (all of the buffer when last).
// The retry layer bounds the attempts; after a failed one, Resume asks the
// session how much it has and the next attempt goes on from there.
Status GcsWriteStream::SendChunk(bool last) {
  return WithResumableRetry(
      store_->client().retry(), [&] { return PutChunk(last); }, [&] { return Resume(last); });
}

// One PUT of the chunk, classified: a 308 that moved the session forward is
// progress (enough for a chunk that is not the last).
Attempt GcsWriteStream::PutChunk(bool last) {
  std::string what = What();
  auto resp = store_->client().SendOnce(what, ChunkRequest(last ? buffer_.size() : PartBytes(), last));
  if (resp.ok() && (resp->status == 200 || resp->status == 201)) return Attempt::Done(Finished(*resp));
  if (resp.ok() && resp->status == 308) {
    uint64_t persisted = Persisted(*resp);
    bool progressed = persisted > sent_;
    if (!Acknowledge(persisted))
      return Attempt::Done(Status::Internal(what + ": the server reports " + std::to_string(persisted) +
                                            " bytes persisted, outside what was sent"));
    if (!last && progressed) return Attempt::Done(Status::Ok());
    return Attempt::Again(progressed, Status::Unavailable(what + ": the server answers 308 but keeps none of the " +
                                                          std::to_string(sent_) + "+ bytes sent"));
  }
  // An expired session cannot be resumed, so retrying the chunk is no use;
  // transient, so the write can be started over.
  if (resp.ok() && resp->status == 404)
    return Attempt::Done(Status::Unavailable(what + ": the upload session expired"));
  return Attempt::Failed(resp.ok() ? gcp::ErrorStatus(what, *resp) : resp.status());
}

// The PUT of the buffer's first n bytes, at the offset the server has.
HttpRequest GcsWriteStream::ChunkRequest(size_t n, bool last) const {
  HttpRequest req;
  req.method = "PUT";
  req.url = session_;
  req.body = std::string_view(buffer_).substr(0, n);
  std::string total = last ? std::to_string(size_) : "*";
  req.headers = {
      {"Content-Type", "application/octet-stream"},
      {"Content-Range", n == 0 ? "bytes */" + total
                               : "bytes " + std::to_string(sent_) + "-" + std::to_string(sent_ + n - 1) + "/" + total}};
  // The final request carries the whole object's hashes, so GCS checks
  // them before it finalizes the object.
  if (last)
    req.headers.push_back({"X-Goog-Hash", "crc32c=" + Crc32cBase64(crc_) + ",md5=" + Base64Encode(md5_.Digest())});
  req.timeout_ms = 60'000 + static_cast<int64_t>(n / 1000);
  return req;
}

// Where are we? An empty PUT with "bytes */total" asks without sending. A
// Status if the answer finished the upload (or, for a chunk that is not the
// last, left too little to send another); nullopt to send again.
std::optional<Status> GcsWriteStream::Resume(bool last) {
  HttpRequest probe;
  probe.method = "PUT";
  probe.url = session_;
  probe.headers = {{"Content-Type", "application/octet-stream"},
                   {"Content-Range", "bytes */" + (last ? std::to_string(size_) : std::string("*"))}};
  auto status = store_->client().SendOnce(What() + " (status)", probe);
  if (status.ok() && (status->status == 200 || status->status == 201)) return Finished(*status);
  if (status.ok() && status->status == 308 && Acknowledge(Persisted(*status)) && !last &&
      buffer_.size() < PartBytes() + kResumableQuantum)
    return Status::Ok();
  return std::nullopt;
}

// The server has the first `persisted` bytes: drop them from the buffer.
// False, changing nothing, if that is outside what was sent.
bool GcsWriteStream::Acknowledge(uint64_t persisted) {
  if (persisted < sent_ || persisted > sent_ + buffer_.size()) return false;
  buffer_.erase(0, persisted - sent_);
  sent_ = persisted;
  return true;
}

// "Range: bytes=0-N" on a 308: N+1 bytes persisted (none without it).
uint64_t GcsWriteStream::Persisted(const HttpResponse& r) {
  std::string_view range = r.Header("range");
  auto dash = range.rfind('-');
  if (dash == std::string_view::npos) return 0;
  return std::strtoull(std::string(range.substr(dash + 1)).c_str(), nullptr, 10) + 1;
}

// The session answered with the finished object.
Status GcsWriteStream::Finished(const HttpResponse& r) {
  LF_ASSIGN_OR_RETURN(result_, store_->ParseUploaded(key_, r, crc_, md5_.Digest()));
  sent_ = size_;
  buffer_.clear();
  return Status::Ok();
}

StatusOr<WrittenObject> GcsWriteStream::Commit() {
  if (done_) return Status::FailedPrecondition("commit after commit: " + store_->UriOf(key_));
  done_ = true;
  if (session_.empty()) {
    LF_ASSIGN_OR_RETURN(result_, store_->UploadWhole(key_, buffer_, crc_, md5_.Digest()));
  } else {
    LF_RETURN_IF_ERROR(SendChunk(/*last=*/true));
  }
  WrittenObject out;
  out.key = key_;
  out.size = size_;
  out.crc32c = Crc32cHex(crc_);
  out.etag = InfoFrom(result_, "").etag;
  buffer_.clear();
  buffer_.shrink_to_fit();
  return out;
}

}  // namespace

std::string Crc32cBase64(uint32_t crc) {
  char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16), static_cast<char>(crc >> 8),
                static_cast<char>(crc)};
  return Base64Encode(std::string_view(be, 4));
}

namespace {

// STORAGE_EMULATOR_HOST as a URL ("host:port", as Google's libraries read
// it, means http), or "".
std::string EmulatorUrl() {
  std::string e = Env::Default()->GetEnvOr("STORAGE_EMULATOR_HOST");
  if (!e.empty() && e.find("://") == std::string::npos) e = "http://" + e;
  return e;
}

}  // namespace

SchemeInfo GcsScheme() {
  SchemeInfo s;
  s.name = "gs";
  s.example = "gs://bucket/prefix/";
  s.service = "Cloud Storage";
  s.roles = kRoleSource | kRoleStaging;
  s.remote = true;
  s.credentials = CredentialKind::kGoogle;
  s.bearer_token = true;
  s.validate = [](const Uri& u) {
    return u.authority.empty() ? std::string("names no bucket (gs://bucket/prefix/)") : "";
  };
  s.environment_endpoint = []() -> std::optional<std::pair<std::string, std::string>> {
    std::string url = EmulatorUrl();
    if (url.empty()) return std::nullopt;
    return std::pair<std::string, std::string>{"STORAGE_EMULATOR_HOST", url};
  };
  s.emulated = [](const StoreOptions& options, const std::string& credentials_file) {
    return options.endpoint.empty() && credentials_file.empty() && !EmulatorUrl().empty();
  };
  s.open_store = OpenGcsStore;
  return s;
}

std::string GcsEndpoint(const StoreOptions& options) {
  std::string e = options.endpoint;
  if (e.empty()) e = EmulatorUrl();
  if (e.empty()) e = "https://storage.googleapis.com";
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenGcsStore(std::string_view uri, const StoreOptions& options) {
  Uri u;
  if (!ParseUri(uri, &u) || u.scheme != "gs" || u.authority.empty())
    return Status::InvalidArgument("not a gs URI: '" + std::string(uri) + "' (expected gs://bucket/prefix/)");
  std::string prefix = u.path;
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  if (!prefix.empty()) LF_RETURN_IF_ERROR(ValidateKey(prefix.substr(0, prefix.size() - 1)));
  StoreOptions opts = options;
  if (!opts.gcp_tokens) {
    // Google's libraries talk to an emulator without credentials.
    opts.gcp_tokens = options.endpoint.empty() && !Env::Default()->GetEnvOr("STORAGE_EMULATOR_HOST").empty()
                          ? std::shared_ptr<gcp::TokenProvider>(gcp::MakeStaticTokenProvider("emulator"))
                          : std::shared_ptr<gcp::TokenProvider>(gcp::MakeTokenProvider());
  }
  std::string root = "gs://" + u.authority + "/" + prefix;
  std::string endpoint = GcsEndpoint(opts);
  return std::unique_ptr<ObjectStore>(
      new GcsStore(std::move(root), u.authority, std::move(prefix), std::move(endpoint), std::move(opts)));
}

}  // namespace logferry
