// The normalizer's fast path: one pass over a record's bytes for the shapes
// log records almost always have (objects of strings, numbers, booleans,
// nulls and nested objects, keys without escapes). It never decides that a
// line is bad: whenever it meets anything else it returns false and the
// simdjson path (normalizer.cc) redoes the line, so errors, repairs and
// companions have a single implementation. Its contract, checked by a
// differential test: when it succeeds, the row is byte-for-byte the row the
// simdjson path produces. To keep that true it never changes the schema: a
// field not yet in the registry, or a value that would establish or widen a
// column's type, is left to the simdjson path. Input UTF-8 is already
// validated by Normalize().
#include <immintrin.h>

#include <cstring>

#include "format/normalizer.h"

namespace logferry {

namespace {

inline bool IsWs(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
inline void SkipWs(const char*& p, const char* end) {
  while (p < end && IsWs(*p)) ++p;
}
inline bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}


// Finds the closing quote of a string whose body starts at p. Returns
// nullptr if the string has a backslash or a control byte before its end
// (those go to the simdjson path), or never ends. 32 bytes at a time with
// AVX2 (the build targets x86-64-v3), the tail a byte at a time.
const char* StringEnd(const char* p, const char* end) {
#ifdef __AVX2__
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i backslash = _mm256_set1_epi8('\\');
  while (p + 32 <= end) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // Bytes < 0x20: unsigned min(v, 0x1f) == v. Bytes >= 0x80 are UTF-8, never control.
    __m256i ctrl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
    uint32_t stop = static_cast<uint32_t>(_mm256_movemask_epi8(
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)), ctrl)));
    if (stop) {
      const char* at = p + __builtin_ctz(stop);
      return *at == '"' ? at : nullptr;
    }
    p += 32;
  }
#endif
  for (; p < end; ++p) {
    unsigned char ch = static_cast<unsigned char>(*p);
    if (ch == '"') return p;
    if (ch == '\\' || ch < 0x20) return nullptr;
  }
  return nullptr;
}

}  // namespace

// Whether the raw key at ks is exactly the slot's key followed by its closing
// quote. The line sits in a padded buffer (SIMDJSON_PADDING readable bytes
// past its end), so the 8-byte load may always be done.
inline bool KeyMatches(const char* ks, const char* end, const RowNormalizer::ShapeSlot& slot) {
  size_t n = slot.raw_key.size();
  if (ks + n >= end || ks[n] != '"') return false;
  uint64_t w;
  memcpy(&w, ks, 8);
  if ((w & slot.mask) != slot.prefix) return false;
  return n <= 8 || memcmp(ks + 8, slot.raw_key.data() + 8, n - 8) == 0;
}

namespace {

// Whether a value of `kind` fits column c as it is, without changing it.
inline bool FitsAsIs(const Column* c, ColumnType kind) {
  if (c->repeated()) return false;
  ColumnType t = c->type();
  return t == kind || (kind == ColumnType::kInt64 && t == ColumnType::kFloat64);
}

// Scans a JSON number strictly; nullptr if it is malformed or might be out of
// the range the simdjson path accepts as a number (it then decides).
const char* NumberEnd(const char* p, const char* end, bool* is_float) {
  const char* start = p;
  if (p < end && *p == '-') ++p;
  if (p >= end || !IsDigit(*p)) return nullptr;
  if (*p == '0') {
    ++p;
  } else {
    while (p < end && IsDigit(*p)) ++p;
  }
  const char* int_end = p;
  *is_float = false;
  if (p < end && *p == '.') {
    ++p;
    if (p >= end || !IsDigit(*p)) return nullptr;
    while (p < end && IsDigit(*p)) ++p;
    *is_float = true;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    const char* exp_start = p;
    while (p < end && IsDigit(*p)) ++p;
    if (p == exp_start || p - exp_start > 2) return nullptr;  // 1e400 and friends: slow path
    *is_float = true;
  }
  // 19+ digit integers may not fit INT64; long mantissas are the slow path's call.
  // Integers of 16+ digits may exceed 2^53 (exactness rules) or INT64: the slow path decides.
  if (!*is_float && int_end - start > 15) return nullptr;
  if (*is_float && p - start > 40) return nullptr;
  return p;
}

}  // namespace

bool RowNormalizer::CachedEventTime(std::string_view text) {
  // Consecutive records mostly carry the same second: parse each text once.
  if (!last_time_valid_ || text != last_time_in_) {
    auto t = ParseEventTime(text, opts_);
    if (!t) return false;
    last_time_in_.assign(text);
    last_time_valid_ = true;
    last_time_parsed_ = *t;
  }
  time_ = last_time_parsed_;
  have_time_ = true;
  return true;
}

Column* RowNormalizer::ChildCached(std::vector<ShapeSlot>& shape, size_t index, Column* parent,
                                   std::string_view raw_key) {
  // A slot without a column is a gap left by a field that got none (its
  // raw key is empty): it predicts nothing, not even an empty key.
  if (index < shape.size() && shape[index].column && shape[index].raw_key == raw_key) return shape[index].column;
  cache_key_.assign(reinterpret_cast<const char*>(&parent), sizeof parent);
  cache_key_.append(raw_key);
  Column* c;
  auto it = cache_.find(cache_key_);
  if (it != cache_.end()) {
    c = it->second;
  } else {
    // A field with no column (new, or one that may not have one: too long a
    // name, the column limit) is the simdjson path's to place.
    c = schema_->Find(parent, raw_key);  // no escapes: the raw key is the key
    if (!c) return nullptr;
    if (cache_.size() >= 4 * kMaxColumns) cache_.clear();
    cache_.emplace(cache_key_, c);
  }
  if (index < 256) {
    if (shape.size() <= index) shape.resize(index + 1);
    shape[index].Set(raw_key, c);
  }
  return c;
}

bool RowNormalizer::FastObject(const char*& p, const char* end, Column* parent, bool top, int depth, bool* emitted) {
  // *p == '{'
  ++p;
  SkipWs(p, end);
  *emitted = false;
  size_t open_mark = row_.size();
  if (p < end && *p == '}') {
    ++p;
    return true;
  }
  std::vector<ShapeSlot>& shape = ShapeOf(parent);
  size_t index = 0;
  bool first = true;
  // Duplicate keys are the simdjson path's business (last one wins).
  constexpr size_t kMaxTracked = 64;
  Column* seen[kMaxTracked];
  size_t nseen = 0;
  for (;;) {
    if (p >= end || *p != '"') return false;
    const char* ks = p + 1;
    Column* c;
    std::string_view raw_key;
    size_t at = index++;
    if (at < shape.size() && shape[at].column && KeyMatches(ks, end, shape[at])) {
      raw_key = shape[at].raw_key;
      c = shape[at].column;
      p = ks + raw_key.size() + 1;
    } else {
      const char* ke = StringEnd(ks, end);
      if (!ke) return false;
      raw_key = std::string_view(ks, static_cast<size_t>(ke - ks));
      c = ChildCached(shape, at, parent, raw_key);
      if (!c) return false;
      p = ke + 1;
    }
    for (size_t k = 0; k < nseen; ++k)
      if (seen[k] == c) return false;
    if (nseen == kMaxTracked) return false;
    seen[nseen++] = c;
    SkipWs(p, end);
    if (p >= end || *p != ':') return false;
    ++p;
    SkipWs(p, end);
    if (p >= end) return false;

    size_t mark = row_.size();
    if (!first) row_.push_back(',');
    row_.append(c->json_key());
    NoteWritten(c);
    bool value_emitted = true;
    const char* vs = p;
    switch (*p) {
      case '"': {
        const char* ve = StringEnd(p + 1, end);
        if (!ve) return false;
        p = ve + 1;
        if (top && time_in_record_ && !have_time_ && raw_key == opts_.time_key) {
          if (!CachedEventTime(std::string_view(vs + 1, static_cast<size_t>(ve - vs - 1)))) return false;
        }
        std::string_view content(vs + 1, static_cast<size_t>(ve - vs - 1));
        if (LooksLikeTimestamp(content) && !(c->type() == ColumnType::kString && !c->repeated())) {
          // A TIMESTAMP column gets the canonical UTC form; anything else
          // (a new column, a value that does not parse) is the slow path's.
          if (c->type() != ColumnType::kTimestamp || c->repeated() || !TimestampValue(content, &ts_canonical_))
            return false;
          row_.append(ts_canonical_);
          break;
        }
        if (!FitsAsIs(c, ColumnType::kString)) return false;
        row_.append(vs, static_cast<size_t>(p - vs));
        break;
      }
      case 't':
      case 'f': {
        bool is_true = *p == 't';
        size_t n = is_true ? 4 : 5;
        if (static_cast<size_t>(end - p) < n || memcmp(p, is_true ? "true" : "false", n) != 0) return false;
        p += n;
        if (top && time_in_record_ && !have_time_ && raw_key == opts_.time_key) return false;
        if (!FitsAsIs(c, ColumnType::kBool)) return false;
        row_.append(vs, n);
        break;
      }
      case 'n': {
        if (end - p < 4 || memcmp(p, "null", 4) != 0) return false;
        p += 4;
        if (top && time_in_record_ && !have_time_ && raw_key == opts_.time_key) return false;
        value_emitted = false;
        break;
      }
      case '{': {
        if (depth + 1 >= kMaxNestingDepth - 1) return false;
        if (top && time_in_record_ && !have_time_ && raw_key == opts_.time_key) return false;
        if (!FitsAsIs(c, ColumnType::kRecord)) return false;
        row_.push_back('{');
        bool inner;
        if (!FastObject(p, end, c, false, depth + 1, &inner)) return false;
        if (inner)
          row_.push_back('}');
        else
          value_emitted = false;
        break;
      }
      default: {
        bool is_float;
        const char* ne = NumberEnd(p, end, &is_float);
        if (!ne) return false;
        p = ne;
        if (top && time_in_record_ && !have_time_ && raw_key == opts_.time_key) {
          if (!CachedEventTime(std::string_view(vs, static_cast<size_t>(ne - vs)))) return false;
        }
        if (!FitsAsIs(c, is_float ? ColumnType::kFloat64 : ColumnType::kInt64)) return false;
        row_.append(vs, static_cast<size_t>(ne - vs));
        break;
      }
    }
    if (value_emitted)
      first = false;
    else
      row_.resize(mark);
    SkipWs(p, end);
    if (p >= end) return false;
    if (*p == ',') {
      ++p;
      SkipWs(p, end);
      continue;
    }
    if (*p == '}') {
      ++p;
      break;
    }
    return false;
  }
  *emitted = row_.size() > open_mark;
  return true;
}

bool RowNormalizer::FastLine(std::string_view json) {
  const char* p = json.data();
  const char* end = p + json.size();
  SkipWs(p, end);
  if (p >= end || *p != '{') return false;
  bool emitted;
  if (!FastObject(p, end, schema_->root(), true, 0, &emitted)) return false;
  SkipWs(p, end);
  return p == end;
}

}  // namespace logferry
