// The read side the remote stores share: a ReadStream over ranged requests
// of chunk_bytes each, so a dropped connection costs one chunk (retried by
// the protocol client) and every request can be pinned to the version the
// read started on. A backend supplies the request and, optionally, a check
// of the whole object once its last byte is read.
#pragma once

#include <cstdint>
#include <string>

#include "store/object_store.h"

namespace logferry {

class RangedReadStream : public ReadStream {
 public:
  // described: "S3 object s3://b/k", for messages.
  RangedReadStream(std::string described, uint64_t size, uint64_t chunk_bytes)
      : described_(std::move(described)), size_(size), chunk_bytes_(chunk_bytes) {}

  StatusOr<size_t> Read(char* buf, size_t n) final;
  uint64_t Offset() const final { return offset_; }

 protected:
  // Bytes [offset, offset+n) of the object version being read; fewer (none)
  // only when the object is shorter than it was.
  virtual StatusOr<std::string> FetchRange(uint64_t offset, uint64_t n) = 0;
  // Called at the end of the object, on every Read there: an error (a
  // checksum that does not match) fails that Read.
  virtual Status CheckComplete() { return Status::Ok(); }

  const std::string& described() const { return described_; }

 private:
  const std::string described_;
  const uint64_t size_;
  const uint64_t chunk_bytes_;
  uint64_t offset_ = 0;  // bytes handed to the caller
  std::string chunk_;
  size_t chunk_pos_ = 0;
};

}  // namespace logferry
