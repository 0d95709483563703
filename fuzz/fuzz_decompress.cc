// The decompression layer: OpenDecoder over an in-memory object.
//
// Input: byte 0 picks the compression (auto, gzip, zstd, none); byte 1 seeds
// the sizes in which the raw stream hands out bytes and in which the caller
// reads (small and odd, so headers, trailers and frame boundaries straddle
// reads); the rest is the object.
//
// Checked: no crash, hang or sanitizer report; a failure is kCorruption (the
// only error a bad object may produce); and the outcome does not depend on
// how the bytes were chunked: the same bytes decoded with large reads give
// the same output or the same error code. For gzip, when zlib (the
// reference, reading concatenated members and skipping zero padding as
// compression.h documents) decodes the object, ours must too, to the same
// bytes; and what ours accepts zlib must decode identically.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "format/compression.h"
#include "fuzz_common.h"

namespace {

using namespace logferry;
using logferry::fuzz::Require;

// Output beyond this is not read (a small input can expand 1000x).
constexpr size_t kMaxOutput = 8 << 20;

class ChunkedStream final : public ReadStream {
 public:
  ChunkedStream(std::string_view data, uint8_t seed) : data_(data), seed_(seed) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    // 1, 2, 3, 5, 8, ... bytes, cycling, or everything when seed is 0.
    static constexpr size_t kSizes[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 4093};
    size_t want = seed_ == 0 ? n : kSizes[(seed_ + calls_++) % 13];
    size_t k = std::min({n, want, data_.size() - pos_});
    memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t Offset() const override { return pos_; }

 private:
  std::string_view data_;
  uint8_t seed_;
  size_t pos_ = 0;
  size_t calls_ = 0;
};

struct Result {
  bool ok = true;
  StatusCode code = StatusCode::kOk;
  std::string message;
  std::string out;
  bool capped = false;
};

Result Decode(std::string_view data, Compression c, uint8_t seed) {
  Result r;
  auto dec = OpenDecoder(std::make_unique<ChunkedStream>(data, seed), c);
  if (!dec.ok()) {
    r.ok = false;
    r.code = dec.status().code();
    r.message = dec.status().message();
    return r;
  }
  static constexpr size_t kReads[] = {1, 7, 61, 509, 4093, 65536};
  char buf[65536];
  for (size_t i = 0;; ++i) {
    size_t n = seed == 0 ? sizeof buf : kReads[(seed / 13 + i) % 6];
    auto got = (*dec)->Read(buf, n);
    if (!got.ok()) {
      r.ok = false;
      r.code = got.status().code();
      r.message = got.status().message();
      return r;
    }
    Require(*got <= n, "Read returned more bytes than asked for");
    if (*got == 0) return r;
    r.out.append(buf, *got);
    if (r.out.size() > kMaxOutput) {
      r.capped = true;
      return r;
    }
  }
}

// zlib's reading of a (possibly multi-member, zero-padded) gzip object.
// Returns false when zlib rejects it.
bool ZlibGunzip(std::string_view data, std::string* out, bool* capped) {
  size_t pos = 0;
  bool first = true;
  while (first || pos < data.size()) {
    if (!first) {
      while (pos < data.size() && data[pos] == 0) ++pos;
      if (pos == data.size()) break;
    }
    first = false;
    z_stream zs{};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return false;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + pos));
    zs.avail_in = static_cast<uInt>(data.size() - pos);
    char buf[65536];
    int rc;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof buf;
      rc = inflate(&zs, Z_NO_FLUSH);
      out->append(buf, sizeof buf - zs.avail_out);
      if (out->size() > kMaxOutput) {
        *capped = true;
        inflateEnd(&zs);
        return true;
      }
    } while (rc == Z_OK);
    pos = data.size() - zs.avail_in;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) return false;
  }
  return true;
}

std::string Describe(const Result& r) {
  if (r.ok) return "ok, " + std::to_string(r.out.size()) + " bytes" + (r.capped ? " (capped)" : "");
  return std::string(StatusCodeName(r.code)) + ": " + r.message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static constexpr Compression kModes[] = {Compression::kAuto, Compression::kGzip, Compression::kZstd,
                                           Compression::kNone};
  const Compression c = kModes[data[0] % 4];
  const uint8_t seed = data[1] == 0 ? 1 : data[1];
  std::string_view object(reinterpret_cast<const char*>(data) + 2, size - 2);

  Result chunked = Decode(object, c, seed);
  if (!chunked.ok)
    Require(chunked.code == StatusCode::kCorruption, "decoding failed with a code other than kCorruption",
            Describe(chunked));

  Result whole = Decode(object, c, 0);
  std::string both = "chunked: " + Describe(chunked) + "\nwhole: " + Describe(whole);
  Require(chunked.ok == whole.ok, "chunking changed whether the object decodes", both);
  if (chunked.ok && !chunked.capped && !whole.capped)
    Require(chunked.out == whole.out, "chunking changed the decoded bytes", both);
  if (!chunked.ok) Require(chunked.code == whole.code, "chunking changed the error code", both);

  // The one-shot helper is the same decoder.
  auto oneshot = Decompress(object, c);
  if (!whole.capped) {
    Require(oneshot.ok() == whole.ok, "Decompress disagrees with OpenDecoder", both);
    if (oneshot.ok()) Require(*oneshot == whole.out, "Decompress gives other bytes than OpenDecoder", both);
  }

  bool is_gzip =
      c == Compression::kGzip || (c == Compression::kAuto && object.size() >= 2 &&
                                  static_cast<uint8_t>(object[0]) == 0x1f && static_cast<uint8_t>(object[1]) == 0x8b);
  if (is_gzip) {
    std::string ref;
    bool ref_capped = false;
    bool ref_ok = ZlibGunzip(object, &ref, &ref_capped);
    std::string all = both + "\nzlib: " + (ref_ok ? "ok, " + std::to_string(ref.size()) + " bytes" : "rejects");
    if (ref_ok && !ref_capped) {
      Require(whole.ok, "zlib decodes a gzip object that OpenDecoder rejects", all);
      if (!whole.capped) Require(whole.out == ref, "OpenDecoder and zlib decode a gzip object differently", all);
    }
    if (whole.ok && !whole.capped && ref_ok && !ref_capped)
      Require(whole.out == ref, "OpenDecoder and zlib decode a gzip object differently", all);
  }
  return 0;
}
