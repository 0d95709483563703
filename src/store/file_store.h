// file:// object store: a directory tree on the local filesystem.
//
// Writes are atomic (temp file in the same directory, fsync, rename, fsync of
// the directory) so a crash leaves the old object or the new one. Writes
// whose sync is left to SyncWritten skip both fsyncs: SyncWritten makes a
// group of them durable at once (one syncfs(2) of the filesystem, or an
// fsync per file and per directory). Temp files
// are named ".lf-tmp-*" and never listed. The etag is derived from
// (mtime_ns, size, inode): an atomic replace always changes it.
//
// A listing from a key on (a windowed listing) answers from the names an
// earlier listing read from a directory while the directory has not changed
// since (store/directory_cache.h): a flat directory of a million objects is
// then not read again each pass, only the window's files are stat'ed.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/env.h"
#include "registry/scheme.h"
#include "store/object_store.h"

namespace logferry {

class DirectoryCache;

// file://: a source or staging directory on this machine.
SchemeInfo FileScheme();
// The file:// URI of a local directory ("/abs/dir/" -> "file:///abs/dir/").
std::string FileUri(std::string_view dir);

class FileStore final : public ObjectStore {
 public:
  // uri: file:///absolute/dir/ (the directory is created on first write).
  // env: the wall clock that directory timestamps are compared with.
  static StatusOr<std::unique_ptr<ObjectStore>> Open(std::string_view uri, Env* env = Env::Default());
  ~FileStore() override;
  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;

  const std::string& uri() const override { return uri_; }
  StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token, size_t max_keys) override;
  size_t list_page_keys() const override { return SIZE_MAX; }
  StatusOr<ObjectInfo> Stat(std::string_view key) override;
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& options) override;
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override;
  StatusOr<std::unique_ptr<WriteStream>> OpenWriteSyncedLater(std::string_view key) override;
  Status SyncWritten(const std::vector<std::string>& keys) override;
  Status Delete(std::string_view key) override;
  std::optional<std::string> LocalPath(std::string_view key) const override;
  Status RemoveStaleTemporaries(std::string_view prefix, int64_t min_age_us) override;
  // Directories List has read from disk (not those it answered from an
  // earlier read), for tests and benches.
  int64_t directory_reads() const { return directory_reads_.load(std::memory_order_relaxed); }

 private:
  // A group this big is synced with one syncfs(2), a smaller one file by
  // file: syncfs also writes whatever else is dirty on the filesystem.
  static constexpr size_t kSyncfsMinFiles = 8;
  static constexpr int kPerFile = -1;

  // sync_now: Commit makes the bytes and the rename durable (else SyncWritten does).
  StatusOr<std::unique_ptr<WriteStream>> OpenWriteStream(std::string_view key, bool sync_now);
  FileStore(std::string uri, std::string root, Env* env);
  // Opens the root's filesystem for syncfs on the first write synced later:
  // syncfs reports the write-back errors that came after this open.
  void WatchFilesystem();
  void OpenWatch();
  bool OnWatchedFilesystem(const std::set<std::string>& dirs) const;

  std::string uri_;
  std::string root_;  // absolute directory path with a trailing '/'
  Env* env_;
  std::unique_ptr<DirectoryCache> directories_;
  std::atomic<int64_t> directory_reads_{0};
  std::once_flag watched_;
  std::mutex sync_mu_;
  int syncfs_fd_ = kPerFile;  // the root directory, or kPerFile: fsync each file
  dev_t syncfs_dev_ = 0;
};

}  // namespace logferry
