// Helpers shared by the libFuzzer targets (fuzz/fuzz_*.cc).
//
// A broken invariant aborts with a message: libFuzzer then treats the input
// as a crash and writes it out as a reproducer, exactly as for a sanitizer
// report.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace logferry::fuzz {

[[noreturn]] inline void Fail(const char* what, std::string_view detail) {
  fprintf(stderr, "\nINVARIANT VIOLATED: %s\n", what);
  // Enough of the detail to see the problem without flooding the log.
  std::string shown(detail.substr(0, 2000));
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') c = '?';
  fprintf(stderr, "%s\n", shown.c_str());
  abort();
}

inline void Require(bool cond, const char* what, std::string_view detail = {}) {
  if (!cond) Fail(what, detail);
}

// Splits on '\n' (a trailing empty piece is dropped, as a file's last newline).
inline std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace logferry::fuzz
