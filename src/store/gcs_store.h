// gs://bucket/prefix/ on Google Cloud Storage, through the JSON API.
//
// The etag of an object is its generation (a new one on every write). Reads
// are ranged GETs of read_chunk_bytes pinned with ifGenerationMatch, and the
// CRC32C of everything read is compared with the object's crc32c at the end:
// a replaced object fails (kFailedPrecondition), a damaged one is retried.
// Writes up to resumable_threshold are one multipart upload carrying the
// CRC32C (GCS rejects a body that does not match); larger ones a resumable
// upload in part_bytes chunks that, after a dropped connection, asks the
// server how much it has (308 + Range) and continues from there.
#pragma once

#include <memory>
#include <string_view>

#include "registry/scheme.h"
#include "store/object_store.h"

namespace logferry {

// gs://: a source or staging bucket; the staging a bigquery:// warehouse
// loads from. STORAGE_EMULATOR_HOST is read here only: with it set and no
// endpoint or credentials file configured, the store talks to the emulator
// without real credentials, as Google's libraries do.
SchemeInfo GcsScheme();

StatusOr<std::unique_ptr<ObjectStore>> OpenGcsStore(std::string_view uri, const StoreOptions& options);

// The JSON API base URL from options and the environment
// (STORAGE_EMULATOR_HOST: "host:port" or a URL). Exposed for tests.
std::string GcsEndpoint(const StoreOptions& options);

// GCS spells CRC32C as base64 of the big-endian 4 bytes.
std::string Crc32cBase64(uint32_t crc);

}  // namespace logferry
