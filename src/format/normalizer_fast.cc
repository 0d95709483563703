// The fast path (normalizer_fast.h). Input UTF-8 is already validated by
// Normalize().
#include "format/normalizer_fast.h"

#include <immintrin.h>

#include <cstring>

#include "format/json_number.h"
#include "format/normalizer_core.h"

namespace logferry {

namespace {

inline bool IsWs(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
inline void SkipWs(const char*& p, const char* end) {
  while (p < end && IsWs(*p)) ++p;
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

// Whether a value of `kind` fits column c as it is, without changing it.
inline bool FitsAsIs(const Column* c, ColumnType kind) {
  if (c->repeated()) return false;
  ColumnType t = c->type();
  return t == kind || (kind == ColumnType::kInt64 && t == ColumnType::kFloat64);
}

// A JSON number the fast path may copy as it is; nullptr if it is malformed
// or might be out of the range the simdjson path accepts as a number (it then
// decides).
const char* NumberEnd(const char* p, const char* end, bool* is_float) {
  JsonNumberShape shape;
  const char* ne = JsonNumberEnd(p, end, &shape);
  if (!ne) return nullptr;
  *is_float = shape.is_float;
  if (shape.exp_digits > 2) return nullptr;  // 1e400 and friends
  // Integers of 16+ characters (sign included) may exceed 2^53, where
  // exactness rules apply, or INT64; long mantissas are the slow path's call too.
  if (!shape.is_float && shape.int_chars > 15) return nullptr;
  if (shape.is_float && ne - p > 40) return nullptr;
  return ne;
}

}  // namespace

// The per-member steps below are forced inline into Object: as calls they
// cost about 10% more instructions per record (callgrind, json).

[[gnu::always_inline]] inline bool FastPath::CachedEventTime(std::string_view text) {
  std::optional<int64_t> t = core_.event_times_.Parse(text, core_.opts_);
  if (!t) return false;
  core_.time_ = *t;
  core_.have_time_ = true;
  return true;
}

Column* FastPath::ChildCached(Shape& shape, size_t index, Column* parent, std::string_view raw_key) {
  if (Column* c = PredictedColumn(shape, index, raw_key)) return c;
  Column* c = core_.columns_.Find(parent, raw_key);
  if (!c) {
    // A field with no column (new, or one that may not have one: too long a
    // name, the column limit) is the simdjson path's to place.
    c = core_.schema_->Find(parent, raw_key);  // no escapes: the raw key is the key
    if (!c) return nullptr;
    core_.columns_.Add(c);
  }
  RememberSlot(shape, index, raw_key, c);
  return c;
}

[[gnu::always_inline]] inline bool FastPath::Key(const char*& p, const char* end, Shape& shape, size_t index,
                                                 Column* parent, Column** c, std::string_view* raw_key) {
  if (p >= end || *p != '"') return false;
  const char* ks = p + 1;
  if (const ShapeSlot* slot = PredictedSlot(shape, index, ks, end)) {
    *raw_key = slot->raw_key;
    *c = slot->column;
    p = ks + raw_key->size() + 1;
  } else {
    const char* ke = StringEnd(ks, end);
    if (!ke) return false;
    *raw_key = std::string_view(ks, static_cast<size_t>(ke - ks));
    *c = ChildCached(shape, index, parent, *raw_key);
    if (!*c) return false;
    p = ke + 1;
  }
  SkipWs(p, end);
  if (p >= end || *p != ':') return false;
  ++p;
  SkipWs(p, end);
  return p < end;
}

[[gnu::always_inline]] inline bool FastPath::String(const char*& p, const char* end, Column* c, bool is_time) {
  const char* vs = p;
  const char* ve = StringEnd(p + 1, end);
  if (!ve) return false;
  p = ve + 1;
  std::string_view content(vs + 1, static_cast<size_t>(ve - vs - 1));
  if (is_time && !CachedEventTime(content)) return false;
  if (LooksLikeTimestamp(content) && !(c->type() == ColumnType::kString && !c->repeated())) {
    // A TIMESTAMP column gets the canonical UTC form; anything else (a new
    // column, a value that does not parse) is the slow path's.
    if (c->type() != ColumnType::kTimestamp || c->repeated() || !core_.TimestampValue(content, &core_.ts_canonical_))
      return false;
    core_.row_.append(core_.ts_canonical_);
    return true;
  }
  if (!FitsAsIs(c, ColumnType::kString)) return false;
  core_.row_.append(vs, static_cast<size_t>(p - vs));
  return true;
}

[[gnu::always_inline]] inline bool FastPath::Number(const char*& p, const char* end, Column* c, bool is_time) {
  const char* vs = p;
  bool is_float;
  const char* ne = NumberEnd(p, end, &is_float);
  if (!ne) return false;
  p = ne;
  if (is_time && !CachedEventTime(std::string_view(vs, static_cast<size_t>(ne - vs)))) return false;
  if (!FitsAsIs(c, is_float ? ColumnType::kFloat64 : ColumnType::kInt64)) return false;
  core_.row_.append(vs, static_cast<size_t>(ne - vs));
  return true;
}

[[gnu::always_inline]] inline bool FastPath::Value(const char*& p, const char* end, Column* c, bool is_time, int depth,
                                                   bool* emitted) {
  *emitted = true;
  switch (*p) {
    case '"':
      return String(p, end, c, is_time);
    case 't':
    case 'f': {
      bool is_true = *p == 't';
      size_t n = is_true ? 4 : 5;
      if (static_cast<size_t>(end - p) < n || memcmp(p, is_true ? "true" : "false", n) != 0) return false;
      if (is_time || !FitsAsIs(c, ColumnType::kBool)) return false;
      core_.row_.append(p, n);
      p += n;
      return true;
    }
    case 'n':
      if (end - p < 4 || memcmp(p, "null", 4) != 0 || is_time) return false;
      p += 4;
      *emitted = false;
      return true;
    case '{': {
      if (depth + 1 >= kMaxNestingDepth - 1 || is_time || !FitsAsIs(c, ColumnType::kRecord)) return false;
      core_.row_.push_back('{');
      if (!Object(p, end, c, false, depth + 1, emitted)) return false;
      if (*emitted) core_.row_.push_back('}');
      return true;
    }
    default:
      return Number(p, end, c, is_time);
  }
}

bool FastPath::Object(const char*& p, const char* end, Column* parent, bool top, int depth, bool* emitted) {
  ++p;  // '{'
  SkipWs(p, end);
  *emitted = false;
  RowBuffer& row = core_.row_;
  size_t open_mark = row.size();
  if (p < end && *p == '}') {
    ++p;
    return true;
  }
  Shape& shape = core_.shapes_.Of(parent);
  bool first = true;
  // Duplicate keys are the simdjson path's business (last one wins).
  constexpr size_t kMaxTracked = 64;
  Column* seen[kMaxTracked];
  size_t nseen = 0;
  for (size_t index = 0;; ++index) {
    Column* c;
    std::string_view raw_key;
    if (!Key(p, end, shape, index, parent, &c, &raw_key)) return false;
    for (size_t k = 0; k < nseen; ++k)
      if (seen[k] == c) return false;
    if (nseen == kMaxTracked) return false;
    seen[nseen++] = c;
    size_t mark = row.size();
    if (!first) row.push_back(',');
    row.append(c->json_key());
    core_.NoteWritten(c);
    bool is_time = top && core_.time_in_record_ && !core_.have_time_ && raw_key == core_.opts_.time_key;
    bool value_emitted;
    if (!Value(p, end, c, is_time, depth, &value_emitted)) return false;
    if (value_emitted)
      first = false;
    else
      row.resize(mark);
    SkipWs(p, end);
    if (p >= end) return false;
    if (*p == ',') {
      ++p;
      SkipWs(p, end);
      continue;
    }
    if (*p != '}') return false;
    ++p;
    break;
  }
  *emitted = row.size() > open_mark;
  return true;
}

bool FastPath::Line(std::string_view json) {
  const char* p = json.data();
  const char* end = p + json.size();
  SkipWs(p, end);
  if (p >= end || *p != '{') return false;
  bool emitted;
  if (!Object(p, end, core_.schema_->root(), true, 0, &emitted)) return false;
  SkipWs(p, end);
  return p == end;
}

}  // namespace logferry
