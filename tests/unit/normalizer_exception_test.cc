// An exception inside the normalizer (here: an allocation that fails) must
// fail that one record, not the worker, and leave nothing half-done behind:
// the same record afterwards gives the row an untouched normalizer gives.
//
// The failures come from a replacement of the global operator new that
// throws std::bad_alloc on the Nth allocation of the calling thread. Under a
// sanitizer, whose runtime owns operator new, it is left out and the test
// skipped.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <new>
#include <string>

#include "format/normalizer.h"
#include "schema/schema.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOGFERRY_NO_NEW_REPLACEMENT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define LOGFERRY_NO_NEW_REPLACEMENT 1
#endif
#endif

namespace {
thread_local long fail_in = -1;  // allocations left before one throws; -1: never
}  // namespace

#ifndef LOGFERRY_NO_NEW_REPLACEMENT
// Every form below allocates with malloc and frees with free, so they match;
// GCC sees only free() called on what "operator new" returned.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (fail_in >= 0 && fail_in-- == 0) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// The nothrow forms never fail here: simdjson 3.0.1 allocates with them and
// does not check one (ondemand::parser::allocate's string buffer), which no
// caller can repair; a failure there is simdjson's to fix, not this test's.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop
#endif

namespace logferry {
namespace {

struct Outcome {
  bool ok = false;
  std::string row;
  LineError err;
};

Outcome Normalize(RowNormalizer& n, const std::string& line, long fail_after) {
  std::string buf = line + std::string(simdjson::SIMDJSON_PADDING, 'x');
  Outcome r;
  fail_in = fail_after;
  r.ok = n.Normalize(std::string_view(buf.data(), line.size()), buf.size(), std::nullopt, &r.err);
  fail_in = -1;
  if (r.ok) r.row = std::string(n.row());
  return r;
}

TEST(NormalizerExceptions, AFailedAllocationFailsOnlyThatRecord) {
#ifdef LOGFERRY_NO_NEW_REPLACEMENT
  GTEST_SKIP() << "operator new belongs to the sanitizer here";
#endif
  // Fresh normalizers each time, so the Nth allocation is the same place in
  // the work every time: N = 0, 1, 2, ... visits every allocation of a record
  // (its columns, companions, _overflow, the tag, time and timestamp caches).
  const std::string line =
      "2016-08-01T00:00:10Z\tapp.access.with.a.long.tag.name.beyond.small.strings\t"
      "{\"f\":{\"x\":[1,2,{\"y\":\"s\"}]},\"at\":\"2016-08-02T00:10:00.123+09:00\",\"m\":[1,\"two\"],"
      "\"u\":\"\\u00e9\",\"d\":{\"a\":1,\"a\":2},\"n\":1,\"n2\":{\"deep\":1.5}}";
  for (bool fast : {true, false}) {
    SCOPED_TRACE(fast ? "fast" : "slow");
    FormatOptions opts;  // out_file: the tag and time caches are exercised too
    int failed = 0;
    long k = 0;
    for (; k < 5000; ++k) {
      SchemaRegistry ref_schema(FixedColumns(opts.format)), schema(FixedColumns(opts.format));
      RowNormalizer ref(&ref_schema, opts), norm(&schema, opts);
      ref.set_fast_path(fast);
      norm.set_fast_path(fast);
      Outcome expected = Normalize(ref, line, -1);
      ASSERT_TRUE(expected.ok) << expected.err.reason;
      Outcome r = Normalize(norm, line, k);
      if (r.ok) break;  // k is past the record's last allocation: all were visited
      ++failed;
      EXPECT_EQ(r.err.reason, "internal error while normalizing: std::bad_alloc") << "k=" << k;
      // Twice: the first may fill caches the failure left empty.
      for (int i = 0; i < 2; ++i) {
        Outcome again = Normalize(norm, line, -1);
        ASSERT_TRUE(again.ok) << "k=" << k << ": " << again.err.reason;
        EXPECT_EQ(again.row, expected.row) << "k=" << k;
      }
      EXPECT_EQ(schema.Columns(), ref_schema.Columns()) << "k=" << k;
    }
    EXPECT_LT(k, 5000);
    EXPECT_GT(failed, 10) << "the failures did reach the normalizer";
  }
}

}  // namespace
}  // namespace logferry
