// msgpack → JSON text, for Fluentd's msgpack formatter (a stream of maps).
#pragma once

#include <msgpack.hpp>

#include <string>

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

// Deeper values are cut (written as null, with a warning): this bounds the
// recursion. The normalizer writes anything past 15 levels as text anyway.
constexpr int kMsgpackMaxDepth = 20000;

// Limits on declared lengths for an unpacker reading records of at most
// max_record bytes: a corrupt header then fails to parse instead of making
// msgpack-cxx allocate what the header claims.
inline msgpack::unpack_limit MsgpackLimits(size_t max_record) {
  return msgpack::unpack_limit(max_record / 2, max_record / 2, max_record, max_record, max_record, kMsgpackMaxDepth);
}

// A short name of the msgpack type of o ("array", "str", ...), for messages.
const char* MsgpackTypeName(const msgpack::object& o);

}  // namespace logferry
