// Talks to systemd when it started logferry as a Type=notify service
// (sd_notify(3)): READY=1 once the ledger and stores are open, WATCHDOG=1
// from the pass loop, STATUS= with a one-line summary for `systemctl
// status`, STOPPING=1 on the way out. Without NOTIFY_SOCKET every call does
// nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/env.h"

namespace logferry {

class ServiceNotifier {
 public:
  explicit ServiceNotifier(Env* env = Env::Default());

  // Whether a service manager listens (NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  void Ready(const std::string& status);
  void Status(const std::string& status);
  void Stopping();
  // WATCHDOG=1, at most once per half of WatchdogSec (once a second when
  // the watchdog is off), so the pass loop may call it at every tick.
  // Thread-safe.
  void Ping();

 private:
  Env* env_;
  bool enabled_ = false;
  int64_t ping_every_us_ = 0;
  static constexpr int64_t kNeverPinged = INT64_MIN;
  std::atomic<int64_t> last_ping_us_{kNeverPinged};
};

}  // namespace logferry
