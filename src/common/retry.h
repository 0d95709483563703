// The one retry policy. Backends classify errors (Status::IsTransient); this
// decides how often and how long to wait: capped exponential backoff, each
// wait drawn uniformly from [d/2, d], bounded by attempts. It waits through
// its Env, so a test's fake clock makes the waits instant and measurable.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <utility>

#include "common/env.h"
#include "common/status.h"

namespace logferry {

struct RetryPolicy {
  int max_attempts = 4;
  int64_t initial_backoff_us = 200'000;
  int64_t max_backoff_us = 5'000'000;
  // Sleeps between attempts (and whoever waits by this policy: job polls).
  Env* env = Env::Default();

  // Delay before attempt n+1 after n failures: uniform in [d/2, d] where
  // d = min(max, initial * 2^(n-1)). Half-jitter keeps a floor so a storm of
  // retries still spreads out but never retries instantly.
  int64_t Backoff(int failures) const {
    int64_t d = initial_backoff_us;
    for (int i = 1; i < failures && d < max_backoff_us; ++i) d *= 2;
    d = std::min(d, max_backoff_us);
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<int64_t> dist(d / 2, d);
    return dist(rng);
  }
};

// Runs fn until it succeeds, fails permanently, or attempts run out.
template <typename Fn>
auto WithRetry(const RetryPolicy& policy, Fn&& fn) -> decltype(fn()) {
  for (int attempt = 1;; ++attempt) {
    auto result = fn();
    if (result.ok() || !result.status().IsTransient() || attempt >= policy.max_attempts) return result;
    policy.env->SleepForMicroseconds(policy.Backoff(attempt));
  }
}

// How one attempt of a resumable operation ended (see WithResumableRetry).
// The operation only classifies; the loop decides whether to go again.
struct Attempt {
  enum class Kind { kDone, kFailed, kAgain };

  // Finished, well or not: returned as it is, never retried.
  static Attempt Done(Status status) { return {Kind::kDone, std::move(status), false, false}; }
  // Retried, after a backoff and the resume step, if transient and the
  // attempts since the last progress allow another.
  static Attempt Failed(Status status) { return {Kind::kFailed, std::move(status), false, false}; }
  // Not finished, and nothing failed. With progress: go again at once, and
  // the count of attempts starts over (a partial write is progress, not a
  // failed attempt). Without: it counts as a failed attempt, transient, with
  // the backoff before the next and the bound on attempts; `stalled` is what
  // the operation returns when the attempts run out, so a server that keeps
  // answering "go on" without taking anything cannot loop forever.
  static Attempt Again(bool progressed, Status stalled = Status::Unavailable("no progress")) {
    return {progressed ? Kind::kAgain : Kind::kFailed, std::move(stalled), progressed, !progressed};
  }

  Kind kind;
  Status status;
  bool progressed;
  // An Again without progress: where things stand is known, so there is
  // nothing to resume after the backoff.
  bool stalled = false;
};

// WithRetry for an operation that can get part of the way, such as a
// resumable upload. attempt() runs one attempt and returns an Attempt.
// After a retried failure's backoff, resume() finds out where things stand
// (what the server kept, say): it returns a Status if that finished the
// operation, nullopt to attempt again.
template <typename AttemptFn, typename ResumeFn>
Status WithResumableRetry(const RetryPolicy& policy, AttemptFn&& attempt, ResumeFn&& resume) {
  int attempts = 0;  // since the last progress
  while (true) {
    ++attempts;
    Attempt a = attempt();
    if (a.kind == Attempt::Kind::kDone) return a.status;
    if (a.kind == Attempt::Kind::kAgain) {  // progressed
      attempts = 0;
      continue;
    }
    if (!a.status.IsTransient() || attempts >= policy.max_attempts) return a.status;
    policy.env->SleepForMicroseconds(policy.Backoff(attempts));
    if (a.stalled) continue;
    if (std::optional<Status> finished = resume()) return *std::move(finished);
  }
}

}  // namespace logferry
