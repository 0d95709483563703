// The object-store interface: everything logferry reads or writes outside the
// ledger and the warehouse goes through it. A backend is chosen by URI scheme
// through the scheme registry (registry/scheme_registry.h: OpenObjectStore);
// the store is rooted at the URI, and keys are relative to that root.
//
// Backends classify errors (kUnavailable = transient, worth retrying; anything
// else is permanent; running out of a local resource such as file
// descriptors, disk or memory is kResourceExhausted, permanent for the
// request). Remote backends retry each single request themselves, through
// their protocol client and StoreOptions::retry (a ranged read resumes at its
// own offset); so a transient error returned here means those attempts are
// spent, and callers must not wrap the call in another retry loop. The core
// then fails the object or partition and tries it again in a later pass,
// with backoff. All methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/retry.h"
#include "common/status.h"

namespace logferry {

namespace aws {
class CredentialsProvider;
}
namespace gcp {
class TokenProvider;
}

struct ObjectInfo {
  std::string key;  // relative to the store's root
  uint64_t size = 0;
  int64_t mtime_us = 0;
  std::string etag;  // changes whenever the content may have changed
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // sorted by key, byte order
  std::string next_token;           // empty when this is the last page
};

// A sequential reader. Read returns the number of bytes read, 0 at the end.
class ReadStream {
 public:
  virtual ~ReadStream() = default;
  virtual StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // Bytes consumed from the underlying object so far (for error offsets).
  virtual uint64_t Offset() const = 0;
};

struct WrittenObject {
  std::string key;
  uint64_t size = 0;
  std::string crc32c;  // hex of the CRC32C of the bytes written
  std::string etag;
};

// A writer whose object becomes visible only on Commit, all at once: a
// reader sees the old object or the new one, never part of it. Destroying a
// writer without Commit aborts it and leaves no trace.
class WriteStream {
 public:
  virtual ~WriteStream() = default;
  virtual Status Write(std::string_view data) = 0;
  virtual StatusOr<WrittenObject> Commit() = 0;
  // Gives back what the stream holds open between writes (file:// closes its
  // file descriptor); the next Write or Commit takes it up again, and the
  // bytes written so far stay. Lets a caller keep many streams without one
  // descriptor each. Remote streams hold no descriptor between requests and
  // keep their unsent buffer (less than one multipart part).
  virtual Status Suspend() { return Status::Ok(); }
};

struct ReadOptions {
  // When set, the read fails with kFailedPrecondition if the object's etag is
  // not this one, at the start or at any point during the read.
  std::string if_etag;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // The root URI, normalized with a trailing '/'.
  virtual const std::string& uri() const = 0;

  // Lists objects whose key starts with prefix and sorts after page_token
  // (start-after semantics), at most max_keys of them. A page token is
  // always a key: any key may be given to start after it, on every backend.
  virtual StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token, size_t max_keys) = 0;
  // The page size ListAll and the listings ask for: 1000, what S3 and Cloud
  // Storage return at most. file:// walks its tree again for every call,
  // so it lists everything in one.
  virtual size_t list_page_keys() const { return 1000; }
  // LIST requests this store has sent: one per page (per List call;
  // Cloud Storage: per request, when it follows its own short pages), for
  // metrics. Thread-safe.
  int64_t list_requests() const { return list_requests_.load(std::memory_order_relaxed); }
  // kNotFound if there is no such object.
  virtual StatusOr<ObjectInfo> Stat(std::string_view key) = 0;
  virtual StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& options = {}) = 0;
  virtual StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) = 0;
  // As OpenWrite, except that the object (its bytes and its name) may not
  // survive a power loss until SyncWritten has covered it: file:// leaves
  // its syncs to SyncWritten, so that a group of objects shares them. It is
  // visible once committed. The default is OpenWrite.
  virtual StatusOr<std::unique_ptr<WriteStream>> OpenWriteSyncedLater(std::string_view key) { return OpenWrite(key); }
  // Makes objects committed through OpenWriteSyncedLater durable, bytes and
  // names (file://: one syncfs(2) of the filesystem for a large group, else
  // an fsync per file and per directory). A no-op where commits are durable
  // by themselves (s3://, gs://).
  virtual Status SyncWritten(const std::vector<std::string>& keys) { return Status::Ok(); }
  // Deleting a missing object succeeds.
  virtual Status Delete(std::string_view key) = 0;
  // Deletes the object only while its etag is still `etag`: a newer object
  // written under the same key in the meantime is kept (kFailedPrecondition).
  // Atomic where the store has conditional deletes (gs:// ifGenerationMatch);
  // the default checks with Stat first, which leaves a window of one round
  // trip.
  virtual Status DeleteIfUnchanged(std::string_view key, std::string_view etag);

  // Removes what interrupted writes left under prefix (temp files, unfinished
  // multipart uploads) that was started at least min_age_us ago by this
  // machine's clock: an age, not a point in time. Younger ones may belong to
  // a write still running and are kept. Never touches committed objects.
  virtual Status RemoveStaleTemporaries(std::string_view prefix, int64_t min_age_us) { return Status::Ok(); }

  // A path on the local filesystem holding the object, for consumers (DuckDB)
  // that can read files directly; nullopt when the store is remote.
  virtual std::optional<std::string> LocalPath(std::string_view key) const { return std::nullopt; }

  // Conveniences built on the primitives above.
  StatusOr<std::vector<ObjectInfo>> ListAll(std::string_view prefix);
  StatusOr<std::string> ReadAll(std::string_view key, size_t max_bytes = 64 << 20, const ReadOptions& options = {});
  StatusOr<WrittenObject> WriteAll(std::string_view key, std::string_view data);
  // The full URI of a key, for messages and the ledger.
  std::string UriOf(std::string_view key) const { return uri() + std::string(key); }

 protected:
  // Every backend calls it once per LIST request it sends.
  void CountListRequest() { list_requests_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> list_requests_{0};
};

// Rejects keys that would escape the store's root: empty keys, absolute
// paths, ".." or "." segments, empty segments, NUL bytes.
Status ValidateKey(std::string_view key);

// How to reach a remote store. Every field has a working default, so a
// file:// store ignores them all.
struct StoreOptions {
  // s3://: an S3-compatible endpoint such as http://127.0.0.1:9000 (MinIO,
  // moto, R2, GCS interop); empty means AWS_ENDPOINT_URL_S3,
  // AWS_ENDPOINT_URL, else AWS itself. gs://: the JSON API's base URL;
  // empty means STORAGE_EMULATOR_HOST, else https://storage.googleapis.com.
  std::string endpoint;
  std::string region;      // s3://: empty means AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1
  std::string addressing;  // s3://: "auto" (virtual-hosted on AWS, path-style elsewhere), "virtual", "path"
  // s3://: a PEM file of CA certificates trusted, instead of the system
  // store, by a custom endpoint's TLS (MinIO or Ceph with a private CA). AWS
  // itself keeps the system store, so one setting serves a table whose other
  // side is on AWS.
  std::string ca_file;
  // Applied per request by remote stores; the core sets it from its config.
  RetryPolicy retry;
  // s3://: shared so several stores refresh one set of temporary
  // credentials; null means the default chain.
  std::shared_ptr<aws::CredentialsProvider> aws_credentials;
  // gs://: null means Application Default Credentials (or, with
  // STORAGE_EMULATOR_HOST set, no real credentials).
  std::shared_ptr<gcp::TokenProvider> gcp_tokens;
  // Upload size above which gs:// uses a resumable upload in chunks of
  // part_bytes (a multiple of 256 KiB); below, one multipart request.
  size_t resumable_threshold = 8 << 20;
  // Transfer units for remote stores: ranged reads and multipart parts.
  size_t read_chunk_bytes = 8 << 20;
  size_t part_bytes = 8 << 20;
};

}  // namespace logferry
