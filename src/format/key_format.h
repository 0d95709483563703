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
