// msgpack → JSON text, for Fluentd's msgpack formatter (a stream of maps).
// msgpack-cxx stays behind this header: what takes its types is in
// msgpack_object.h, internal to the format module.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace logferry {

// Deeper values are cut (written as null, with a warning): this bounds the
// recursion. The normalizer writes anything past 15 levels as text anyway.
constexpr int kMsgpackMaxDepth = 20000;
// Past this depth a stream is not decoded at all (MsgpackStream: kInvalid):
// the parser holds a few bytes per open container, so this bounds its memory.
constexpr size_t kMsgpackMaxParseDepth = 1'000'000;

// Fluentd's msgpack format is maps back to back with no framing. This takes
// the stream in chunks and decodes it record by record straight into JSON
// text (MsgpackToJson's rules) with msgpack-cxx's visitor parser: no object
// tree is built, and a length declared in a header allocates nothing, since
// a record is decoded only once all of its bytes have arrived.
class MsgpackStream {
 public:
  struct Record {
    std::string json;       // the value as JSON text
    const char* type = "";  // its msgpack type ("map" for a record)
    uint64_t offset = 0;    // where it starts in the stream
    uint64_t size = 0;      // its encoded size in bytes
    bool json_cut = false;  // the JSON outgrew what max_record allows: cut short
    int repairs = 0;        // values repaired or rewritten (see MsgpackToJson)
    std::string repair;     // the last reason
  };
  enum class Result {
    kRecord,    // *rec holds the next record
    kNeedMore,  // feed more bytes; at the end, Pending() is a truncated record
    kInvalid,   // Pending() cannot be decoded (invalid_reason() says why)
  };

  MsgpackStream();
  ~MsgpackStream();
  MsgpackStream(const MsgpackStream&) = delete;
  MsgpackStream& operator=(const MsgpackStream&) = delete;

  // Room for n more bytes; then Commit how many were written there.
  char* Reserve(size_t n);
  void Commit(size_t k);
  // The next complete record. force: try now even if the last try fell
  // short and few bytes have come since (at the end of the stream, or before
  // giving up on a long record). A record over max_record bytes is only
  // measured: its JSON is cut short (json_cut).
  Result Next(Record* rec, bool force = false, size_t max_record = SIZE_MAX);
  // Bytes taken in so far, and those not yet decoded into records.
  uint64_t fed() const { return fed_; }
  std::string_view Pending() const;
  // After kInvalid: the stream offset of the byte the parser stopped at,
  // and why, for the bad record.
  uint64_t invalid_at() const { return invalid_at_; }
  const std::string& invalid_reason() const { return invalid_reason_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string buf_;
  size_t pos_ = 0;         // start of the undecoded bytes in buf_
  size_t committed_ = 0;   // buf_'s size before the last Reserve
  size_t incomplete_ = 0;  // undecoded bytes when the last try fell short
  uint64_t fed_ = 0;
  uint64_t invalid_at_ = 0;
  std::string invalid_reason_;
};

}  // namespace logferry
