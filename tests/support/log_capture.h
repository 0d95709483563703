// Captures the process's log lines for one test: installs the logger with an
// output that keeps each line, and puts the default (stderr, info) back when
// it goes out of scope. One at a time: the logger is the process's.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "common/logging.h"

namespace logferry::testutil {

class LogCapture {
 public:
  explicit LogCapture(LogOptions options = {}) {
    options.output = [this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    };
    InstallLogging(std::move(options));
  }
  ~LogCapture() { InstallLogging(LogOptions{}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace logferry::testutil
