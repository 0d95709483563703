#include "common/env.h"

#include <chrono>
#include <cstdlib>
#include <thread>

namespace logferry {
namespace {

class RealEnv final : public Env {
 public:
  std::optional<std::string> GetEnv(const std::string& name) const override {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  }
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void SleepForMicroseconds(int64_t micros) override {
    if (micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
};

}  // namespace

Env* Env::Default() {
  // Leaked on purpose: threads still running at exit may read the clock.
  static Env* const env = new RealEnv;
  return env;
}

}  // namespace logferry
