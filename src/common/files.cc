#include "common/files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace logferry {

Status ErrnoStatus(int err, const std::string& what) {
  std::string m = what + ": " + strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(m);
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(m);
    case EINTR:
    case EAGAIN:
    case EIO:
    case EBUSY:
      return Status::Unavailable(m);
    // Out of descriptors, disk, quota or memory: retrying at once fails the
    // same way, so the object fails and waits for a later pass.
    case EMFILE:
    case ENFILE:
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EFBIG:
      return Status::ResourceExhausted(m);
    default:
      return Status::Internal(m);
  }
}

Status MakeDirectories(std::string_view dir, mode_t mode) {
  std::string path(dir);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string cur = path.substr(0, i);
    if (mkdir(cur.c_str(), i == path.size() ? mode : 0755) != 0 && errno != EEXIST)
      return ErrnoStatus(errno, "mkdir " + cur);
  }
  return Status::Ok();
}

}  // namespace logferry
