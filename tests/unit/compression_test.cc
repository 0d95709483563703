#include "format/compression.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <regex>
#include <string>

namespace logferry {
namespace {

// Serves a string in chunks of at most `chunk` bytes, so decoders see member
// and frame boundaries split across reads.
class ChunkedStream final : public ReadStream {
 public:
  ChunkedStream(std::string data, size_t chunk) : data_(std::move(data)), chunk_(chunk) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min({n, chunk_, data_.size() - pos_});
    memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t Offset() const override { return pos_; }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

StatusOr<std::string> DecodeChunked(const std::string& data, size_t in_chunk, size_t out_chunk,
                                    Compression c = Compression::kAuto) {
  LF_ASSIGN_OR_RETURN(auto dec, OpenDecoder(std::make_unique<ChunkedStream>(data, in_chunk), c));
  std::string out;
  std::vector<char> buf(out_chunk);
  // Bounded: every successful non-final read yields at least one byte.
  for (size_t i = 0; i < data.size() * 64 + (64u << 20); ++i) {
    LF_ASSIGN_OR_RETURN(size_t n, dec->Read(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
  return Status::Internal("decoder did not terminate");
}

std::string ZstdCompress(const std::string& data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  out.resize(n);
  return out;
}

// With the frame checksum on, so that flipped literal bytes are detectable
// (ZSTD_compress leaves it off).
std::string ZstdCompressChecked(const std::string& data) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  out.resize(n);
  return out;
}

std::string SampleText(size_t lines, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string s;
  for (size_t i = 0; i < lines; ++i) {
    s += "2016-08-01T12:00:00+09:00\tapp.access\t{\"n\":" + std::to_string(rng() % 100000) +
         ",\"path\":\"/api/v1/items/" + std::to_string(rng()) + "\"}\n";
  }
  return s;
}

// The number after "offset" in a message, or -1.
long long OffsetIn(const std::string& message) {
  std::smatch m;
  if (std::regex_search(message, m, std::regex("offset (\\d+)"))) return std::stoll(m[1]);
  return -1;
}

TEST(Compression, ParseAndName) {
  EXPECT_EQ(*ParseCompression("gzip"), Compression::kGzip);
  EXPECT_EQ(*ParseCompression("zstd"), Compression::kZstd);
  EXPECT_EQ(*ParseCompression("none"), Compression::kNone);
  EXPECT_EQ(*ParseCompression("auto"), Compression::kAuto);
  EXPECT_FALSE(ParseCompression("bzip2").ok());
  EXPECT_STREQ(CompressionName(Compression::kZstd), "zstd");
}

TEST(Compression, GzipRoundTrip) {
  std::string text = SampleText(2000);
  for (int level : {0, 1, 2, 3}) {
    std::string gz = GzipCompress(text, level);
    ASSERT_GE(gz.size(), 18u);
    EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
    auto back = Decompress(gz);
    ASSERT_TRUE(back.ok()) << "level " << level << ": " << back.status().ToString();
    EXPECT_EQ(*back, text) << "level " << level;
    auto forced = Decompress(gz, Compression::kGzip);
    ASSERT_TRUE(forced.ok());
    EXPECT_EQ(*forced, text);
  }
}

TEST(Compression, GzipEncoderStreamingMatchesInput) {
  std::string text = SampleText(5000, 7);
  GzipEncoder enc(1);
  std::string gz;
  for (size_t i = 0; i < text.size(); i += 777) enc.Write(std::string_view(text).substr(i, 777), &gz);
  enc.Finish(&gz);
  auto back = Decompress(gz);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, text);
}

TEST(Compression, EmptyInputs) {
  auto plain = Decompress("");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, "");

  std::string gz = GzipCompress("");
  auto g = Decompress(gz);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(*g, "");

  auto z = Decompress(ZstdCompress(""));
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ(*z, "");

  // An empty object declared as gzip is a truncated gzip stream, not an empty file.
  auto forced = Decompress("", Compression::kGzip);
  ASSERT_FALSE(forced.ok());
  EXPECT_EQ(forced.status().code(), StatusCode::kCorruption);
}

// gzip as zlib writes it (Ruby's Zlib::GzipWriter, which Fluentd uses, and
// gzip(1)), optionally with the optional header fields set.
std::string ZlibGzip(const std::string& data, bool with_header_fields, bool with_header_crc = true) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  gz_header head{};
  std::string name = "2016080112_0.log", comment = "fluentd";
  std::string extra =
      "LF\x04\x00"
      "abcd";
  if (with_header_fields) {
    head.name = reinterpret_cast<Bytef*>(name.data());
    head.comment = reinterpret_cast<Bytef*>(comment.data());
    head.extra = reinterpret_cast<Bytef*>(extra.data());
    head.extra_len = static_cast<uInt>(extra.size());
    head.hcrc = with_header_crc ? 1 : 0;
    head.time = 1470052800;
    EXPECT_EQ(deflateSetHeader(&zs, &head), Z_OK);
  }
  std::string out(deflateBound(&zs, data.size()) + 1024, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(Compression, GzipWrittenByZlib) {
  std::string text = SampleText(500, 5);
  for (int variant = 0; variant < 3; ++variant) {
    bool fields = variant > 0, hcrc = variant == 2;
    std::string gz = ZlibGzip(text, fields, hcrc);
    auto back = Decompress(gz);
    ASSERT_TRUE(back.ok()) << "variant " << variant << ": " << back.status().ToString();
    EXPECT_EQ(*back, text);
    if (hcrc) continue;  // split FHCRC headers: see MemberHeaderAcrossReadWindowBoundary
    auto chunked = DecodeChunked(gz + ZlibGzip(text, fields, hcrc), 3, 1000);
    ASSERT_TRUE(chunked.ok()) << "variant " << variant << ": " << chunked.status().ToString();
    EXPECT_EQ(*chunked, text + text);
  }
}

TEST(Compression, MemberHeaderAcrossReadWindowBoundary) {
  // ISA-L's inflate must be handed a member's whole gzip header at once
  // (intel/isa-l#224). Place the second member's header across the 1 MiB
  // boundary of the decoder's input window, using zero padding (which is
  // legal between members) to position it, and read with ordinary full reads.
  std::string text = SampleText(200, 9);
  for (int variant = 0; variant < 3; ++variant) {
    bool fields = variant > 0, hcrc = variant == 2;
    std::string first = ZlibGzip(text, fields, hcrc), second = ZlibGzip(text, fields, hcrc);
    for (size_t split : {2, 5, 9}) {
      size_t target = (1u << 20) - split;
      ASSERT_LT(first.size(), target);
      std::string data = first + std::string(target - first.size(), '\0') + second;
      auto back = Decompress(data);
      ASSERT_TRUE(back.ok()) << "variant " << variant << ", header split " << split
                             << " bytes before the window end: " << back.status().ToString();
      EXPECT_EQ(*back, text + text);
    }
  }
}

TEST(Compression, MultiMemberGzipReadsAsOneStream) {
  std::string a = SampleText(300, 1), b = SampleText(10, 2), c = SampleText(1000, 3);
  std::string gz = GzipCompress(a) + GzipCompress(b) + GzipCompress("") + GzipCompress(c);
  auto back = Decompress(gz);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, a + b + c);
  // Member boundaries split across tiny reads in both directions.
  for (size_t in_chunk : {1, 2, 3, 17, 4096}) {
    auto chunked = DecodeChunked(gz, in_chunk, 5);
    ASSERT_TRUE(chunked.ok()) << "in_chunk " << in_chunk << ": " << chunked.status().ToString();
    EXPECT_EQ(*chunked, a + b + c) << "in_chunk " << in_chunk;
  }
}

TEST(Compression, ZeroPaddingAfterMemberIsIgnored) {
  std::string a = SampleText(50);
  std::string gz = GzipCompress(a) + std::string(512, '\0');
  auto back = Decompress(gz);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, a);
  // Padding between members too, as tape-blocked concatenations have.
  std::string two = GzipCompress(a) + std::string(3, '\0') + GzipCompress(a);
  auto both = DecodeChunked(two, 1, 64);
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(*both, a + a);
}

TEST(Compression, TrailingGarbageIsCorruptionAtItsOffset) {
  std::string a = SampleText(100);
  std::string member = GzipCompress(a);
  for (const std::string& junk :
       {std::string("garbage"), std::string("X"), std::string("\x1f", 1), std::string("\0\0\0junk", 7)}) {
    std::string data = member + junk;
    auto back = Decompress(data);
    ASSERT_FALSE(back.ok()) << "accepted trailing '" << junk << "'";
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption);
    EXPECT_NE(back.status().message().find("offset"), std::string::npos) << back.status().message();
    long long expected = static_cast<long long>(member.size());
    if (junk[0] == '\0') expected += 3;  // the zeros are padding; the garbage starts after them
    EXPECT_EQ(OffsetIn(back.status().message()), expected) << back.status().message();
  }
}

TEST(Compression, TruncatedGzipIsCorruption) {
  std::string a = SampleText(2000);
  std::string gz = GzipCompress(a);
  for (size_t cut : {size_t{2}, size_t{5}, size_t{10}, gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
    auto back = Decompress(gz.substr(0, cut));
    ASSERT_FALSE(back.ok()) << "accepted gzip cut at " << cut << " of " << gz.size();
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption) << cut;
    EXPECT_NE(back.status().message().find("truncated"), std::string::npos)
        << "cut " << cut << ": " << back.status().message();
  }
  // One byte cannot be recognized as gzip by magic, but declared as gzip it is truncated.
  auto one = Decompress(gz.substr(0, 1), Compression::kGzip);
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.status().message().find("truncated"), std::string::npos) << one.status().message();
  // Truncation inside the second member.
  std::string two = gz + gz.substr(0, gz.size() / 3);
  auto back = DecodeChunked(two, 1000, 4096);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), StatusCode::kCorruption);
  EXPECT_NE(back.status().message().find("truncated"), std::string::npos) << back.status().message();
}

TEST(Compression, FlippedBytesAreCorruption) {
  std::string a = SampleText(2000);
  std::string gz = GzipCompress(a);
  // The CRC32 and ISIZE trailer, and bytes inside the deflate stream (the
  // 10-byte header's mtime/xfl/os fields are not covered by any check).
  std::vector<size_t> positions = {gz.size() - 8, gz.size() - 5, gz.size() - 4, gz.size() - 1, 20,
                                   gz.size() / 3, gz.size() / 2};
  for (size_t pos : positions) {
    std::string bad = gz;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x5a);
    auto back = Decompress(bad);
    ASSERT_FALSE(back.ok() && *back == a) << "flip at " << pos << " went unnoticed";
    if (back.ok()) {
      ADD_FAILURE() << "flip at " << pos << " decoded to different data without an error";
      continue;
    }
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption) << pos << ": " << back.status().ToString();
  }
  // A broken header: compression method other than deflate.
  std::string bad = gz;
  bad[2] = 7;
  auto back = Decompress(bad);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), StatusCode::kCorruption);
}

TEST(Compression, ZstdMultipleFrames) {
  std::string a = SampleText(500, 11), b = SampleText(700, 12);
  std::string z = ZstdCompress(a, 1) + ZstdCompress(b, 19) + ZstdCompress("", 3);
  auto back = Decompress(z);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, a + b);
  auto forced = Decompress(z, Compression::kZstd);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(*forced, a + b);
  for (size_t in_chunk : {1, 7, 4096}) {
    auto chunked = DecodeChunked(z, in_chunk, 3);
    ASSERT_TRUE(chunked.ok()) << in_chunk << ": " << chunked.status().ToString();
    EXPECT_EQ(*chunked, a + b);
  }
}

TEST(Compression, ZstdTruncatedAndCorrupt) {
  std::string a = SampleText(1000);
  std::string z = ZstdCompress(a);
  auto cut = Decompress(z.substr(0, z.size() - 3));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), StatusCode::kCorruption);
  EXPECT_NE(cut.status().message().find("truncated"), std::string::npos) << cut.status().message();

  auto garbage = Decompress(z + "trailing");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::kCorruption);
  EXPECT_NE(garbage.status().message().find("offset"), std::string::npos) << garbage.status().message();

  std::string checked = ZstdCompressChecked(a);
  for (size_t pos : {checked.size() / 2, checked.size() - 2}) {
    std::string flipped = checked;
    flipped[pos] ^= 0x33;
    auto f = Decompress(flipped);
    ASSERT_FALSE(f.ok()) << "zstd flip at " << pos << " went unnoticed";
    EXPECT_EQ(f.status().code(), StatusCode::kCorruption);
  }
}

// Found by fuzz_decompress (fuzz/corpus/fuzz_decompress/regression-zstd-
// truncated-frame-small-reads): a frame whose header declares 509 bytes of
// content but whose only block is an empty last block. Read whole, libzstd
// reports the size mismatch; streamed into small output buffers it used to
// end the frame quietly with no bytes. Every read size must say corrupt.
TEST(Compression, ZstdFrameShorterThanItsDeclaredSizeIsCorruptForAnyReadSize) {
  const std::string frame("\x28\xb5\x2f\xfd\x50\x7e\xfd\x00\x01\x00\x00", 11);
  for (size_t in_chunk : {1, 2, 5, 13, 4096}) {
    for (size_t out_chunk : {1, 7, 61, 509, 65536}) {
      auto got = DecodeChunked(frame, in_chunk, out_chunk, Compression::kZstd);
      ASSERT_FALSE(got.ok()) << in_chunk << "/" << out_chunk << " decoded " << got->size() << " bytes";
      EXPECT_EQ(got.status().code(), StatusCode::kCorruption) << got.status().ToString();
    }
  }
  // The same for every frame of a valid object cut short, at every length, read
  // whole and in small pieces.
  std::string z = ZstdCompress(SampleText(40), 3);
  for (size_t len = 1; len < z.size(); ++len) {
    for (size_t out_chunk : {1, 61, 65536}) {
      auto got = DecodeChunked(z.substr(0, len), 7, out_chunk, Compression::kZstd);
      ASSERT_FALSE(got.ok()) << "cut at " << len << " of " << z.size() << ", reads of " << out_chunk;
      EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
    }
  }
  // And a valid frame still decodes with any read size.
  std::string text = SampleText(40);
  for (size_t out_chunk : {1, 7, 61, 509, 65536}) {
    auto got = DecodeChunked(ZstdCompress(text, 3), 3, out_chunk, Compression::kZstd);
    ASSERT_TRUE(got.ok()) << out_chunk << ": " << got.status().ToString();
    EXPECT_EQ(*got, text);
  }
}

TEST(Compression, AutoDetectionByMagicBytes) {
  // Plain text passes through untouched, including text that starts with one magic byte.
  for (const std::string& plain : {std::string("hello\nworld\n"),
                                   std::string("\x1f"
                                               "abc",
                                               4),
                                   std::string("("), std::string("(\xb5/", 3), std::string("a")}) {
    auto back = Decompress(plain);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, plain);
  }
  std::string text = SampleText(20);
  // Detection must look at content, whatever the caller believes about the name.
  EXPECT_EQ(*Decompress(GzipCompress(text), Compression::kAuto), text);
  EXPECT_EQ(*Decompress(ZstdCompress(text), Compression::kAuto), text);
  // With kNone the bytes are returned as stored.
  std::string gz = GzipCompress(text);
  EXPECT_EQ(*Decompress(gz, Compression::kNone), gz);
  // Magic bytes split across the first reads still select the decoder.
  auto chunked = DecodeChunked(GzipCompress(text), 1, 100);
  ASSERT_TRUE(chunked.ok()) << chunked.status().ToString();
  EXPECT_EQ(*chunked, text);
  auto zchunked = DecodeChunked(ZstdCompress(text), 1, 100);
  ASSERT_TRUE(zchunked.ok()) << zchunked.status().ToString();
  EXPECT_EQ(*zchunked, text);
}

TEST(Compression, PlainStreamWithSmallReads) {
  std::string text = SampleText(3000);
  auto back = DecodeChunked(text, 333, 17, Compression::kNone);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, text);
}

TEST(Compression, LargeInputStreamsThroughSmallReads) {
  // ~20 MB of log-like text: larger than the decoder's 1 MiB input buffer many times over.
  std::string text;
  text.reserve(21 << 20);
  std::mt19937 rng(42);
  while (text.size() < (20u << 20)) {
    text += "2016-08-01T12:00:00+09:00\tapp\t{\"id\":" + std::to_string(rng()) + ",\"v\":\"" +
            std::string(rng() % 40, static_cast<char>('a' + rng() % 26)) + "\"}\n";
  }
  std::string gz = GzipCompress(text, 1);
  auto dec = OpenDecoder(std::make_unique<ChunkedStream>(gz, 65521), Compression::kAuto);
  ASSERT_TRUE(dec.ok());
  size_t total = 0;
  bool same = true;
  char buf[4096];
  for (size_t i = 0; i < (40u << 20); ++i) {
    auto n = (*dec)->Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << "at " << total << ": " << n.status().ToString();
    if (*n == 0) break;
    ASSERT_LE(total + *n, text.size());
    if (same && memcmp(buf, text.data() + total, *n) != 0) same = false;
    total += *n;
  }
  EXPECT_EQ(total, text.size());
  EXPECT_TRUE(same) << "decoded bytes differ from the input";
  EXPECT_EQ((*dec)->Offset(), gz.size()) << "all compressed input must have been consumed";

  std::string z = ZstdCompress(text, 1);
  auto zdec = DecodeChunked(z, 100000, 4096);
  ASSERT_TRUE(zdec.ok()) << zdec.status().ToString();
  EXPECT_TRUE(*zdec == text);
}

}  // namespace
}  // namespace logferry
