#include "store/memory_store.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry {

struct MemoryObject {
  std::shared_ptr<const std::string> data;  // shared with open readers, never changed
  std::string etag;
  int64_t mtime_us = 0;
};

class MemoryObjects {
 public:
  // Keys are "bucket/prefix/key", so one map serves every bucket.
  std::mutex mu;
  std::map<std::string, MemoryObject, std::less<>> objects;
  uint64_t generation = 0;
};

std::shared_ptr<MemoryObjects> NewMemoryObjects() {
  return std::make_shared<MemoryObjects>();
}

namespace {

class MemoryReadStream final : public ReadStream {
 public:
  explicit MemoryReadStream(std::shared_ptr<const std::string> data) : data_(std::move(data)) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_->size() - offset_);
    memcpy(buf, data_->data() + offset_, k);  // NOLINT(bugprone-not-null-terminated-result): bytes, not a C string
    offset_ += k;
    return k;
  }
  uint64_t Offset() const override { return offset_; }

 private:
  std::shared_ptr<const std::string> data_;
  size_t offset_ = 0;
};

class MemoryWriteStream final : public WriteStream {
 public:
  MemoryWriteStream(std::shared_ptr<MemoryObjects> objects, std::string path, std::string key)
      : objects_(std::move(objects)), path_(std::move(path)), key_(std::move(key)) {}
  Status Write(std::string_view data) override {
    if (committed_) return Status::FailedPrecondition("write after commit");
    data_.append(data);
    return Status::Ok();
  }
  StatusOr<WrittenObject> Commit() override {
    if (committed_) return Status::FailedPrecondition("committed twice");
    committed_ = true;
    WrittenObject out{key_, data_.size(), Crc32cHex(Crc32c(0, data_.data(), data_.size())), ""};
    std::lock_guard lock(objects_->mu);
    out.etag = "g" + std::to_string(++objects_->generation);
    objects_->objects[path_] = {std::make_shared<const std::string>(std::move(data_)), out.etag,
                                Env::Default()->NowMicros()};
    return out;
  }

 private:
  std::shared_ptr<MemoryObjects> objects_;
  std::string path_, key_, data_;
  bool committed_ = false;
};

class MemoryStore final : public ObjectStore {
 public:
  MemoryStore(std::string uri, std::string root, std::shared_ptr<MemoryObjects> objects)
      : uri_(std::move(uri)), root_(std::move(root)), objects_(std::move(objects)) {}
  const std::string& uri() const override { return uri_; }

  StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token, size_t max_keys) override {
    CountListRequest();
    ListPage page;
    std::string from = root_ + std::string(std::max(prefix, page_token));
    std::lock_guard lock(objects_->mu);
    for (auto it = objects_->objects.lower_bound(from); it != objects_->objects.end(); ++it) {
      if (!StartsWith(it->first, root_ + std::string(prefix))) break;
      std::string key = it->first.substr(root_.size());
      if (key <= page_token) continue;
      if (page.objects.size() == std::max<size_t>(max_keys, 1)) {
        page.next_token = page.objects.back().key;
        break;
      }
      page.objects.push_back(InfoOf(key, it->second));
    }
    return page;
  }

  StatusOr<ObjectInfo> Stat(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(objects_->mu);
    auto it = objects_->objects.find(root_ + std::string(key));
    if (it == objects_->objects.end()) return Status::NotFound(UriOf(key) + " does not exist");
    return InfoOf(std::string(key), it->second);
  }

  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& options) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(objects_->mu);
    auto it = objects_->objects.find(root_ + std::string(key));
    if (it == objects_->objects.end()) return Status::NotFound(UriOf(key) + " does not exist");
    if (!options.if_etag.empty() && it->second.etag != options.if_etag)
      return Status::FailedPrecondition(UriOf(key) + " changed (etag " + it->second.etag + ")");
    return std::unique_ptr<ReadStream>(new MemoryReadStream(it->second.data));
  }

  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    return std::unique_ptr<WriteStream>(new MemoryWriteStream(objects_, root_ + std::string(key), std::string(key)));
  }

  Status Delete(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(objects_->mu);
    objects_->objects.erase(root_ + std::string(key));
    return Status::Ok();
  }

 private:
  static ObjectInfo InfoOf(std::string key, const MemoryObject& o) {
    return {std::move(key), o.data->size(), o.mtime_us, o.etag};
  }

  std::string uri_;
  std::string root_;  // "bucket/prefix/"
  std::shared_ptr<MemoryObjects> objects_;
};

}  // namespace

StatusOr<std::unique_ptr<ObjectStore>> OpenMemoryStore(std::string_view uri, std::shared_ptr<MemoryObjects> objects) {
  Uri u;
  if (!ParseUri(uri, &u) || u.scheme != "mem" || u.authority.empty())
    return Status::InvalidArgument("not a mem URI: '" + std::string(uri) + "' (expected mem://bucket/prefix/)");
  std::string prefix = u.path;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  if (!prefix.empty()) LF_RETURN_IF_ERROR(ValidateKey(prefix.substr(0, prefix.size() - 1)));
  std::string root = u.authority + "/" + prefix;
  return std::unique_ptr<ObjectStore>(new MemoryStore("mem://" + root, root, std::move(objects)));
}

SchemeInfo MemoryScheme(const std::shared_ptr<MemoryObjects>& objects) {
  SchemeInfo s;
  s.name = "mem";
  s.example = "mem://bucket/prefix/";
  s.service = "this process's memory";
  s.roles = kRoleSource | kRoleStaging;
  s.validate = [](const Uri& u) {
    return u.authority.empty() ? std::string("names no bucket (mem://bucket/prefix/)") : "";
  };
  s.open_store = [objects](std::string_view uri, const StoreOptions&) { return OpenMemoryStore(uri, objects); };
  return s;
}

}  // namespace logferry
