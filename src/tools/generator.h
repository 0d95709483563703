// `logferry gen`: realistic Fluentd out_s3 objects for demos, tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/time.h"

namespace logferry {

struct GenOptions {
  std::string out_dir;                        // local directory (the "bucket")
  std::string prefix = "logs/";               // Fluentd's path
  int64_t start_us = 1470009600LL * 1000000;  // 2016-08-01T00:00:00Z
  int hours = 24;
  int64_t rows_per_hour = 10000;
  int split_every = 3;                        // every Nth hour is written as two objects (_0, _1); 0: never
  int objects_per_hour = 1;                   // each hour's rows split over this many objects (x2 when split)
  double late_fraction = 0.01;                // rows that belong to the previous hour (late events)
  std::string format = "out_file";            // out_file | json
  TimeZone zone = TimeZone::Fixed(9 * 3600);  // of times and time slices (+09:00)
  bool gzip = true;
  uint64_t seed = 1;
};

struct GenResult {
  int64_t objects = 0;
  int64_t rows = 0;
  uint64_t bytes_uncompressed = 0;
};

StatusOr<GenResult> Generate(const GenOptions& options);

}  // namespace logferry
