// RowNormalizer on a table at (or a few columns short of) the column limit
// (kMaxColumns): the state a table reaches once someone sends records keyed
// by ids, after which every new field must go to _overflow on both paths.
// A fresh registry is filled per input, so a reproducer replays alone.
//
// Input: byte 0: bits 0-3 how many columns short of the limit the table is
// filled (0-15), bit 4 out_file instead of json; the rest is a
// fuzz_normalizer_json (or _out_file) input: options byte, then one record
// per line. Checked: everything normalizer_harness.h checks (the fast and
// simdjson paths give identical rows and errors, rows fit the final schema),
// and the table never exceeds the limit.
#include "normalizer_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace logferry;
  if (size < 2) return 0;
  const LogFormat format = (data[0] & 16) ? LogFormat::kOutFile : LogFormat::kJson;
  // The registry refuses ordinary columns once it holds kMaxColumns - 8
  // (the rest are kept for internal ones); the fixed columns count too.
  const size_t room = kMaxColumns - 8 - FixedColumns(format).size();
  const size_t prefill = room - std::min<size_t>(data[0] & 15, room);
  return fuzz::RunNormalizer(format, data + 1, size - 1, prefill);
}
