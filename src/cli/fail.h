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

template <typename T>
T OrFail(StatusOr<T> v, int code = 1) {
  if (!v.ok()) Fail(v.status().message(), v.status().code() == StatusCode::kInvalidArgument ? 2 : code);
  return std::move(v).value();
}

}  // namespace logferry::cli
