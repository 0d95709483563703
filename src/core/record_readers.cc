#include "core/record_readers.h"

#include <algorithm>
#include <cstring>

#include "common/strings.h"
#include "common/time.h"
#include "format/msgpack_json.h"

namespace logferry {

PartitionCap::PartitionCap(int64_t unit_us, int64_t max_partitions, std::optional<int64_t> slice_us)
    : unit_us_(unit_us), max_(static_cast<size_t>(std::max<int64_t>(max_partitions, 1))) {
  if (slice_us) Admit(*slice_us);
}

bool PartitionCap::AdmitNew(int64_t p) {
  if (!admitted_.count(p)) {
    if (admitted_.size() >= max_) return false;
    admitted_.insert(p);
  }
  last_ = p;
  return true;
}

std::string PartitionCap::Refusal(int64_t time_us) const {
  return "event time " + FormatIso8601(time_us) + " would open partition " + FormatHour(FloorTo(time_us, unit_us_)) +
         ", past max_partitions_per_object (" + std::to_string(max_) + ") for this object";
}

RecordSink::RecordSink(const TableConfig& cfg, RowNormalizer& norm, std::optional<int64_t> slice, PartWriterSet& parts,
                       StageOutcome* out, RowTap tap)
    : norm_(norm),
      slice_(slice),
      parts_(parts),
      out_(out),
      cap_(cfg.partition_unit_us, cfg.max_partitions_per_object, slice),
      time_field_(cfg.format.format == LogFormat::kOutFile ? "time" : cfg.format.time_key),
      tap_(std::move(tap)) {}

void RecordSink::Bad(int64_t record, uint64_t offset, std::string field, std::string reason, std::string_view raw) {
  ++out_->staged.bad_total;
  if (out_->staged.bad_records.size() < kMaxStoredBadRecords) {
    out_->staged.bad_records.push_back(
        BadRecord{record, static_cast<int64_t>(offset), std::move(field), std::move(reason), Excerpt(raw, 200)});
  }
}

Status RecordSink::Row(int64_t record, uint64_t offset, std::string_view raw) {
  if (!cap_.Admit(norm_.time())) {
    Bad(record, offset, time_field_, cap_.Refusal(norm_.time()), raw);
    return Status::Ok();
  }
  ++out_->staged.rows_staged;
  int64_t hour_us = FloorTo(norm_.time(), kMicrosPerHour);
  if (tap_) tap_(hour_us, norm_.row());
  return parts_.Append(hour_us, norm_.row());
}

void RecordSink::KeepWarning(const char* unit, int64_t record, uint64_t offset) {
  out_->staged.warning = std::string(unit) + " " + std::to_string(record) + " (byte offset " + std::to_string(offset) +
                         "): " + norm_.last_warning();
}

namespace {

constexpr size_t kReadBlock = 4 << 20;

// One read window per worker thread, reused across objects: allocating and
// zero-filling 4 MiB per object showed up in profiles. A window grown for a
// very long line is given back before the next object.
std::vector<char>& ReadWindow() {
  thread_local std::vector<char> buf;
  if (buf.size() < kReadBlock + kJsonPadding || buf.size() > 16 * kReadBlock) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(kReadBlock + kJsonPadding);
  }
  return buf;
}

// Newline-delimited records, split in place in the read window: a line is
// never copied. csv: a record whose quoted field runs past the end of its
// first line ends at the first line break outside quotes. If its quoting
// goes wrong instead (text after a closing quote), or the object ends inside
// the quotes, or it would grow past max_line_bytes, the first line alone is
// the bad record and the lines after it are read as records of their own, so
// nothing else is lost. Positions are relative to `begin_`, which moves when
// the window is compacted.
class LineReader {
 public:
  LineReader(ReadStream& in, const TableConfig& cfg, RecordSink& sink)
      : in_(in),
        sink_(sink),
        buf_(ReadWindow()),
        max_line_(static_cast<size_t>(cfg.max_line_bytes)),
        csv_(cfg.format.format == LogFormat::kCsv),
        delimiter_(cfg.format.delimiter) {}

  Status ReadAll();

 private:
  enum class Next { kAgain, kDone, kMoreInput };
  // The three states of the window: a csv record being continued, lines, or
  // an over-long line being discarded.
  Status ContinueCsvRecord(Next* next);
  Status NextLine(Next* next);
  void SkipLongLine(Next* next);
  // Keeps the partial line (or record) at the front of the window, grows it
  // or starts skipping an over-long line, and reads more.
  Status Refill();

  Status Process(size_t rec_begin, size_t rec_end, int64_t rec_line, bool* open_quote);
  // Ends the csv record in progress at `len` (a record), or as its first line only.
  Status FinishRecord(size_t len);
  void FirstLineOnly(const std::string& why);
  void LongLine(int64_t line, uint64_t offset, std::string_view excerpt);

  ReadStream& in_;
  RecordSink& sink_;
  std::vector<char>& buf_;
  const size_t max_line_;
  const bool csv_;
  const char delimiter_;
  size_t begin_ = 0, end_ = 0, scan_ = 0;
  uint64_t base_offset_ = 0;  // uncompressed offset of buf_[0]
  int64_t line_no_ = 0;
  bool eof_ = false;
  LineError err_;
  // An over-long line being discarded.
  bool skipping_ = false;
  int64_t skipped_line_ = 0;
  uint64_t skipped_offset_ = 0;
  std::string skipped_excerpt_;
  // csv: a record being continued past its first line.
  bool continuing_ = false;
  std::optional<CsvContinuation> cont_;
  size_t cont_scanned_ = 0;    // how far the record has been scanned
  size_t first_line_len_ = 0;  // its first line (without the line break)
  LineError first_err_;        // why its first line alone is not a record
};

Status LineReader::ReadAll() {
  for (;;) {
    Next next;
    if (continuing_) {
      LF_RETURN_IF_ERROR(ContinueCsvRecord(&next));
    } else if (!skipping_) {
      LF_RETURN_IF_ERROR(NextLine(&next));
    } else {
      SkipLongLine(&next);
    }
    if (next == Next::kDone) return Status::Ok();
    if (next == Next::kMoreInput) LF_RETURN_IF_ERROR(Refill());
  }
}

// One record: a line, or for csv the lines a quoted line break joins.
// `rec_line` is its first line's number. With `open_quote` (csv), a line
// that ends inside a quoted field is not judged: *open_quote is set and the
// caller reads on (the record is then counted once, when it ends). (Status
// and an out-parameter rather than StatusOr<bool>: this runs per line, and
// the variant cost 0.2% of staging in callgrind.)
Status LineReader::Process(size_t rec_begin, size_t rec_end, int64_t rec_line, bool* open_quote) {
  std::string_view line(buf_.data() + rec_begin, rec_end - rec_begin);
  uint64_t offset = base_offset_ + rec_begin;
  if (rec_line == 1 && line.size() >= 3 && memcmp(line.data(), "\xEF\xBB\xBF", 3) == 0) line.remove_prefix(3);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Only a truly empty line is no record: a line of spaces or tabs is read,
  // and becomes a row or a bad record like any other.
  if (line.empty()) return Status::Ok();
  StageOutcome& out = sink_.out();
  if (line.size() > max_line_) {
    ++out.staged.lines_read;
    sink_.Bad(rec_line, offset, "", "line longer than max_line_bytes (" + std::to_string(max_line_) + ")", line);
    return Status::Ok();
  }
  size_t capacity = buf_.size() - static_cast<size_t>(line.data() - buf_.data());
  RowNormalizer& norm = sink_.norm();
  uint64_t warnings = norm.warnings();
  if (!norm.Normalize(line, capacity, sink_.slice(), &err_, rec_line)) {
    if (open_quote && err_.open_quote) {
      *open_quote = true;
      return Status::Ok();
    }
    ++out.staged.lines_read;
    sink_.Bad(rec_line, offset, err_.field, err_.reason, line);
    return Status::Ok();
  }
  ++out.staged.lines_read;
  sink_.NoteWarning("line", rec_line, offset, warnings);
  return sink_.Row(rec_line, offset, line);
}

Status LineReader::FinishRecord(size_t len) {
  int64_t rec_line = line_no_;
  LF_RETURN_IF_ERROR(Process(begin_, begin_ + len, rec_line, nullptr));
  line_no_ += std::count(buf_.data() + begin_, buf_.data() + begin_ + len, '\n');
  begin_ = scan_ = std::min(begin_ + len + 1, end_);  // (at the end of the input there is no line break)
  continuing_ = false;
  return Status::Ok();
}

void LineReader::FirstLineOnly(const std::string& why) {
  std::string_view first(buf_.data() + begin_, first_line_len_);
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  ++sink_.out().staged.lines_read;
  sink_.Bad(line_no_, base_offset_ + begin_, first_err_.field, first_err_.reason + why, first);
  begin_ = scan_ = std::min(begin_ + first_line_len_ + 1, end_);
  continuing_ = false;
}

Status LineReader::ContinueCsvRecord(Next* next) {
  *next = Next::kAgain;
  // At most max_line_bytes + 1 bytes of the record are looked at: one more
  // means it is too long, whatever follows.
  size_t limit = std::min(end_ - begin_, max_line_ + 1);
  CsvContinuation::Result r = cont_->Scan(buf_.data() + begin_, limit, &cont_scanned_);
  if (r == CsvContinuation::Result::kEnd) return FinishRecord(cont_scanned_);
  if (r == CsvContinuation::Result::kMalformed) {
    FirstLineOnly("");
  } else if (limit > max_line_) {
    FirstLineOnly("; no closing quote within max_line_bytes (" + std::to_string(max_line_) + ")");
  } else if (eof_) {
    if (cont_->CanEndHere()) return FinishRecord(end_ - begin_);
    FirstLineOnly("; no closing quote before the end of the object");
  } else {
    *next = Next::kMoreInput;
  }
  return Status::Ok();
}

Status LineReader::NextLine(Next* next) {
  const char* nl = static_cast<const char*>(memchr(buf_.data() + scan_, '\n', end_ - scan_));
  bool open = false;
  if (nl) {
    *next = Next::kAgain;
    size_t pos = static_cast<size_t>(nl - buf_.data());
    LF_RETURN_IF_ERROR(Process(begin_, pos, ++line_no_, csv_ ? &open : nullptr));
    if (!open) {
      begin_ = scan_ = pos + 1;
      return Status::Ok();
    }
    continuing_ = true;
    cont_.emplace(delimiter_);
    first_line_len_ = pos - begin_;
    cont_scanned_ = first_line_len_ + 1;
    first_err_ = err_;
    return Status::Ok();
  }
  if (!eof_) {
    *next = Next::kMoreInput;
    return Status::Ok();
  }
  *next = Next::kDone;
  if (begin_ < end_) {
    LF_RETURN_IF_ERROR(Process(begin_, end_, ++line_no_, csv_ ? &open : nullptr));
    if (open) {
      first_line_len_ = end_ - begin_;
      first_err_ = err_;
      FirstLineOnly("; no closing quote before the end of the object");
    }
  }
  return Status::Ok();
}

void LineReader::LongLine(int64_t line, uint64_t offset, std::string_view excerpt) {
  sink_.Bad(line, offset, "", "line longer than max_line_bytes (" + std::to_string(max_line_) + ")", excerpt);
  ++sink_.out().staged.lines_read;
}

void LineReader::SkipLongLine(Next* next) {
  const char* nl = static_cast<const char*>(memchr(buf_.data(), '\n', end_));
  if (nl) {
    skipping_ = false;
    begin_ = scan_ = static_cast<size_t>(nl - buf_.data()) + 1;
    LongLine(skipped_line_, skipped_offset_, skipped_excerpt_);
    *next = Next::kAgain;
  } else if (eof_) {
    LongLine(skipped_line_, skipped_offset_, skipped_excerpt_);
    *next = Next::kDone;
  } else {
    base_offset_ += end_;
    begin_ = scan_ = end_ = 0;
    *next = Next::kMoreInput;
  }
}

Status LineReader::Refill() {
  if (begin_ > 0) {
    memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    base_offset_ += begin_;
    end_ -= begin_;
    scan_ = end_;
    begin_ = 0;
  }
  if (!skipping_ && end_ == buf_.size() - kJsonPadding) {
    // (A csv record being continued is at most max_line_bytes here: one
    // byte more and it would have been cut short above.)
    if (end_ < max_line_ || continuing_) {
      buf_.resize(std::min(buf_.size() * 2, max_line_ + kJsonPadding + 1));
    } else {
      // Over-long line: dead-letter it and discard input up to its end.
      skipping_ = true;
      skipped_line_ = ++line_no_;
      skipped_offset_ = base_offset_;
      skipped_excerpt_.assign(buf_.data(), 200);
      base_offset_ += end_;
      begin_ = scan_ = end_ = 0;
    }
  }
  LF_ASSIGN_OR_RETURN(size_t n, in_.Read(buf_.data() + end_, buf_.size() - kJsonPadding - end_));
  if (n == 0) eof_ = true;
  sink_.out().bytes_uncompressed += n;
  end_ += n;
  return Status::Ok();
}

// Fluentd's msgpack format is a stream of maps, not lines: "line" numbers in
// bad records are record numbers (1-based) and byte offsets point into the
// uncompressed stream. msgpack has no framing to resynchronize on, so after
// undecodable bytes the rest of the object is one bad record.
class MsgpackReader {
 public:
  MsgpackReader(ReadStream& in, const TableConfig& cfg, RecordSink& sink)
      : in_(in),
        sink_(sink),
        // An oversized record is dead-lettered by its size once decoded
        // (max_line_bytes). One still incomplete past this many bytes ends the
        // object as garbage: msgpack lengths come from the data, memory does not.
        hard_cap_(std::max<uint64_t>(4 * static_cast<uint64_t>(cfg.max_line_bytes), 256ull << 20)),
        max_record_(static_cast<size_t>(cfg.max_line_bytes)) {}

  Status ReadAll();

 private:
  // Hands every record the stream holds to the sink; *garbage when the
  // stream turned out undecodable (the rest is then one bad record).
  Status Drain(bool at_end, bool* garbage);
  // A record still incomplete past hard_cap_.
  Status CheckHardCap(bool* garbage);
  Status Handle();
  Status RestIsGarbage(const std::string& why);
  void TruncatedTail();
  std::string PendingExcerpt() const {
    std::string excerpt(stream_.Pending().substr(0, 64));
    return HexEncode(excerpt.data(), excerpt.size());
  }

  ReadStream& in_;
  RecordSink& sink_;
  const uint64_t hard_cap_;
  const size_t max_record_;
  MsgpackStream stream_;
  MsgpackStream::Record rec_;
  LineError err_;
  int64_t record_ = 0;
};

Status MsgpackReader::ReadAll() {
  for (bool at_end = false; !at_end;) {
    char* room = stream_.Reserve(1 << 20);
    LF_ASSIGN_OR_RETURN(size_t n, in_.Read(room, 1 << 20));
    stream_.Commit(n);
    sink_.out().bytes_uncompressed += n;
    at_end = n == 0;
    bool garbage = false;
    LF_RETURN_IF_ERROR(Drain(at_end, &garbage));
    if (!garbage && !at_end && stream_.Pending().size() > hard_cap_) LF_RETURN_IF_ERROR(CheckHardCap(&garbage));
    if (garbage) return Status::Ok();
  }
  if (!stream_.Pending().empty()) TruncatedTail();
  return Status::Ok();
}

Status MsgpackReader::Drain(bool at_end, bool* garbage) {
  for (;;) {
    MsgpackStream::Result r = stream_.Next(&rec_, at_end, max_record_);
    if (r == MsgpackStream::Result::kRecord) {
      LF_RETURN_IF_ERROR(Handle());
      continue;
    }
    if (r == MsgpackStream::Result::kInvalid) {
      *garbage = true;
      return RestIsGarbage(stream_.invalid_reason());
    }
    return Status::Ok();
  }
}

Status MsgpackReader::CheckHardCap(bool* garbage) {
  // The stream skips tries while a long record gathers bytes: make sure it
  // really is incomplete before the rest of the object is given up.
  LF_RETURN_IF_ERROR(Drain(/*at_end=*/true, garbage));
  if (*garbage || stream_.Pending().size() <= hard_cap_) return Status::Ok();
  *garbage = true;
  return RestIsGarbage("msgpack record still incomplete after " + std::to_string(stream_.Pending().size()) + " bytes");
}

Status MsgpackReader::Handle() {
  ++record_;
  ++sink_.out().staged.lines_read;
  if (rec_.size > max_record_ || rec_.json_cut) {
    sink_.Bad(record_, rec_.offset, "",
              "msgpack record of " + std::to_string(rec_.size) + " bytes is larger than max_line_bytes (" +
                  std::to_string(max_record_) + ")",
              "");
    return Status::Ok();
  }
  if (std::string_view(rec_.type) != "map") {
    sink_.Bad(record_, rec_.offset, "", std::string("msgpack value is a ") + rec_.type + ", not a map", rec_.json);
    return Status::Ok();
  }
  size_t len = rec_.json.size();
  rec_.json.append(kJsonPadding, ' ');
  std::string_view json(rec_.json.data(), len);
  RowNormalizer& norm = sink_.norm();
  uint64_t warnings = norm.warnings();
  if (!norm.NormalizeJson(json, rec_.json.size(), sink_.slice(), &err_, record_)) {
    sink_.Bad(record_, rec_.offset, err_.field, err_.reason, json);
    return Status::Ok();
  }
  for (int i = 0; i < rec_.repairs; ++i) norm.AddWarning(rec_.repair);
  sink_.NoteWarning("record", record_, rec_.offset, warnings);
  return sink_.Row(record_, rec_.offset, json);
}

Status MsgpackReader::RestIsGarbage(const std::string& why) {
  ++sink_.out().staged.lines_read;
  std::string_view pending = stream_.Pending();
  uint64_t start = stream_.fed() - pending.size();
  std::string excerpt = PendingExcerpt();
  uint64_t rest = pending.size();
  for (;;) {
    char sink[65536];
    LF_ASSIGN_OR_RETURN(size_t k, in_.Read(sink, sizeof sink));
    if (k == 0) break;
    sink_.out().bytes_uncompressed += k;
    rest += k;
  }
  sink_.Bad(record_ + 1, start, "", why + "; the remaining " + std::to_string(rest) + " bytes cannot be decoded",
            excerpt);
  return Status::Ok();
}

void MsgpackReader::TruncatedTail() {
  ++sink_.out().staged.lines_read;
  std::string_view pending = stream_.Pending();
  sink_.Bad(record_ + 1, stream_.fed() - pending.size(), "",
            "truncated msgpack record (" + std::to_string(pending.size()) + " bytes at the end of the object)",
            PendingExcerpt());
}

}  // namespace

Status ReadRecords(ReadStream& in, const TableConfig& cfg, RecordSink& sink) {
  if (cfg.format.format == LogFormat::kMsgpack) return MsgpackReader(in, cfg, sink).ReadAll();
  return LineReader(in, cfg, sink).ReadAll();
}

}  // namespace logferry
