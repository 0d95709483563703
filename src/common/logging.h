// The process's logger: a small facade over one output, so no module sees
// the logging library. Call sites format with fmt ("...{}", x):
//
//   log::Warn("request {} refused: {}", uri, why);
//
// Every line's message is escaped (EscapeForDisplay) and capped, so text from
// a bucket (object keys, field names, request names, quoted server errors) can
// never start a line of its own, move the cursor or rewrite the terminal,
// whatever the call site formats into it.
//
// A warning or error that repeats (the same text from the same call site) is
// written once, then held back with growing spacing (1 minute doubling to an
// hour); when it is written again it says "(repeated N times in the last
// Xm)". A message not seen for an hour starts over.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace logferry {

class Env;

// A longer message is cut there (after escaping) and says how much was cut.
inline constexpr size_t kMaxLogMessageBytes = 16 * 1024;

enum class LogLevel { kDebug, kInfo, kWarn, kError, kOff };

// "debug", "info", "warn", "error" or "off" ("trace", which configs have
// accepted, means debug). Anything else is an InvalidArgument: an unknown
// name must not silence the log.
StatusOr<LogLevel> ParseLogLevel(std::string_view name);

// "text": "2016-08-01T00:00:00.000Z info message". "json": one object per
// line, {"time", "level", "message"} plus "table" and "object" when the line
// was written inside a LogScope that names them.
enum class LogLineFormat { kText, kJson };

// "text" or "json"; anything else is an InvalidArgument.
StatusOr<LogLineFormat> ParseLogLineFormat(std::string_view name);

struct LogOptions {
  LogLevel level = LogLevel::kInfo;
  LogLineFormat format = LogLineFormat::kText;
  // The clock of the time stamps and of repeat suppression. nullptr:
  // Env::Default().
  Env* env = nullptr;
  // Where each finished line goes (without its newline). Empty: stderr.
  // Called under the logger's lock, one line at a time.
  std::function<void(std::string_view line)> output;
};

// Replaces the process's logger (and forgets held-back repeats). Times are
// UTC. Thread-safe; a line being written while it runs goes to the old
// output or the new one.
void InstallLogging(LogOptions options);

// Whether a line at this level would be written (to skip formatting).
bool LogEnabled(LogLevel level);

// Writes one line. `site` names the call site (its format string); message
// is escaped and capped here.
void LogMessage(LogLevel level, std::string_view site, std::string_view message);

// The table and object the calling thread works on, for the lines it writes
// meanwhile (JSON's "table" and "object"). Scopes nest; each puts back what
// was there before when it ends. Thread-local: a worker thread sets its own.
class LogScope {
 public:
  explicit LogScope(std::string table, std::string object = "");
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  std::string saved_table_, saved_object_;
};

namespace log {

template <typename... Args>
void At(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (!LogEnabled(level)) return;
  fmt::memory_buffer text;
  fmt::format_to(std::back_inserter(text), format, std::forward<Args>(args)...);
  fmt::string_view site = format;
  LogMessage(level, std::string_view(site.data(), site.size()), std::string_view(text.data(), text.size()));
}

template <typename... Args>
void Debug(fmt::format_string<Args...> format, Args&&... args) {
  At(LogLevel::kDebug, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(fmt::format_string<Args...> format, Args&&... args) {
  At(LogLevel::kInfo, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(fmt::format_string<Args...> format, Args&&... args) {
  At(LogLevel::kWarn, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(fmt::format_string<Args...> format, Args&&... args) {
  At(LogLevel::kError, format, std::forward<Args>(args)...);
}

}  // namespace log
}  // namespace logferry
