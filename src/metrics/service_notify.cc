#include "metrics/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

#include "common/time.h"

namespace logferry {

namespace {

// A newline would start another assignment of the notify protocol.
std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

ServiceNotifier::ServiceNotifier(Env* env) : env_(env) {
  const char* socket = getenv("NOTIFY_SOCKET");
  enabled_ = socket && *socket;
  uint64_t watchdog_us = 0;
  // Half the period: a ping delayed by one slow tick still arrives in time.
  if (enabled_ && sd_watchdog_enabled(0, &watchdog_us) > 0)
    ping_every_us_ = static_cast<int64_t>(watchdog_us / 2);
  else
    ping_every_us_ = kMicrosPerSecond;
}

void ServiceNotifier::Ready(const std::string& status) {
  if (enabled_) sd_notify(0, ("READY=1\nSTATUS=" + OneLine(status)).c_str());
}

void ServiceNotifier::Status(const std::string& status) {
  if (enabled_) sd_notify(0, ("STATUS=" + OneLine(status)).c_str());
}

void ServiceNotifier::Stopping() {
  if (enabled_) sd_notify(0, "STOPPING=1");
}

void ServiceNotifier::Ping() {
  if (!enabled_) return;
  int64_t now = env_->MonotonicMicros();
  int64_t last = last_ping_us_.load();
  if (last != kNeverPinged && now - last < ping_every_us_) return;
  if (!last_ping_us_.compare_exchange_strong(last, now)) return;  // another thread just pinged
  sd_notify(0, "WATCHDOG=1");
}

}  // namespace logferry
