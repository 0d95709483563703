#include "warehouse/duckdb_part_loader.h"

#include <simdjson.h>

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
  return Status::Internal("duckdb: no appender for column type " + type);
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
      // JSON is VARCHAR under an alias; the same alias spares the appender a cast.
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

}  // namespace

struct DuckDbPartLoader::Impl {
  duckdb_appender appender = nullptr;
  duckdb_data_chunk chunk = nullptr;
  std::vector<ColumnSink> columns;
  // Views into columns[i].name, or into skipped names (kSkip).
  std::unordered_map<std::string_view, uint32_t> index;
  std::vector<std::string> skipped;
  static constexpr uint32_t kSkip = UINT32_MAX;
  idx_t chunk_rows = duckdb_vector_size();
  idx_t filled = 0;  // rows in the chunk
  int64_t rows = 0;  // appended in all
  od::parser parser;
  // Where the row being parsed came from, for messages.
  const std::string* part = nullptr;
  int64_t line = 0;
  // The read window, kept from part to part: allocating (and zeroing) 1 MiB
  // per part cost more than loading a small part's rows.
  std::vector<char> buf;

  std::vector<duckdb_logical_type> types;  // of columns, for each new chunk

  ~Impl() {
    if (chunk) duckdb_destroy_data_chunk(&chunk);
    if (appender) duckdb_appender_destroy(&appender);
    for (duckdb_logical_type& t : types) duckdb_destroy_logical_type(&t);
  }

  Status AppenderError(const char* what) {
    duckdb_error_data err = duckdb_appender_error_data(appender);
    std::string message = duckdb_error_data_message(err);
    duckdb_destroy_error_data(&err);
    return Status::Internal(std::string("duckdb: ") + what + ": " + message);
  }

  // A new chunk, every sink pointed at its vectors, all rows NULL.
  void StartChunk() {
    if (chunk) duckdb_destroy_data_chunk(&chunk);
    chunk = duckdb_create_data_chunk(types.data(), types.size());
    for (idx_t c = 0; c < columns.size(); ++c) {
      ColumnSink& s = columns[c];
      s.vector = duckdb_data_chunk_get_vector(chunk, c);
      duckdb_vector_ensure_validity_writable(s.vector);
      s.validity = duckdb_vector_get_validity(s.vector);
      std::memset(s.validity, 0, (chunk_rows + 63) / 64 * sizeof(uint64_t));
      s.data = duckdb_vector_get_data(s.vector);
    }
    filled = 0;
  }

  Status AppendChunk() {
    if (filled == 0) return Status::Ok();
    duckdb_data_chunk_set_size(chunk, filled);
    if (duckdb_append_data_chunk(appender, chunk) == DuckDBError) return AppenderError("appending rows");
    rows += static_cast<int64_t>(filled);
    StartChunk();
    return Status::Ok();
  }

  Status ValueError(const ColumnSink& s, std::string_view why) {
    return Status::Corruption("staged part " + *part + " line " + std::to_string(line) + " column " + s.name + ": " +
                              std::string(why));
  }

  Status SetText(ColumnSink& s, std::string_view text) {
    duckdb_vector_assign_string_element_len(s.vector, filled, text.data(), text.size());
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

  // One NDJSON row; `readable` bytes may be read from p (simdjson's padding).
  Status ParseRow(const char* p, size_t n, size_t readable) {
    od::document doc;
    od::object row;
    if (parser.iterate(p, n, readable).get(doc) || doc.get_object().get(row))
      return Status::Corruption("staged part " + *part + " line " + std::to_string(line) + ": not a JSON object");
    for (auto field : row) {
      std::string_view key;
      if (field.unescaped_key().get(key))
        return Status::Corruption("staged part " + *part + " line " + std::to_string(line) + ": unreadable key");
      auto it = index.find(key);
      if (it == index.end())
        return Status::Corruption("staged part " + *part + " line " + std::to_string(line) + ": column " +
                                  std::string(key) + " is not in the table's schema");
      if (it->second != kSkip) LF_RETURN_IF_ERROR(SetValue(columns[it->second], field.value()));
    }
    if (++filled == chunk_rows) return AppendChunk();
    return Status::Ok();
  }
};

DuckDbPartLoader::DuckDbPartLoader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DuckDbPartLoader::~DuckDbPartLoader() = default;

StatusOr<std::unique_ptr<DuckDbPartLoader>> DuckDbPartLoader::Open(
    duckdb_connection con, const std::string& table, const std::vector<std::pair<std::string, std::string>>& columns,
    const std::vector<std::string>& skipped) {
  auto impl = std::make_unique<Impl>();
  impl->skipped = skipped;
  for (const std::string& name : impl->skipped) impl->index.emplace(name, Impl::kSkip);
  if (duckdb_appender_create(con, nullptr, table.c_str(), &impl->appender) == DuckDBError)
    return impl->AppenderError(("opening an appender on " + table).c_str());
  impl->columns.reserve(columns.size());  // index holds views into the names
  for (const auto& [name, type] : columns) {
    LF_ASSIGN_OR_RETURN(Kind kind, KindOfType(type));
    if (duckdb_appender_add_column(impl->appender, name.c_str()) == DuckDBError)
      return impl->AppenderError(("appending to column " + name).c_str());
    impl->columns.push_back({name, kind});
    impl->types.push_back(LogicalTypeOf(kind));
  }
  for (uint32_t c = 0; c < impl->columns.size(); ++c) impl->index[impl->columns[c].name] = c;
  impl->StartChunk();
  return std::unique_ptr<DuckDbPartLoader>(new DuckDbPartLoader(std::move(impl)));
}

Status DuckDbPartLoader::Append(ReadStream& part, const std::string& name) {
  // Lines are parsed in place: the buffer keeps simdjson's padding past its
  // data, and grows only for a row longer than what it holds.
  constexpr size_t kBlock = 1 << 20;
  constexpr size_t kMaxRow = size_t{1} << 30;
  impl_->part = &name;
  impl_->line = 0;
  std::vector<char>& buf = impl_->buf;
  if (buf.size() != kBlock + simdjson::SIMDJSON_PADDING)  // the first part, or one whose long row grew it
    buf = std::vector<char>(kBlock + simdjson::SIMDJSON_PADDING);
  size_t start = 0, end = 0;
  for (;;) {
    size_t room = buf.size() - simdjson::SIMDJSON_PADDING - end;
    LF_ASSIGN_OR_RETURN(size_t n, part.Read(buf.data() + end, room));
    end += n;
    const bool eof = n == 0;
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(buf.data() + start, '\n', end - start));
      if (!nl && !(eof && start < end)) break;
      size_t stop = nl ? static_cast<size_t>(nl - buf.data()) : end;
      ++impl_->line;
      if (stop > start) LF_RETURN_IF_ERROR(impl_->ParseRow(buf.data() + start, stop - start, buf.size() - start));
      start = nl ? stop + 1 : end;
    }
    if (eof) return Status::Ok();
    std::memmove(buf.data(), buf.data() + start, end - start);
    end -= start;
    start = 0;
    if (end + simdjson::SIMDJSON_PADDING == buf.size()) {
      if (buf.size() > kMaxRow) return Status::Corruption("staged part " + name + ": a row over 1 GiB");
      buf.resize(buf.size() * 2);
    }
  }
}

Status DuckDbPartLoader::Finish() {
  LF_RETURN_IF_ERROR(impl_->AppendChunk());
  if (duckdb_appender_flush(impl_->appender) == DuckDBError) return impl_->AppenderError("flushing rows");
  return Status::Ok();
}

int64_t DuckDbPartLoader::rows() const {
  return impl_->rows;
}

}  // namespace logferry
