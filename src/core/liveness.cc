#include "core/liveness.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/logging.h"

namespace logferry {

std::string ThisHost() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

Liveness LivenessOf(const ProcessRow& p, int64_t now_us) {
  if (p.stopped_us) return Liveness::kStopped;
  if (now_us - p.heartbeat_us > kProcessStaleAfterUs) return Liveness::kGone;
  if (p.host != ThisHost()) return Liveness::kRunning;  // only its heartbeat can tell
  // EPERM: alive, under another user.
  bool alive = kill(static_cast<pid_t>(p.pid), 0) == 0 || errno == EPERM;
  return alive ? Liveness::kRunning : Liveness::kGone;
}

const char* LivenessName(Liveness l) {
  switch (l) {
    case Liveness::kRunning:
      return "running";
    case Liveness::kGone:
      return "gone";
    case Liveness::kStopped:
      return "stopped";
  }
  return "?";
}

ProcessRecorder::ProcessRecorder(Ledger* ledger, const std::string& mode, Env* env) : ledger_(ledger), env_(env) {
  std::lock_guard lock(mu_);
  row_.host = ThisHost();
  row_.pid = getpid();
  row_.mode = mode;
  row_.started_us = env_->NowMicros();
  row_.heartbeat_us = row_.started_us;
  WriteLocked();
  heartbeat_ = std::thread([this] { Beat(); });
}

ProcessRecorder::~ProcessRecorder() {
  // A destructor must not throw; the last record is best effort (a process
  // that is not seen stopping reads as one that died).
  try {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    heartbeat_.join();
    std::lock_guard lock(mu_);
    row_.heartbeat_us = row_.stopped_us.emplace(env_->NowMicros());
    WriteLocked();
  } catch (...) {
  }
}

void ProcessRecorder::PassStarted() {
  std::lock_guard lock(mu_);
  row_.heartbeat_us = row_.last_pass_started_us.emplace(env_->NowMicros());
  WriteLocked();
}

void ProcessRecorder::PassEnded(const std::string& outcome) {
  std::lock_guard lock(mu_);
  row_.heartbeat_us = row_.last_pass_ended_us.emplace(env_->NowMicros());
  row_.last_outcome = outcome;
  WriteLocked();
}

std::string ProcessRecorder::worker_id() {
  std::lock_guard lock(mu_);
  return row_.worker_id();
}

void ProcessRecorder::WriteLocked() {
  Status s = ledger_->RecordProcess(row_);
  if (!s.ok()) log::Warn("recording this process in the ledger failed (status may call it gone): {}", s.ToString());
}

// Beats in real time whatever env_'s clock does: the readers are other processes.
void ProcessRecorder::Beat() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (cv_.wait_for(lock, std::chrono::microseconds(kProcessHeartbeatUs), [this] { return stopping_; })) return;
    row_.heartbeat_us = env_->NowMicros();
    WriteLocked();
  }
}

}  // namespace logferry
