// The one retry policy. Backends classify errors (Status::IsTransient); this
// decides how often and how long to wait: capped exponential backoff with
// full jitter, bounded by attempts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <thread>

#include "common/status.h"

namespace logferry {

struct RetryPolicy {
  int max_attempts = 4;
  int64_t initial_backoff_us = 200'000;
  int64_t max_backoff_us = 5'000'000;

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
    std::this_thread::sleep_for(std::chrono::microseconds(policy.Backoff(attempt)));
  }
}

}  // namespace logferry
