// How the CLI's subcommands end on an error: the message on stderr (escaped
// for a terminal) and an exit code (2: usage, 1: anything else).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace logferry::cli {

[[noreturn]] inline void Fail(const std::string& message, int code = 1) {
  fflush(stdout);
  fprintf(stderr, "logferry: %s\n", EscapeForDisplay(message).c_str());
  exit(code);
}

// Fails with the status's message (its code name when it has none); a bad
// argument is a usage error whatever `code` says.
inline void OrFail(const Status& s, int code = 1) {
  if (s.ok()) return;
  Fail(s.message().empty() ? s.ToString() : s.message(), s.code() == StatusCode::kInvalidArgument ? 2 : code);
}

template <typename T>
T OrFail(StatusOr<T> v, int code = 1) {
  OrFail(v.status(), code);
  return std::move(v).value();
}

}  // namespace logferry::cli
