#include "store/object_store.h"

#include "common/strings.h"

namespace logferry {

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("empty object key");
  if (key.find('\0') != std::string_view::npos) return Status::InvalidArgument("object key contains a NUL byte");
  if (key.front() == '/') return Status::InvalidArgument("object key is absolute: '" + Excerpt(key) + "'");
  for (const std::string& seg : Split(key, '/')) {
    if (seg == ".." || seg == ".")
      return Status::InvalidArgument("object key escapes the store root: '" + Excerpt(key) + "'");
  }
  if (key.find("//") != std::string_view::npos || key.back() == '/')
    return Status::InvalidArgument("object key has an empty path segment: '" + Excerpt(key) + "'");
  return Status::Ok();
}

StatusOr<std::vector<ObjectInfo>> ObjectStore::ListAll(std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    LF_ASSIGN_OR_RETURN(ListPage page, List(prefix, token, list_page_keys()));
    for (auto& o : page.objects) all.push_back(std::move(o));
    token = page.next_token;
  } while (!token.empty());
  return all;
}

StatusOr<std::string> ObjectStore::ReadAll(std::string_view key, size_t max_bytes, const ReadOptions& options) {
  LF_ASSIGN_OR_RETURN(std::unique_ptr<ReadStream> in, OpenRead(key, options));
  std::string out;
  char buf[65536];
  for (;;) {
    LF_ASSIGN_OR_RETURN(size_t n, in->Read(buf, sizeof buf));
    if (n == 0) break;
    out.append(buf, n);
    if (out.size() > max_bytes)
      return Status::ResourceExhausted(UriOf(key) + " is larger than " + HumanBytes(max_bytes));
  }
  return out;
}

Status ObjectStore::DeleteIfUnchanged(std::string_view key, std::string_view etag) {
  auto info = Stat(key);
  if (!info.ok()) return info.status().IsNotFound() ? Status::Ok() : info.status();
  if (info->etag != etag)
    return Status::FailedPrecondition(UriOf(key) + " changed (etag " + info->etag + ", expected " + std::string(etag) +
                                      "); not deleted");
  return Delete(key);
}

StatusOr<WrittenObject> ObjectStore::WriteAll(std::string_view key, std::string_view data) {
  LF_ASSIGN_OR_RETURN(std::unique_ptr<WriteStream> w, OpenWrite(key));
  LF_RETURN_IF_ERROR(w->Write(data));
  return w->Commit();
}

}  // namespace logferry
