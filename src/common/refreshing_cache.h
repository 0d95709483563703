// A value that expires (temporary credentials, access tokens), fetched once
// and shared: callers get the cached value until it is within
// refresh_before_us of expiring; then one caller refreshes while the others
// keep the current value, and a failed early refresh keeps the current value
// until it really expires. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "common/status.h"

namespace logferry {

// T has `int64_t expires_at_us` (0: never expires).
template <typename T>
class RefreshingCache {
 public:
  RefreshingCache(int64_t refresh_before_us, std::function<int64_t()> now_us)
      : refresh_before_us_(refresh_before_us), now_us_(std::move(now_us)) {}

  // fetch runs with no other fetch in progress (callers may rely on that to
  // keep state of their own between fetches).
  StatusOr<T> Get(const std::function<StatusOr<T>()>& fetch) {
    {
      std::lock_guard lock(mu_);
      int64_t now = now_us_();
      if (cached_ && !NeedsRefresh(*cached_, now)) return *cached_;
      // Another caller is refreshing and this one still works: no need to wait.
      if (cached_ && refreshing_ && !Expired(*cached_, now)) return *cached_;
    }
    std::lock_guard one_refresh(refresh_mu_);
    {
      std::lock_guard lock(mu_);
      if (cached_ && !NeedsRefresh(*cached_, now_us_())) return *cached_;  // refreshed meanwhile
      refreshing_ = true;
    }
    StatusOr<T> fresh = fetch();
    std::lock_guard lock(mu_);
    refreshing_ = false;
    if (fresh.ok()) {
      cached_ = *fresh;
      return *cached_;
    }
    // A failed early refresh is not an outage yet: keep using what we have
    // until it really expires, and try again on the next call.
    if (cached_ && !Expired(*cached_, now_us_())) return *cached_;
    return fresh.status();
  }

 private:
  bool NeedsRefresh(const T& v, int64_t now) const {
    return v.expires_at_us != 0 && now >= v.expires_at_us - refresh_before_us_;
  }
  static bool Expired(const T& v, int64_t now) { return v.expires_at_us != 0 && now >= v.expires_at_us; }

  const int64_t refresh_before_us_;
  std::function<int64_t()> now_us_;
  std::mutex mu_;          // guards cached_ and refreshing_
  std::mutex refresh_mu_;  // one fetch at a time
  std::optional<T> cached_;
  bool refreshing_ = false;
};

}  // namespace logferry
