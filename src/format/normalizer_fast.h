// The normalizer's fast path: one pass over a record's bytes for the shapes
// log records almost always have (objects of strings, numbers, booleans,
// nulls and nested objects, keys without escapes).
//
// It never decides that a line is bad: whenever it meets anything else it
// returns false and the simdjson path (normalizer.cc) redoes the line, so
// errors, repairs and companions have a single implementation. Its contract,
// checked by a differential test (normalizer_fast_path_test, and the
// fuzz_normalizer_* targets): when it succeeds, the row is byte-for-byte the
// row the simdjson path produces. To keep that true it never changes the
// schema: a field not yet in the registry, or a value that would establish
// or widen a column's type, is left to the simdjson path.
#pragma once

#include <cstddef>
#include <string_view>

#include "format/key_shapes.h"

namespace logferry {

class NormalizerCore;

class FastPath {
 public:
  // Writes into `core`'s row and event time, and shares its key shapes.
  explicit FastPath(NormalizerCore* core) : core_(*core) {}

  // Appends the members of the JSON object `json` to the row (which holds
  // "{" and any prefix members). REQUIRES: valid UTF-8 (Normalize checks
  // it) and kJsonPadding readable bytes past the end. Returns false when the
  // line needs the simdjson path; the row may then hold a partial row, which
  // the caller truncates.
  bool Line(std::string_view json);

 private:
  // *p == '{'. *emitted: whether the object wrote any member.
  bool Object(const char*& p, const char* end, Column* parent, bool top, int depth, bool* emitted);
  // A member's key up to and past its ':'; *c gets its column.
  bool Key(const char*& p, const char* end, Shape& shape, size_t index, Column* parent, Column** c,
           std::string_view* raw_key);
  // A member's value; `is_time`: it is the record's event time.
  bool Value(const char*& p, const char* end, Column* c, bool is_time, int depth, bool* emitted);
  bool String(const char*& p, const char* end, Column* c, bool is_time);
  bool Number(const char*& p, const char* end, Column* c, bool is_time);
  // The column of a key the shape did not predict, from the caches or the
  // schema; nullptr if it has none yet (the simdjson path creates it).
  Column* ChildCached(Shape& shape, size_t index, Column* parent, std::string_view raw_key);
  bool CachedEventTime(std::string_view text);

  NormalizerCore& core_;
};

}  // namespace logferry
