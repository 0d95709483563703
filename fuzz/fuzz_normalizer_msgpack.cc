// Fluentd's msgpack format: a stream of maps, decoded by MsgpackStream (the
// code ReadMsgpack in src/core/stage.cc runs) straight into JSON text and
// normalized with NormalizeJson.
//
// Input: byte 0 picks format options as for the other normalizer targets;
// byte 1 the chunk size the stream is fed in; the rest is the stream.
// Checked: a record within max_line_bytes is never cut short; every other
// record decodes to valid JSON (nlohmann parses it) and to
// exactly what MsgpackToJson writes from msgpack-cxx's object tree for the
// same bytes (a differential between the visitor and the unpacker); records
// are contiguous; maps go through the fast/slow differential and row checks
// of normalizer_harness.h.
#include <msgpack.hpp>

#include "format/msgpack_json.h"
#include "format/msgpack_object.h"
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
  const char* stream_bytes = reinterpret_cast<const char*>(data);
  Differential diff(LogFormat::kMsgpack, OptionsFor(LogFormat::kMsgpack, b));

  MsgpackStream stream;
  MsgpackStream::Record rec;
  uint64_t next_offset = 0;
  auto handle = [&]() {
    Require(rec.offset == next_offset, "records are not contiguous", std::to_string(rec.offset));
    next_offset = rec.offset + rec.size;
    // A record within max_record is never cut; one over it may be (it is a
    // bad record, measured only), and then there is no JSON to check.
    Require(!rec.json_cut || rec.size > kMaxRecord, "a record within max_record was cut short", rec.json);
    if (rec.json_cut) return;
    Require(json::accept(rec.json), "MsgpackStream wrote invalid JSON", rec.json);
    // The same bytes through msgpack-cxx's object unpacker (its limits may
    // refuse what the visitor takes: then there is nothing to compare).
    try {
      size_t off = 0;
      msgpack::object_handle oh =
          msgpack::unpack(stream_bytes + rec.offset, rec.size, off, nullptr, nullptr, MsgpackLimits(1 << 20));
      std::string text, repair;
      int repairs = MsgpackToJson(oh.get(), &text, &repair);
      Require(off == rec.size, "the unpacker and the visitor disagree on the record's size", rec.json);
      Require(text == rec.json, "MsgpackStream and MsgpackToJson disagree", text + "\nvs\n" + rec.json);
      Require(repairs == rec.repairs && repair == rec.repair, "repairs differ", repair + "\nvs\n" + rec.repair);
      Require(std::string(MsgpackTypeName(oh.get())) == rec.type, "types differ", rec.type);
    } catch (const std::exception&) {
    }
    if (rec.size > kMaxRecord) return;  // a bad record, skipped
    if (std::string_view(rec.type) != "map") return;
    size_t len = rec.json.size();
    rec.json.append(simdjson::SIMDJSON_PADDING, ' ');
    diff.Json(std::string_view(rec.json.data(), len), rec.json.size(), FallbackFor(b));
  };
  size_t pos = 0;
  for (bool at_end = false; !at_end;) {
    size_t n = std::min(chunk, size - pos);
    char* room = stream.Reserve(chunk);
    memcpy(room, data + pos, n);
    stream.Commit(n);
    pos += n;
    at_end = n == 0;
    MsgpackStream::Result r;
    while ((r = stream.Next(&rec, at_end, kMaxRecord)) == MsgpackStream::Result::kRecord) handle();
    if (r == MsgpackStream::Result::kInvalid) {
      Require(stream.invalid_at() >= next_offset && stream.invalid_at() < stream.fed(), "invalid_at out of range",
              std::to_string(stream.invalid_at()));
      break;  // undecodable: the rest of the object is one bad record
    }
    if (!at_end && stream.Pending().size() > kHardCap) {
      while ((r = stream.Next(&rec, true, kMaxRecord)) == MsgpackStream::Result::kRecord) handle();
      if (r == MsgpackStream::Result::kInvalid || stream.Pending().size() > kHardCap) break;
    }
  }
  diff.Finish();
  return 0;
}
