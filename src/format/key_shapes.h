// What the normalizer remembers about keys between records, shared by its
// fast path and its simdjson path: the shape of each object level (which key
// came at which position) and raw key → column. Log records repeat one
// shape, so the common case is one short compare per key instead of building
// a key and hashing it. Not thread-safe: one per normalizer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "schema/schema.h"

namespace logferry {

// The key last seen at one position of an object level, and its column.
struct ShapeSlot {
  std::string raw_key;
  // nullptr: a gap left by a field that got no column; it predicts nothing,
  // not even an empty key.
  Column* column = nullptr;
  // The key's first 8 bytes and a mask over them, for a one-load compare.
  uint64_t prefix = 0, mask = 0;

  void Set(std::string_view key, Column* c) {
    raw_key.assign(key);
    column = c;
    size_t n = std::min<size_t>(key.size(), 8);
    prefix = 0;
    memcpy(&prefix, key.data(), n);
    mask = n == 8 ? ~uint64_t{0} : ((uint64_t{1} << (8 * n)) - 1);
  }
};
using Shape = std::vector<ShapeSlot>;

// Positions past this are not remembered (a record that wide is rare, and
// its slots would cost memory for every level that shape is seen at).
constexpr size_t kMaxShapeSlots = 256;

// The slot at `index` if the raw key at ks (just past its opening quote) is
// its key followed by the closing quote; no key holds an unescaped quote, so
// a hit also proves where the key ends. The text sits in a padded buffer
// (kJsonPadding readable bytes past `end`), so the 8-byte load may always be
// done.
inline const ShapeSlot* PredictedSlot(const Shape& shape, size_t index, const char* ks, const char* end) {
  if (index >= shape.size() || !shape[index].column) return nullptr;
  const ShapeSlot& slot = shape[index];
  size_t n = slot.raw_key.size();
  if (ks + n >= end || ks[n] != '"') return nullptr;
  uint64_t w;
  memcpy(&w, ks, 8);
  if ((w & slot.mask) != slot.prefix) return nullptr;
  if (n > 8 && memcmp(ks + 8, slot.raw_key.data() + 8, n - 8) != 0) return nullptr;
  return &slot;
}

// The column the slot at `index` predicts for raw_key, or nullptr.
inline Column* PredictedColumn(const Shape& shape, size_t index, std::string_view raw_key) {
  if (index < shape.size() && shape[index].column && shape[index].raw_key == raw_key) return shape[index].column;
  return nullptr;
}

// Remembers raw_key's column at `index` for the records after this one.
inline void RememberSlot(Shape& shape, size_t index, std::string_view raw_key, Column* c) {
  if (index >= kMaxShapeSlots) return;
  if (shape.size() <= index) shape.resize(index + 1);
  shape[index].Set(raw_key, c);
}

// The shape of each object level (keyed by its column; the record's own by the root).
class ShapeCache {
 public:
  Shape& Of(const Column* parent) {
    // A record visits the same handful of object levels every line: a few
    // recent ones skip most hash lookups.
    for (Recent& r : recent_)
      if (r.parent == parent) return *r.shape;
    Shape* s = &shapes_[parent];  // node-based map: the address stays valid
    recent_[next_++ & 3] = Recent{parent, s};
    return *s;
  }

 private:
  struct Recent {
    const Column* parent = nullptr;
    Shape* shape = nullptr;
  };
  std::unordered_map<const Column*, Shape> shapes_;
  Recent recent_[4];
  unsigned next_ = 0;
};

// Raw (escaped) key under a parent → column, for keys the shapes miss.
class ColumnCache {
 public:
  // The cached column, or nullptr; Add then caches the key looked up last.
  Column* Find(const Column* parent, std::string_view raw_key) {
    key_.assign(reinterpret_cast<const char*>(&parent), sizeof parent);
    key_.append(raw_key);
    auto it = map_.find(key_);
    return it == map_.end() ? nullptr : it->second;
  }
  void Add(Column* c) {
    // Spellings of keys ("a", "\u0061") are unbounded, columns are not:
    // start over rather than grow without end.
    if (map_.size() >= 4 * kMaxColumns) map_.clear();
    map_.emplace(key_, c);
  }

 private:
  std::string key_;
  std::unordered_map<std::string, Column*> map_;
};

}  // namespace logferry
