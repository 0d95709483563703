// s3://bucket/prefix/ on Amazon S3 or any S3-compatible service.
//
// Reads are ranged GETs of read_chunk_bytes pinned to the object's ETag with
// If-Match, so an object replaced mid-read fails (kFailedPrecondition)
// instead of mixing two versions, and a dropped connection costs one chunk.
// Writes are buffered: up to part_bytes one PutObject with Content-MD5,
// beyond that a multipart upload (Content-MD5 per part) that is aborted if
// the writer is dropped or any step fails. Every request goes through the
// retry policy in StoreOptions; 403/404/412 are never retried.
#pragma once

#include <memory>
#include <string_view>

#include "registry/scheme.h"
#include "store/object_store.h"

namespace logferry {

// s3://: a source or staging bucket; the only source S3 event
// notifications can announce.
SchemeInfo S3Scheme();

StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(std::string_view uri, const StoreOptions& options);

// Where requests for a bucket go, as resolved from options and the
// environment. Exposed for tests.
struct S3Addressing {
  std::string origin;       // "https://bucket.s3.us-east-1.amazonaws.com" or "http://127.0.0.1:9000"
  std::string bucket_path;  // "" (virtual-hosted) or "/bucket" (path-style)
  std::string region;
  bool custom_endpoint = false;  // not AWS itself: an endpoint from options or the environment
};
StatusOr<S3Addressing> ResolveS3Addressing(std::string_view bucket, const StoreOptions& options);

}  // namespace logferry
