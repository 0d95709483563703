#include "core/part_writers.h"

#include <algorithm>

namespace logferry {

PartWriter::PartWriter(int64_t hour_us, std::string key, std::unique_ptr<WriteStream> out)
    : hour_us_(hour_us), key_(std::move(key)), out_(std::move(out)), encoder_(std::make_unique<GzipEncoder>(1)) {}

Status PartWriter::Compress() {
  encoder_->Write(raw_, &compressed_);
  raw_.clear();
  if (compressed_.size() >= kCompressedFlush) {
    LF_RETURN_IF_ERROR(out_->Write(compressed_));
    compressed_.clear();
  }
  return Status::Ok();
}

Status PartWriter::EndMember() {
  encoder_->Write(raw_, &compressed_);
  encoder_->Finish(&compressed_);
  encoder_.reset();
  LF_RETURN_IF_ERROR(out_->Write(compressed_));
  // Given back, not kept: a suspended part holds no buffers.
  std::string().swap(raw_);
  std::string().swap(compressed_);
  return Status::Ok();
}

Status PartWriter::Suspend() {
  if (!open()) return Status::Ok();
  LF_RETURN_IF_ERROR(EndMember());
  return out_->Suspend();
}

void PartWriter::Resume() {
  if (!open()) encoder_ = std::make_unique<GzipEncoder>(1);
}

StatusOr<WrittenObject> PartWriter::Finish() {
  if (open()) LF_RETURN_IF_ERROR(EndMember());
  return out_->Commit();
}

PartWriterSet::PartWriterSet(ObjectStore& staging, std::function<std::string(int64_t)> key_of, size_t max_open)
    : staging_(staging), key_of_(std::move(key_of)), max_open_(std::max<size_t>(max_open, 1)) {}

StatusOr<PartWriter*> PartWriterSet::Open(int64_t hour_us) {
  auto it = writers_.find(hour_us);
  PartWriter* w = it == writers_.end() ? nullptr : it->second.get();
  if (w == nullptr || !w->open()) {
    if (open_.size() >= max_open_) {
      auto lru = std::min_element(open_.begin(), open_.end(),
                                  [](const PartWriter* a, const PartWriter* b) { return a->last_use < b->last_use; });
      LF_RETURN_IF_ERROR((*lru)->Suspend());
      open_.erase(lru);
    }
    if (w == nullptr) {
      std::string key = key_of_(hour_us);
      LF_ASSIGN_OR_RETURN(auto stream, staging_.OpenWriteSyncedLater(key));
      auto created = std::make_unique<PartWriter>(hour_us, std::move(key), std::move(stream));
      w = created.get();
      writers_.emplace(hour_us, std::move(created));
    } else {
      w->Resume();
    }
    open_.push_back(w);
  }
  w->last_use = ++clock_;
  return w;
}

StatusOr<std::vector<FinishedPart>> PartWriterSet::Finish() {
  std::vector<PartWriter*> ordered;
  for (auto& [hour, w] : writers_) ordered.push_back(w.get());
  std::sort(ordered.begin(), ordered.end(),
            [](const PartWriter* a, const PartWriter* b) { return a->hour_us() < b->hour_us(); });
  std::vector<FinishedPart> out;
  out.reserve(ordered.size());
  for (PartWriter* w : ordered) {
    LF_ASSIGN_OR_RETURN(WrittenObject written, w->Finish());
    out.push_back(FinishedPart{w->hour_us(), w->key(), w->rows(), std::move(written)});
  }
  open_.clear();
  last_ = nullptr;
  return out;
}

}  // namespace logferry
