// out_s3 key formats: KeyFormat::Compile, Match and Format.
//
// Input: up to four '\n'-separated parts: key_format, time_slice_format,
// timezone (ParseUtcOffset), key. A missing or empty part takes Fluentd's
// default ("%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H",
// UTC). A key_format or time_slice_format of one byte "0".."9" picks one of
// the known-good formats below instead.
//
// Checked: nothing crashes or hangs for any format and key. Match is
// deterministic, and a match's time slice formats back to a slice Match
// accepts. For the known-good (unambiguous) formats, Format round-trips:
// a key made by Format from a slice start, index, path and extension derived
// from the input matches, giving back that slice start and index.
#include <cstring>
#include <string>

#include "common/time.h"
#include "format/key_format.h"
#include "fuzz_common.h"

namespace {

using namespace logferry;
using logferry::fuzz::Require;

constexpr const char* kDefaultKeyFormat = "%{path}%{time_slice}_%{index}.%{file_extension}";

// Formats whose keys parse back unambiguously when the path is empty or ends
// in '/' after a letter, and the extension has no '/'.
const char* const kKeyFormats[] = {
    kDefaultKeyFormat,
    "%{path}%{time_slice}/%{index}.%{file_extension}",
    "%{path}%{time_slice}_%{hex_random}_%{index}.%{file_extension}",
    "%{path}dt=%{time_slice}/part_%{index}.%{file_extension}",
    "%{path}%{time_slice}-%{uuid_flush}.%{file_extension}",
    "%{hostname}/%{time_slice}_%{index}.%{file_extension}",
    "%{path}%{time_slice}_%{index}_%{hostname}.%{file_extension}",
    "%{path}%{time_slice}.%{file_extension}",
    "%{path}%{index}/%{time_slice}.%{file_extension}",
    "%{path}%{time_slice}/%{chunk_id}.%{file_extension}",
};
// Slice formats that format and parse back (years 0001..9999, any offset).
const char* const kSliceFormats[] = {
    "%Y%m%d%H",    "%Y/%m/%d/%H", "%Y-%m-%d", "%Y%m%d", "%Y%m%d%H%M",
    "%Y-%m-%dT%H", "%Y/%j/%H",    "%Y%m",     "%F-%H",  "%Y_%b_%d",
};

// Variable-width placeholders in a format. Matching remembers the (item,
// position) pairs that fail, so each placeholder costs at most quadratic time
// in the key length; the cap keeps one input within the timeout. (Before
// that memo, three took cubic time: regression-three-variable-placeholders.)
// Real formats have one or two.
int VariableWidthPlaceholders(std::string_view fmt) {
  int n = 0;
  for (const char* p : {"%{path}", "%{file_extension}", "%{hex_random}", "%{uuid_flush}", "%{chunk_id}", "%{unique_id}",
                        "%{hostname}", "%{tag}"}) {
    for (size_t at = fmt.find(p); at != std::string_view::npos; at = fmt.find(p, at + 1)) ++n;
  }
  return n;
}

std::string Show(const std::optional<KeyMatch>& m) {
  if (!m) return "no match";
  return "slice " + (m->time_slice_us ? FormatIso8601(*m->time_slice_us) : std::string("none")) + " index " +
         std::to_string(m->index);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    if (i == 3) {
      parts[i] = in;  // the key: the rest, newlines and all
      break;
    }
    size_t nl = in.find('\n');
    parts[i] = in.substr(0, nl);
    if (nl == std::string_view::npos) {
      in = {};
    } else {
      in.remove_prefix(nl + 1);
    }
  }
  bool known_format = false, known_slice = false;
  std::string key_format(parts[0].empty() ? kDefaultKeyFormat : parts[0]);
  std::string slice_format(parts[1].empty() ? "%Y%m%d%H" : parts[1]);
  if (parts[0].empty()) known_format = true;
  if (parts[1].empty()) known_slice = true;
  if (key_format.size() == 1 && key_format[0] >= '0' && key_format[0] <= '9') {
    key_format = kKeyFormats[key_format[0] - '0'];
    known_format = true;
  }
  if (slice_format.size() == 1 && slice_format[0] >= '0' && slice_format[0] <= '9') {
    slice_format = kSliceFormats[slice_format[0] - '0'];
    known_slice = true;
  }
  int32_t offset = 0;
  if (!parts[2].empty()) {
    auto o = ParseUtcOffset(parts[2]);
    if (o.ok()) offset = *o;
  }
  const TimeZone zone = TimeZone::Fixed(offset);
  std::string_view key = parts[3];
  if (VariableWidthPlaceholders(key_format) > 8 || key.size() > 1024) return 0;  // S3 keys are at most 1024 bytes

  auto kf = KeyFormat::Compile(key_format, slice_format, zone);
  if (!kf.ok()) {
    Require(!known_format || !known_slice, "a known-good format does not compile", kf.status().ToString());
    return 0;
  }
  std::string ctx = "key_format: " + key_format + "\ntime_slice_format: " + slice_format +
                    "\noffset: " + std::to_string(offset) + "\nkey: " + std::string(key);

  auto m = kf->Match(key);
  auto again = kf->Match(key);
  Require(m.has_value() == again.has_value() &&
              (!m || (m->index == again->index && m->time_slice_us == again->time_slice_us)),
          "Match is not deterministic", ctx);
  if (m && m->time_slice_us && known_slice) {
    // The slice a key names formats back to text that parses to the same instant.
    const TimeLayout& slice = kf->time_slice();
    std::string text = slice.Format(*m->time_slice_us, zone);
    auto back = slice.Parse(text, zone);
    Require(back.has_value() && *back == *m->time_slice_us, "a matched slice does not survive Format and Parse",
            ctx + "\nmatch: " + Show(m) + "\nformatted: " + text);
  }

  if (!known_format || !known_slice) return 0;
  // Round trip: values for Format taken from the key's bytes.
  uint64_t h = 1469598103934665603ULL;
  for (char ch : key) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  const TimeLayout& slice = kf->time_slice();
  // An instant in years 0002..9998, so the slice start stays in range at any offset.
  const int64_t lo = DaysFromCivil(2, 1, 1) * kMicrosPerDay, hi = DaysFromCivil(9998, 12, 31) * kMicrosPerDay;
  int64_t t = lo + static_cast<int64_t>(h % static_cast<uint64_t>(hi - lo));
  auto start = slice.Parse(slice.Format(t, zone), zone);
  Require(start.has_value(), "a known-good slice format does not parse its own output", ctx);
  Require(*start <= t && t - *start < 366 * kMicrosPerDay, "a slice does not contain its instant",
          ctx + "\nt: " + FormatIso8601(t) + " slice: " + FormatIso8601(*start));
  int index = static_cast<int>((h >> 20) % 100000);
  // Path: empty, or letters then '/', from the key itself.
  std::string path;
  for (char ch : key.substr(0, 40))
    if ((ch >= 'a' && ch <= 'z') || ch == '/') path += ch;
  while (!path.empty() && path[0] == '/') path.erase(0, 1);
  if (!path.empty() && path.back() != '/') path += '/';
  if (path.size() >= 2 && path[path.size() - 2] == '/') path.clear();  // "a//" ends in no letter
  std::string ext = (h & 1) ? "gz" : "json.gz";
  std::string made = kf->Format(path, *start, index, ext);
  auto got = kf->Match(made);
  std::string rt = ctx + "\nformatted key: " + made + "\nexpected slice " + FormatIso8601(*start) + " index " +
                   std::to_string(index) + "\nmatched: " + Show(got);
  Require(got.has_value(), "a key made by Format does not match", rt);
  if (key_format.find("%{time_slice}") != std::string::npos)
    Require(got->time_slice_us == start, "a key made by Format matches with another slice", rt);
  if (key_format.find("%{index}") != std::string::npos)
    Require(got->index == index, "a key made by Format matches with another index", rt);
  return 0;
}
