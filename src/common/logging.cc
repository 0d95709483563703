#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include "common/env.h"
#include "common/strings.h"

namespace logferry {
namespace {

struct Logger {
  std::mutex mu;
  LogOptions options;  // guarded by mu
  bool color = false;  // guarded by mu: the level is colored on a terminal
  std::atomic<LogLevel> level{LogLevel::kInfo};
};

Logger& TheLogger() {
  static Logger* logger = new Logger;  // never destroyed: threads may log during exit
  return *logger;
}

// Escaped text is valid UTF-8: a cut backs off to the start of a character.
std::string EscapedAndCapped(std::string_view message) {
  std::string safe = EscapeForDisplay(message);
  if (safe.size() <= kMaxLogMessageBytes) return safe;
  size_t cut = kMaxLogMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(safe[cut]) & 0xC0) == 0x80) --cut;
  size_t dropped = safe.size() - cut;
  safe.resize(cut);
  safe += "… (" + std::to_string(dropped) + " more bytes not logged)";
  return safe;
}

// "2016-08-01T00:00:00.000Z"
std::string FormatLogTime(int64_t micros) {
  time_t secs = static_cast<time_t>(micros / 1'000'000);
  int millis = static_cast<int>(micros % 1'000'000 / 1000);
  if (micros < 0) secs = 0, millis = 0;
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

// The names the text lines have always shown.
std::string_view TextLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      break;
  }
  return "off";
}

std::string_view LevelColor(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "\033[36m";
    case LogLevel::kInfo:
      return "\033[32m";
    case LogLevel::kWarn:
      return "\033[33m\033[1m";
    default:
      return "\033[31m\033[1m";
  }
}

void WriteToStderr(std::string_view line) {
  std::string out(line);
  out += '\n';
  fwrite(out.data(), 1, out.size(), stderr);
  fflush(stderr);
}

}  // namespace

StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug" || name == "trace") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "off") return LogLevel::kOff;
  return Status::InvalidArgument("must be debug, info, warn, error or off (got '" + EscapeForDisplay(name) + "')");
}

void InstallLogging(LogOptions options) {
  Logger& logger = TheLogger();
  std::lock_guard lock(logger.mu);
  logger.color = !options.output && isatty(STDERR_FILENO);
  if (!options.output) options.output = WriteToStderr;
  if (!options.env) options.env = Env::Default();
  logger.level.store(options.level);
  logger.options = std::move(options);
}

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff && level >= TheLogger().level.load(std::memory_order_relaxed);
}

void LogMessage(LogLevel level, std::string_view /*site*/, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::string safe = EscapedAndCapped(message);
  Logger& logger = TheLogger();
  std::lock_guard lock(logger.mu);
  if (!logger.options.output) {  // never installed: as the default would be
    logger.options.output = WriteToStderr;
    logger.options.env = Env::Default();
  }
  std::string line = FormatLogTime(logger.options.env->NowMicros());
  line += ' ';
  if (logger.color) line += LevelColor(level);
  line += TextLevelName(level);
  if (logger.color) line += "\033[0m";
  line += ' ';
  line += safe;
  logger.options.output(line);
}

}  // namespace logferry
