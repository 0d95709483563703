#include "core/preview.h"

#include <map>

#include "common/strings.h"
#include "common/time.h"
#include "core/stage.h"
#include "format/key_format.h"
#include "format/normalizer.h"

namespace logferry {

namespace {

// A write stream that keeps nothing: preview stages into it.
class DiscardStream final : public WriteStream {
 public:
  explicit DiscardStream(std::string key) : key_(std::move(key)) {}
  Status Write(std::string_view data) override {
    size_ += data.size();
    return Status::Ok();
  }
  StatusOr<WrittenObject> Commit() override { return WrittenObject{key_, size_, "", ""}; }

 private:
  std::string key_;
  uint64_t size_ = 0;
};

// The staging store of a preview: writes succeed and vanish; nothing can be read.
class DiscardStore final : public ObjectStore {
 public:
  const std::string& uri() const override { return uri_; }
  StatusOr<ListPage> List(std::string_view, std::string_view, size_t) override { return ListPage{}; }
  StatusOr<ObjectInfo> Stat(std::string_view key) override {
    return Status::NotFound("preview keeps nothing: " + std::string(key));
  }
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions&) override {
    return Status::NotFound("preview keeps nothing: " + std::string(key));
  }
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    return std::unique_ptr<WriteStream>(std::make_unique<DiscardStream>(std::string(key)));
  }
  Status Delete(std::string_view) override { return Status::Ok(); }

 private:
  std::string uri_ = "preview://discarded/";
};

// Anything the normalizer throws on hostile input is this object's error, as in a real run.
StatusOr<StageOutcome> StageCaught(TableRuntime& t, const ObjectRow& obj, RowNormalizer& norm, const RowTap& tap) {
  try {
    return StageObject(t, obj, norm, tap);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory while parsing");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("unexpected error while parsing: ") + Excerpt(e.what(), 300));
  }
}

void Summarize(const StageOutcome& o, size_t max_rows, PreviewResult* r) {
  const StagedObject& st = o.staged;
  r->lines_read = st.lines_read;
  r->rows_total = st.rows_staged;
  r->bad_total = st.bad_total;
  r->warnings = st.warnings;
  r->warning = st.warning;
  r->bytes_uncompressed = o.bytes_uncompressed;
  for (size_t i = 0; i < st.bad_records.size() && i < max_rows; ++i) r->bad.push_back(st.bad_records[i]);
  std::map<int64_t, int64_t> by_partition;
  for (const PartRow& p : st.parts) by_partition[p.partition_us] += p.rows;
  r->partitions.assign(by_partition.begin(), by_partition.end());
}

}  // namespace

StatusOr<TableRuntime> OpenTableForReading(const TableConfig& cfg, const std::string& source_uri, Ledger* ledger) {
  TableRuntime t;
  t.config = &cfg;
  LF_ASSIGN_OR_RETURN(t.source, OpenTableStore(source_uri, cfg.source_store, cfg.credentials));
  LF_ASSIGN_OR_RETURN(KeyFormat kf, KeyFormat::Compile(cfg.key_format, cfg.time_slice_format, cfg.zone));
  t.key_format = std::make_unique<KeyFormat>(std::move(kf));
  t.schema = std::make_unique<SchemaRegistry>(FixedColumns(cfg.format.format));
  t.schema->set_column_limit(static_cast<size_t>(cfg.max_columns));
  if (ledger) {
    LF_ASSIGN_OR_RETURN(auto columns, ledger->Columns(cfg.name));
    t.schema->Restore(columns);
  }
  return t;
}

StatusOr<PreviewResult> PreviewObject(TableRuntime& t, const std::string& key, size_t max_rows) {
  t.staging = std::make_unique<DiscardStore>();
  LF_ASSIGN_OR_RETURN(ObjectInfo info, t.source->Stat(key));
  ObjectRow obj;
  obj.table = t.config->name;
  obj.key = info.key.empty() ? key : info.key;
  obj.etag = info.etag;
  obj.size = info.size;
  obj.version_id = "preview";
  PreviewResult r;
  r.uri = t.source->UriOf(obj.key);
  RowTap keep_first = [&r, max_rows](int64_t, std::string_view row) {
    if (r.rows.size() < max_rows) r.rows.emplace_back(row.substr(0, row.size() - (row.ends_with('\n') ? 1 : 0)));
  };
  RowNormalizer norm(t.schema.get(), t.config->format);
  LF_ASSIGN_OR_RETURN(StageOutcome outcome, StageCaught(t, obj, norm, keep_first));
  Summarize(outcome, max_rows, &r);
  r.new_columns = t.schema->TakeUnpersisted();
  return r;
}

}  // namespace logferry
