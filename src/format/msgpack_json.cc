#include "format/msgpack_json.h"

#include <openssl/evp.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <msgpack.hpp>

#include "common/strings.h"
#include "common/time.h"
#include "format/msgpack_object.h"

namespace logferry {

namespace {

void AppendBase64(std::string* out, const char* data, size_t n) {
  std::string buf(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(buf.data()), reinterpret_cast<const unsigned char*>(data),
                            static_cast<int>(n));
  out->append(buf.data(), static_cast<size_t>(len));
}

uint64_t BigEndian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct Repairs {
  int count = 0;
  bool utf8 = false;
  // The map key being written, for messages; turned into text only when a
  // repair needs it (most records need none).
  std::string_view key;
  std::string what;
  void Add(std::string why) {
    ++count;
    what = key.empty() ? std::move(why) : "field '" + Excerpt(key, 60) + "': " + why;
  }
};

void AppendString(std::string* out, std::string_view s, Repairs* r) {
  // One warning per record for UTF-8 repairs, as for a repaired line.
  if (AppendJsonString(out, s) > 0 && !r->utf8) {
    r->utf8 = true;
    r->Add("invalid UTF-8 replaced with U+FFFD");
  }
}

void AppendInteger(std::string* out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(res.ptr - buf));
}

void AppendInteger(std::string* out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(res.ptr - buf));
}

void AppendFloat(std::string* out, double d, Repairs* r) {
  if (std::isnan(d)) {
    out->append("\"NaN\"");
    r->Add("NaN kept as text");
  } else if (std::isinf(d)) {
    out->append(d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    r->Add("an infinite float kept as text");
  } else {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    std::string_view text(buf, static_cast<size_t>(res.ptr - buf));
    out->append(text);
    // Keep it a float in JSON: 1.0 would otherwise print as "1".
    if (text.find_first_of(".eEn") == std::string_view::npos) out->append(".0");
  }
}

void AppendBin(std::string* out, const char* data, size_t n) {
  out->push_back('"');
  AppendBase64(out, data, n);
  out->push_back('"');
}

void AppendExt(std::string* out, int8_t type, const char* data, uint32_t size) {
  if (type == 0 && size == 8) {
    // Fluentd's EventTime: seconds and nanoseconds, big-endian uint32s.
    int64_t secs = static_cast<int64_t>(BigEndian(data, 4));
    int64_t nanos = static_cast<int64_t>(BigEndian(data + 4, 4));
    out->push_back('"');
    out->append(FormatIso8601(secs * kMicrosPerSecond + nanos / 1000));
    out->push_back('"');
  } else {
    out->append("\"ext:" + std::to_string(type) + ":");
    AppendBase64(out, data, size);
    out->push_back('"');
  }
}

void AppendTooDeep(std::string* out, Repairs* r) {
  r->Add("msgpack nested deeper than " + std::to_string(kMsgpackMaxDepth) + " levels; the rest written as null");
  out->append("null");
}

void AppendKeyNamedByType(std::string* out, const char* type, Repairs* r) {
  // A container as a key has no useful name, and its text quoted inside a
  // key inside a key grows exponentially (found by fuzzing).
  r->Add(std::string("a msgpack ") + type + " used as a map key is named by its type");
  AppendJsonString(out, std::string("(") + type + ")");
}

void Append(const msgpack::object& o, std::string* out, int depth, Repairs* r) {
  if (depth > kMsgpackMaxDepth) return AppendTooDeep(out, r);
  switch (o.type) {
    case msgpack::type::NIL:
      out->append("null");
      break;
    case msgpack::type::BOOLEAN:
      out->append(o.via.boolean ? "true" : "false");
      break;
    case msgpack::type::POSITIVE_INTEGER:
      AppendInteger(out, o.via.u64);
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      AppendInteger(out, o.via.i64);
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      AppendFloat(out, o.via.f64, r);
      break;
    case msgpack::type::STR:
      AppendString(out, std::string_view(o.via.str.ptr, o.via.str.size), r);
      break;
    case msgpack::type::BIN:
      AppendBin(out, o.via.bin.ptr, o.via.bin.size);
      break;
    case msgpack::type::EXT:
      AppendExt(out, o.via.ext.type(), o.via.ext.data(), o.via.ext.size);
      break;
    case msgpack::type::ARRAY:
      out->push_back('[');
      for (uint32_t i = 0; i < o.via.array.size; ++i) {
        if (i) out->push_back(',');
        Append(o.via.array.ptr[i], out, depth + 1, r);
      }
      out->push_back(']');
      break;
    case msgpack::type::MAP:
      out->push_back('{');
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        if (i) out->push_back(',');
        const msgpack::object& k = o.via.map.ptr[i].key;
        if (k.type == msgpack::type::STR) {
          r->key = std::string_view(k.via.str.ptr, k.via.str.size);
          AppendString(out, std::string_view(k.via.str.ptr, k.via.str.size), r);
        } else if (k.type == msgpack::type::MAP || k.type == msgpack::type::ARRAY) {
          AppendKeyNamedByType(out, MsgpackTypeName(k), r);
        } else {
          std::string text;
          Append(k, &text, depth + 1, r);
          AppendJsonString(out, text);
        }
        out->push_back(':');
        Append(o.via.map.ptr[i].val, out, depth + 1, r);
      }
      out->push_back('}');
      break;
  }
}

// The same rules as Append, driven by msgpack-cxx's parser events: nothing
// is built but the JSON text. Containers used as keys and values cut by
// depth are skipped whole (`skip_` counts how deep into one we are).
class JsonVisitor : public msgpack::null_visitor {
 public:
  // out_cap: past this many bytes of JSON the record is only measured (it
  // is over max_line_bytes anyway), so a huge record costs no huge string.
  void Reset(std::string* out, size_t out_cap) {
    out_ = out;
    out_cap_ = out_cap;
    cut_ = false;
    too_deep_ = false;
    invalid_ = false;
    frames_.clear();
    skip_ = 0;
    key_kind_ = KeyKind::kNone;
    type_ = nullptr;
    r_ = Repairs();
  }
  const char* type() const { return type_ ? type_ : "nil"; }
  Repairs& repairs() { return r_; }
  bool invalid() const { return invalid_; }
  bool too_deep() const { return too_deep_; }
  bool cut() const { return cut_; }

  bool visit_nil() {
    return Scalar("nil", 4, [&](std::string* o) { o->append("null"); });
  }
  bool visit_boolean(bool v) {
    return Scalar("bool", 5, [&](std::string* o) { o->append(v ? "true" : "false"); });
  }
  bool visit_positive_integer(uint64_t v) {
    return Scalar("integer", 24, [&](std::string* o) { AppendInteger(o, v); });
  }
  bool visit_negative_integer(int64_t v) {
    return Scalar("integer", 24, [&](std::string* o) { AppendInteger(o, v); });
  }
  bool visit_float32(float v) { return visit_float64(v); }
  bool visit_float64(double v) {
    return Scalar("float", 64, [&](std::string* o) { AppendFloat(o, v, &r_); });
  }
  bool visit_str(const char* v, uint32_t size) {
    std::string_view s(v, size);
    if (!skip_ && InKey()) {
      // A string key names its field at any depth.
      key_kind_ = KeyKind::kString;
      r_.key = s;
      if (Room(6 * s.size() + 2)) AppendString(out_, s, &r_);
      return true;
    }
    return Scalar("str", 6 * s.size() + 2, [&](std::string* o) { AppendString(o, s, &r_); });
  }
  bool visit_bin(const char* v, uint32_t size) {
    return Scalar("bin", 4 * (size / 3 + 1) + 2, [&](std::string* o) { AppendBin(o, v, size); });
  }
  bool visit_ext(const char* v, uint32_t size) {
    // v[0] is the ext type, the data follows.
    return Scalar("ext", 4 * (size / 3 + 1) + 40,
                  [&](std::string* o) { AppendExt(o, static_cast<int8_t>(v[0]), v + 1, size - 1); });
  }

  bool start_array(uint32_t) { return StartContainer("array", '['); }
  bool start_array_item() {
    if (!skip_ && frames_.back().count++ > 0) out_->push_back(',');
    return true;
  }
  bool end_array_item() { return true; }
  bool end_array() { return EndContainer(']'); }
  bool start_map(uint32_t) { return StartContainer("map", '{'); }
  bool start_map_key() {
    if (skip_) return true;
    if (frames_.back().count++ > 0) out_->push_back(',');
    frames_.back().in_key = true;
    key_kind_ = KeyKind::kNone;
    key_.clear();
    return true;
  }
  bool end_map_key() {
    if (skip_) return true;
    frames_.back().in_key = false;
    if (!Room(key_.size() * 6 + 64)) return true;
    switch (key_kind_) {
      case KeyKind::kString:
        break;  // written as it came
      case KeyKind::kContainer:
        AppendKeyNamedByType(out_, key_type_, &r_);
        break;
      default:
        AppendJsonString(out_, key_);
        break;
    }
    return true;
  }
  bool start_map_value() {
    if (!skip_) out_->push_back(':');
    return true;
  }
  bool end_map_value() { return true; }
  bool end_map() { return EndContainer('}'); }
  void parse_error(size_t, size_t error_offset) {
    invalid_ = true;
    error_offset_ = error_offset;
  }
  size_t error_offset() const { return error_offset_; }

 private:
  enum class KeyKind { kNone, kString, kContainer };
  struct Frame {
    uint32_t count = 0;
    bool in_key = false;
  };

  bool InKey() const { return !frames_.empty() && frames_.back().in_key; }
  // Where the current value goes. A key that is not a string is collected
  // first: it becomes its JSON text, quoted.
  std::string* Target() { return InKey() ? &key_ : out_; }

  // Once the JSON is past its cap, writing goes on into a sink that is
  // emptied now and then: the parse still has to find the record's end.
  // `upcoming`: the most JSON the next write can add. Once cut, values are
  // not written at all (only punctuation, into the sink).
  bool Room(size_t upcoming = 0) {
    if (cut_) {
      sink_.clear();
      return false;
    }
    if (out_->size() + upcoming <= out_cap_) return true;
    cut_ = true;
    out_ = &sink_;
    return false;
  }

  template <typename Write>
  bool Scalar(const char* type, size_t upcoming, Write write) {
    if (skip_) return true;
    if (!type_) type_ = type;
    if (!Room(upcoming)) return true;
    if (frames_.size() > static_cast<size_t>(kMsgpackMaxDepth)) {
      AppendTooDeep(Target(), &r_);
      return true;
    }
    write(Target());
    return true;
  }
  bool StartContainer(const char* type, char open) {
    // The parser keeps a stack entry per open container: bound it, or a
    // stream of nested headers could take gigabytes of memory.
    if (frames_.size() + skip_ >= kMsgpackMaxParseDepth) {
      too_deep_ = true;
      return false;
    }
    if (skip_) {
      ++skip_;
      return true;
    }
    Room();
    if (!type_) type_ = type;
    if (InKey()) {
      key_kind_ = KeyKind::kContainer;
      key_type_ = type;
      skip_ = 1;
    } else if (frames_.size() > static_cast<size_t>(kMsgpackMaxDepth)) {
      AppendTooDeep(out_, &r_);
      skip_ = 1;
    } else {
      frames_.emplace_back();
      out_->push_back(open);
    }
    return true;
  }
  bool EndContainer(char close) {
    if (skip_) {
      --skip_;
      return true;
    }
    frames_.pop_back();
    out_->push_back(close);
    return true;
  }

  std::string* out_ = nullptr;
  size_t out_cap_ = 0;
  bool cut_ = false;
  bool too_deep_ = false;
  std::string sink_;
  std::vector<Frame> frames_;
  uint64_t skip_ = 0;
  KeyKind key_kind_ = KeyKind::kNone;
  const char* key_type_ = "";
  std::string key_;
  const char* type_ = nullptr;
  Repairs r_;
  bool invalid_ = false;
  size_t error_offset_ = 0;
};

}  // namespace

int MsgpackToJson(const msgpack::object& o, std::string* out, std::string* what) {
  Repairs r;
  Append(o, out, 0, &r);
  if (what && r.count > 0) *what = r.what;
  return r.count;
}

struct MsgpackStream::Impl {
  JsonVisitor visitor;
};

MsgpackStream::MsgpackStream() : impl_(std::make_unique<Impl>()) {}
MsgpackStream::~MsgpackStream() = default;

char* MsgpackStream::Reserve(size_t n) {
  // Decoded bytes are dropped once they are half the buffer: each byte is
  // moved at most about once.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  committed_ = buf_.size();
  buf_.resize(committed_ + n);
  return buf_.data() + committed_;
}

void MsgpackStream::Commit(size_t k) {
  buf_.resize(committed_ + k);
  fed_ += k;
}

MsgpackStream::Result MsgpackStream::Next(Record* rec, bool force, size_t max_record) {
  size_t pending = buf_.size() - pos_;
  if (pending == 0) return Result::kNeedMore;
  // A record that did not fit is tried again once the bytes waiting have
  // doubled (or when forced), so a long record costs linear time, not
  // quadratic.
  if (!force && pending < 2 * incomplete_) return Result::kNeedMore;
  JsonVisitor& v = impl_->visitor;
  rec->json.clear();
  // No record of max_record bytes writes more than ~7 bytes of JSON for
  // each of its own (a false key with a false value: 2 bytes, 14 of JSON).
  size_t cap = max_record > (SIZE_MAX - 4096) / 16 ? SIZE_MAX : 16 * max_record + 4096;
  v.Reset(&rec->json, cap);
  size_t off = 0;
  bool ok = false;
  uint64_t start = fed_ - pending;
  try {
    ok = msgpack::v2::parse(buf_.data() + pos_, pending, off, v);
  } catch (const std::exception& e) {
    invalid_at_ = start;
    invalid_reason_ = std::string("msgpack could not be decoded (") + e.what() + ")";
    return Result::kInvalid;
  }
  if (!ok) {
    if (v.invalid()) {
      invalid_at_ = start + v.error_offset();
      uint8_t byte = invalid_at_ - start < pending ? static_cast<uint8_t>(buf_[pos_ + (invalid_at_ - start)]) : 0;
      char what[96];
      snprintf(what, sizeof what, "invalid msgpack (byte 0x%02x at offset %llu)", byte,
               static_cast<unsigned long long>(invalid_at_));
      invalid_reason_ = what;
      return Result::kInvalid;
    }
    if (v.too_deep()) {
      invalid_at_ = start;
      invalid_reason_ = "msgpack nested deeper than " + std::to_string(kMsgpackMaxParseDepth) + " levels";
      return Result::kInvalid;
    }
    incomplete_ = pending;
    return Result::kNeedMore;
  }
  incomplete_ = 0;
  rec->type = v.type();
  rec->offset = start;
  rec->size = off;
  rec->json_cut = v.cut();
  rec->repairs = v.repairs().count;
  rec->repair = v.repairs().what;
  pos_ += off;
  return Result::kRecord;
}

std::string_view MsgpackStream::Pending() const {
  return std::string_view(buf_).substr(pos_);
}

const char* MsgpackTypeName(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::EXT:
      return "ext";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
  }
  return "unknown";
}

}  // namespace logferry
