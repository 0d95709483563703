// The names an earlier listing read from a file:// directory, kept to answer
// the next listing of the same window without reading the directory again.
//
// readdir returns a directory's names unsorted, so a listing from a key on
// (a windowed listing) still reads every name of the directory: a million in
// a flat Fluentd directory, about 0.5 s of CPU a pass. A directory's ctime
// changes whenever an entry is created, renamed in or out, or removed
// (mtime too, but tools such as `touch -d`, tar or rsync set mtimes back;
// nothing sets a ctime back). So while the directory's ctime, mtime, device
// and inode are those an earlier read saw, its names are the same, and the
// names in a window that starts at or after that read's are among the ones
// the read kept.
//
// Timestamps are coarse (a kernel tick; whole seconds on some file
// systems, two on FAT) and, on a network file system, stamped by the
// server's clock. A change made while or after a read starts could carry the
// same timestamp as the one the read saw, and go unnoticed. So a read is
// kept only when the directory's timestamps were older than the read's
// start by kTrustMargin: a later change then carries a later timestamp. A
// directory changed within that margin is read again at every listing.
//
// Only file systems known to stamp directories so are trusted (the file
// store's TimesTrackEntries: ext2-4, XFS, Btrfs, tmpfs, F2FS, overlayfs,
// ZFS, NFS); FUSE mounts of buckets often keep fixed directory times.
//
// Files themselves are stat'ed by every listing (a rewrite in place changes
// the file, not its directory). Memory is bounded by the windows' names,
// never a whole directory's: a read that kept more than kMaxNames names is
// not kept. Thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace logferry {

// A name of a directory, as a key relative to the store's root (a
// directory's ends in '/').
struct DirectoryName {
  std::string key;
  bool is_dir = false;
};

// What identifies a directory's content; equal stamps, equal names.
struct DirectoryStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  int64_t ctime_ns = 0;
  int64_t mtime_ns = 0;
  bool operator==(const DirectoryStamp&) const = default;
};

class DirectoryCache {
 public:
  // Ten seconds: above the two-second timestamps of FAT and the offsets of
  // a network file server's clock that NTP leaves. It costs a full read at
  // each listing in the ten seconds after a change, no more.
  static constexpr int64_t kTrustMarginMicros = 10'000'000;
  static constexpr size_t kMaxNames = 1 << 17;  // over every directory kept
  static constexpr size_t kMaxDirectories = 256;

  // The names a kept read of dir (relative to the root) for the same prefix
  // from `after` or before kept, in key order, when the directory's stamp is
  // still the one that read saw; nullopt otherwise. The caller filters them
  // by its own window.
  std::optional<std::vector<DirectoryName>> Lookup(const std::string& dir, const DirectoryStamp& stamp,
                                                   const std::string& prefix, const std::string& after);
  // Keeps the names, sorted by key, that a read of dir for (prefix, after)
  // kept, when it may be trusted: it started (start_us, wall clock) at least
  // kTrustMarginMicros after the directory's timestamps in stamp. Else
  // forgets dir's names for prefix.
  void Remember(const std::string& dir, const DirectoryStamp& stamp, int64_t start_us, const std::string& prefix,
                const std::string& after, const std::vector<DirectoryName>& names);

 private:
  struct Entry {
    DirectoryStamp stamp;
    std::string after;
    std::vector<DirectoryName> names;
    uint64_t used = 0;
  };
  using Key = std::pair<std::string, std::string>;  // (dir, prefix)
  void Forget(std::map<Key, Entry>::iterator it);
  void MakeRoom(size_t names);

  std::mutex mu_;
  std::map<Key, Entry> entries_;
  size_t names_ = 0;
  uint64_t clock_ = 0;  // orders entries by last use
};

}  // namespace logferry
