#include "format/msgpack_json.h"

#include <openssl/evp.h>

#include <charconv>
#include <cmath>
#include <msgpack.hpp>

#include "common/strings.h"
#include "common/time.h"

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

void Append(const msgpack::object& o, std::string* out, int depth, Repairs* r) {
  if (depth > kMsgpackMaxDepth) {
    r->Add("msgpack nested deeper than " + std::to_string(kMsgpackMaxDepth) + " levels; the rest written as null");
    out->append("null");
    return;
  }
  switch (o.type) {
    case msgpack::type::NIL:
      out->append("null");
      break;
    case msgpack::type::BOOLEAN:
      out->append(o.via.boolean ? "true" : "false");
      break;
    case msgpack::type::POSITIVE_INTEGER:
      out->append(std::to_string(o.via.u64));
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      out->append(std::to_string(o.via.i64));
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
      double d = o.via.f64;
      if (std::isnan(d)) {
        out->append("\"NaN\"");
        r->Add("NaN kept as text");
      } else if (std::isinf(d)) {
        out->append(d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        r->Add("an infinite float kept as text");
      } else {
        char buf[64];
        auto r = std::to_chars(buf, buf + sizeof buf, d);
        std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
        out->append(text);
        // Keep it a float in JSON: 1.0 would otherwise print as "1".
        if (text.find_first_of(".eEn") == std::string_view::npos) out->append(".0");
      }
      break;
    }
    case msgpack::type::STR:
      AppendString(out, std::string_view(o.via.str.ptr, o.via.str.size), r);
      break;
    case msgpack::type::BIN:
      out->push_back('"');
      AppendBase64(out, o.via.bin.ptr, o.via.bin.size);
      out->push_back('"');
      break;
    case msgpack::type::EXT: {
      const char* data = o.via.ext.data();
      uint32_t size = o.via.ext.size;
      if (o.via.ext.type() == 0 && size == 8) {
        // Fluentd's EventTime: seconds and nanoseconds, big-endian uint32s.
        int64_t secs = static_cast<int64_t>(BigEndian(data, 4));
        int64_t nanos = static_cast<int64_t>(BigEndian(data + 4, 4));
        out->push_back('"');
        out->append(FormatIso8601(secs * kMicrosPerSecond + nanos / 1000));
        out->push_back('"');
      } else {
        out->append("\"ext:" + std::to_string(o.via.ext.type()) + ":");
        AppendBase64(out, data, size);
        out->push_back('"');
      }
      break;
    }
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
          // A container as a key has no useful name, and its text quoted
          // inside a key inside a key grows exponentially (found by fuzzing).
          r->Add(std::string("a msgpack ") + MsgpackTypeName(k) + " used as a map key is named by its type");
          AppendJsonString(out, std::string("(") + MsgpackTypeName(k) + ")");
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

}  // namespace

int MsgpackToJson(const msgpack::object& o, std::string* out, std::string* what) {
  Repairs r;
  Append(o, out, 0, &r);
  if (what && r.count > 0) *what = r.what;
  return r.count;
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
