// The process's view of its surroundings: environment variables, the clock
// and sleeping, after LevelDB's Env. Code that reads the time or waits takes
// an Env (through its options, or RetryPolicy::env) instead of calling the
// C library or <chrono> itself, so tests can run a pipeline, a retry loop or
// a job poll against a clock they control (tests/support/fake_env.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace logferry {

class Env {
 public:
  virtual ~Env() = default;

  // The real environment, shared by the whole process. Never null; never
  // destroyed. Thread-safe.
  static Env* Default();

  // An environment variable, or nullopt when it is not set (an empty value
  // is set). Thread-safe, as long as nobody calls setenv() concurrently.
  virtual std::optional<std::string> GetEnv(const std::string& name) const = 0;
  // Wall-clock time: microseconds since the Unix epoch, UTC. May jump (NTP,
  // an operator); use MonotonicMicros() to measure durations.
  virtual int64_t NowMicros() const = 0;
  // A clock that never goes back, for elapsed times and deadlines. Its
  // origin means nothing.
  virtual int64_t MonotonicMicros() const = 0;
  // Blocks the calling thread for about `micros` (nothing for <= 0).
  virtual void SleepForMicroseconds(int64_t micros) = 0;

  // GetEnv, with "" for a variable that is not set.
  std::string GetEnvOr(const std::string& name, const std::string& fallback = "") const {
    return GetEnv(name).value_or(fallback);
  }
};

}  // namespace logferry
