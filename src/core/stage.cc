#include "core/stage.h"

#include "common/strings.h"
#include "common/time.h"
#include "core/part_writers.h"
#include "core/record_readers.h"
#include "format/compression.h"

namespace logferry {

namespace {

// The object's bytes as they were when it was listed (its ETag), decompressed.
StatusOr<std::unique_ptr<ReadStream>> OpenSource(TableRuntime& t, const ObjectRow& obj) {
  ReadOptions ro;
  ro.if_etag = obj.etag;
  LF_ASSIGN_OR_RETURN(auto raw, t.source->OpenRead(obj.key, ro));
  return OpenDecoder(std::move(raw), t.config->compression);
}

// The ledger's rows for the finished parts; each lists the object's columns,
// a superset of its own.
void RecordParts(std::vector<FinishedPart>& finished, const ObjectRow& obj, const TableConfig& cfg,
                 const std::string& columns, StagedObject* staged) {
  for (FinishedPart& f : finished) {
    PartRow p;
    p.object_id = obj.id;
    p.hour_us = f.hour_us;
    p.partition_us = FloorTo(f.hour_us, cfg.partition_unit_us);
    p.key = std::move(f.key);
    p.rows = f.rows;
    p.bytes = static_cast<int64_t>(f.written.size);
    p.crc32c = f.written.crc32c;
    p.columns = columns;
    staged->parts.push_back(std::move(p));
  }
}

}  // namespace

StatusOr<std::unique_ptr<SchemaRegistry>> OpenTableSchema(Ledger& ledger, const TableConfig& tc) {
  auto schema = std::make_unique<SchemaRegistry>(FixedColumns(tc.format.format));
  schema->set_column_limit(static_cast<size_t>(tc.max_columns));
  LF_ASSIGN_OR_RETURN(auto columns, ledger.Columns(tc.name));
  schema->Restore(columns);
  if (Status s = AddLineageColumns(schema.get(), tc.lineage); !s.ok())
    return Status(s.code(), "table '" + tc.name + "': " + s.message());
  return schema;
}

StatusOr<StageOutcome> StageObject(TableRuntime& t, const ObjectRow& obj, RowNormalizer& norm, const RowTap& tap) {
  const TableConfig& cfg = *t.config;
  StageOutcome out;
  out.staged.object_id = obj.id;
  norm.BeginObject(obj.key);  // this object's own budget of new columns, and its _source
  std::optional<int64_t> slice;
  if (auto m = t.key_format->Match(obj.key)) slice = m->time_slice_us;
  norm.TakeColumnsWritten();  // an earlier object's, if it failed part-way
  LF_ASSIGN_OR_RETURN(auto in, OpenSource(t, obj));

  PartWriterSet parts(*t.staging, [&](int64_t hour) { return Pipeline::PartKey(cfg.name, hour, obj.version_id); });
  uint64_t warnings_before = norm.warnings();
  RecordSink sink(cfg, norm, slice, parts, &out, tap);
  LF_RETURN_IF_ERROR(ReadRecords(*in, cfg, sink));

  LF_ASSIGN_OR_RETURN(std::vector<FinishedPart> finished, parts.Finish());
  RecordParts(finished, obj, cfg, Join(norm.TakeColumnsWritten(), ","), &out.staged);
  out.staged.warnings = static_cast<int64_t>(norm.warnings() - warnings_before);
  return out;
}

}  // namespace logferry
