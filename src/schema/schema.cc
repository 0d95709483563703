#include "schema/schema.h"

#include "common/strings.h"

namespace logferry {

const char* ColumnTypeName(ColumnType t) {
  switch (t) {
    case ColumnType::kNone:
      return "NONE";
    case ColumnType::kBool:
      return "BOOL";
    case ColumnType::kInt64:
      return "INT64";
    case ColumnType::kFloat64:
      return "FLOAT64";
    case ColumnType::kString:
      return "STRING";
    case ColumnType::kTimestamp:
      return "TIMESTAMP";
    case ColumnType::kRecord:
      return "RECORD";
  }
  return "NONE";
}

ColumnType ColumnTypeFromName(std::string_view s) {
  if (s == "BOOL") return ColumnType::kBool;
  if (s == "INT64") return ColumnType::kInt64;
  if (s == "FLOAT64") return ColumnType::kFloat64;
  if (s == "STRING") return ColumnType::kString;
  if (s == "TIMESTAMP") return ColumnType::kTimestamp;
  if (s == "RECORD") return ColumnType::kRecord;
  return ColumnType::kNone;
}

namespace {

const char* kReservedPrefixes[] = {"_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colon_"};

std::string DuckDbType(const Column* c) {
  if (c->repeated()) return "JSON";
  switch (c->type()) {
    case ColumnType::kBool:
      return "BOOLEAN";
    case ColumnType::kInt64:
      return "BIGINT";
    case ColumnType::kFloat64:
      return "DOUBLE";
    case ColumnType::kTimestamp:
      return "TIMESTAMPTZ";
    case ColumnType::kRecord:
      return "JSON";
    default:
      return "VARCHAR";
  }
}

bool HasReservedPrefix(std::string_view name) {
  std::string lower = ToLower(name);
  for (const char* p : kReservedPrefixes)
    if (StartsWith(lower, p)) return true;
  return false;
}

}  // namespace

std::string SanitizeName(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
      out.push_back(static_cast<char>(c));
    } else if (c >= 0x80 && (c & 0xC0) == 0x80) {
      continue;  // continuation byte: one '_' per character
    } else {
      out.push_back('_');
    }
  }
  if (out.empty()) out = "field";
  if (out[0] >= '0' && out[0] <= '9') out.insert(out.begin(), '_');
  if (HasReservedPrefix(out)) out.insert(out.begin(), 'f');
  if (out.size() > kMaxColumnName) out.resize(kMaxColumnName);
  return out;
}

Column::Column(Column* parent, std::string raw_key, std::string name)
    : parent_(parent), raw_key_(std::move(raw_key)), name_(std::move(name)) {
  depth_ = parent ? parent->depth_ + 1 : 0;
  if (parent && !parent->path_.empty())
    path_ = parent->path_ + "." + name_;
  else
    path_ = name_;
  json_key_ = JsonQuote(name_) + ":";
}

SchemaRegistry::SchemaRegistry(const std::vector<std::pair<std::string, ColumnType>>& fixed_columns)
    : root_(nullptr, "", "") {
  root_.type_ = ColumnType::kRecord;
  root_.persisted_ = true;
  for (auto& [name, type] : fixed_columns) {
    // Fixed columns live under a raw key no source field can have (a NUL prefix).
    Column* c = ChildLocked(&root_, FixedColumnKey(name), false, "");
    c->type_ = type;
    c->persisted_ = true;
  }
  dirty_.clear();
  unpersisted_ = false;
}

std::string FixedColumnKey(std::string_view name) {
  return std::string(1, kInternalKeyMarker) + std::string(name);
}

namespace {
// Room for one more element, so the push_back after it cannot throw.
template <typename T>
void Reserve1(std::vector<T>* v) {
  if (v->size() == v->capacity()) v->reserve(2 * v->size() + 1);
}
const std::string kCompanionSuffix = std::string(1, kInternalKeyMarker) + "str";
}  // namespace

Column* SchemaRegistry::ChildLocked(Column* parent, std::string_view raw_key, bool companion, std::string base) {
  auto it = parent->children_.find(std::string(raw_key));
  if (it != parent->children_.end()) return it->second.get();
  // The table's column limit (at most BigQuery's). Internal columns (_time, _tag, _overflow) are
  // exempt; the few slots kept back make room for them.
  if (count_ + 8 >= column_limit_ && (raw_key.empty() || raw_key[0] != kInternalKeyMarker)) return nullptr;
  if (base.empty()) {
    base =
        raw_key.size() > 0 && raw_key[0] == kInternalKeyMarker ? std::string(raw_key.substr(1)) : SanitizeName(raw_key);
  }
  std::string name = base;
  for (int n = 2; parent->taken_lower_.count(ToLower(name)); ++n) {
    std::string suffix = "_" + std::to_string(n);
    name = base.substr(0, kMaxColumnName - suffix.size()) + suffix;
    // A suffix can complete a reserved prefix ("_FILE" taken, so "_FILE_2"):
    // such a name gets the same 'f' as SanitizeName gives one.
    if (HasReservedPrefix(name)) name = "f" + name.substr(0, kMaxColumnName - 1);
  }
  auto col = std::make_unique<Column>(parent, std::string(raw_key), name);
  col->is_companion_ = companion;
  Column* c = col.get();
  // What may throw (an allocation) comes before the first change or is
  // undone: a failed record must not leave a half-made column behind.
  std::string lower = ToLower(name);
  Reserve1(&parent->ordered_children_);
  Reserve1(&dirty_);
  auto slot = parent->children_.emplace(std::string(raw_key), std::move(col)).first;
  try {
    parent->taken_lower_.insert(std::move(lower));
  } catch (...) {
    parent->children_.erase(slot);
    throw;
  }
  c->sibling_index_ = static_cast<uint32_t>(parent->ordered_children_.size());
  parent->ordered_children_.push_back(c);
  ++count_;
  MarkDirty(c);
  return c;
}

void SchemaRegistry::MarkDirty(Column* c) {
  dirty_.push_back(c);  // first: if it throws, nothing is marked
  c->persisted_ = false;
  unpersisted_.store(true, std::memory_order_release);
}

Column* SchemaRegistry::Child(Column* parent, std::string_view raw_key, bool* created) {
  if (created) *created = false;
  if (raw_key.size() > kMaxFieldNameBytes) return nullptr;
  std::lock_guard lock(mu_);
  size_t before = count_;
  Column* c = ChildLocked(parent, raw_key, false, "");
  if (created) *created = count_ != before;
  return c;
}

void SchemaRegistry::MarkInexactInts(Column* c) {
  if (c->inexact_ints()) return;
  std::lock_guard lock(mu_);
  if (c->inexact_ints_.load()) return;
  MarkDirty(c);
  c->inexact_ints_.store(true, std::memory_order_release);
}

Column* SchemaRegistry::Find(Column* parent, std::string_view raw_key) {
  std::lock_guard lock(mu_);
  auto it = parent->children_.find(std::string(raw_key));
  return it == parent->children_.end() ? nullptr : it->second.get();
}

Column* SchemaRegistry::CompanionOf(Column* c) {
  if (Column* existing = c->companion_.load(std::memory_order_acquire)) return existing;
  std::lock_guard lock(mu_);
  if (Column* existing = c->companion_.load(std::memory_order_acquire)) return existing;
  // The companion's raw key is the column's raw key plus a marker no JSON key
  // contains unescaped, so it can never clash with a real field.
  // Named after the column's own (possibly suffixed) name: "a_2" -> "a_2_str".
  // SanitizeName applies the reserved-prefix rule: "_table" -> "f_table_str".
  std::string base = SanitizeName(c->name_.substr(0, kMaxColumnName - 4) + "_str");
  Column* comp = ChildLocked(c->parent_, c->raw_key_ + kCompanionSuffix, true, base);
  if (!comp) return nullptr;
  comp->type_ = ColumnType::kString;
  c->companion_.store(comp, std::memory_order_release);
  return comp;
}

Fit SchemaRegistry::OfferSlow(Column* c, ColumnType kind, bool repeated) {
  ColumnType t = c->type();
  if (t == ColumnType::kNone) {
    std::lock_guard lock(mu_);
    t = c->type_.load();
    if (t == ColumnType::kNone) {
      MarkDirty(c);  // before the change: it may throw
      c->repeated_.store(repeated, std::memory_order_release);
      c->type_.store(kind, std::memory_order_release);
      return Fit::kOk;
    }
  }
  if (c->repeated() != repeated) return Fit::kCompanion;
  if (t == kind) return Fit::kOk;
  if (kind == ColumnType::kInt64 && t == ColumnType::kFloat64) return Fit::kOk;
  if (kind == ColumnType::kFloat64 && t == ColumnType::kInt64) {
    // INT64 -> FLOAT64 only while exact: not once it has held a huge integer.
    if (c->inexact_ints()) return Fit::kCompanion;
    std::lock_guard lock(mu_);
    if (c->type_.load() == ColumnType::kInt64) {
      MarkDirty(c);
      c->type_.store(ColumnType::kFloat64, std::memory_order_release);
    }
    return Fit::kOk;
  }
  if (t == ColumnType::kString && !repeated &&
      (kind == ColumnType::kInt64 || kind == ColumnType::kFloat64 || kind == ColumnType::kBool ||
       kind == ColumnType::kTimestamp))
    return Fit::kAsString;
  return Fit::kCompanion;
}

void SchemaRegistry::Requeue(const std::vector<Column*>& columns) {
  std::lock_guard lock(mu_);
  for (Column* c : columns) MarkDirty(c);
}

std::vector<ColumnRecord> SchemaRegistry::TakeUnpersisted(std::vector<Column*>* taken) {
  std::lock_guard lock(mu_);
  std::vector<ColumnRecord> out;
  for (Column* c : dirty_) {
    if (c->persisted_) continue;
    c->persisted_ = true;
    if (taken) taken->push_back(c);
    ColumnRecord r;
    r.parent_path = c->parent_->path_;
    r.raw_key = c->raw_key_;
    r.name = c->name_;
    r.type = c->type_.load();
    r.repeated = c->repeated_.load();
    r.companion = c->is_companion_;
    r.inexact_ints = c->inexact_ints_.load();
    out.push_back(std::move(r));
  }
  dirty_.clear();
  unpersisted_.store(false, std::memory_order_release);
  return out;
}

void SchemaRegistry::Restore(const std::vector<ColumnRecord>& records) {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string, Column*> by_path{{"", &root_}};
  for (Column* c : root_.ordered_children_) by_path[c->path_] = c;
  std::unordered_set<const Column*> restored;
  for (const ColumnRecord& r : records) {
    auto it = by_path.find(r.parent_path);
    if (it == by_path.end()) continue;  // orphan: parent lost; skipped rather than guessed
    Column* parent = it->second;
    Column* c;
    auto existing = parent->children_.find(r.raw_key);
    if (existing != parent->children_.end()) {
      c = existing->second.get();
    } else {
      auto col = std::make_unique<Column>(parent, r.raw_key, r.name);
      c = col.get();
      c->is_companion_ = r.companion;
      parent->taken_lower_.insert(ToLower(r.name));
      c->sibling_index_ = static_cast<uint32_t>(parent->ordered_children_.size());
      parent->ordered_children_.push_back(c);
      parent->children_.emplace(r.raw_key, std::move(col));
      ++count_;
    }
    c->type_ = r.type;
    c->repeated_ = r.repeated;
    c->inexact_ints_ = r.inexact_ints;
    c->persisted_ = true;
    restored.insert(c);
    by_path[c->path_] = c;
    if (r.companion && r.raw_key.size() > 4 && EndsWith(r.raw_key, kCompanionSuffix)) {
      auto base = parent->children_.find(r.raw_key.substr(0, r.raw_key.size() - 4));
      if (base != parent->children_.end()) base->second->companion_ = c;
    }
  }
  // What the ledger holds wins; columns it does not hold yet (made since the
  // last commit, or lineage columns added after the first Restore) stay to
  // be recorded.
  std::erase_if(dirty_, [&](const Column* c) { return restored.count(c) > 0; });
  unpersisted_ = !dirty_.empty();
}

ColumnSchema SchemaRegistry::SchemaOf(const Column* c) const {
  ColumnSchema out{c->name_, c->type_.load(), c->repeated_.load(), {}};
  if (out.type == ColumnType::kRecord)
    for (const Column* child : c->ordered_children_)
      if (child->type_.load() != ColumnType::kNone) out.fields.push_back(SchemaOf(child));
  return out;
}

std::vector<ColumnSchema> SchemaRegistry::Columns() const {
  std::lock_guard lock(mu_);
  std::vector<ColumnSchema> out;
  for (const Column* c : root_.ordered_children_)
    if (c->type_.load() != ColumnType::kNone) out.push_back(SchemaOf(c));
  return out;
}

std::vector<std::pair<std::string, std::string>> SchemaRegistry::DuckDbColumns() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const Column* c : root_.ordered_children_)
    if (c->type_.load() != ColumnType::kNone) out.emplace_back(c->name_, DuckDbType(c));
  return out;
}

std::vector<std::pair<std::string, std::string>> SchemaRegistry::NameMapping() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::pair<const Column*, std::string>> stack;
  for (auto it = root_.ordered_children_.rbegin(); it != root_.ordered_children_.rend(); ++it)
    stack.emplace_back(*it, "");
  while (!stack.empty()) {
    auto [c, raw_parent] = stack.back();
    stack.pop_back();
    std::string raw = c->raw_key_;
    if (!raw.empty() && raw[0] == kInternalKeyMarker)
      raw = "(" + raw.substr(1) + ")";
    else if (c->is_companion_)
      raw = raw.substr(0, raw.size() - 4) + " (values that do not fit)";
    std::string raw_path = raw_parent.empty() ? raw : raw_parent + "." + raw;
    out.emplace_back(raw_path, c->path_);
    for (auto it = c->ordered_children_.rbegin(); it != c->ordered_children_.rend(); ++it)
      stack.emplace_back(*it, raw_path);
  }
  return out;
}

size_t SchemaRegistry::column_count() const {
  std::lock_guard lock(mu_);
  return count_;
}

}  // namespace logferry
