// The process's logger. Every log line passes through one sink that escapes
// the message (EscapeForDisplay) and caps its length, so text from a bucket
// (object keys, field names, request names, quoted server errors) can never
// start a line of its own, move the cursor or rewrite the terminal, whatever
// the call site formats into it.
#pragma once

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <memory>

namespace logferry {

// A longer message is cut there (after escaping) and says how much was cut.
inline constexpr size_t kMaxLogMessageBytes = 16 * 1024;

// Wraps a sink: each message is escaped and capped, then handed on.
std::shared_ptr<spdlog::sinks::sink> MakeEscapingSink(std::shared_ptr<spdlog::sinks::sink> inner);

// Makes the default logger write escaped lines to stderr
// ("2016-08-01T00:00:00.000Z info message", UTC), at this level.
void InstallLogging(spdlog::level::level_enum level);

}  // namespace logferry
