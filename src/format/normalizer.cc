#include "format/normalizer.h"

#include <charconv>
#include <cstring>
#include <tuple>

#include "common/strings.h"
#include "format/json_number.h"
#include "format/normalizer_core.h"

namespace logferry {

namespace od = simdjson::ondemand;

std::vector<std::pair<std::string, ColumnType>> FixedColumns(LogFormat format) {
  std::vector<std::pair<std::string, ColumnType>> cols{{"_time", ColumnType::kTimestamp}};
  if (format == LogFormat::kOutFile) cols.emplace_back("_tag", ColumnType::kString);
  return cols;
}

namespace {

// A lineage column under its internal key: created (typed) if the table has
// none yet. Internal keys are exempt from the column limit, so never null.
Column* LineageColumn(SchemaRegistry* schema, const char* name, ColumnType type) {
  Column* c = schema->Child(schema->root(), FixedColumnKey(name));
  schema->Offer(c, type, false);
  return c;
}

}  // namespace

Status AddLineageColumns(SchemaRegistry* schema, const Lineage& lineage) {
  for (auto [on, name, type, word] : {std::tuple{lineage.source, kSourceColumn, ColumnType::kString, kLineageSource},
                                      std::tuple{lineage.line, kLineColumn, ColumnType::kInt64, kLineageLine}}) {
    if (!on) continue;
    // The name was taken first by a source field (seen while lineage was
    // off): the registry gave this column a suffix, which no audit expects.
    if (Column* c = LineageColumn(schema, name, type); c->name() != name)
      return Status::FailedPrecondition(std::string("lineage column ") + name +
                                        " cannot be added: the table already has a column of that name for a field "
                                        "of its source; leave '" +
                                        word + "' out of lineage (docs/schema.md#lineage)");
  }
  return Status::Ok();
}

namespace {

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool NeedsStringCheck(std::string_view quoted) {
  // Raw text between the quotes can be copied unless it has escapes, which
  // must be validated. (Raw control bytes never get here: simdjson's stage 1
  // rejects them as UNESCAPED_CHARS.) Eight bytes at a time: strings are
  // short, so this beats a memchr call.
  const char* p = quoted.data() + 1;
  size_t n = quoted.size() - 2;
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  constexpr uint64_t kBackslashes = 0x5c5c5c5c5c5c5c5cULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    uint64_t x = w ^ kBackslashes;
    if ((x - kOnes) & ~x & kHighs) return true;
  }
  for (; i < n; ++i)
    if (p[i] == '\\') return true;
  return false;
}

// Length of a raw (escaped) key starting right after its opening quote.
size_t RawKeyLength(const char* p) {
  size_t n = 0;
  for (;;) {
    char c = p[n];
    if (c == '"') return n;
    if (c == '\\')
      n += 2;
    else
      ++n;
  }
}

std::string ErrorText(simdjson::error_code e) {
  return simdjson::error_message(e);
}

// Where the top-level object that `s` starts with ends (one past its '}'), or
// npos if it never closes. Only used to explain a rejected line.
size_t EndOfLeadingObject(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  if (i >= s.size() || s[i] != '{') return std::string_view::npos;
  int depth = 0;
  bool in_string = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// How deeply containers nest in JSON text (the most open at once), by a
// scan rather than recursion, for a value about to be copied as text.
size_t JsonTextDepth(std::string_view s) {
  size_t depth = 0, max = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max = std::max(max, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return max;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The four hex digits of a JSON unicode escape at p (p[0..3] must be readable).
std::optional<uint32_t> Hex4(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    uint32_t d;
    if (c >= '0' && c <= '9')
      d = static_cast<uint32_t>(c - '0');
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      d = static_cast<uint32_t>((c | 0x20) - 'a' + 10);
    else
      return std::nullopt;
    v = v << 4 | d;
  }
  return v;
}

}  // namespace

std::string FieldNameForMessage(std::string_view name) {
  constexpr size_t kShown = 256;
  if (name.size() <= kShown) return std::string(name);
  size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;  // a whole UTF-8 character
  return std::string(name.substr(0, cut)) + "… (" + std::to_string(name.size()) + " bytes)";
}

int UnescapeJsonLossy(std::string_view body, std::string* out) {
  out->clear();
  int replaced = 0;
  size_t i = 0, n = body.size();
  while (i < n) {
    size_t run = i;
    while (run < n && body[run] != '\\' && static_cast<unsigned char>(body[run]) >= 0x20) ++run;
    out->append(body.data() + i, run - i);
    i = run;
    if (i == n) break;
    if (body[i] != '\\' || i + 1 == n) return -1;  // a raw control byte, or a lone backslash
    char e = body[i + 1];
    i += 2;
    switch (e) {
      case '"':
        out->push_back('"');
        continue;
      case '\\':
        out->push_back('\\');
        continue;
      case '/':
        out->push_back('/');
        continue;
      case 'b':
        out->push_back('\b');
        continue;
      case 'f':
        out->push_back('\f');
        continue;
      case 'n':
        out->push_back('\n');
        continue;
      case 'r':
        out->push_back('\r');
        continue;
      case 't':
        out->push_back('\t');
        continue;
      case 'u':
        break;
      default:
        return -1;
    }
    if (n - i < 4) return -1;
    std::optional<uint32_t> cp = Hex4(body.data() + i);
    if (!cp) return -1;
    i += 4;
    if (*cp >= 0xD800 && *cp <= 0xDBFF && n - i >= 6 && body[i] == '\\' && body[i + 1] == 'u') {
      std::optional<uint32_t> low = Hex4(body.data() + i + 2);
      if (!low) return -1;
      if (*low >= 0xDC00 && *low <= 0xDFFF) {
        AppendUtf8(0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00), out);
        i += 6;
        continue;
      }
    }
    if (*cp >= 0xD800 && *cp <= 0xDFFF) {
      // An unpaired surrogate (the escape after a high one, if any, is decoded on its own).
      AppendUtf8(0xFFFD, out);
      ++replaced;
      continue;
    }
    AppendUtf8(*cp, out);
  }
  return replaced;
}

NormalizerCore::NormalizerCore(SchemaRegistry* schema, const FormatOptions& opts, const Lineage& lineage)
    : time_in_record_(opts.format != LogFormat::kOutFile), schema_(schema), opts_(opts), fast_(this) {
  time_col_ = schema_->Child(schema_->root(), FixedColumnKey("_time"));
  if (opts_.format == LogFormat::kOutFile) tag_col_ = schema_->Child(schema_->root(), FixedColumnKey("_tag"));
  if (lineage.source) source_col_ = LineageColumn(schema_, kSourceColumn, ColumnType::kString);
  if (lineage.line) line_col_ = LineageColumn(schema_, kLineColumn, ColumnType::kInt64);
  lineage_ = lineage.any();
}

void NormalizerCore::BeginObject(std::string_view source_key) {
  new_columns_left_ = kMaxNewColumnsPerObject;
  if (!source_col_) return;
  source_member_.assign(1, ',');
  source_member_.append(source_col_->json_key());
  AppendJsonString(&source_member_, source_key);
}

void NormalizerCore::AppendLineage() {
  if (source_col_) {
    row_.append(source_member_);
    NoteWritten(source_col_);
  }
  if (line_col_) {
    row_.push_back(',');
    row_.append(line_col_->json_key());
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, record_);
    row_.append(digits, static_cast<size_t>(end - digits));
    NoteWritten(line_col_);
  }
}

// Which field of a raw line holds byte `pos`, for messages: "time" or "tag"
// in out_file's prefix, else the nearest JSON key (or ltsv label) before it.
std::string NormalizerCore::FieldAt(std::string_view line, size_t pos) const {
  if (pos >= line.size()) return "";
  if (opts_.format == LogFormat::kOutFile) {
    size_t first = opts_.output_time ? line.find(opts_.delimiter) : std::string_view::npos;
    if (first != std::string_view::npos && pos < first) return "time";
    size_t second = line.find(opts_.delimiter, first == std::string_view::npos ? 0 : first + 1);
    if (opts_.output_tag && second != std::string_view::npos && pos < second) return "tag";
  }
  std::string_view before = line.substr(0, pos);
  if (opts_.format == LogFormat::kSingleValue) return opts_.message_key;
  if (opts_.format == LogFormat::kCsv || opts_.format == LogFormat::kTsv) {
    // The column the byte falls in: delimiters before it (csv: outside quotes).
    size_t index = 0;
    bool quoted = false;
    for (char c : before) {
      if (opts_.format == LogFormat::kCsv && c == '"') quoted = !quoted;
      if (c == opts_.delimiter && !quoted) ++index;
    }
    return index < opts_.keys.size() ? opts_.keys[index] : "";
  }
  if (opts_.format == LogFormat::kLtsv) {
    size_t start = before.rfind(opts_.delimiter);
    start = start == std::string_view::npos ? 0 : start + 1;
    size_t colon = line.find(opts_.label_delimiter, start);
    return colon == std::string_view::npos ? "" : Excerpt(line.substr(start, colon - start), 60);
  }
  size_t colon = before.rfind("\":");
  if (colon == std::string_view::npos) return "";
  size_t open = before.rfind('"', colon - 1);
  if (open == std::string_view::npos) return "";
  return Excerpt(before.substr(open + 1, colon - open - 1), 60);
}

void NormalizerCore::AppendQuoted(std::string_view s) {
  quote_scratch_.clear();
  AppendJsonString(&quote_scratch_, s);
  row_.append(quote_scratch_);
}

void NormalizerCore::Warn(const Column* c, const std::string& message) {
  // Counted only if the record becomes a row (see CommitWarnings): a
  // dead-lettered line is reported as a bad record, not also as repaired.
  ++pending_warnings_;
  pending_warning_ = c ? "field '" + c->path() + "': " + message : message;
}

bool NormalizerCore::WithinDepth(std::string_view raw, LineError* err) {
  // A member value of the object at depth_ sits depth_ + 2 levels down (the
  // record is level 1); raw's own outermost container is that level.
  if (static_cast<size_t>(depth_) + 1 + JsonTextDepth(raw) <= kMaxJsonDepth) return true;
  err->reason = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  return false;
}

void NormalizerCore::CommitWarnings() {
  if (pending_warnings_ > 0) {
    warnings_ += pending_warnings_;
    last_warning_ = std::move(pending_warning_);
  }
  pending_warnings_ = 0;
  pending_warning_.clear();
}

Column* NormalizerCore::Lookup(Column* parent, std::string_view raw_key, od::field& f, LineError* err) {
  if (Column* cached = columns_.Find(parent, raw_key)) return cached;
  std::string_view unescaped;
  key_repaired_ = false;
  if (auto e = f.unescaped_key().get(unescaped)) {
    // As for values: unpaired surrogate escapes are repaired, other errors are not.
    if (e != simdjson::STRING_ERROR || UnescapeJsonLossy(raw_key, &lossy_) <= 0) {
      err->reason = "invalid escape in field name";
      err->field = FieldNameForMessage(raw_key);
      return nullptr;
    }
    unescaped = lossy_;
    key_repaired_ = true;
  }
  last_unescaped_key_.assign(unescaped);
  Column* c = NewOrKnownChild(parent, unescaped);
  if (!c) return nullptr;  // not cached: the cache holds columns only, so it stays bounded
  if (key_repaired_) {
    // Not cached, so that every record with this name is counted as repaired.
    Warn(c, "unpaired surrogate escape in the field name replaced with U+FFFD");
    return c;
  }
  columns_.Add(c);
  return c;
}

Column* NormalizerCore::NewOrKnownChild(Column* parent, std::string_view key) {
  if (key.size() > kMaxFieldNameBytes) {
    no_column_why_ = "field name longer than " + std::to_string(kMaxFieldNameBytes) + " bytes";
    return nullptr;
  }
  if (new_columns_left_ == 0) {
    if (Column* known = schema_->Find(parent, key)) return known;
    no_column_why_ = "more than " + std::to_string(kMaxNewColumnsPerObject) + " new columns in one object";
    return nullptr;
  }
  bool created;
  Column* c = schema_->Child(parent, key, &created);
  if (!c) {
    no_column_why_ = "column limit (" + std::to_string(schema_->column_limit()) + ") reached";
    return nullptr;
  }
  if (created) --new_columns_left_;
  return c;
}

bool NormalizerCore::TimestampValue(std::string_view content, std::string* canonical) {
  // (Validity, including the 0001..9999 range in UTC, is ParseIso8601's and InEventTimeRange's.)
  // Times repeat from row to row (and json's time field is parsed once for
  // _time already): remember the last one.
  if (!last_ts_in_.empty() && content == last_ts_in_) {
    canonical->assign(last_ts_out_);
    return true;
  }
  auto t = InEventTimeRange(ParseIso8601(content, opts_.zone));
  if (!t) return false;
  char buf[40];
  buf[0] = '"';
  size_t n = FormatIso8601(*t, buf + 1);
  buf[n + 1] = '"';
  canonical->assign(buf, n + 2);
  // Key last: a failed allocation must not leave a key with another's value.
  last_ts_in_.clear();
  last_ts_out_.assign(*canonical);
  last_ts_in_.assign(content);
  return true;
}

bool NormalizerCore::ScalarText(od::value v, od::json_type t, Column* c, ColumnType* kind, std::string* scratch,
                                std::string_view* text, LineError* err) {
  std::string_view tok = TrimRight(v.raw_json_token());
  switch (t) {
    case od::json_type::string: {
      *kind = ColumnType::kString;
      if (NeedsStringCheck(tok)) {
        std::string_view s;
        if (auto e = v.get_string().get(s)) {
          // simdjson rejects unpaired surrogate escapes; those alone are repaired.
          int replaced = e == simdjson::STRING_ERROR && tok.size() >= 2
                             ? UnescapeJsonLossy(tok.substr(1, tok.size() - 2), &lossy_)
                             : -1;
          if (replaced <= 0) {
            err->reason = "invalid string: " + ErrorText(e);
            return false;
          }
          Warn(c, "unpaired surrogate escape replaced with U+FFFD");
          s = lossy_;
        }
        scratch->clear();
        AppendJsonString(scratch, s);
        *text = *scratch;
      } else {
        *text = tok;
      }
      std::string_view content = text->size() >= 2 ? text->substr(1, text->size() - 2) : std::string_view();
      if (LooksLikeTimestamp(content) && TimestampValue(content, &ts_canonical_)) *kind = ColumnType::kTimestamp;
      return true;
    }
    case od::json_type::number: {
      // (find_first_of compiles to a memchr call per character here.)
      bool is_float = false;
      for (char ch : tok) is_float |= (ch == '.') | ((ch | 0x20) == 'e');
      if (is_float) {
        double d;
        if (!v.get_double().get(d)) {
          *kind = ColumnType::kFloat64;
          *text = tok;
          return true;
        }
      } else {
        int64_t i;
        if (!v.get_int64().get(i)) {
          *kind = ColumnType::kInt64;
          inexact_int_ = i > (int64_t{1} << 53) || i < -(int64_t{1} << 53);
          *text = tok;
          return true;
        }
      }
      if (!LooksLikeNumber(tok)) {
        err->reason = "invalid number '" + Excerpt(tok, 40) + "'";
        return false;
      }
      // Out of the warehouse's range (2^64, 1e400): kept as its literal text.
      Warn(c, "number " + Excerpt(tok, 40) + " is out of range; kept as text");
      *kind = ColumnType::kString;
      scratch->clear();
      AppendJsonString(scratch, tok);
      *text = *scratch;
      return true;
    }
    case od::json_type::boolean: {
      bool b;
      if (v.get_bool().get(b)) {
        err->reason = "invalid literal '" + Excerpt(tok, 40) + "'";
        return false;
      }
      *kind = ColumnType::kBool;
      *text = b ? std::string_view("true") : std::string_view("false");
      return true;
    }
    default:
      err->reason = "unexpected JSON value";
      return false;
  }
}

bool NormalizerCore::RawContainer(od::value v, od::json_type t, std::string_view* raw, LineError* err) {
  simdjson::error_code e;
  if (t == od::json_type::object) {
    od::object o;
    e = v.get_object().get(o);
    if (!e) e = o.raw_json().get(*raw);
  } else {
    od::array a;
    e = v.get_array().get(a);
    if (!e) e = a.raw_json().get(*raw);
  }
  if (e) {
    err->reason = std::string(t == od::json_type::object ? "invalid object: " : "invalid array: ") + ErrorText(e);
    return false;
  }
  *raw = TrimRight(*raw);
  return true;
}

bool NormalizerCore::EmitArray(od::array arr, Column* c, ColumnType* kind, bool* mixed, LineError* err) {
  row_.push_back('[');
  bool first = true;
  *kind = ColumnType::kNone;
  for (auto elem_result : arr) {
    od::value elem;
    if (auto e = elem_result.get(elem)) {
      err->reason = "invalid array: " + ErrorText(e);
      return false;
    }
    od::json_type t;
    if (auto e = elem.type().get(t)) {
      err->reason = "invalid array element: " + ErrorText(e);
      return false;
    }
    if (t == od::json_type::null) {
      bool n;
      if (elem.is_null().get(n) || !n) {
        err->reason = "invalid literal in array";
        return false;
      }
      continue;  // BigQuery rejects NULL inside arrays
    }
    size_t mark = row_.size();
    if (!first) row_.push_back(',');
    ColumnType ek;
    if ((t == od::json_type::object || t == od::json_type::array) && depth_ >= kMaxNestingDepth) {
      // Whatever holds a container this deep is written as text (see
      // EmitValue): copy it as it is instead of recursing further, so the
      // stack does not grow with the input's depth.
      std::string_view raw;
      if (!RawContainer(elem, t, &raw, err)) return false;
      if (!WithinDepth(raw, err)) return false;
      row_.append(raw);
      cut_deep_ = *mixed = true;
      ek = ColumnType::kNone;
    } else if (t == od::json_type::object) {
      od::object o;
      if (auto e = elem.get_object().get(o)) {
        err->reason = "invalid object: " + ErrorText(e);
        return false;
      }
      ek = ColumnType::kRecord;
      row_.push_back('{');
      size_t before = row_.size();
      ++depth_;
      bool ok = EmitMembers(o, c, false, err);
      --depth_;
      if (!ok) return false;
      if (row_.size() == before) {  // empty object: dropped like a null
        row_.resize(mark);
        continue;
      }
      row_.push_back('}');
    } else if (t == od::json_type::array) {
      // Arrays of arrays have no warehouse type: the whole value becomes text.
      od::array inner;
      if (auto e = elem.get_array().get(inner)) {
        err->reason = "invalid array: " + ErrorText(e);
        return false;
      }
      ColumnType ik;
      bool im;
      ++depth_;
      bool ok = EmitArray(inner, c, &ik, &im, err);
      --depth_;
      if (!ok) return false;
      *mixed = true;
      ek = ColumnType::kNone;
    } else {
      std::string_view text;
      if (!ScalarText(elem, t, c, &ek, &scratch_, &text, err)) return false;
      row_.append(ek == ColumnType::kTimestamp ? std::string_view(ts_canonical_) : text);
    }
    first = false;
    if (*kind == ColumnType::kNone)
      *kind = ek;
    else if (*kind != ek) {
      if ((*kind == ColumnType::kInt64 && ek == ColumnType::kFloat64) ||
          (*kind == ColumnType::kFloat64 && ek == ColumnType::kInt64))
        *kind = ColumnType::kFloat64;
      else
        *mixed = true;
    }
  }
  row_.push_back(']');
  return true;
}

namespace {
// Thrown where a value is copied as text, when the row would outgrow its
// budget; the record becomes a bad record (Normalize, NormalizeJson).
struct RowOverBudget {};
}  // namespace

void NormalizerCore::CheckRowBudget(size_t adding) const {
  // Quoting can double a text, and a value that misfits at several nesting
  // levels is quoted again at each: without a bound, a 400 KB line became a
  // 13.6 MB row, and a long line could take gigabytes.
  if (row_.size() + overflow_.size() + 2 * adding > row_budget_) throw RowOverBudget();
}

void NormalizerCore::WriteAsText(Column* c, size_t key_mark, std::string_view text, bool quote,
                                 const std::string& why) {
  CheckRowBudget(text.size());
  std::string value(text);  // text may point into row_, which is about to change
  row_.resize(key_mark);
  Column* comp = schema_->CompanionOf(c);
  if (!comp) {
    // No room for another column: the value goes to _overflow.
    Warn(c, why + "; column limit reached, written to _overflow");
    AddOverflow(c->path(), value, quote);
    return;
  }
  Warn(c, why + "; written as text to " + comp->name());
  if (key_mark > 0 && row_.back() != '{' && row_.back() != ',') row_.push_back(',');
  row_.append(comp->json_key());
  NoteWritten(comp);
  if (quote)
    AppendQuoted(value);
  else
    row_.append(value);
}

void NormalizerCore::AddOverflow(const std::string& path, std::string_view value_text, bool quote) {
  CheckRowBudget(path.size() + value_text.size());
  overflow_.push_back(overflow_.empty() ? '{' : ',');
  AppendJsonString(&overflow_, path);
  overflow_.push_back(':');
  if (quote)
    AppendJsonString(&overflow_, value_text);
  else
    overflow_.append(value_text);
}

bool NormalizerCore::EmitValue(od::value v, Column* c, size_t key_mark, bool* emitted, LineError* err) {
  *emitted = true;
  od::json_type t;
  if (auto e = v.type().get(t)) {
    err->reason = "invalid JSON value: " + ErrorText(e);
    return false;
  }
  switch (t) {
    case od::json_type::null: {
      bool n;
      if (v.is_null().get(n) || !n) {
        err->reason = "invalid literal";
        return false;
      }
      *emitted = false;
      return true;
    }
    case od::json_type::object:
      return EmitObject(v, c, key_mark, emitted, err);
    case od::json_type::array:
      return EmitArrayValue(v, c, key_mark, emitted, err);
    default:
      return EmitScalar(v, t, c, key_mark, err);
  }
}

bool NormalizerCore::EmitObject(od::value v, Column* c, size_t key_mark, bool* emitted, LineError* err) {
  od::object o;
  if (auto e = v.get_object().get(o)) {
    err->reason = "invalid object: " + ErrorText(e);
    return false;
  }
  bool too_deep = depth_ >= kMaxNestingDepth - 1;
  ColumnType ct = c->type();
  bool fits = !too_deep && !c->repeated() && (ct == ColumnType::kRecord || ct == ColumnType::kNone);
  if (!fits) {
    std::string_view raw;
    if (auto e = o.raw_json().get(raw)) {
      err->reason = "invalid object: " + ErrorText(e);
      return false;
    }
    if (!WithinDepth(TrimRight(raw), err)) return false;
    WriteAsText(c, key_mark, TrimRight(raw), true,
                too_deep ? "nested deeper than 15 levels" : "an object does not fit the column's type");
    return true;
  }
  size_t start = row_.size();
  row_.push_back('{');
  ++depth_;
  bool ok = EmitMembers(o, c, false, err);
  --depth_;
  if (!ok) return false;
  if (row_.size() == start + 1) {
    // No fields (or only nulls): like a null, and no RECORD without fields.
    *emitted = false;
    return true;
  }
  row_.push_back('}');
  // The type is fixed only now that the object proved to have fields.
  if (schema_->Offer(c, ColumnType::kRecord, false) != Fit::kOk)
    WriteAsText(c, key_mark, row_.substr(start), true, "an object does not fit the column's type");
  return true;
}

bool NormalizerCore::EmitArrayValue(od::value v, Column* c, size_t key_mark, bool* emitted, LineError* err) {
  od::array a;
  if (auto e = v.get_array().get(a)) {
    err->reason = "invalid array: " + ErrorText(e);
    return false;
  }
  size_t start = row_.size();
  ColumnType kind;
  bool mixed = false;
  bool outer_deep = cut_deep_;  // an enclosing array's, kept for its message
  cut_deep_ = false;
  ++depth_;
  bool ok = EmitArray(a, c, &kind, &mixed, err);
  --depth_;
  if (!ok) return false;
  bool deep = cut_deep_;
  cut_deep_ = outer_deep;
  if (kind == ColumnType::kNone && !mixed) {  // empty, or only nulls
    *emitted = false;
    return true;
  }
  Fit fit = mixed ? Fit::kCompanion : schema_->Offer(c, kind, true);
  if (depth_ >= kMaxNestingDepth - 1 && kind == ColumnType::kRecord) fit = Fit::kCompanion;
  if (fit != Fit::kOk)
    WriteAsText(c, key_mark, row_.substr(start), true,
                deep    ? "nested deeper than 15 levels"
                : mixed ? "an array mixes types"
                        : "an array does not fit the column's type");
  return true;
}

bool NormalizerCore::EmitScalar(od::value v, od::json_type t, Column* c, size_t key_mark, LineError* err) {
  ColumnType kind;
  std::string_view text;
  inexact_int_ = false;
  if (!ScalarText(v, t, c, &kind, &scratch_, &text, err)) return false;
  Fit fit;
  if (kind == ColumnType::kInt64 && inexact_int_ && c->type() == ColumnType::kFloat64 && !c->repeated()) {
    fit = Fit::kCompanion;  // a double cannot hold it exactly
  } else {
    fit = schema_->Offer(c, kind, false);
    if (fit == Fit::kOk && kind == ColumnType::kInt64 && inexact_int_) schema_->MarkInexactInts(c);
  }
  bool is_string = kind == ColumnType::kString || kind == ColumnType::kTimestamp;
  if (fit == Fit::kOk) {
    row_.append(kind == ColumnType::kTimestamp ? std::string_view(ts_canonical_) : text);
  } else if (fit == Fit::kAsString) {
    if (is_string)
      row_.append(text);  // the original string, as written
    else
      AppendQuoted(text);
  } else {
    // A string is already a JSON string literal: keep it as it is.
    WriteAsText(c, key_mark, text, !is_string,
                std::string("a ") + ColumnTypeName(kind) + " value does not fit the column's type " +
                    ColumnTypeName(c->type()));
  }
  return true;
}

Column* NormalizerCore::MemberColumn(Shape& shape, size_t index, Column* parent, od::field& f,
                                     std::string_view* raw_key, LineError* err) {
  const char* kp = f.key().raw();
  if (const ShapeSlot* slot = PredictedSlot(shape, index, kp, input_end_)) {
    *raw_key = slot->raw_key;
    return slot->column;
  }
  *raw_key = std::string_view(kp, RawKeyLength(kp));
  if (Column* c = PredictedColumn(shape, index, *raw_key)) return c;
  Column* c = Lookup(parent, *raw_key, f, err);
  if (c && !key_repaired_) RememberSlot(shape, index, *raw_key, c);
  return c;
}

void NormalizerCore::ReadEventTime(od::value v) {
  // The value is still written as a regular column. A repeated key counts
  // its last value, as the column does.
  have_time_ = false;
  time_error_.clear();
  od::json_type t;
  if (v.type().get(t)) return;
  std::string_view tok = TrimRight(v.raw_json_token());
  if (t == od::json_type::boolean || t == od::json_type::object || t == od::json_type::array) {
    time_error_ = "time is a JSON " +
                  std::string(t == od::json_type::boolean  ? "boolean"
                              : t == od::json_type::object ? "object"
                                                           : "array") +
                  ", not a string or number";
  } else if (t == od::json_type::string) {
    // Not v.get_string(): the value is unescaped again when it is written,
    // and unescaping one value twice overruns simdjson's string buffer
    // (found by fuzz_normalizer_csv). Escapes in a time are rare: those few
    // are decoded here.
    std::string decoded;
    std::string_view s = tok.size() >= 2 ? tok.substr(1, tok.size() - 2) : std::string_view();
    if (s.find('\\') != std::string_view::npos) {
      if (UnescapeJsonLossy(s, &decoded) != 0) {  // a repaired time is no time
        time_error_ = "unparseable time " + Excerpt(tok, 60);
        return;
      }
      s = decoded;
    }
    if (auto parsed = ParseEventTime(s, opts_)) {
      time_ = *parsed;
      have_time_ = true;
    } else {
      time_error_ = "unparseable time '" + Excerpt(s, 60) + "'";
    }
  } else if (t == od::json_type::number) {
    if (auto parsed = ParseEventTime(tok, opts_)) {
      time_ = *parsed;
      have_time_ = true;
    } else {
      time_error_ = "time out of range: " + Excerpt(tok, 60);
    }
  }
}

bool NormalizerCore::OverflowMember(Column* parent, od::value v, LineError* err) {
  std::string_view raw;
  od::json_type t;
  if (auto e = v.type().get(t)) {
    err->reason = "invalid JSON value: " + ErrorText(e);
    return false;
  }
  if (t == od::json_type::object || t == od::json_type::array) {
    if (!RawContainer(v, t, &raw, err)) return false;
    if (!WithinDepth(raw, err)) return false;
  } else {
    raw = v.raw_json_token();
  }
  // The whole name goes to _overflow (the row is no longer than the line); the message gets a bounded one.
  const std::string& key = last_unescaped_key_;  // set by Lookup when it returned nullptr
  std::string path = parent->path().empty() ? key : parent->path() + "." + key;
  Warn(nullptr, no_column_why_ + "; field '" + FieldNameForMessage(path) + "' written to _overflow");
  AddOverflow(path, TrimRight(raw), false);
  return true;
}

void NormalizerCore::DropDuplicate(std::vector<Member>& members, const Column* c) {
  for (size_t k = 0; k < members.size(); ++k) {
    if (members[k].column != c) continue;
    size_t s = members[k].start, e = members[k].end;
    // The first member has no leading comma: take the next member's instead.
    if (k == 0 && members.size() > 1) ++e;
    row_.erase(s, e - s);
    for (size_t j = k + 1; j < members.size(); ++j) {
      members[j].start -= e - s;
      members[j].end -= e - s;
    }
    if (k == 0 && members.size() > 1) members[1].start = s;
    members.erase(members.begin() + static_cast<long>(k));
    Warn(c, "duplicate key; kept the last value");
    return;
  }
}

bool NormalizerCore::EmitMembers(od::object obj, Column* parent, bool top, LineError* err) {
  Shape& shape = shapes_.Of(parent);
  // Members written so far at this level, to keep only the last of duplicate keys.
  if (members_.size() <= static_cast<size_t>(depth_)) members_.resize(depth_ + 1);
  std::vector<Member>& members = members_[depth_];
  members.clear();
  size_t index = 0;
  for (auto field_result : obj) {
    od::field f;
    if (auto e = std::move(field_result).get(f)) {
      err->reason = "invalid JSON object: " + ErrorText(e);
      return false;
    }
    std::string_view raw_key;
    Column* c = MemberColumn(shape, index++, parent, f, &raw_key, err);
    if (!c && !err->reason.empty()) return false;
    od::value v = f.value();
    if (top && time_in_record_ && raw_key == opts_.time_key) ReadEventTime(v);
    if (!c) {
      if (!OverflowMember(parent, v, err)) return false;
      continue;
    }
    DropDuplicate(members, c);
    size_t mark = row_.size();
    bool first = members.empty();
    if (!first) row_.push_back(',');
    row_.append(c->json_key());
    NoteWritten(c);
    bool emitted;
    if (!EmitValue(v, c, mark + (first ? 0 : 1), &emitted, err)) {
      if (err->field.empty()) err->field = c->path();
      return false;
    }
    if (!emitted)
      row_.resize(mark);
    else
      members.push_back(Member{c, mark, row_.size()});
  }
  return true;
}

bool NormalizerCore::ParseJsonLine(std::string_view json, size_t capacity, LineError* err) {
  if (fast_path_) {
    size_t mark = row_.size();
    if (fast_.Line(json)) return true;
    row_.resize(mark);
    have_time_ = false;
    time_error_.clear();
  }
  // The shape check reads the byte after a predicted key: never past the line.
  input_end_ = json.data() + json.size();
  od::document doc;
  auto e = parser_.iterate(json.data(), json.size(), capacity).get(doc);
  if (e) {
    err->reason = "invalid JSON: " + ErrorText(e);
    return false;
  }
  od::object obj;
  if (auto oe = doc.get_object().get(obj)) {
    err->reason = oe == simdjson::INCORRECT_TYPE ? "record is not a JSON object" : "invalid JSON: " + ErrorText(oe);
    // simdjson reports "{...} xyz" as an unclosed object (its last token is not '}').
    if (oe == simdjson::INCOMPLETE_ARRAY_OR_OBJECT) {
      size_t end = EndOfLeadingObject(json);
      if (end != std::string_view::npos && !TrimRight(json.substr(end)).empty())
        err->reason = "trailing characters after the JSON object";
    }
    return false;
  }
  if (!EmitMembers(obj, schema_->root(), true, err)) return false;
  // A location left means unconsumed input after the object.
  const char* rest;
  if (!doc.current_location().get(rest)) {
    err->reason = "trailing characters after the JSON object";
    return false;
  }
  return true;
}

std::vector<std::string> NormalizerCore::TakeColumnsWritten() {
  std::vector<std::string> names;
  names.reserve(written_list_.size());
  for (const Column* c : written_list_) {
    names.push_back(c->name());
    written_[c->sibling_index()] = 0;
  }
  written_list_.clear();
  return names;
}

void NormalizerCore::AppendTimeColumn() {
  if (row_.size() > 1) row_.push_back(',');
  row_.append(time_col_->json_key());
  NoteWritten(time_col_);
  // Log lines come in time order, many per second: format each second once.
  if (time_ != last_time_) {
    last_time_ = time_;
    last_time_text_[0] = '"';
    size_t n = FormatIso8601(time_, last_time_text_ + 1);
    last_time_text_[n + 1] = '"';
    last_time_len_ = n + 2;
  }
  row_.append(last_time_text_, last_time_len_);
}

void NormalizerCore::BeginRecord(LineError* err) {
  row_.clear();
  overflow_.clear();
  pending_warnings_ = 0;
  have_time_ = false;
  time_error_.clear();
  depth_ = 0;
  err->field.clear();
  err->reason.clear();
  err->open_quote = false;
}

bool NormalizerCore::Normalize(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time,
                               LineError* err, int64_t record) {
  row_budget_ = kRowBudgetFactor * line.size() + kRowBudgetSlack;
  record_ = record;
  try {
    return NormalizeLine(line, capacity, fallback_time, err);
  } catch (const RowOverBudget&) {
    return OverBudget(err);
  } catch (const std::exception& e) {
    return Unexpected(e.what(), err);
  } catch (...) {
    return Unexpected("unknown exception", err);
  }
}

bool NormalizerCore::NormalizeJson(std::string_view json, size_t capacity, std::optional<int64_t> fallback_time,
                                   LineError* err, int64_t record) {
  row_budget_ = kRowBudgetFactor * json.size() + kRowBudgetSlack;
  record_ = record;
  try {
    BeginRecord(err);
    row_.push_back('{');
    if (!ParseJsonLine(json, capacity, err)) return false;
    return FinishRecord(fallback_time, err);
  } catch (const RowOverBudget&) {
    return OverBudget(err);
  } catch (const std::exception& e) {
    return Unexpected(e.what(), err);
  } catch (...) {
    return Unexpected("unknown exception", err);
  }
}

bool NormalizerCore::OverBudget(LineError* err) {
  err->field.clear();
  err->open_quote = false;
  err->reason = "the row would be more than " + std::to_string(kRowBudgetFactor) +
                " times the size of its line (values nested in arrays that fit no column are quoted again at each "
                "level)";
  pending_warnings_ = 0;
  pending_warning_.clear();
  return false;
}

bool NormalizerCore::Unexpected(const char* what, LineError* err) {
  // One record's failure (out of memory, a defect) costs that record, not
  // the worker: the next record starts from BeginRecord as always.
  err->field.clear();
  err->open_quote = false;
  err->reason = std::string("internal error while normalizing: ") + what;
  pending_warnings_ = 0;
  pending_warning_.clear();
  return false;
}

bool NormalizerCore::NormalizeLine(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time,
                                   LineError* err) {
  BeginRecord(err);

  // Invalid UTF-8 is repaired (U+FFFD) rather than losing the record.
  if (!simdjson::validate_utf8(line.data(), line.size())) {
    repaired_.clear();
    RepairUtf8(line, &repaired_);
    size_t len = repaired_.size();
    repaired_.append(simdjson::SIMDJSON_PADDING, ' ');
    std::string field = FieldAt(line, FirstInvalidUtf8(line));
    line = std::string_view(repaired_.data(), len);
    capacity = repaired_.size();
    Warn(nullptr, (field.empty() ? std::string() : "field '" + field + "': ") + "invalid UTF-8 replaced with U+FFFD");
  }

  row_.push_back('{');
  if (opts_.format == LogFormat::kOutFile) {
    std::string_view rest;
    if (!OutFilePrefix(line, fallback_time, &rest, err)) return false;
    size_t before = row_.size();
    size_t cap = capacity - static_cast<size_t>(rest.data() - line.data());
    if (!ParseJsonLine(rest, cap, err)) return false;
    if (row_.size() == before && row_.back() == ',') row_.pop_back();
  } else if (opts_.format == LogFormat::kJson) {
    if (!ParseJsonLine(line, capacity, err)) return false;
  } else {
    if (!TextToJson(line, err)) return false;
    size_t len = converted_.size();
    converted_.append(simdjson::SIMDJSON_PADDING, ' ');
    if (!ParseJsonLine(std::string_view(converted_.data(), len), converted_.size(), err)) return false;
  }
  return FinishRecord(fallback_time, err);
}

bool NormalizerCore::OutFilePrefix(std::string_view line, std::optional<int64_t> fallback_time, std::string_view* rest,
                                   LineError* err) {
  *rest = line;
  std::string_view time_text, tag_text;
  for (auto [on, text, name] :
       {std::tuple{opts_.output_time, &time_text, "time"}, std::tuple{opts_.output_tag, &tag_text, "tag"}}) {
    if (!on) continue;
    size_t p = rest->find(opts_.delimiter);
    if (p == std::string_view::npos) {
      err->reason = std::string("no delimiter after the ") + name + " field";
      err->field = name;
      return false;
    }
    *text = rest->substr(0, p);
    rest->remove_prefix(p + 1);
  }
  if (opts_.output_time) {
    std::optional<int64_t> t = event_times_.Parse(time_text, opts_);
    if (!t) {
      err->reason = "unparseable time '" + Excerpt(time_text, 60) + "'";
      err->field = "time";
      return false;
    }
    time_ = *t;
  } else if (fallback_time) {
    time_ = *fallback_time;
  } else {
    err->reason = "no event time: output_time is off and the key has no time slice";
    return false;
  }
  if (opts_.output_tag) {
    // One tag per stream in practice: quote it once.
    if (!last_tag_valid_ || tag_text != last_tag_) {
      last_tag_valid_ = false;  // until both are whole (an allocation may fail)
      last_tag_json_.clear();
      last_tag_json_.append(tag_col_->json_key());
      AppendJsonString(&last_tag_json_, tag_text);
      last_tag_json_.push_back(',');
      last_tag_.assign(tag_text);
      last_tag_valid_ = true;
    }
    row_.append(last_tag_json_);
    NoteWritten(tag_col_);
  }
  return true;
}

bool NormalizerCore::FinishRecord(std::optional<int64_t> fallback_time, LineError* err) {
  if (time_in_record_) {
    if (!have_time_) {
      if (!time_error_.empty()) {
        err->reason = time_error_;
        err->field = opts_.time_key;
        return false;
      }
      if (!fallback_time) {
        err->reason = "no '" + opts_.time_key + "' field and the key has no time slice";
        err->field = opts_.time_key;
        return false;
      }
      time_ = *fallback_time;
    }
  }
  if (!overflow_.empty()) {
    overflow_.push_back('}');
    if (!overflow_col_) overflow_col_ = schema_->Child(schema_->root(), FixedColumnKey("_overflow"));
    if (row_.size() > 1) row_.push_back(',');
    row_.append(overflow_col_->json_key());
    NoteWritten(overflow_col_);
    AppendQuoted(overflow_);
    schema_->Offer(overflow_col_, ColumnType::kString, false);
  }
  AppendTimeColumn();
  if (lineage_) AppendLineage();
  row_.append("}\n");
  CommitWarnings();
  return true;
}

RowNormalizer::RowNormalizer(SchemaRegistry* schema, const FormatOptions& opts, const Lineage& lineage)
    : core_(std::make_unique<NormalizerCore>(schema, opts, lineage)) {}
RowNormalizer::~RowNormalizer() = default;
void RowNormalizer::BeginObject(std::string_view source_key) {
  core_->BeginObject(source_key);
}
bool RowNormalizer::Normalize(std::string_view line, size_t capacity, std::optional<int64_t> fallback_time,
                              LineError* err, int64_t record) {
  return core_->Normalize(line, capacity, fallback_time, err, record);
}
bool RowNormalizer::NormalizeJson(std::string_view json, size_t capacity, std::optional<int64_t> fallback_time,
                                  LineError* err, int64_t record) {
  return core_->NormalizeJson(json, capacity, fallback_time, err, record);
}
std::string_view RowNormalizer::row() const {
  return core_->row();
}
int64_t RowNormalizer::time() const {
  return core_->time();
}
void RowNormalizer::set_fast_path(bool on) {
  core_->set_fast_path(on);
}
uint64_t RowNormalizer::warnings() const {
  return core_->warnings();
}
const std::string& RowNormalizer::last_warning() const {
  return core_->last_warning();
}
std::vector<std::string> RowNormalizer::TakeColumnsWritten() {
  return core_->TakeColumnsWritten();
}
void RowNormalizer::AddWarning(std::string message) {
  core_->AddWarning(std::move(message));
}

}  // namespace logferry

namespace logferry {

namespace {

// Appends "key":"value" (both as JSON strings) to a JSON object under construction.
void AppendMember(std::string* out, std::string_view key, std::string_view value) {
  out->push_back(out->size() == 1 ? ' ' : ',');
  AppendJsonString(out, key);
  out->push_back(':');
  AppendJsonString(out, value);
}

// Splits a CSV line as Fluentd's csv formatter writes it: fields separated by
// `delim`, optionally quoted with '"', a quote inside quotes doubled. Fields
// are views into the line; only a field with a doubled quote is copied (into
// `unquoted`, which is reserved so the views stay valid).
bool SplitCsv(std::string_view line, char delim, std::vector<std::string_view>* fields, std::string* unquoted,
              std::string* error, bool* open_quote) {
  fields->clear();
  unquoted->clear();
  unquoted->reserve(line.size());
  size_t i = 0;
  for (;;) {
    if (i < line.size() && line[i] == '"') {
      size_t start = ++i;
      size_t close = line.find('"', i);
      bool doubled = false;
      while (close != std::string_view::npos && close + 1 < line.size() && line[close + 1] == '"') {
        doubled = true;
        close = line.find('"', close + 2);
      }
      if (close == std::string_view::npos) {
        *error = "unterminated quoted field " + std::to_string(fields->size() + 1);
        *open_quote = true;
        return false;
      }
      std::string_view body = line.substr(start, close - start);
      if (doubled) {
        size_t at = unquoted->size();
        for (size_t k = 0; k < body.size(); ++k) {
          unquoted->push_back(body[k]);
          if (body[k] == '"') ++k;  // "" -> "
        }
        body = std::string_view(unquoted->data() + at, unquoted->size() - at);
      }
      fields->push_back(body);
      i = close + 1;
      if (i < line.size() && line[i] != delim) {
        *error = "characters after the closing quote of field " + std::to_string(fields->size());
        return false;
      }
    } else {
      size_t end = line.find(delim, i);
      if (end == std::string_view::npos) end = line.size();
      fields->push_back(line.substr(i, end - i));
      i = end;
    }
    if (i >= line.size()) return true;
    ++i;  // the delimiter
  }
}

}  // namespace

CsvContinuation::Result CsvContinuation::Scan(const char* text, size_t size, size_t* pos) {
  size_t i = *pos;
  while (i < size) {
    char c = text[i];
    switch (state_) {
      case State::kQuoted: {
        // Inside quotes everything, line breaks included, is the value.
        const void* q = memchr(text + i, '"', size - i);
        if (!q) {
          i = size;
          break;
        }
        i = static_cast<size_t>(static_cast<const char*>(q) - text) + 1;
        state_ = State::kQuoteInQuoted;
        break;
      }
      case State::kQuoteInQuoted:  // a quote inside quotes: doubled, or the closing one
        if (c == '"') {
          state_ = State::kQuoted;
        } else if (c == delimiter_) {
          state_ = State::kFieldStart;
        } else if (c == '\n') {
          *pos = i;
          return Result::kEnd;
        } else if (c == '\r') {
          state_ = State::kCrAfterQuote;
        } else {
          *pos = i;
          return Result::kMalformed;
        }
        ++i;
        break;
      case State::kCrAfterQuote:
        *pos = i;
        return c == '\n' ? Result::kEnd : Result::kMalformed;
      case State::kFieldStart:
        if (c == '"') {
          state_ = State::kQuoted;
          ++i;
        } else {
          state_ = State::kUnquoted;
        }
        break;
      case State::kUnquoted:  // up to a delimiter or the line end, quotes included
        if (c == '\n') {
          *pos = i;
          return Result::kEnd;
        }
        if (c == delimiter_) state_ = State::kFieldStart;
        ++i;
        break;
    }
  }
  *pos = size;
  return Result::kMore;
}

bool NormalizerCore::TextToJson(std::string_view line, LineError* err) {
  converted_.assign("{");
  switch (opts_.format) {
    case LogFormat::kLtsv: {
      size_t start = 0;
      int n = 0;
      while (start <= line.size()) {
        size_t end = line.find(opts_.delimiter, start);
        if (end == std::string_view::npos) end = line.size();
        std::string_view field = line.substr(start, end - start);
        ++n;
        if (!field.empty()) {
          size_t colon = field.find(opts_.label_delimiter);
          if (colon == std::string_view::npos) {
            err->reason = "LTSV field " + std::to_string(n) + " has no label ('" + Excerpt(field, 40) + "')";
            err->field = "field " + std::to_string(n);
            return false;
          }
          AppendMember(&converted_, field.substr(0, colon), field.substr(colon + 1));
        }
        start = end + 1;
      }
      break;
    }
    case LogFormat::kCsv:
    case LogFormat::kTsv: {
      std::vector<std::string_view>& fields = fields_;
      std::string error;
      if (opts_.format == LogFormat::kCsv) {
        if (!SplitCsv(line, opts_.delimiter, &fields, &unquoted_, &error, &err->open_quote)) {
          err->reason = "CSV: " + error;
          return false;
        }
      } else {
        fields.clear();
        for (size_t start = 0;;) {
          size_t end = line.find(opts_.delimiter, start);
          fields.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
          if (end == std::string_view::npos) break;
          start = end + 1;
        }
      }
      if (fields.size() != opts_.keys.size()) {
        err->reason =
            "expected " + std::to_string(opts_.keys.size()) + " fields (keys), found " + std::to_string(fields.size());
        return false;
      }
      for (size_t i = 0; i < fields.size(); ++i) AppendMember(&converted_, opts_.keys[i], fields[i]);
      break;
    }
    case LogFormat::kSingleValue:
      AppendMember(&converted_, opts_.message_key, line);
      break;
    default:
      err->reason = "internal: not a text format";
      return false;
  }
  converted_.push_back('}');
  return true;
}

}  // namespace logferry
