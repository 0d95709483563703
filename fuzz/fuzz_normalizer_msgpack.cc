// Fluentd's msgpack format: a stream of maps, decoded with msgpack-c's
// unpacker, turned into JSON text by MsgpackToJson and normalized with
// NormalizeJson.
//
// The unpacking loop mirrors ReadMsgpack in src/core/stage.cc (a template in
// an anonymous namespace there, so not callable from here): a default
// msgpack::unpacker fed the stream in chunks, a decoding exception ending the
// object, a record larger than max_line_bytes skipped, one still incomplete
// past a hard cap ending the object. Keep the two in step.
//
// Input: byte 0 picks format options as for the other normalizer targets;
// byte 1 the chunk size the stream is fed in; the rest is the stream.
// Checked: MsgpackToJson always yields valid JSON (nlohmann parses it); maps
// go through the fast/slow differential and row checks of
// normalizer_harness.h.
#include <msgpack.hpp>

#include "format/msgpack_json.h"
#include "normalizer_harness.h"

namespace {

// Staging's default max_line_bytes is 128 MiB; a fuzz input is far smaller,
// so use limits an input can actually reach (ReadMsgpack: hard cap 4x).
constexpr size_t kMaxRecord = 1 << 12;
constexpr size_t kHardCap = 4 * kMaxRecord;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace logferry;
  using namespace logferry::fuzz;
  if (size < 2) return 0;
  const uint8_t b = static_cast<uint8_t>(data[0] - '0');
  const size_t chunk = 1 + data[1] % 64 * (data[1] >= 128 ? 997 : 1);
  data += 2;
  size -= 2;
  Differential diff(LogFormat::kMsgpack, OptionsFor(LogFormat::kMsgpack, b));

  msgpack::unpacker unpacker(nullptr, nullptr, MSGPACK_UNPACKER_INIT_BUFFER_SIZE, MsgpackLimits(1 << 20));
  std::string text, repair;
  uint64_t fed = 0, record_start = 0;
  auto handle = [&](const msgpack::object& o, uint64_t record_size) {
    if (record_size > kMaxRecord) return;  // a bad record, skipped
    text.clear();
    MsgpackToJson(o, &text, &repair);
    Require(json::accept(text), "MsgpackToJson wrote invalid JSON", text);
    if (o.type != msgpack::type::MAP) return;
    size_t len = text.size();
    text.append(simdjson::SIMDJSON_PADDING, ' ');
    diff.Json(std::string_view(text.data(), len), text.size(), FallbackFor(b));
  };
  size_t pos = 0;
  while (pos < size) {
    size_t n = std::min(chunk, size - pos);
    unpacker.reserve_buffer(n);
    memcpy(unpacker.buffer(), data + pos, n);
    unpacker.buffer_consumed(n);
    pos += n;
    fed += n;
    msgpack::object_handle oh;
    try {
      while (unpacker.next(oh)) {
        uint64_t record_end = fed - unpacker.nonparsed_size();
        handle(oh.get(), record_end - record_start);
        record_start = record_end;
      }
    } catch (const std::exception&) {
      break;  // undecodable: the rest of the object is one bad record
    }
    if (fed - record_start > kHardCap) break;
  }
  diff.Finish();
  return 0;
}
