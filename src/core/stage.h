// Staging one source object version: stream it through decompression and
// the normalizer into one gzip NDJSON part per event-time hour.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "core/pipeline.h"
#include "format/normalizer.h"

namespace logferry {

// Sees every row as it goes into its part (its event hour, the NDJSON line
// with its newline): `preview` keeps the first few.
using RowTap = std::function<void(int64_t hour_us, std::string_view row)>;

struct StageOutcome {
  StagedObject staged;  // parts, bad records, counts
  uint64_t bytes_uncompressed = 0;
};

// Reads `object` from the table's source and writes its parts to staging.
// Memory and open files are bounded by the read buffer, the longest line, and
// kMaxOpenParts part writers, however many hours the object spans. Records
// past max_partitions_per_object partitions are bad records. Fails (writing
// nothing visible to the ledger) if the object cannot be read or decoded:
// kCorruption names the byte offset; kFailedPrecondition means the object
// changed while being read. The parts are durable (bytes and names) only
// once `table.staging->SyncWritten` has covered them: call it before the
// ledger commit that records them.
StatusOr<StageOutcome> StageObject(TableRuntime& table, const ObjectRow& object, RowNormalizer& normalizer,
                                   const RowTap& tap = {});

// The table's schema as staging extends it: the normalizer's fixed columns,
// the ledger's, then the lineage columns the table asks for (fails, naming
// the table, when a source field already holds a lineage column's name).
StatusOr<std::unique_ptr<SchemaRegistry>> OpenTableSchema(Ledger& ledger, const TableConfig& table);

// How many bad records per object are kept with their excerpt (all are counted).
constexpr size_t kMaxStoredBadRecords = 10000;

}  // namespace logferry
