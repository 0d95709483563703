#include "store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>

#include "common/files.h"
#include "common/strings.h"
#include "store/directory_cache.h"

namespace logferry {

namespace {

constexpr std::string_view kTempPrefix = ".lf-tmp-";

std::string EtagOf(const struct stat& st) {
  char buf[96];
  snprintf(buf, sizeof buf, "%llx-%llx-%llx",
           static_cast<unsigned long long>(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec),
           static_cast<unsigned long long>(st.st_size), static_cast<unsigned long long>(st.st_ino));
  return buf;
}

ObjectInfo InfoOf(std::string key, const struct stat& st) {
  ObjectInfo info;
  info.key = std::move(key);
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_us = st.st_mtim.tv_sec * 1000000LL + st.st_mtim.tv_nsec / 1000;
  info.etag = EtagOf(st);
  return info;
}

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open directory " + dir);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, "fsync directory " + dir);
  return Status::Ok();
}

Status FsyncFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open " + path + " to sync it");
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, "fsync " + path);
  return Status::Ok();
}

// Whether syncfs(2) on this file's filesystem makes every file written on
// it durable, names included, and reports write-back errors since the file
// was opened (Linux 5.8 and later). True on the local filesystems listed;
// elsewhere (NFS, FUSE before 5.15: syncfs may do nothing) each file is
// fsync'd.
bool SyncfsCoversFiles(int fd) {
  struct utsname u;
  int major = 0, minor = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2 || major * 100 + minor < 508) return false;
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<uint64_t>(fs.f_type)) {
    case 0xEF53:      // ext2, ext3, ext4
    case 0x58465342:  // XFS
    case 0x9123683E:  // Btrfs
    case 0xF2F52010:  // F2FS
    case 0x01021994:  // tmpfs: nothing to make durable
      return true;
    default:
      return false;
  }
}

class FileReadStream final : public ReadStream {
 public:
  FileReadStream(int fd, std::string path, std::string if_etag)
      : fd_(fd), path_(std::move(path)), if_etag_(std::move(if_etag)) {}
  ~FileReadStream() override { close(fd_); }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t r = read(fd_, buf, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read " + path_);
      }
      if (r == 0 && !if_etag_.empty()) {
        // An in-place rewrite while we read would mix versions; detect it at the end.
        struct stat st;
        if (fstat(fd_, &st) == 0 && EtagOf(st) != if_etag_)
          return Status::FailedPrecondition(path_ + " changed while it was read");
      }
      offset_ += static_cast<uint64_t>(r);
      return static_cast<size_t>(r);
    }
  }
  uint64_t Offset() const override { return offset_; }

 private:
  int fd_;
  std::string path_;
  std::string if_etag_;
  uint64_t offset_ = 0;
};

class FileWriteStream final : public WriteStream {
 public:
  FileWriteStream(int fd, std::string key, std::string dir, std::string tmp, std::string final_path, bool sync_now)
      : fd_(fd),
        sync_now_(sync_now),
        key_(std::move(key)),
        dir_(std::move(dir)),
        tmp_(std::move(tmp)),
        final_(std::move(final_path)) {}
  ~FileWriteStream() override {
    if (committed_) return;
    if (fd_ >= 0) close(fd_);
    unlink(tmp_.c_str());
  }

  Status Suspend() override {
    if (committed_ || fd_ < 0) return Status::Ok();
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return ErrnoStatus(errno, "close " + tmp_);
    return Status::Ok();
  }

  Status Write(std::string_view data) override {
    if (committed_) return Status::FailedPrecondition("write after commit");
    LF_RETURN_IF_ERROR(Resume());
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t w = write(fd_, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write " + tmp_);
      }
      p += w;
      left -= static_cast<size_t>(w);
    }
    crc_ = Crc32c(crc_, data.data(), data.size());
    size_ += data.size();
    return Status::Ok();
  }

  StatusOr<WrittenObject> Commit() override {
    if (committed_) return Status::FailedPrecondition("commit twice");
    LF_RETURN_IF_ERROR(Resume());
    if (sync_now_ && fsync(fd_) != 0) return ErrnoStatus(errno, "fsync " + tmp_);
    struct stat st;
    if (fstat(fd_, &st) != 0) return ErrnoStatus(errno, "fstat " + tmp_);
    close(fd_);
    fd_ = -1;
    committed_ = true;
    if (rename(tmp_.c_str(), final_.c_str()) != 0) {
      Status s = ErrnoStatus(errno, "rename " + tmp_);
      unlink(tmp_.c_str());
      return s;
    }
    if (sync_now_) LF_RETURN_IF_ERROR(FsyncDir(dir_));
    WrittenObject out;
    out.key = key_;
    out.size = size_;
    out.crc32c = Crc32cHex(crc_);
    out.etag = EtagOf(st);
    return out;
  }

 private:
  // Reopens the temp file after Suspend, appending where it stopped.
  Status Resume() {
    if (fd_ >= 0) return Status::Ok();
    int fd = open(tmp_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "reopen " + tmp_);
    fd_ = fd;
    return Status::Ok();
  }

  int fd_;         // -1 while suspended or once committed
  bool sync_now_;  // false: FileStore::SyncWritten makes the bytes and the rename durable
  bool committed_ = false;
  std::string key_, dir_, tmp_, final_;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
};

// Whether a directory entry (a directory's key ends in '/') can be left
// out: a directory is kept if it could hold keys with the prefix after the
// page token.
bool Pruned(const std::string& key, bool is_dir, std::string_view prefix, std::string_view after) {
  if (is_dir) {
    if (!StartsWith(key, prefix) && !StartsWith(prefix, key)) return true;
    return !after.empty() && key < after && !StartsWith(after, key);
  }
  return !StartsWith(key, prefix) || (!after.empty() && key <= after);
}

DirectoryStamp StampOf(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec,
          st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
}

// Whether the file system under fd stamps a directory whenever its entries
// change, as POSIX asks. FUSE file systems (s3fs, goofys, gcsfuse over a
// bucket) often keep fixed directory times; there every listing reads.
bool TimesTrackEntries(int fd) {
  constexpr int64_t kZfsMagic = 0x2FC12FC1;  // not in linux/magic.h
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<int64_t>(fs.f_type)) {
    case EXT4_SUPER_MAGIC:  // ext2 and ext3 too
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case F2FS_SUPER_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
    case NFS_SUPER_MAGIC:
    case kZfsMagic:
      return true;
    default:
      return false;
  }
}

// What one List call walks with.
struct WalkContext {
  const std::string& root;
  std::string prefix;
  std::string after;  // the page token
  size_t max_keys;
  Env* env;
  DirectoryCache* cache;
  std::atomic<int64_t>* reads;
};

// The names of the open directory fd that the walk keeps, in key order.
// Names are pruned before anything is stat'ed: a listing from a key on (a
// windowed listing, a later page) costs a readdir, not a stat, per key it
// skips. The type comes from the directory entry where the filesystem
// gives it.
StatusOr<std::vector<DirectoryName>> ReadNames(const WalkContext& w, const std::string& rel_dir, int fd) {
  DIR* d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, "list " + w.root + rel_dir);
  }
  std::vector<DirectoryName> names;
  while (struct dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == ".." || StartsWith(name, kTempPrefix)) continue;
    std::string rel = rel_dir + std::string(name);
    struct stat st {};
    bool have_stat = e->d_type == DT_UNKNOWN;
    if (have_stat && lstat((w.root + rel).c_str(), &st) != 0) continue;  // vanished meanwhile
    bool is_dir = have_stat ? S_ISDIR(st.st_mode) : e->d_type == DT_DIR;
    bool is_file = have_stat ? S_ISREG(st.st_mode) : e->d_type == DT_REG;
    if (!is_dir && !is_file) continue;
    std::string key = is_dir ? rel + "/" : rel;
    if (!Pruned(key, is_dir, w.prefix, w.after)) names.push_back({std::move(key), is_dir});
  }
  closedir(d);
  std::sort(names.begin(), names.end(), [](const DirectoryName& a, const DirectoryName& b) { return a.key < b.key; });
  return names;
}

// The names of rel_dir the walk keeps, in key order: from an earlier read
// while the directory is unchanged since, else read now.
StatusOr<std::vector<DirectoryName>> NamesOf(const WalkContext& w, const std::string& rel_dir) {
  std::string dir = w.root + rel_dir;
  // Before the directory is opened: a change from here on must show in its timestamps.
  int64_t start_us = w.env->NowMicros();
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::vector<DirectoryName>{};
    return ErrnoStatus(errno, "list " + dir);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, "stat " + dir);
  }
  DirectoryStamp stamp = StampOf(st);
  bool trusted = TimesTrackEntries(fd);
  std::optional<std::vector<DirectoryName>> names;
  if (trusted) names = w.cache->Lookup(rel_dir, stamp, w.prefix, w.after);
  if (names) {
    close(fd);
    std::erase_if(*names, [&](const DirectoryName& n) { return Pruned(n.key, n.is_dir, w.prefix, w.after); });
  } else {
    w.reads->fetch_add(1, std::memory_order_relaxed);
    LF_ASSIGN_OR_RETURN(names, ReadNames(w, rel_dir, fd));
  }
  if (trusted) w.cache->Remember(rel_dir, stamp, start_us, w.prefix, w.after, *names);
  return std::move(*names);
}

// Collects keys in byte order by a depth-first walk whose siblings are sorted
// as full keys would be (a directory "d" sorts as "d/"), skipping subtrees
// that lie entirely at or before the page token. Files are stat'ed as they
// are listed, never from an earlier read: a rewrite in place changes the
// file, not its directory.
Status Walk(const WalkContext& w, const std::string& rel_dir, std::vector<ObjectInfo>* out, bool* truncated) {
  LF_ASSIGN_OR_RETURN(std::vector<DirectoryName> names, NamesOf(w, rel_dir));
  for (const DirectoryName& n : names) {
    if (out->size() >= w.max_keys) {
      *truncated = true;
      return Status::Ok();
    }
    if (n.is_dir) {
      LF_RETURN_IF_ERROR(Walk(w, n.key, out, truncated));
      if (*truncated) return Status::Ok();
      continue;
    }
    struct stat st;
    if (lstat((w.root + n.key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // gone or replaced meanwhile
    out->push_back(InfoOf(n.key, st));
  }
  return Status::Ok();
}

}  // namespace

SchemeInfo FileScheme() {
  SchemeInfo s;
  s.name = "file";
  s.example = "file:///dir/";
  s.service = "the local filesystem";
  s.roles = kRoleSource | kRoleStaging;
  s.open_store = [](std::string_view uri, const StoreOptions&) { return FileStore::Open(uri); };
  return s;
}

std::string FileUri(std::string_view dir) {
  return "file://" + std::string(dir);
}

FileStore::FileStore(std::string uri, std::string root, Env* env)
    : uri_(std::move(uri)), root_(std::move(root)), env_(env), directories_(std::make_unique<DirectoryCache>()) {}

StatusOr<std::unique_ptr<ObjectStore>> FileStore::Open(std::string_view uri, Env* env) {
  Uri u;
  if (!ParseUri(uri, &u) || u.scheme != "file")
    return Status::InvalidArgument("not a file:// URI: '" + std::string(uri) + "'");
  if (!u.authority.empty() && u.authority != "localhost")
    return Status::InvalidArgument("file:// URI must be file:///absolute/path (got '" + std::string(uri) + "')");
  std::string root = "/" + u.path;
  if (root.back() != '/') root += '/';
  std::string norm = "file://" + root;
  return std::unique_ptr<ObjectStore>(new FileStore(std::move(norm), std::move(root), env));
}

StatusOr<ListPage> FileStore::List(std::string_view prefix, std::string_view page_token, size_t max_keys) {
  CountListRequest();
  ListPage page;
  bool truncated = false;
  WalkContext walk{.root = root_,
                   .prefix = std::string(prefix),
                   .after = std::string(page_token),
                   .max_keys = std::max<size_t>(max_keys, 1),
                   .env = env_,
                   .cache = directories_.get(),
                   .reads = &directory_reads_};
  LF_RETURN_IF_ERROR(Walk(walk, "", &page.objects, &truncated));
  if (truncated && !page.objects.empty()) page.next_token = page.objects.back().key;
  return page;
}

StatusOr<ObjectInfo> FileStore::Stat(std::string_view key) {
  LF_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + std::string(key);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) return Status::NotFound(path + " is not a regular file");
  return InfoOf(std::string(key), st);
}

StatusOr<std::unique_ptr<ReadStream>> FileStore::OpenRead(std::string_view key, const ReadOptions& options) {
  LF_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + std::string(key);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  if (!options.if_etag.empty()) {
    struct stat st;
    if (fstat(fd, &st) != 0 || EtagOf(st) != options.if_etag) {
      close(fd);
      return Status::FailedPrecondition(path + " is no longer the version listed (etag changed)");
    }
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<ReadStream>(new FileReadStream(fd, std::move(path), options.if_etag));
}

namespace {

// A new temp file beside path. Directories are made only when the file
// cannot be created without them: most writes go to a directory that exists.
StatusOr<int> CreateTemp(const std::string& dir, const std::string& tmp) {
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {
    LF_RETURN_IF_ERROR(MakeDirectories(dir));
    fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  if (fd < 0) return ErrnoStatus(errno, "create " + tmp);
  return fd;
}

}  // namespace

StatusOr<std::unique_ptr<WriteStream>> FileStore::OpenWriteStream(std::string_view key, bool sync_now) {
  LF_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + std::string(key);
  std::string dir = path.substr(0, path.rfind('/') + 1);
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char suffix[64];
  snprintf(suffix, sizeof suffix, "%d-%llu-%llx", getpid(), static_cast<unsigned long long>(counter++),
           static_cast<unsigned long long>(rng()));
  std::string tmp = dir + std::string(kTempPrefix) + suffix;
  LF_ASSIGN_OR_RETURN(int fd, CreateTemp(dir, tmp));
  if (!sync_now) WatchFilesystem();
  return std::unique_ptr<WriteStream>(new FileWriteStream(fd, std::string(key), dir, tmp, path, sync_now));
}

StatusOr<std::unique_ptr<WriteStream>> FileStore::OpenWrite(std::string_view key) {
  return OpenWriteStream(key, /*sync_now=*/true);
}

StatusOr<std::unique_ptr<WriteStream>> FileStore::OpenWriteSyncedLater(std::string_view key) {
  return OpenWriteStream(key, /*sync_now=*/false);
}

FileStore::~FileStore() {
  if (syncfs_fd_ >= 0) close(syncfs_fd_);
}

// Once per store: a write never waits for another thread's sync here.
void FileStore::WatchFilesystem() {
  std::call_once(watched_, [this] { OpenWatch(); });
}

void FileStore::OpenWatch() {
  std::lock_guard lock(sync_mu_);
  syncfs_fd_ = kPerFile;
  int fd = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0) return;
  if (!SyncfsCoversFiles(fd) || fstat(fd, &st) != 0) {
    close(fd);
    return;
  }
  syncfs_fd_ = fd;
  syncfs_dev_ = st.st_dev;
}

Status FileStore::SyncWritten(const std::vector<std::string>& keys) {
  std::set<std::string> dirs;
  for (const std::string& key : keys) {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    std::string path = root_ + key;
    dirs.insert(path.substr(0, path.rfind('/') + 1));
  }
  if (keys.size() >= kSyncfsMinFiles) {
    // One syncfs at a time: a write-back error that syncfs reports is
    // reported once, so whoever sees it first makes every later sync per
    // file (each file's own error is still there for its fsync).
    std::lock_guard lock(sync_mu_);
    if (syncfs_fd_ >= 0 && OnWatchedFilesystem(dirs)) {
      if (syncfs(syncfs_fd_) == 0) return Status::Ok();
      Status s = ErrnoStatus(errno, "syncfs " + root_);
      close(syncfs_fd_);
      syncfs_fd_ = kPerFile;
      return s;
    }
  }
  for (const std::string& key : keys) LF_RETURN_IF_ERROR(FsyncFile(root_ + key));
  for (const std::string& dir : dirs) LF_RETURN_IF_ERROR(FsyncDir(dir));
  return Status::Ok();
}

bool FileStore::OnWatchedFilesystem(const std::set<std::string>& dirs) const {
  for (const std::string& dir : dirs) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 || st.st_dev != syncfs_dev_) return false;
  }
  return true;
}

Status FileStore::Delete(std::string_view key) {
  LF_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + std::string(key);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "delete " + path);
  return Status::Ok();
}

namespace {
void SweepTemporaries(const std::string& dir, int64_t cutoff_us) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + std::string(name);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      SweepTemporaries(path + "/", cutoff_us);
    } else if (StartsWith(name, kTempPrefix) && st.st_mtim.tv_sec * 1000000LL + st.st_mtim.tv_nsec / 1000 < cutoff_us) {
      unlink(path.c_str());
    }
  }
  closedir(d);
}
}  // namespace

Status FileStore::RemoveStaleTemporaries(std::string_view prefix, int64_t min_age_us) {
  std::string dir = root_ + std::string(prefix.substr(0, prefix.rfind('/') + 1));
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  SweepTemporaries(dir, now.tv_sec * 1000000LL + now.tv_nsec / 1000 - min_age_us);
  return Status::Ok();
}

std::optional<std::string> FileStore::LocalPath(std::string_view key) const {
  if (!ValidateKey(key).ok()) return std::nullopt;
  return root_ + std::string(key);
}

}  // namespace logferry
