// Deep nesting through every format that carries JSON (json, out_file,
// msgpack), on the fast and the simdjson paths: structure-aware, so a few
// bytes of input reach depths of 100,000 and more, where random bytes would
// need as many brackets (the unbounded recursion in EmitArray hid from the
// byte-level targets for millions of runs).
//
// Input: byte 0 picks format options as for the other normalizer targets
// ('0' = defaults); byte 1: bits 0-1 the carrier (json line, out_file line,
// msgpack stream, json line again), bit 2 leaves the containers open (a
// truncated record). Then a program, one op per byte (op % 8):
//   0 `[` child            1 `[1,` child             2 `{"a":` child
//   3 `{"k":1,"a":` child  4 `{"<c>":` child, c from the next byte
//   5 `[{"a":` child       6 repeat: the last (next byte % 8 + 1) opens,
//                            (next two bytes, big-endian) + 1 more times
//   7 the leaf, from the next byte: 1, "s", null, true, 1.5, a timestamp, {}, []
// The value goes into a record {"time":…,"v":<value>} followed by a plain
// record, which must still load.
//
// Checked, beyond the fast/slow differential and the row checks of
// normalizer_harness.h: a closed record whose depth (containers open at
// once, the record itself included) is within kMaxJsonDepth loads, one
// deeper is a bad record whose reason names the bound; no row is nested
// deeper than the warehouse allows; the plain record after it loads.
#include <msgpack.hpp>

#include "format/msgpack_json.h"
#include "normalizer_harness.h"

namespace {

using namespace logferry;
using namespace logferry::fuzz;

constexpr size_t kMaxGeneratedDepth = 100'000;                // opens; [{"a": counts two levels
constexpr int64_t kFallback = 1470009600 * kMicrosPerSecond;  // the key's time slice

struct Open {
  uint8_t kind;  // op 0..5
  char key;      // op 4
};

struct Program {
  std::vector<Open> opens;
  uint8_t leaf = 0;
};

Program Parse(const uint8_t* p, const uint8_t* end) {
  Program prog;
  while (p < end && prog.opens.size() < kMaxGeneratedDepth) {
    uint8_t op = *p++ % 8;
    if (op <= 5) {
      char key = 'c';
      if (op == 4 && p < end) key = static_cast<char>('a' + *p++ % 26);
      prog.opens.push_back({op, key});
    } else if (op == 6) {
      if (end - p < 3) break;
      size_t n = std::min<size_t>(p[0] % 8 + 1, prog.opens.size());
      size_t times = (size_t{p[1]} << 8 | p[2]) + 1;
      p += 3;
      size_t from = prog.opens.size() - n;
      for (size_t t = 0; t < times && prog.opens.size() + n <= kMaxGeneratedDepth; ++t)
        for (size_t i = 0; i < n; ++i) prog.opens.push_back(prog.opens[from + i]);
    } else {
      if (p < end) prog.leaf = *p % 8;
      break;
    }
  }
  return prog;
}

// Containers open at once in the value (an empty {} or [] leaf counts).
size_t ValueDepth(const Program& prog) {
  size_t d = 0;
  for (const Open& o : prog.opens) d += o.kind == 5 ? 2 : 1;
  return d + (prog.leaf >= 6 ? 1 : 0);
}

const char* kJsonLeaves[] = {"1", "\"s\"", "null", "true", "1.5", "\"2016-08-01T00:00:00Z\"", "{}", "[]"};

std::string JsonValue(const Program& prog, bool close) {
  std::string out, closers;
  for (const Open& o : prog.opens) {
    switch (o.kind) {
      case 0:
        out += "[";
        closers += ']';
        break;
      case 1:
        out += "[1,";
        closers += ']';
        break;
      case 2:
        out += "{\"a\":";
        closers += '}';
        break;
      case 3:
        out += "{\"k\":1,\"a\":";
        closers += '}';
        break;
      case 4:
        out += std::string("{\"") + o.key + "\":";
        closers += '}';
        break;
      default:
        out += "[{\"a\":";
        closers += "]}";
        break;
    }
  }
  out += kJsonLeaves[prog.leaf];
  if (close) out.append(closers.rbegin(), closers.rend());
  return out;
}

void PackStr(std::string* out, std::string_view s) {
  out->push_back(static_cast<char>(0xa0 | s.size()));  // fixstr (short keys only)
  out->append(s);
}

std::string MsgpackValue(const Program& prog, bool close) {
  std::string out;
  for (const Open& o : prog.opens) {
    switch (o.kind) {
      case 0:
        out += '\x91';
        break;
      case 1:
        out += "\x92\x01";
        break;
      case 2:
        out += '\x81';
        PackStr(&out, "a");
        break;
      case 3:
        out += '\x82';
        PackStr(&out, "k");
        out += '\x01';
        PackStr(&out, "a");
        break;
      case 4:
        out += '\x81';
        PackStr(&out, std::string(1, o.key));
        break;
      default:
        out += "\x91\x81";
        PackStr(&out, "a");
        break;
    }
  }
  if (!close) return out;  // a truncated stream
  static const char* kLeaves[] = {"\x01",
                                  "\xa1s",
                                  "\xc0",
                                  "\xc3",
                                  "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00",
                                  "\2642016-08-01T00:00:00Z",  // \264 (octal) = 0xb4: fixstr of 20
                                  "\x80",
                                  "\x90"};
  static const size_t kLengths[] = {1, 2, 1, 1, 9, 21, 1, 1};
  out.append(kLeaves[prog.leaf], kLengths[prog.leaf]);
  return out;
}

// Levels of objects in a row (valid JSON; arrays are a column's mode, not a
// level), without recursion.
size_t RowDepth(std::string_view row) {
  size_t depth = 0, max = 0;
  bool in_string = false;
  for (size_t i = 0; i < row.size(); ++i) {
    char c = row[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      max = std::max(max, ++depth);
    } else if (c == '}') {
      --depth;
    }
  }
  return max;
}

void CheckDeep(Differential& diff, size_t depth, bool closed, const std::string& what) {
  if (!closed) {
    Require(!diff.last_ok(), "a truncated record loaded", what);
    return;
  }
  if (depth > kMaxJsonDepth) {
    Require(!diff.last_ok() &&
                diff.last_reason().find("nested deeper than " + std::to_string(kMaxJsonDepth)) != std::string::npos,
            "a record deeper than kMaxJsonDepth is not a bad record naming the bound",
            what + " depth " + std::to_string(depth) + ": " + diff.last_reason());
    return;
  }
  // The one other refusal a valid record may get: its row would outgrow the
  // row budget (misfit values re-quoted at each level).
  if (!diff.last_ok() && diff.last_reason().find("times the size of its line") != std::string::npos) return;
  Require(diff.last_ok(), "a valid record within kMaxJsonDepth is a bad record",
          what + " depth " + std::to_string(depth) + ": " + diff.last_reason());
  // BigQuery's limit on nested RECORDs.
  Require(RowDepth(diff.last_row()) <= static_cast<size_t>(kMaxNestingDepth), "row nested too deep",
          what + " depth " + std::to_string(RowDepth(diff.last_row())));
}

void RunLines(LogFormat format, const FormatOptions& opts, const std::string& value, size_t depth, bool closed) {
  // An epoch time parses whatever the time format option (and time_key may
  // name another field: then the fallback time applies).
  std::string prefix;
  if (format == LogFormat::kOutFile) {
    if (opts.output_time) prefix += std::string("1470009600") + opts.delimiter;
    if (opts.output_tag) prefix += std::string("tag") + opts.delimiter;
  }
  std::string line = prefix + "{\"time\":1470009600,\"v\":" + value + (closed ? "}" : "");
  std::string plain = prefix + "{\"v\":1}";
  Differential diff(format, opts);
  for (const std::string& text : {line, plain}) {
    // Exactly allocated, padded with stale bytes, as in RunNormalizer.
    size_t cap = text.size() + simdjson::SIMDJSON_PADDING;
    std::unique_ptr<char[]> window(new char[cap]);
    memcpy(window.get(), text.data(), text.size());
    memset(window.get() + text.size(), '"', simdjson::SIMDJSON_PADDING);
    diff.Line(std::string_view(window.get(), text.size()), cap, kFallback);
    if (&text == &line) CheckDeep(diff, depth + 1, closed, "line");
  }
  Require(diff.last_ok(), "a plain record after a deep one is a bad record", diff.last_reason());
  diff.Finish();
}

void RunMsgpack(const FormatOptions& opts, const std::string& value, size_t depth, bool closed) {
  std::string stream = "\x82";
  PackStr(&stream, "time");
  stream.append("\xce\x57\x9e\x91\x00", 5);  // 1470009600 as a uint32
  PackStr(&stream, "v");
  stream += value;
  Differential diff(LogFormat::kMsgpack, opts);
  MsgpackStream ms;
  char* room = ms.Reserve(stream.size());
  memcpy(room, stream.data(), stream.size());
  ms.Commit(stream.size());
  MsgpackStream::Record rec;
  MsgpackStream::Result r = ms.Next(&rec, /*force=*/true, size_t{1} << 30);
  if (!closed) {
    Require(r != MsgpackStream::Result::kRecord, "a truncated msgpack record decoded");
    return;
  }
  if (depth + 1 > kMsgpackMaxParseDepth) {
    Require(r == MsgpackStream::Result::kInvalid, "msgpack deeper than its parse bound decoded");
    return;
  }
  Require(r == MsgpackStream::Result::kRecord, "a whole msgpack record did not decode", ms.invalid_reason());
  size_t len = rec.json.size();
  rec.json.append(simdjson::SIMDJSON_PADDING, ' ');
  diff.Json(std::string_view(rec.json.data(), len), rec.json.size(), kFallback);
  // (Values past kMsgpackMaxDepth become null: the record is no deeper.)
  CheckDeep(diff, depth + 1, true, "msgpack");
  diff.Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t b = static_cast<uint8_t>(data[0] - '0');
  const uint8_t carrier = data[1] & 3;
  const bool closed = !(data[1] & 4);
  Program prog = Parse(data + 2, data + size);
  size_t depth = ValueDepth(prog);
  if (carrier == 2) {
    RunMsgpack(OptionsFor(LogFormat::kMsgpack, b), MsgpackValue(prog, closed), depth, closed);
  } else {
    LogFormat format = carrier == 1 ? LogFormat::kOutFile : LogFormat::kJson;
    RunLines(format, OptionsFor(format, b), JsonValue(prog, closed), depth, closed);
  }
  return 0;
}
