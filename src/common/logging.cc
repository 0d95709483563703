#include "common/logging.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry {
namespace {

// Repeat suppression: 1 minute, doubling to an hour, so an error every pass
// shows up a handful of times an hour at most yet never goes quiet.
constexpr int64_t kFirstSpacingUs = 60 * kMicrosPerSecond;
constexpr int64_t kMaxSpacingUs = 3600 * kMicrosPerSecond;
// Distinct messages remembered (they name objects: a failing bucket may
// produce many); past it, the ones not seen for an hour are dropped, and if
// that is not enough, all.
constexpr size_t kMaxTracked = 4096;

// Decides whether a repeated warning or error is written now.
class RepeatFilter {
 public:
  // nullopt: hold it back. Else the text to append: "" or the repeat count.
  std::optional<std::string> Admit(std::string_view site, std::string_view message, int64_t now_us) {
    Key key(site.data(), std::string(message));
    auto it = seen_.find(key);
    if (it == seen_.end() || now_us - it->second.last_seen_us >= kMaxSpacingUs) {
      if (it == seen_.end() && seen_.size() >= kMaxTracked) Prune(now_us);
      seen_[std::move(key)] = Seen{now_us, now_us, kFirstSpacingUs, 0};
      return "";
    }
    Seen& s = it->second;
    s.last_seen_us = now_us;
    if (now_us - s.last_written_us < s.spacing_us) {
      ++s.held;
      return std::nullopt;
    }
    std::string suffix;
    if (s.held > 0)
      suffix =
          fmt::format(" (repeated {} times in the last {})", s.held + 1, FormatDuration(now_us - s.last_written_us));
    s = Seen{now_us, now_us, std::min(s.spacing_us * 2, kMaxSpacingUs), 0};
    return suffix;
  }
  void Clear() { seen_.clear(); }

 private:
  // The call site's format string (its address) and the text.
  using Key = std::pair<const char*, std::string>;
  struct Seen {
    int64_t last_written_us, last_seen_us, spacing_us;
    int64_t held;  // occurrences not written since last_written_us
  };

  void Prune(int64_t now_us) {
    std::erase_if(seen_, [now_us](const auto& e) { return now_us - e.second.last_seen_us >= kMaxSpacingUs; });
    if (seen_.size() >= kMaxTracked) seen_.clear();
  }

  std::map<Key, Seen> seen_;
};

struct Logger {
  std::mutex mu;
  LogOptions options;    // guarded by mu
  bool color = false;    // guarded by mu: the level is colored on a terminal
  RepeatFilter repeats;  // guarded by mu
  std::atomic<LogLevel> level{LogLevel::kInfo};
};

Logger& TheLogger() {
  static Logger* logger = new Logger;  // never destroyed: threads may log during exit
  return *logger;
}

struct Scope {
  std::string table, object;
};
thread_local Scope t_scope;

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

// Text lines keep the names they have always shown ("warning"); JSON uses
// the log_level names.
std::string_view LevelName(LogLevel level, LogLineFormat format) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return format == LogLineFormat::kText ? "warning" : "warn";
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

std::string TextLine(const std::string& time, LogLevel level, bool color, const std::string& message) {
  std::string line = time + ' ';
  if (color) line += LevelColor(level);
  line += LevelName(level, LogLineFormat::kText);
  if (color) line += "\033[0m";
  return line + ' ' + message;
}

// Every string in it is escaped first, so the line is valid JSON (and safe
// on a terminal) whatever bytes an object key holds.
std::string JsonLine(const std::string& time, LogLevel level, const std::string& message) {
  nlohmann::ordered_json j;
  j["time"] = time;
  j["level"] = LevelName(level, LogLineFormat::kJson);
  j["message"] = message;
  if (!t_scope.table.empty()) j["table"] = EscapeForDisplay(t_scope.table);
  if (!t_scope.object.empty()) j["object"] = EscapedAndCapped(t_scope.object);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

StatusOr<LogLineFormat> ParseLogLineFormat(std::string_view name) {
  if (name == "text") return LogLineFormat::kText;
  if (name == "json") return LogLineFormat::kJson;
  return Status::InvalidArgument("must be text or json (got '" + EscapeForDisplay(name) + "')");
}

void InstallLogging(LogOptions options) {
  Logger& logger = TheLogger();
  std::lock_guard lock(logger.mu);
  logger.color = !options.output && options.format == LogLineFormat::kText && isatty(STDERR_FILENO);
  if (!options.output) options.output = WriteToStderr;
  if (!options.env) options.env = Env::Default();
  logger.level.store(options.level);
  logger.options = std::move(options);
  logger.repeats.Clear();
}

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff && level >= TheLogger().level.load(std::memory_order_relaxed);
}

void LogMessage(LogLevel level, std::string_view site, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::string text = EscapedAndCapped(message);
  Logger& logger = TheLogger();
  std::lock_guard lock(logger.mu);
  if (!logger.options.output) {  // never installed: as the default would be
    logger.options.output = WriteToStderr;
    logger.options.env = Env::Default();
  }
  if (level >= LogLevel::kWarn) {
    auto suffix = logger.repeats.Admit(site, message, logger.options.env->MonotonicMicros());
    if (!suffix) return;
    text += *suffix;
  }
  std::string time = FormatLogTime(logger.options.env->NowMicros());
  logger.options.output(logger.options.format == LogLineFormat::kJson ? JsonLine(time, level, text)
                                                                      : TextLine(time, level, logger.color, text));
}

LogScope::LogScope(std::string table, std::string object)
    : saved_table_(std::exchange(t_scope.table, std::move(table))),
      saved_object_(std::exchange(t_scope.object, std::move(object))) {}

LogScope::~LogScope() {
  t_scope.table = std::move(saved_table_);
  t_scope.object = std::move(saved_object_);
}

}  // namespace logferry
