// RowNormalizer over tsv lines: see normalizer_harness.h for the input
// layout and the invariants checked.
#include "normalizer_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return logferry::fuzz::RunNormalizer(logferry::LogFormat::kTsv, data, size);
}
