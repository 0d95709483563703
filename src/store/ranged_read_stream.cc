#include "store/ranged_read_stream.h"

#include <algorithm>
#include <cstring>

namespace logferry {

StatusOr<size_t> RangedReadStream::Read(char* buf, size_t n) {
  if (chunk_pos_ == chunk_.size()) {
    if (offset_ >= size_) {
      LF_RETURN_IF_ERROR(CheckComplete());
      return size_t{0};
    }
    uint64_t want = std::min<uint64_t>(chunk_bytes_, size_ - offset_);
    LF_ASSIGN_OR_RETURN(chunk_, FetchRange(offset_, want));
    chunk_pos_ = 0;
    if (chunk_.empty())
      return Status::FailedPrecondition(described_ + " ended at byte " + std::to_string(offset_) + " of " +
                                        std::to_string(size_));
  }
  size_t k = std::min(n, chunk_.size() - chunk_pos_);
  std::memcpy(buf, chunk_.data() + chunk_pos_, k);
  chunk_pos_ += k;
  offset_ += k;
  return k;
}

}  // namespace logferry
