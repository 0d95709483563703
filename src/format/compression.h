// Compression: streaming decoders chosen by magic bytes, and a streaming
// gzip encoder. gzip goes through ISA-L (about 3x zlib's inflate and 5x its
// level-1 deflate on this kind of data), zstd through libzstd.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/object_store.h"

namespace logferry {

enum class Compression { kAuto, kGzip, kZstd, kNone };

StatusOr<Compression> ParseCompression(std::string_view s);
const char* CompressionName(Compression c);

// Wraps a raw object stream in a decoder. With kAuto the format is chosen by
// the first bytes (1f 8b: gzip, 28 b5 2f fd: zstd, else none), never by name.
// A corrupt or truncated input fails with kCorruption naming the byte offset
// in the compressed stream. Concatenated gzip members and zstd frames are
// read as one stream, as gzip(1) does.
StatusOr<std::unique_ptr<ReadStream>> OpenDecoder(std::unique_ptr<ReadStream> raw, Compression c);

// Streams gzip output into a sink; Finish() writes the trailer.
class GzipEncoder {
 public:
  // level: 0..3 (ISA-L levels; 1 is the speed/size sweet spot for staging).
  explicit GzipEncoder(int level = 1);
  ~GzipEncoder();
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  // Compresses data, appending output to *out.
  void Write(std::string_view data, std::string* out);
  void Finish(std::string* out);

 private:
  void Run(const char* data, size_t n, bool last, std::string* out);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One-shot helpers (tests, the generator, small objects).
std::string GzipCompress(std::string_view data, int level = 1);
StatusOr<std::string> Decompress(std::string_view data, Compression c = Compression::kAuto);

}  // namespace logferry
