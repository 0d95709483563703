// An Env whose clock only moves when told to: SleepForMicroseconds advances
// it at once instead of waiting, and tests Advance() it, so code that backs
// off, polls or keeps a heartbeat runs in no wall time and the clock shows
// exactly how long it would have waited. Environment variables come from a
// map, not the process. Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"

namespace logferry::testutil {

class FakeEnv : public Env {
 public:
  // 2016-08-01T00:00:00Z unless told otherwise: the fixtures' day.
  explicit FakeEnv(int64_t now_us = 1470009600LL * 1'000'000) : now_us_(now_us) {}

  std::optional<std::string> GetEnv(const std::string& name) const override {
    std::lock_guard lock(mu_);
    auto it = vars_.find(name);
    if (it == vars_.end()) return std::nullopt;
    return it->second;
  }
  int64_t NowMicros() const override { return now_us_.load(); }
  int64_t MonotonicMicros() const override { return now_us_.load() - start_us_; }
  // Advances the clock by micros and returns at once. Yields, so that a
  // thread polling in a loop (a heartbeat) lets the others run.
  void SleepForMicroseconds(int64_t micros) override {
    {
      std::lock_guard lock(mu_);
      sleeps_.push_back(micros);
    }
    if (micros > 0) now_us_ += micros;
    std::this_thread::yield();
  }

  void Advance(int64_t micros) { now_us_ += micros; }
  void Set(const std::string& name, const std::string& value) {
    std::lock_guard lock(mu_);
    vars_[name] = value;
  }
  void Unset(const std::string& name) {
    std::lock_guard lock(mu_);
    vars_.erase(name);
  }
  // Every SleepForMicroseconds argument, in order.
  std::vector<int64_t> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }
  int64_t slept_us() const {
    int64_t total = 0;
    for (int64_t s : sleeps()) total += s > 0 ? s : 0;
    return total;
  }

 private:
  mutable std::mutex mu_;
  std::atomic<int64_t> now_us_;
  const int64_t start_us_ = now_us_.load();
  std::map<std::string, std::string> vars_;
  std::vector<int64_t> sleeps_;
};

}  // namespace logferry::testutil
