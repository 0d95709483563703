// Liveness of `logferry run` processes, kept in the ledger (processes table)
// so that `status` can tell whether a daemon runs, since when, and how its
// last pass went, from any process that can read the ledger.
//
// A process records itself at start, at the start and end of every pass, on
// a heartbeat while it lives (passes can take hours), and when it stops. A
// reader believes a process is running when its heartbeat is recent and,
// on the same host, its pid is still alive; otherwise it is "last seen" at
// its last heartbeat.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/env.h"
#include "common/time.h"
#include "ledger/ledger.h"

namespace logferry {

// How often a live process refreshes its heartbeat, and how old a heartbeat
// may be before the process counts as gone (several missed beats, since a
// busy ledger can delay one).
constexpr int64_t kProcessHeartbeatUs = 30 * kMicrosPerSecond;
constexpr int64_t kProcessStaleAfterUs = 4 * kProcessHeartbeatUs;

// The host name as `status` shows it and compares it.
std::string ThisHost();

enum class Liveness { kRunning, kGone, kStopped };
// kStopped: it recorded a normal exit; kGone: it died or went silent.
Liveness LivenessOf(const ProcessRow& p, int64_t now_us);
const char* LivenessName(Liveness l);

// This process's row, written from the calling thread at each event and from
// a thread of its own on the heartbeat. A failed write is logged, never
// returned: liveness reporting must not stop the work. Thread-safe.
class ProcessRecorder {
 public:
  // mode: "daemon" or "once".
  ProcessRecorder(Ledger* ledger, const std::string& mode, Env* env = Env::Default());
  ~ProcessRecorder();  // records the stop
  ProcessRecorder(const ProcessRecorder&) = delete;
  ProcessRecorder& operator=(const ProcessRecorder&) = delete;

  void PassStarted();
  // outcome: "ok", or a short account of what failed.
  void PassEnded(const std::string& outcome);
  // This process's name as a worker (ProcessRow::worker_id()).
  std::string worker_id();

 private:
  void WriteLocked();  // REQUIRES: mu_ held
  void Beat();

  Ledger* ledger_;
  Env* env_;
  std::mutex mu_;
  std::condition_variable cv_;
  ProcessRow row_;         // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::thread heartbeat_;  // last: starts once the rest is ready
};

}  // namespace logferry
