#include "warehouse/duckdb_part_loader.h"

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "common/time.h"

namespace logferry {

namespace {

namespace od = simdjson::ondemand;

enum class Kind { kVarchar, kJson, kBigint, kDouble, kBool, kTimestamp };

StatusOr<Kind> KindOfType(const std::string& type) {
  if (type == "VARCHAR") return Kind::kVarchar;
  if (type == "JSON") return Kind::kJson;
  if (type == "BIGINT") return Kind::kBigint;
  if (type == "DOUBLE") return Kind::kDouble;
  if (type == "BOOLEAN") return Kind::kBool;
  if (type == "TIMESTAMPTZ") return Kind::kTimestamp;
  return Status::Internal("duckdb: no loader for column type " + type);
}

duckdb_logical_type LogicalTypeOf(Kind kind) {
  switch (kind) {
    case Kind::kBigint:
      return duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    case Kind::kDouble:
      return duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
    case Kind::kBool:
      return duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    case Kind::kTimestamp:
      return duckdb_create_logical_type(DUCKDB_TYPE_TIMESTAMP_TZ);
    case Kind::kJson: {
      // JSON is VARCHAR under an alias; the same alias spares the insert a cast.
      duckdb_logical_type t = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
      duckdb_logical_type_set_alias(t, "JSON");
      return t;
    }
    case Kind::kVarchar:
      break;
  }
  return duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// A value as JSON text (objects and arrays whole, strings quoted).
simdjson::error_code RawJson(od::value& v, od::json_type type, std::string_view* out) {
  if (type == od::json_type::object) {
    od::object o;
    if (auto e = v.get_object().get(o)) return e;
    return o.raw_json().get(*out);
  }
  if (type == od::json_type::array) {
    od::array a;
    if (auto e = v.get_array().get(a)) return e;
    return a.raw_json().get(*out);
  }
  *out = TrimRight(v.raw_json_token());
  return simdjson::SUCCESS;
}

// One column of the chunk being filled.
struct ColumnSink {
  std::string name;
  Kind kind;
  duckdb_vector vector = nullptr;
  void* data = nullptr;
  uint64_t* validity = nullptr;
};

// Keeps the output chunk's long strings until DuckDB has consumed the chunk
// (by the next Fill, which resets it): a bump allocator whose blocks are
// reused, so a string costs one copy and no allocation. Blocks larger than
// the usual (for a huge value) are dropped at Reset, keeping memory flat.
class StringArena {
 public:
  char* Copy(std::string_view s) {
    while (index_ < blocks_.size() && used_ + s.size() > blocks_[index_].size) {
      ++index_;
      used_ = 0;
    }
    if (index_ == blocks_.size()) {
      size_t size = std::max(kBlock, s.size());
      blocks_.push_back({std::make_unique<char[]>(size), size});
      used_ = 0;
    }
    char* p = blocks_[index_].data.get() + used_;
    std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return p;
  }
  void Reset() {
    std::erase_if(blocks_, [](const Block& b) { return b.size > kBlock; });
    index_ = 0;
    used_ = 0;
  }

 private:
  static constexpr size_t kBlock = 1 << 20;
  struct Block {
    std::unique_ptr<char[]> data;
    size_t size;
  };
  std::vector<Block> blocks_;
  size_t index_ = 0, used_ = 0;
};

std::string QuoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

struct DuckDbPartLoader::Impl {
  std::vector<ColumnSink> columns;
  // Views into columns[i].name, or into skipped names (kSkip).
  std::unordered_map<std::string_view, uint32_t> index;
  std::vector<std::string> skipped;
  static constexpr uint32_t kSkip = UINT32_MAX;
  std::vector<duckdb_logical_type> types;  // of columns
  const NextPart* next = nullptr;
  od::parser parser;
  Status failure;     // why the table function stopped, with its code
  int64_t rows = 0;   // inserted in all
  idx_t filled = 0;   // rows in the output chunk being filled
  bool done = false;  // next() has no more parts

  // The part being read. Lines are parsed in place: the buffer keeps
  // simdjson's padding past its data, and grows only for a row longer than
  // what it holds.
  PartRows part;
  std::vector<char> buf;
  size_t start = 0, end = 0;
  bool eof = false;
  int64_t line = 0;

  static constexpr size_t kBlock = 1 << 20;
  static constexpr size_t kMaxRow = size_t{1} << 30;
  static constexpr size_t kMaxValue = kMaxRow;
  StringArena arena;

  ~Impl() {
    for (duckdb_logical_type& t : types) duckdb_destroy_logical_type(&t);
  }

  Status Init(const std::vector<std::pair<std::string, std::string>>& cols, const std::vector<std::string>& skip) {
    if (cols.empty()) return Status::Internal("duckdb: a load needs at least one column");
    skipped = skip;
    for (const std::string& name : skipped) index.emplace(name, kSkip);
    columns.reserve(cols.size());  // index holds views into the names
    for (const auto& [name, type] : cols) {
      LF_ASSIGN_OR_RETURN(Kind kind, KindOfType(type));
      columns.push_back({name, kind});
      types.push_back(LogicalTypeOf(kind));
    }
    for (uint32_t c = 0; c < columns.size(); ++c) index[columns[c].name] = c;
    buf.resize(kBlock + simdjson::SIMDJSON_PADDING);
    return Status::Ok();
  }

  // Points every sink at the output chunk's vectors, all rows NULL.
  void BindChunk(duckdb_data_chunk out) {
    const idx_t capacity = duckdb_vector_size();
    arena.Reset();
    for (idx_t c = 0; c < columns.size(); ++c) {
      ColumnSink& s = columns[c];
      s.vector = duckdb_data_chunk_get_vector(out, c);
      duckdb_vector_ensure_validity_writable(s.vector);
      s.validity = duckdb_vector_get_validity(s.vector);
      std::memset(s.validity, 0, (capacity + 63) / 64 * sizeof(uint64_t));
      s.data = duckdb_vector_get_data(s.vector);
    }
    filled = 0;
  }

  // Fills the output chunk with the next rows; an empty chunk ends the scan.
  Status Fill(duckdb_data_chunk out) {
    BindChunk(out);
    const idx_t capacity = duckdb_vector_size();
    while (filled < capacity && !done) {
      if (!part.rows) {
        LF_ASSIGN_OR_RETURN(part, (*next)());
        done = part.rows == nullptr;
        start = end = 0;
        eof = false;
        line = 0;
        continue;
      }
      size_t from = 0, len = 0;
      LF_ASSIGN_OR_RETURN(bool more, NextLine(&from, &len));
      if (!more) {
        part.rows.reset();
      } else if (len > 0) {
        LF_RETURN_IF_ERROR(ParseRow(buf.data() + from, len, buf.size() - from));
      }
    }
    duckdb_data_chunk_set_size(out, filled);
    rows += static_cast<int64_t>(filled);
    return Status::Ok();
  }

  // The next line of the part, as [from, from + len) of buf; false at its end.
  StatusOr<bool> NextLine(size_t* from, size_t* len) {
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(buf.data() + start, '\n', end - start));
      if (nl || (eof && start < end)) {
        size_t stop = nl ? static_cast<size_t>(nl - buf.data()) : end;
        *from = start;
        *len = stop - start;
        start = nl ? stop + 1 : end;
        ++line;
        return true;
      }
      if (eof) return false;
      LF_RETURN_IF_ERROR(ReadMore());
    }
  }

  Status ReadMore() {
    std::memmove(buf.data(), buf.data() + start, end - start);
    end -= start;
    start = 0;
    if (end + simdjson::SIMDJSON_PADDING == buf.size()) {
      if (buf.size() > kMaxRow) return Status::Corruption("staged part " + part.name + ": a row over 1 GiB");
      buf.resize(buf.size() * 2);
    }
    LF_ASSIGN_OR_RETURN(size_t n, part.rows->Read(buf.data() + end, buf.size() - simdjson::SIMDJSON_PADDING - end));
    end += n;
    eof = n == 0;
    return Status::Ok();
  }

  Status RowError(std::string_view why) const {
    return Status::Corruption("staged part " + part.name + " line " + std::to_string(line) + ": " + std::string(why));
  }

  Status ValueError(const ColumnSink& s, std::string_view why) const {
    return Status::Corruption("staged part " + part.name + " line " + std::to_string(line) + " column " + s.name +
                              ": " + std::string(why));
  }

  // Writes the string_t itself: short strings inline, long ones pointing
  // into the arena (DuckDB's own heap would cost an allocation per string).
  Status SetText(ColumnSink& s, std::string_view text) {
    if (text.size() > kMaxValue) return ValueError(s, "a value over 1 GiB");
    duckdb_string_t& out = static_cast<duckdb_string_t*>(s.data)[filled];
    std::memset(&out, 0, sizeof out);  // DuckDB compares inlined strings whole
    out.value.inlined.length = static_cast<uint32_t>(text.size());
    if (text.size() <= sizeof out.value.inlined.inlined) {
      std::memcpy(out.value.inlined.inlined, text.data(), text.size());
    } else {
      std::memcpy(out.value.pointer.prefix, text.data(), sizeof out.value.pointer.prefix);
      out.value.pointer.ptr = arena.Copy(text);
    }
    duckdb_validity_set_row_valid(s.validity, filled);
    return Status::Ok();
  }
  template <typename T>
  Status SetFixed(ColumnSink& s, T v) {
    static_cast<T*>(s.data)[filled] = v;
    duckdb_validity_set_row_valid(s.validity, filled);
    return Status::Ok();
  }

  Status SetValue(ColumnSink& s, od::value v) {
    od::json_type type;
    if (v.type().get(type)) return ValueError(s, "not JSON");
    if (type == od::json_type::null) return Status::Ok();
    return SetNonNull(s, v, type);
  }

  Status SetNonNull(ColumnSink& s, od::value& v, od::json_type type) {
    std::string_view text;
    switch (s.kind) {
      case Kind::kVarchar:
        if (type == od::json_type::string ? v.get_string().get(text) : RawJson(v, type, &text))
          return ValueError(s, "unreadable value");
        return SetText(s, text);
      case Kind::kJson:
        if (RawJson(v, type, &text)) return ValueError(s, "unreadable value");
        return SetText(s, text);
      case Kind::kBigint: {
        int64_t i;
        if (v.get_int64().get(i)) return ValueError(s, "not a 64-bit integer");
        return SetFixed(s, i);
      }
      case Kind::kDouble: {
        double d;
        if (v.get_double().get(d)) return ValueError(s, "not a number");
        return SetFixed(s, d);
      }
      case Kind::kBool: {
        bool b;
        if (v.get_bool().get(b)) return ValueError(s, "not a boolean");
        return SetFixed(s, b);
      }
      case Kind::kTimestamp: {
        std::optional<int64_t> us;
        if (v.get_string().get(text) || !(us = ParseIso8601(text))) return ValueError(s, "not an RFC 3339 time");
        return SetFixed(s, *us);
      }
    }
    return ValueError(s, "unknown column kind");
  }

  // Where the previous row's next field was: rows mostly repeat one
  // order of keys, so this spares most lookups.
  uint32_t guess = 0;

  uint32_t ColumnOf(std::string_view key) {
    if (guess < columns.size() && columns[guess].name == key) return guess++;
    auto it = index.find(key);
    if (it == index.end()) return kUnknown;
    if (it->second != kSkip) guess = it->second + 1;
    return it->second;
  }
  static constexpr uint32_t kUnknown = UINT32_MAX - 1;

  // One NDJSON row; `readable` bytes may be read from p (simdjson's padding).
  Status ParseRow(const char* p, size_t n, size_t readable) {
    od::document doc;
    od::object row;
    if (parser.iterate(p, n, readable).get(doc) || doc.get_object().get(row)) return RowError("not a JSON object");
    guess = 0;
    for (auto field : row) {
      std::string_view key;
      if (field.unescaped_key().get(key)) return RowError("unreadable key");
      uint32_t c = ColumnOf(key);
      if (c == kUnknown) return RowError("column " + std::string(key) + " is not in the table's schema");
      if (c != kSkip) LF_RETURN_IF_ERROR(SetValue(columns[c], field.value()));
    }
    ++filled;
    return Status::Ok();
  }
};

// The table function's callbacks (C functions: they report failures to
// DuckDB and keep the Status, whose code says whether a retry can help).
struct LoaderCallbacks {
  static DuckDbPartLoader::Impl* Current(void* extra) { return static_cast<DuckDbPartLoader*>(extra)->current_; }

  static void Bind(duckdb_bind_info info) {
    DuckDbPartLoader::Impl* impl = Current(duckdb_bind_get_extra_info(info));
    if (!impl) return duckdb_bind_set_error(info, "logferry: no load in progress");
    for (size_t c = 0; c < impl->columns.size(); ++c)
      duckdb_bind_add_result_column(info, impl->columns[c].name.c_str(), impl->types[c]);
  }

  static void Init(duckdb_init_info /*info*/) {}

  static void Scan(duckdb_function_info info, duckdb_data_chunk out) {
    DuckDbPartLoader::Impl* impl = Current(duckdb_function_get_extra_info(info));
    Status s = impl ? impl->Fill(out) : Status::Internal("logferry: no load in progress");
    if (s.ok()) return;
    if (impl) impl->failure = s;
    duckdb_data_chunk_set_size(out, 0);
    duckdb_function_set_error(info, s.message().c_str());
  }
};

DuckDbPartLoader::DuckDbPartLoader(duckdb_connection con, std::string function)
    : con_(con), function_(std::move(function)) {}
DuckDbPartLoader::~DuckDbPartLoader() = default;

StatusOr<std::unique_ptr<DuckDbPartLoader>> DuckDbPartLoader::Create(duckdb_connection con) {
  // Functions live in the database's catalog: a name per loader keeps two
  // loaders in one process apart.
  static std::atomic<int> loaders{0};
  std::string name = "logferry_staged_rows_" + std::to_string(loaders++);
  std::unique_ptr<DuckDbPartLoader> loader(new DuckDbPartLoader(con, name));
  duckdb_table_function f = duckdb_create_table_function();
  duckdb_table_function_set_name(f, name.c_str());
  duckdb_table_function_set_extra_info(f, loader.get(), nullptr);
  duckdb_table_function_set_bind(f, LoaderCallbacks::Bind);
  duckdb_table_function_set_init(f, LoaderCallbacks::Init);
  duckdb_table_function_set_function(f, LoaderCallbacks::Scan);
  duckdb_state state = duckdb_register_table_function(con, f);
  duckdb_destroy_table_function(&f);
  if (state == DuckDBError) return Status::Internal("duckdb: registering the staged-rows function " + name);
  return loader;
}

StatusOr<int64_t> DuckDbPartLoader::Load(const std::string& table,
                                         const std::vector<std::pair<std::string, std::string>>& columns,
                                         const std::vector<std::string>& skipped, const NextPart& next) {
  Impl impl;
  LF_RETURN_IF_ERROR(impl.Init(columns, skipped));
  impl.next = &next;
  std::string names;
  for (const ColumnSink& c : impl.columns) names += (names.empty() ? "" : ", ") + QuoteIdent(c.name);
  std::string sql = "INSERT INTO " + QuoteIdent(table) + " (" + names + ") SELECT * FROM " + function_ + "()";
  current_ = &impl;
  duckdb_result res;
  duckdb_state state = duckdb_query(con_, sql.c_str(), &res);
  current_ = nullptr;
  std::string error = state == DuckDBError ? duckdb_result_error(&res) : "";
  duckdb_destroy_result(&res);
  if (!impl.failure.ok()) return impl.failure;
  if (state == DuckDBError) return Status::Internal("duckdb: loading staged parts into " + table + ": " + error);
  return impl.rows;
}

}  // namespace logferry
