// RowNormalizer on a table at the column limit (kMaxColumns): the state a
// table reaches once someone sends records keyed by ids, after which every
// new field must go to _overflow, on the fast path as on the simdjson path.
//
// Filling a registry takes 10,000 columns, far too slow per input, so each
// format has one pair of registries (for the fast and the simdjson path),
// filled once and shared by every input, as a table's registry is shared by
// every object. At the limit they cannot grow; an input can only fix the
// type of a filler column ("fill<N>"), so a reproducer almost always
// replays alone. The normalizers are new for every input.
//
// Input: byte 0: bit 4 out_file instead of json, bits 5-6 how many times
// each line is fed (1-4: log records repeat their shape, and caches keyed
// by shape only matter from the second record on); the rest is a
// fuzz_normalizer_json (or _out_file) input: options byte, then one record
// per line. Checked: everything normalizer_harness.h checks (the fast and
// simdjson paths give identical rows and errors, rows fit the final schema,
// the table stays within the limit).
#include "normalizer_harness.h"

namespace {

using namespace logferry;

// Registries filled with ordinary columns until they refuse one.
struct Full {
  explicit Full(LogFormat format) : fast(FixedColumns(format)), slow(FixedColumns(format)) {
    for (size_t i = 0;; ++i) {
      std::string key = "fill" + std::to_string(i);
      Column* f = fast.Child(fast.root(), key);
      Column* s = slow.Child(slow.root(), key);
      fuzz::Require((f == nullptr) == (s == nullptr), "the registries fill differently");
      if (!f) break;
    }
  }
  SchemaRegistry fast, slow;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const LogFormat format = (data[0] & 16) ? LogFormat::kOutFile : LogFormat::kJson;
  static Full json(LogFormat::kJson), out_file(LogFormat::kOutFile);
  Full& full = format == LogFormat::kJson ? json : out_file;
  const int times = 1 + ((data[0] >> 5) & 3);
  std::string text(1, static_cast<char>(data[1]));
  for (std::string_view line : fuzz::SplitLines(std::string_view(reinterpret_cast<const char*>(data + 2), size - 2)))
    for (int i = 0; i < times; ++i) text.append(line).push_back('\n');
  return fuzz::RunNormalizer(format, reinterpret_cast<const uint8_t*>(text.data()), text.size(), &full.fast,
                             &full.slow);
}
