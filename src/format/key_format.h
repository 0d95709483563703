// Fluentd out_s3's s3_object_key_format, compiled into a matcher for the keys
// it produces. Placeholders: %{path} (any prefix, may be empty), %{time_slice}
// (per time_slice_format), %{index} (digits), %{file_extension} (gz, json,
// txt, zst, ...), %{hex_random}, %{uuid_flush}, %{chunk_id} (hex/uuid text),
// %{hostname} (anything but '/').
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace logferry {

struct KeyMatch {
  std::optional<int64_t> time_slice_us;  // start of the slice, UTC
  int64_t index = -1;
  size_t time_slice_pos = std::string_view::npos;  // where the time slice starts in the key
};

class KeyFormat {
 public:
  static StatusOr<KeyFormat> Compile(std::string_view key_format, std::string_view time_slice_format,
                                     const TimeZone& zone);
  // Matches a key relative to the source root; nullopt if it is not one of ours.
  std::optional<KeyMatch> Match(std::string_view key) const;
  // The key Fluentd would write (used by the generator).
  std::string Format(std::string_view path, int64_t slice_us, int index, std::string_view ext) const;
  const TimeLayout& time_slice() const { return slice_; }

  // Windowed listing (discovery/listing_discovery.h) lists, under each
  // prefix a key has before its time slice, only the keys from a slice on.
  // That finds every newer key only when the slice follows a prefix that is
  // the same for all of a writer's keys (literals, %{path}, %{hostname},
  // %{tag}) and its text sorts like time (fixed-width fields from the year
  // down). Empty when it does; otherwise why not, for `check`.
  std::string WindowBlocker() const;
  // The part of one of our keys before its time slice; nullopt when the key
  // is not ours or has no time slice.
  std::optional<std::string> SlicePrefix(std::string_view key) const;
  // A start-after key under prefix such that every key there whose slice
  // holds an instant in [from_us, now_us] sorts after it. On a zone whose
  // clock goes back (daylight saving ends) inside that span, it starts
  // earlier by the amount the clock goes back.
  std::string WindowStart(std::string_view prefix, int64_t from_us, int64_t now_us) const;
  // Whether key, under prefix, sorts after the keys of every slice up to
  // until_us: a listing in key order may stop there.
  bool PastWindow(std::string_view prefix, std::string_view key, int64_t until_us) const;

 private:
  enum class Kind { kLiteral, kPath, kTimeSlice, kIndex, kExtension, kHex, kAnyNoSlash };
  struct Item {
    Kind kind;
    std::string literal;
  };
  // `failed` remembers the (item, pos) pairs from which no match exists:
  // each variable-width placeholder backtracks over its span, so without it
  // three of them made matching cubic in the key length (18 s for an
  // 800-byte key, found by fuzz_key_format); with it every pair is tried
  // once.
  bool MatchFrom(size_t item, std::string_view key, size_t pos, KeyMatch* m, std::vector<bool>* failed) const;
  bool MatchItem(size_t item, std::string_view key, size_t pos, KeyMatch* m, std::vector<bool>* failed) const;

  std::vector<Item> items_;
  TimeLayout slice_;
  TimeZone zone_;
};

}  // namespace logferry
