#include "format/compression.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <cstring>
#include <vector>

namespace logferry {

StatusOr<Compression> ParseCompression(std::string_view s) {
  if (s == "auto") return Compression::kAuto;
  if (s == "gzip") return Compression::kGzip;
  if (s == "zstd") return Compression::kZstd;
  if (s == "none") return Compression::kNone;
  return Status::InvalidArgument("compression must be auto, gzip, zstd or none (got '" + std::string(s) + "')");
}

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kAuto:
      return "auto";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      return "none";
  }
  return "?";
}

namespace {

constexpr size_t kInputBuffer = 1 << 20;

// Input buffering shared by the decoders: a window [pos, end) of raw bytes.
class BufferedInput {
 public:
  // new char[] rather than a vector: no zero-fill of a buffer about to be overwritten.
  explicit BufferedInput(std::unique_ptr<ReadStream> raw) : raw_(std::move(raw)), buf_(new char[kInputBuffer]) {}

  // Reads more, keeping unconsumed bytes. Returns false at end of input.
  StatusOr<bool> Refill() {
    if (eof_) return false;
    if (pos_ > 0) {
      memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    if (end_ == kInputBuffer) return true;
    LF_ASSIGN_OR_RETURN(size_t n, raw_->Read(buf_.get() + end_, kInputBuffer - end_));
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += n;
    return true;
  }
  size_t available() const { return end_ - pos_; }
  const char* data() const { return buf_.get() + pos_; }
  void Consume(size_t n) { pos_ += n; }
  bool eof() const { return eof_; }
  // Offset in the raw stream of the next unconsumed byte.
  uint64_t RawOffset() const { return raw_->Offset() - available(); }
  uint64_t RawTotal() const { return raw_->Offset(); }

 private:
  std::unique_ptr<ReadStream> raw_;
  std::unique_ptr<char[]> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

class PlainDecoder final : public ReadStream {
 public:
  explicit PlainDecoder(std::unique_ptr<BufferedInput> in) : in_(std::move(in)) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    if (in_->available() == 0) {
      LF_ASSIGN_OR_RETURN(bool more, in_->Refill());
      if (!more && in_->available() == 0) return size_t{0};
    }
    size_t k = std::min(n, in_->available());
    memcpy(buf, in_->data(), k);
    in_->Consume(k);
    return k;
  }
  uint64_t Offset() const override { return in_->RawOffset(); }

 private:
  std::unique_ptr<BufferedInput> in_;
};

const char* IsalError(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid lookback distance";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "gzip checksum mismatch";
    default:
      return "gzip decoding error";
  }
}

class GzipDecoder final : public ReadStream {
 public:
  explicit GzipDecoder(std::unique_ptr<BufferedInput> in) : in_(std::move(in)) { StartMember(); }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    while (!done_) {
      if (state_.block_state == ISAL_BLOCK_FINISH) {
        LF_RETURN_IF_ERROR(NextMember());
        continue;
      }
      if (in_header_) {
        // isal_inflate in ISAL_GZIP mode wants a whole header in one buffer;
        // a header can straddle our input window, so read it on its own.
        if (in_->available() == 0) {
          LF_ASSIGN_OR_RETURN(bool more, in_->Refill());
          if (!more)
            return Status::Corruption("truncated gzip: input ends inside a member header at byte offset " +
                                      std::to_string(in_->RawTotal()));
        }
        state_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in_->data()));
        state_.avail_in = static_cast<uint32_t>(in_->available());
        uint64_t at = in_->RawOffset();
        int rc = isal_read_gzip_header(&state_, &header_);
        in_->Consume(in_->available() - state_.avail_in);
        if (rc == ISAL_DECOMP_OK) {
          in_header_ = false;
          state_.crc_flag = ISAL_GZIP_NO_HDR_VER;  // still checks CRC32 and size in the trailer
        } else if (rc != ISAL_END_INPUT) {
          return Status::Corruption(std::string(IsalError(rc)) + " in gzip header near byte offset " +
                                    std::to_string(at));
        }
        continue;
      }
      if (in_->available() == 0) {
        LF_ASSIGN_OR_RETURN(bool more, in_->Refill());
        if (!more)
          return Status::Corruption("truncated gzip: input ends inside a member at byte offset " +
                                    std::to_string(in_->RawTotal()));
      }
      state_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in_->data()));
      state_.avail_in = static_cast<uint32_t>(in_->available());
      state_.next_out = reinterpret_cast<uint8_t*>(buf);
      state_.avail_out = static_cast<uint32_t>(std::min<size_t>(n, UINT32_MAX));
      int rc = isal_inflate(&state_);
      size_t consumed = in_->available() - state_.avail_in;
      uint64_t at = in_->RawOffset();
      in_->Consume(consumed);
      if (rc < 0)
        return Status::Corruption(std::string(IsalError(rc)) + " near byte offset " + std::to_string(at + consumed));
      size_t produced = n - state_.avail_out;
      if (produced > 0) return produced;
      if (rc == ISAL_NEED_DICT) return Status::Corruption("gzip member needs a preset dictionary");
    }
    return size_t{0};
  }
  uint64_t Offset() const override { return in_->RawOffset(); }

 private:
  void StartMember() {
    isal_inflate_init(&state_);
    isal_gzip_header_init(&header_);
    in_header_ = true;
  }

  // After a member ends: another member, zero padding, or the end.
  Status NextMember() {
    for (;;) {
      while (in_->available() < 2 && !in_->eof()) {
        LF_ASSIGN_OR_RETURN(bool more, in_->Refill());
        if (!more) break;
      }
      if (in_->available() == 0) {
        done_ = true;
        return Status::Ok();
      }
      const auto* p = reinterpret_cast<const unsigned char*>(in_->data());
      if (in_->available() >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        StartMember();
        return Status::Ok();
      }
      // Some writers pad to a block size with zeros; gzip(1) ignores that too.
      size_t k = 0;
      while (k < in_->available() && p[k] == 0) ++k;
      if (k == 0)
        return Status::Corruption("trailing garbage after gzip member at byte offset " +
                                  std::to_string(in_->RawOffset()));
      in_->Consume(k);
    }
  }

  std::unique_ptr<BufferedInput> in_;
  inflate_state state_;
  isal_gzip_header header_;
  bool in_header_ = true;
  bool done_ = false;
};

class ZstdDecoder final : public ReadStream {
 public:
  explicit ZstdDecoder(std::unique_ptr<BufferedInput> in) : in_(std::move(in)), ctx_(ZSTD_createDCtx()) {}
  ~ZstdDecoder() override { ZSTD_freeDCtx(ctx_); }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      if (frame_start_) LF_RETURN_IF_ERROR(StartFrame());
      if (in_->available() == 0) LF_RETURN_IF_ERROR(in_->Refill().status());
      const bool input_done = in_->available() == 0;
      if (input_done && frame_start_) {
        // Between frames: the end, unless there was no frame at all (an
        // empty input is not a zstd stream, as an empty input is not gzip).
        if (frames_ == 0) return Status::Corruption("truncated zstd frame at byte offset 0");
        return size_t{0};
      }
      // With the input used up, a call still flushes output libzstd holds
      // back when earlier reads were smaller than a block.
      ZSTD_inBuffer zin{in_->data(), in_->available(), 0};
      ZSTD_outBuffer zout{buf, n, 0};
      size_t rc = ZSTD_decompressStream(ctx_, &zout, &zin);
      uint64_t at = in_->RawOffset();
      in_->Consume(zin.pos);
      if (ZSTD_isError(rc))
        return Status::Corruption(std::string("zstd: ") + ZSTD_getErrorName(rc) + " near byte offset " +
                                  std::to_string(at + zin.pos));
      frame_output_ += zout.pos;
      if (rc == 0) LF_RETURN_IF_ERROR(EndFrame());
      if (zout.pos > 0) return zout.pos;
      if (input_done && rc != 0)
        return Status::Corruption("truncated zstd frame at byte offset " + std::to_string(in_->RawTotal()));
    }
  }
  uint64_t Offset() const override { return in_->RawOffset(); }

 private:
  // Reads the next frame's header for its declared content size. libzstd
  // 1.5.4 checks that size only when it decodes a frame in one call; streamed
  // into small reads, a frame whose blocks hold less than its header
  // declares ended quietly (found by fuzz_decompress), so the count is
  // checked here, whatever the read sizes.
  Status StartFrame() {
    // 18: the longest frame header (ZSTD_FRAMEHEADERSIZE_MAX, outside zstd's stable API).
    while (in_->available() < 18) {
      LF_ASSIGN_OR_RETURN(bool more, in_->Refill());
      if (!more) break;
    }
    declared_size_ = ZSTD_CONTENTSIZE_UNKNOWN;
    frame_output_ = 0;
    frame_start_ = false;
    if (in_->available() == 0) {
      frame_start_ = true;  // the end of the input (decided by the caller)
      return Status::Ok();
    }
    frame_offset_ = in_->RawOffset();
    // An unreadable header is left to ZSTD_decompressStream to report. (A
    // skippable frame declares 0 and produces nothing.)
    unsigned long long size = ZSTD_getFrameContentSize(in_->data(), in_->available());
    if (size != ZSTD_CONTENTSIZE_ERROR) declared_size_ = size;
    return Status::Ok();
  }

  Status EndFrame() {
    if (declared_size_ != ZSTD_CONTENTSIZE_UNKNOWN && frame_output_ != declared_size_)
      return Status::Corruption("zstd frame at byte offset " + std::to_string(frame_offset_) + " declares " +
                                std::to_string(declared_size_) + " bytes of content but holds " +
                                std::to_string(frame_output_) + " (truncated or corrupt)");
    ++frames_;
    frame_start_ = true;
    return Status::Ok();
  }

  std::unique_ptr<BufferedInput> in_;
  ZSTD_DCtx* ctx_;
  bool frame_start_ = true;    // the next byte starts a frame
  uint64_t frames_ = 0;        // frames decoded to their end
  uint64_t frame_offset_ = 0;  // where the current frame starts in the raw stream
  unsigned long long declared_size_ = ZSTD_CONTENTSIZE_UNKNOWN;
  uint64_t frame_output_ = 0;  // bytes the current frame has produced
};

}  // namespace

StatusOr<std::unique_ptr<ReadStream>> OpenDecoder(std::unique_ptr<ReadStream> raw, Compression c) {
  auto in = std::make_unique<BufferedInput>(std::move(raw));
  if (c == Compression::kAuto) {
    while (in->available() < 4) {
      LF_ASSIGN_OR_RETURN(bool more, in->Refill());
      if (!more) break;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(in->data());
    size_t n = in->available();
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
      c = Compression::kGzip;
    else if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
      c = Compression::kZstd;
    else
      c = Compression::kNone;
  }
  switch (c) {
    case Compression::kGzip:
      return std::unique_ptr<ReadStream>(new GzipDecoder(std::move(in)));
    case Compression::kZstd:
      return std::unique_ptr<ReadStream>(new ZstdDecoder(std::move(in)));
    default:
      return std::unique_ptr<ReadStream>(new PlainDecoder(std::move(in)));
  }
}

struct GzipEncoder::Impl {
  isal_zstream stream;
  std::unique_ptr<uint8_t[]> level_buf;
  static constexpr size_t kOutBuf = 256 << 10;
  std::unique_ptr<uint8_t[]> out_buf{new uint8_t[kOutBuf]};
};

GzipEncoder::GzipEncoder(int level) : impl_(std::make_unique<Impl>()) {
  isal_deflate_init(&impl_->stream);
  impl_->stream.gzip_flag = IGZIP_GZIP;
  impl_->stream.level = static_cast<uint32_t>(level);
  size_t lb = 0;
  if (level == 1)
    lb = ISAL_DEF_LVL1_DEFAULT;
  else if (level == 2)
    lb = ISAL_DEF_LVL2_DEFAULT;
  else if (level == 3)
    lb = ISAL_DEF_LVL3_DEFAULT;
  if (lb > 0) {
    impl_->level_buf.reset(new uint8_t[lb]);
    impl_->stream.level_buf = impl_->level_buf.get();
    impl_->stream.level_buf_size = static_cast<uint32_t>(lb);
  }
}

GzipEncoder::~GzipEncoder() = default;

void GzipEncoder::Run(const char* data, size_t n, bool last, std::string* out) {
  isal_zstream& s = impl_->stream;
  s.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data));
  s.avail_in = static_cast<uint32_t>(n);
  s.end_of_stream = last ? 1 : 0;
  s.flush = NO_FLUSH;
  // Through a scratch buffer: growing *out with resize() would zero-fill
  // the room first, which cost more than copying the compressed bytes.
  uint8_t* buf = impl_->out_buf.get();
  do {
    s.next_out = buf;
    s.avail_out = static_cast<uint32_t>(Impl::kOutBuf);
    isal_deflate(&s);
    out->append(reinterpret_cast<const char*>(buf), Impl::kOutBuf - s.avail_out);
  } while (s.avail_in > 0 || (last && s.internal_state.state != ZSTATE_END));
}

void GzipEncoder::Write(std::string_view data, std::string* out) {
  if (!data.empty()) Run(data.data(), data.size(), false, out);
}

void GzipEncoder::Finish(std::string* out) {
  Run(nullptr, 0, true, out);
}

std::string GzipCompress(std::string_view data, int level) {
  GzipEncoder enc(level);
  std::string out;
  enc.Write(data, &out);
  enc.Finish(&out);
  return out;
}

namespace {
class StringStream final : public ReadStream {
 public:
  explicit StringStream(std::string_view s) : s_(s) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, s_.size() - pos_);
    memcpy(buf, s_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t Offset() const override { return pos_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};
}  // namespace

StatusOr<std::string> Decompress(std::string_view data, Compression c) {
  LF_ASSIGN_OR_RETURN(auto dec, OpenDecoder(std::make_unique<StringStream>(data), c));
  std::string out;
  char buf[65536];
  for (;;) {
    LF_ASSIGN_OR_RETURN(size_t n, dec->Read(buf, sizeof buf));
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

}  // namespace logferry
