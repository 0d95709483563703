// Reading one source object's records, one reader per framing (after
// LevelDB's log::Reader): newline-delimited text (with csv's quoted line
// breaks) and msgpack's stream of maps. A reader hides buffering, partial
// records and over-long ones; every record it finds goes to one RecordSink,
// which normalizes it into the object's part writers or keeps it as a bad
// record. StageObject (stage.h) strings the steps together.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/time.h"
#include "core/config.h"
#include "core/part_writers.h"
#include "core/stage.h"
#include "format/normalizer.h"
#include "store/object_store.h"

namespace logferry {

// How many partitions one object may write (max_partitions_per_object): a
// few garbage timestamps must not cost a load job each. The partition of the
// object's own time slice is always one of them, so garbage that comes first
// cannot push out the records that belong there; the others are taken in the
// order their first record appears.
class PartitionCap {
 public:
  PartitionCap(int64_t unit_us, int64_t max_partitions, std::optional<int64_t> slice_us);
  // Inline: it runs per row, and nearly every row stays in the last partition.
  bool Admit(int64_t time_us) {
    int64_t p = FloorTo(time_us, unit_us_);
    if (p == last_) return true;
    return AdmitNew(p);
  }
  std::string Refusal(int64_t time_us) const;

 private:
  bool AdmitNew(int64_t partition_us);
  int64_t unit_us_;
  size_t max_;
  std::unordered_set<int64_t> admitted_;
  int64_t last_ = INT64_MIN;
};

// Where an object's records go, whatever their framing. Not thread-safe:
// one per object being staged.
class RecordSink {
 public:
  // `slice`: the event time of records that carry none (the key's time slice).
  // `tap` (if set) sees each row too.
  RecordSink(const TableConfig& cfg, RowNormalizer& norm, std::optional<int64_t> slice, PartWriterSet& parts,
             StageOutcome* out, RowTap tap = {});

  // A record that cannot be a row: counted, and kept with an excerpt of
  // `raw` (the first kMaxStoredBadRecords of them). `record` is a line
  // number, or msgpack's record number; `offset` is into the uncompressed
  // object.
  void Bad(int64_t record, uint64_t offset, std::string field, std::string reason, std::string_view raw);
  // The record the normalizer just turned into a row: into the part of its
  // hour, unless its partition would be one more than the object may write
  // (then it is a bad record).
  Status Row(int64_t record, uint64_t offset, std::string_view raw);
  // Keeps the latest repair message if the normalizer's warning count moved
  // past `before` ("line 3 (byte offset 120): …"; `unit` is "line" or "record").
  void NoteWarning(const char* unit, int64_t record, uint64_t offset, uint64_t before) {
    if (norm_.warnings() != before) KeepWarning(unit, record, offset);
  }

  RowNormalizer& norm() { return norm_; }
  std::optional<int64_t> slice() const { return slice_; }
  StageOutcome& out() { return *out_; }

 private:
  void KeepWarning(const char* unit, int64_t record, uint64_t offset);

  RowNormalizer& norm_;
  std::optional<int64_t> slice_;
  PartWriterSet& parts_;
  StageOutcome* out_;
  PartitionCap cap_;
  std::string time_field_;  // the field a refused record is blamed on
  RowTap tap_;
};

// Reads every record of `in` in the table's format into `sink`. Fails only
// if the object cannot be read or decoded; bad records are the sink's.
Status ReadRecords(ReadStream& in, const TableConfig& cfg, RecordSink& sink);

}  // namespace logferry
