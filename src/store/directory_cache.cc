#include "store/directory_cache.h"

#include <algorithm>

namespace logferry {

std::optional<std::vector<DirectoryName>> DirectoryCache::Lookup(const std::string& dir, const DirectoryStamp& stamp,
                                                                 const std::string& prefix, const std::string& after) {
  std::lock_guard lock(mu_);
  auto it = entries_.find({dir, prefix});
  if (it == entries_.end()) return std::nullopt;
  // A window that starts earlier would need names this read left out.
  if (!(it->second.stamp == stamp) || after < it->second.after) {
    Forget(it);
    return std::nullopt;
  }
  it->second.used = ++clock_;
  return it->second.names;
}

void DirectoryCache::Remember(const std::string& dir, const DirectoryStamp& stamp, int64_t start_us,
                              const std::string& prefix, const std::string& after,
                              const std::vector<DirectoryName>& names) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find({dir, prefix}); it != entries_.end()) Forget(it);
  int64_t changed_us = std::max(stamp.ctime_ns, stamp.mtime_ns) / 1000;
  if (changed_us >= start_us - kTrustMarginMicros || names.size() > kMaxNames) return;
  MakeRoom(names.size());
  names_ += names.size();
  entries_[{dir, prefix}] = Entry{stamp, after, names, ++clock_};
}

void DirectoryCache::Forget(std::map<Key, Entry>::iterator it) {
  names_ -= it->second.names.size();
  entries_.erase(it);
}

// Drops the least recently used entries (windows that moved on, directories
// no longer listed) until `names` more fit.
void DirectoryCache::MakeRoom(size_t names) {
  while (!entries_.empty() && (names_ + names > kMaxNames || entries_.size() >= kMaxDirectories)) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
    Forget(oldest);
  }
}

}  // namespace logferry
