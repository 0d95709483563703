// The msgpack-cxx side of msgpack → JSON (msgpack_json.h): what takes or
// returns msgpack-cxx types. INTERNAL to the format module (CMakeLists.txt),
// so msgpack-cxx stays out of the headers other modules see; tests and fuzz
// targets use it to hold MsgpackStream to msgpack-cxx's own object tree.
#pragma once

#include <algorithm>
#include <cstddef>
#include <msgpack.hpp>
#include <string>

#include "format/msgpack_json.h"

namespace logferry {

// Appends o as JSON. Strings are repaired to valid UTF-8; binary values
// become base64 strings; Fluentd's EventTime (ext type 0, 8 bytes) becomes an
// ISO-8601 UTC string; other ext values "ext:<type>:<base64>"; NaN and
// infinities their names as strings; map keys that are not strings their
// JSON text as a string.
// Returns how many values had to be repaired or rewritten (invalid UTF-8,
// non-finite floats, nesting cut at kMsgpackMaxDepth), and in *what the last
// reason, for the object's warnings.
int MsgpackToJson(const msgpack::object& o, std::string* out, std::string* what = nullptr);

// Limits on declared lengths for an unpacker reading records of at most
// max_record bytes: a corrupt header then fails to parse instead of making
// msgpack-cxx allocate what the header claims.
inline msgpack::unpack_limit MsgpackLimits(size_t max_bytes) {
  // msgpack-cxx allocates an array's or map's slots when it reads the header
  // (about 24 bytes a slot), so counts get a tighter bound than byte lengths.
  size_t max_count = std::min<size_t>(max_bytes, size_t{16} << 20);
  return msgpack::unpack_limit(max_count, max_count, max_bytes, max_bytes, max_bytes, kMsgpackMaxDepth);
}

// A short name of the msgpack type of o ("array", "str", ...), for messages.
const char* MsgpackTypeName(const msgpack::object& o);

}  // namespace logferry
