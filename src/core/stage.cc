#include "core/stage.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <unordered_set>

#include "common/strings.h"
#include "common/time.h"
#include "core/part_writers.h"
#include "format/compression.h"
#include "format/msgpack_json.h"

namespace logferry {

namespace {

constexpr size_t kReadBlock = 4 << 20;

// How many partitions one object may write (max_partitions_per_object): a
// few garbage timestamps must not cost a load job each. The partition of the
// object's own time slice is always one of them, so garbage that comes first
// cannot push out the records that belong there; the others are taken in the
// order their first record appears.
class PartitionCap {
 public:
  PartitionCap(int64_t unit_us, int64_t max_partitions, std::optional<int64_t> slice_us)
      : unit_us_(unit_us), max_(static_cast<size_t>(std::max<int64_t>(max_partitions, 1))) {
    if (slice_us) Admit(*slice_us);
  }

  bool Admit(int64_t time_us) {
    int64_t p = FloorTo(time_us, unit_us_);
    if (p == last_) return true;
    if (!admitted_.count(p)) {
      if (admitted_.size() >= max_) return false;
      admitted_.insert(p);
    }
    last_ = p;
    return true;
  }

  std::string Refusal(int64_t time_us) const {
    return "event time " + FormatIso8601(time_us) + " would open partition " + FormatHour(FloorTo(time_us, unit_us_)) +
           ", past max_partitions_per_object (" + std::to_string(max_) + ") for this object";
  }

 private:
  int64_t unit_us_;
  size_t max_;
  std::unordered_set<int64_t> admitted_;
  int64_t last_ = INT64_MIN;
};

// Fluentd's msgpack format is a stream of maps, not lines: "line" numbers in
// bad records are record numbers (1-based) and byte offsets point into the
// uncompressed stream. msgpack has no framing to resynchronize on, so after
// undecodable bytes the rest of the object is one bad record.
template <typename EmitRow, typename AddBad>
Status ReadMsgpack(ReadStream& in, const TableConfig& cfg, RowNormalizer& norm, std::optional<int64_t> slice,
                   StageOutcome* out, EmitRow& emit_row, AddBad& add_bad) {
  // An oversized record is dead-lettered by its size once decoded
  // (max_line_bytes). One still incomplete past this many bytes ends the
  // object as garbage: msgpack lengths come from the data, memory does not.
  const uint64_t hard_cap = std::max<uint64_t>(4 * static_cast<uint64_t>(cfg.max_line_bytes), 256ull << 20);
  const size_t max_record = static_cast<size_t>(cfg.max_line_bytes);
  MsgpackStream stream;
  MsgpackStream::Record rec;
  LineError err;
  int64_t record = 0;
  auto handle = [&]() -> Status {
    ++record;
    ++out->staged.lines_read;
    if (rec.size > max_record || rec.json_cut) {
      add_bad(record, rec.offset, "",
              "msgpack record of " + std::to_string(rec.size) + " bytes is larger than max_line_bytes (" +
                  std::to_string(max_record) + ")",
              "");
      return Status::Ok();
    }
    if (std::string_view(rec.type) != "map") {
      add_bad(record, rec.offset, "", std::string("msgpack value is a ") + rec.type + ", not a map", rec.json);
      return Status::Ok();
    }
    size_t len = rec.json.size();
    rec.json.append(kJsonPadding, ' ');
    uint64_t warnings = norm.warnings();
    if (!norm.NormalizeJson(std::string_view(rec.json.data(), len), rec.json.size(), slice, &err)) {
      add_bad(record, rec.offset, err.field, err.reason, std::string_view(rec.json.data(), len));
      return Status::Ok();
    }
    for (int i = 0; i < rec.repairs; ++i) norm.AddWarning(rec.repair);
    if (norm.warnings() != warnings)
      out->staged.warning = "record " + std::to_string(record) + " (byte offset " + std::to_string(rec.offset) +
                            "): " + norm.last_warning();
    return emit_row(record, rec.offset, std::string_view(rec.json.data(), len));
  };
  // No framing to resynchronize on: from undecodable bytes on, the rest of
  // the object is one bad record.
  auto rest_is_garbage = [&](const std::string& why) -> Status {
    ++out->staged.lines_read;
    std::string_view pending = stream.Pending();
    uint64_t start = stream.fed() - pending.size();
    std::string excerpt(pending.substr(0, 64));
    uint64_t rest = pending.size();
    for (;;) {
      char sink[65536];
      LF_ASSIGN_OR_RETURN(size_t k, in.Read(sink, sizeof sink));
      if (k == 0) break;
      out->bytes_uncompressed += k;
      rest += k;
    }
    add_bad(record + 1, start, "", why + "; the remaining " + std::to_string(rest) + " bytes cannot be decoded",
            HexEncode(excerpt.data(), excerpt.size()));
    return Status::Ok();
  };
  for (bool at_end = false; !at_end;) {
    char* room = stream.Reserve(1 << 20);
    LF_ASSIGN_OR_RETURN(size_t n, in.Read(room, 1 << 20));
    stream.Commit(n);
    out->bytes_uncompressed += n;
    at_end = n == 0;
    for (;;) {
      MsgpackStream::Result r = stream.Next(&rec, at_end, max_record);
      if (r == MsgpackStream::Result::kRecord) {
        LF_RETURN_IF_ERROR(handle());
        continue;
      }
      if (r == MsgpackStream::Result::kInvalid) return rest_is_garbage(stream.invalid_reason());
      break;
    }
    if (!at_end && stream.Pending().size() > hard_cap) {
      // The stream skips tries while a long record gathers bytes: make sure
      // it really is incomplete before the rest of the object is given up.
      MsgpackStream::Result r;
      while ((r = stream.Next(&rec, /*force=*/true, max_record)) == MsgpackStream::Result::kRecord)
        LF_RETURN_IF_ERROR(handle());
      if (r == MsgpackStream::Result::kInvalid) return rest_is_garbage(stream.invalid_reason());
      if (stream.Pending().size() > hard_cap)
        return rest_is_garbage("msgpack record still incomplete after " + std::to_string(stream.Pending().size()) +
                               " bytes");
    }
  }
  if (!stream.Pending().empty()) {
    ++out->staged.lines_read;
    std::string_view pending = stream.Pending();
    std::string excerpt(pending.substr(0, 64));
    add_bad(record + 1, stream.fed() - pending.size(), "",
            "truncated msgpack record (" + std::to_string(pending.size()) + " bytes at the end of the object)",
            HexEncode(excerpt.data(), excerpt.size()));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<StageOutcome> StageObject(TableRuntime& t, const ObjectRow& obj, RowNormalizer& norm) {
  const TableConfig& cfg = *t.config;
  StageOutcome out;
  out.staged.object_id = obj.id;
  norm.BeginObject();  // this object's own budget of new columns
  std::optional<int64_t> slice;
  if (auto m = t.key_format->Match(obj.key)) slice = m->time_slice_us;

  norm.TakeColumnsWritten();  // an earlier object's, if it failed part-way
  ReadOptions ro;
  ro.if_etag = obj.etag;
  LF_ASSIGN_OR_RETURN(auto raw, t.source->OpenRead(obj.key, ro));
  LF_ASSIGN_OR_RETURN(auto in, OpenDecoder(std::move(raw), cfg.compression));

  PartWriterSet parts(*t.staging, [&](int64_t hour) { return Pipeline::PartKey(cfg.name, hour, obj.version_id); });
  PartitionCap cap(cfg.partition_unit_us, cfg.max_partitions_per_object, slice);
  const std::string time_field = cfg.format.format == LogFormat::kOutFile ? "time" : cfg.format.time_key;

  const size_t pad = kJsonPadding;
  const size_t max_line = static_cast<size_t>(cfg.max_line_bytes);
  // One read window per worker thread, reused across objects: allocating and
  // zero-filling 4 MiB per object showed up in profiles. A window grown for a
  // very long line is given back before the next object.
  thread_local std::vector<char> buf;
  if (buf.size() < kReadBlock + pad || buf.size() > 16 * kReadBlock) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(kReadBlock + pad);
  }
  size_t begin = 0, end = 0, scan = 0;
  uint64_t base_offset = 0;  // uncompressed offset of buf[0]
  int64_t line_no = 0;
  bool eof = false;
  bool skipping = false;  // inside an over-long line being discarded
  LineError err;
  uint64_t warnings_before = norm.warnings();

  auto add_bad = [&](int64_t line, uint64_t offset, std::string field, std::string reason, std::string_view raw_line) {
    ++out.staged.bad_total;
    if (out.staged.bad_records.size() < kMaxStoredBadRecords) {
      out.staged.bad_records.push_back(
          BadRecord{line, static_cast<int64_t>(offset), std::move(field), std::move(reason), Excerpt(raw_line, 200)});
    }
  };
  // The normalized record into its hour's part, unless its partition would
  // be one more than the object may write: then it is a bad record.
  auto emit_row = [&](int64_t line, uint64_t offset, std::string_view raw_line) -> Status {
    if (!cap.Admit(norm.time())) {
      add_bad(line, offset, time_field, cap.Refusal(norm.time()), raw_line);
      return Status::Ok();
    }
    ++out.staged.rows_staged;
    return parts.Append(FloorTo(norm.time(), kMicrosPerHour), norm.row());
  };

  // One record: a line, or for csv the lines a quoted line break joins.
  // `rec_line` is its first line's number. With `open_quote` (csv), a line
  // that ends inside a quoted field is not judged: *open_quote is set and
  // the caller reads on (the record is then counted once, when it ends).
  // (Status and an out-parameter rather than StatusOr<bool>: this runs per
  // line, and the variant cost 0.2% of staging in callgrind.)
  auto process = [&](size_t rec_begin, size_t rec_end, int64_t rec_line, bool* open_quote) -> Status {
    std::string_view line(buf.data() + rec_begin, rec_end - rec_begin);
    uint64_t offset = base_offset + rec_begin;
    if (rec_line == 1 && line.size() >= 3 && memcmp(line.data(), "\xEF\xBB\xBF", 3) == 0) line.remove_prefix(3);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Only a truly empty line is no record: a line of spaces or tabs is read,
    // and becomes a row or a bad record like any other.
    if (line.empty()) return Status::Ok();
    if (line.size() > max_line) {
      ++out.staged.lines_read;
      add_bad(rec_line, offset, "", "line longer than max_line_bytes (" + std::to_string(max_line) + ")", line);
      return Status::Ok();
    }
    size_t capacity = buf.size() - static_cast<size_t>(line.data() - buf.data());
    uint64_t warnings = norm.warnings();
    if (!norm.Normalize(line, capacity, slice, &err)) {
      if (open_quote && err.open_quote) {
        *open_quote = true;
        return Status::Ok();
      }
      ++out.staged.lines_read;
      add_bad(rec_line, offset, err.field, err.reason, line);
      return Status::Ok();
    }
    ++out.staged.lines_read;
    if (norm.warnings() != warnings)
      out.staged.warning =
          "line " + std::to_string(rec_line) + " (byte offset " + std::to_string(offset) + "): " + norm.last_warning();
    return emit_row(rec_line, offset, line);
  };

  // csv: a record whose quoted field runs past the end of its first line.
  // It ends at the first line break outside quotes. If its quoting goes wrong
  // instead (text after a closing quote), or the object ends inside the
  // quotes, or it would grow past max_line_bytes, the first line alone is
  // the bad record and the lines after it are read as records of their own,
  // so nothing else is lost. Positions are relative to `begin`, which moves
  // when the buffer is compacted.
  const bool csv = cfg.format.format == LogFormat::kCsv;
  bool continuing = false;
  std::optional<CsvContinuation> cont;
  size_t cont_scanned = 0;    // how far the record has been scanned
  size_t first_line_len = 0;  // its first line (without the line break)
  LineError first_err;        // why its first line alone is not a record
  // Ends the record in progress at `len` (a record), or as its first line only.
  auto finish_record = [&](size_t len) -> Status {
    int64_t rec_line = line_no;
    LF_RETURN_IF_ERROR(process(begin, begin + len, rec_line, nullptr));
    line_no += std::count(buf.data() + begin, buf.data() + begin + len, '\n');
    begin = scan = std::min(begin + len + 1, end);  // (at the end of the input there is no line break)
    continuing = false;
    return Status::Ok();
  };
  auto first_line_only = [&](const std::string& why) {
    std::string_view first(buf.data() + begin, first_line_len);
    if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
    ++out.staged.lines_read;
    add_bad(line_no, base_offset + begin, first_err.field, first_err.reason + why, first);
    begin = scan = std::min(begin + first_line_len + 1, end);
    continuing = false;
  };

  // Lines: split in place in the read window; a line is never copied.
  auto read_lines = [&]() -> Status {
    int64_t skipped_line = 0;
    uint64_t skipped_offset = 0;
    std::string skipped_excerpt;
    while (true) {
      if (continuing) {
        // At most max_line_bytes + 1 bytes of the record are looked at: one
        // more means it is too long, whatever follows.
        size_t limit = std::min(end - begin, max_line + 1);
        CsvContinuation::Result r = cont->Scan(buf.data() + begin, limit, &cont_scanned);
        if (r == CsvContinuation::Result::kEnd) {
          LF_RETURN_IF_ERROR(finish_record(cont_scanned));
          continue;
        }
        if (r == CsvContinuation::Result::kMalformed) {
          first_line_only("");
          continue;
        }
        if (limit > max_line) {
          first_line_only("; no closing quote within max_line_bytes (" + std::to_string(max_line) + ")");
          continue;
        }
        if (eof) {
          if (cont->CanEndHere()) {
            LF_RETURN_IF_ERROR(finish_record(end - begin));
          } else {
            first_line_only("; no closing quote before the end of the object");
          }
          continue;
        }
      } else if (!skipping) {
        const char* nl = static_cast<const char*>(memchr(buf.data() + scan, '\n', end - scan));
        if (nl) {
          size_t pos = static_cast<size_t>(nl - buf.data());
          bool open = false;
          LF_RETURN_IF_ERROR(process(begin, pos, ++line_no, csv ? &open : nullptr));
          if (open) {
            continuing = true;
            cont.emplace(cfg.format.delimiter);
            first_line_len = pos - begin;
            cont_scanned = first_line_len + 1;
            first_err = err;
            continue;
          }
          begin = scan = pos + 1;
          continue;
        }
        if (eof) {
          if (begin < end) {
            bool open = false;
            LF_RETURN_IF_ERROR(process(begin, end, ++line_no, csv ? &open : nullptr));
            if (open) {
              first_line_len = end - begin;
              first_err = err;
              first_line_only("; no closing quote before the end of the object");
            }
          }
          break;
        }
      } else {
        const char* nl = static_cast<const char*>(memchr(buf.data(), '\n', end));
        if (nl) {
          skipping = false;
          begin = scan = static_cast<size_t>(nl - buf.data()) + 1;
          add_bad(skipped_line, skipped_offset, "",
                  "line longer than max_line_bytes (" + std::to_string(max_line) + ")", skipped_excerpt);
          ++out.staged.lines_read;
          continue;
        }
        if (eof) {
          add_bad(skipped_line, skipped_offset, "",
                  "line longer than max_line_bytes (" + std::to_string(max_line) + ")", skipped_excerpt);
          ++out.staged.lines_read;
          break;
        }
        base_offset += end;
        begin = scan = end = 0;
      }
      // Need more input: keep the partial line (or record) at the front of the buffer.
      if (begin > 0) {
        memmove(buf.data(), buf.data() + begin, end - begin);
        base_offset += begin;
        end -= begin;
        scan = end;
        begin = 0;
      }
      if (!skipping && end == buf.size() - pad) {
        // (A csv record being continued is at most max_line_bytes here: one
        // byte more and it would have been cut short above.)
        if (end < max_line || continuing) {
          buf.resize(std::min(buf.size() * 2, max_line + pad + 1));
        } else {
          // Over-long line: dead-letter it and discard input up to its end.
          skipping = true;
          skipped_line = ++line_no;
          skipped_offset = base_offset;
          skipped_excerpt.assign(buf.data(), 200);
          base_offset += end;
          begin = scan = end = 0;
        }
      }
      LF_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data() + end, buf.size() - pad - end));
      if (n == 0) eof = true;
      out.bytes_uncompressed += n;
      end += n;
    }
    return Status::Ok();
  };
  if (cfg.format.format == LogFormat::kMsgpack) {
    LF_RETURN_IF_ERROR(ReadMsgpack(*in, cfg, norm, slice, &out, emit_row, add_bad));
  } else {
    LF_RETURN_IF_ERROR(read_lines());
  }

  LF_ASSIGN_OR_RETURN(std::vector<FinishedPart> finished, parts.Finish());
  std::string columns = Join(norm.TakeColumnsWritten(), ",");
  for (FinishedPart& f : finished) {
    PartRow p;
    p.object_id = obj.id;
    p.hour_us = f.hour_us;
    p.partition_us = FloorTo(f.hour_us, cfg.partition_unit_us);
    p.key = std::move(f.key);
    p.rows = f.rows;
    p.bytes = static_cast<int64_t>(f.written.size);
    p.crc32c = f.written.crc32c;
    p.columns = columns;  // the object's, a superset of each part's
    out.staged.parts.push_back(std::move(p));
  }
  out.staged.warnings = static_cast<int64_t>(norm.warnings() - warnings_before);
  return out;
}

}  // namespace logferry
