// RFC 8259's number grammar, one scanner for both normalizer paths:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
#pragma once

#include <cstddef>
#include <string_view>

namespace logferry {

struct JsonNumberShape {
  size_t int_chars = 0;  // the sign and the integer digits
  size_t exp_digits = 0;
  bool is_float = false;  // has a fraction or an exponent
};

// Where the number that starts at p ends (the longest match of the grammar),
// or nullptr if no number starts there.
inline const char* JsonNumberEnd(const char* p, const char* end, JsonNumberShape* shape) {
  auto digit = [&] { return p < end && *p >= '0' && *p <= '9'; };
  const char* start = p;
  if (p < end && *p == '-') ++p;
  if (!digit()) return nullptr;
  if (*p == '0') {
    ++p;
  } else {
    while (digit()) ++p;
  }
  shape->int_chars = static_cast<size_t>(p - start);
  shape->is_float = false;
  shape->exp_digits = 0;
  if (p < end && *p == '.') {
    ++p;
    if (!digit()) return nullptr;
    while (digit()) ++p;
    shape->is_float = true;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    const char* exp_start = p;
    while (digit()) ++p;
    if (p == exp_start) return nullptr;
    shape->exp_digits = static_cast<size_t>(p - exp_start);
    shape->is_float = true;
  }
  return p;
}

// Whether all of s is one JSON number.
inline bool LooksLikeNumber(std::string_view s) {
  JsonNumberShape shape;
  const char* end = s.data() + s.size();
  const char* number_end = JsonNumberEnd(s.data(), end, &shape);
  return number_end != nullptr && number_end == end;
}

}  // namespace logferry
