// Time parsing: ParseIso8601, TimeLayout::Compile/Parse/Format,
// ParseUtcOffset, ParseDuration.
//
// Input: '\n'-separated parts: a time text, a layout, a duration, an offset
// (missing parts are empty).
//
// Checked: nothing crashes or overflows (UBSan) for any text. An accepted
// ISO-8601 time in years 0001..9999 formats (FormatIso8601, the form every
// row's _time has) to text that parses back to the same instant, and text
// already in that canonical Z form formats back to itself. A compiled
// layout parses its own Format output of an instant to an instant at or
// before it (a layout may drop the finer fields). An accepted duration is
// not negative and FormatDuration handles it.
#include <string>

#include "common/time.h"
#include "fuzz_common.h"

namespace {

using namespace logferry;
using logferry::fuzz::Require;

// "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" with a non-zero fraction when present.
bool IsCanonical(std::string_view s) {
  auto d = [&](size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  if (s.size() != 20 && s.size() != 27) return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (!d(i)) return false;
  if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z') return false;
  if (s.size() == 27) {
    if (s[19] != '.') return false;
    for (size_t i = 20; i < 26; ++i)
      if (!d(i)) return false;
    if (s.substr(20, 6) == "000000") return false;
  }
  return s.substr(17, 2) != "60";  // a leap second is clamped to :59
}

// The directives of a layout, in order ("%%" is a literal, not a directive).
std::string Specs(std::string_view layout) {
  std::string out;
  for (size_t i = 0; i + 1 < layout.size(); ++i)
    if (layout[i] == '%') {
      if (layout[i + 1] != '%') out += layout[i + 1];
      ++i;
    }
  return out;
}

const int64_t kMin = DaysFromCivil(1, 1, 1) * kMicrosPerDay;
const int64_t kEnd = DaysFromCivil(10000, 1, 1) * kMicrosPerDay;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[4];
  for (auto& p : parts) {
    size_t nl = in.find('\n');
    p = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  const std::string text(parts[0]);

  int32_t offset = 0;
  if (auto o = ParseUtcOffset(parts[3]); o.ok()) {
    offset = *o;
    Require(offset > -24 * 3600 && offset < 24 * 3600, "ParseUtcOffset accepted an offset of a day or more",
            std::string(parts[3]));
  }
  const TimeZone zone = TimeZone::Fixed(offset);

  if (auto t = ParseIso8601(text, offset)) {
    if (*t >= kMin && *t < kEnd) {
      std::string f = FormatIso8601(*t);
      auto back = ParseIso8601(f);
      Require(back.has_value() && *back == *t, "FormatIso8601 output does not parse back to the same instant",
              "input: " + text + "\nformatted: " + f);
      if (IsCanonical(text))
        Require(f == text, "canonical text does not format back to itself", "input: " + text + "\nformatted: " + f);
    }
  }

  auto layout = TimeLayout::Compile(parts[1]);
  if (layout.ok()) {
    // Parse must not crash whatever the text; its result is then formatted.
    int64_t prefix_t;
    size_t n = layout->ParsePrefix(text, zone, &prefix_t);
    Require(n <= text.size(), "ParsePrefix consumed more than the text", text);
    if (auto t = layout->Parse(text, zone); t && *t >= kMin && *t < kEnd) (void)layout->Format(*t, zone);
    // Any instant from the input, through the layout's own Format.
    if (auto t = ParseIso8601(text, offset); t && *t >= kMin + 2 * kMicrosPerDay && *t < kEnd - 2 * kMicrosPerDay) {
      std::string f = layout->Format(*t, zone);
      auto back = layout->Parse(f, zone);
      const std::string& l = layout->layout();
      std::string specs = Specs(l);
      auto has = [&](char c) { return specs.find(c) != std::string::npos; };
      // Without the year a parse lands in 1970; %y keeps two digits of it;
      // %I/%p mix 12- and 24-hour fields; %e and %s are variable width, so
      // literal digits after them are ambiguous.
      bool comparable = (has('Y') || has('F')) && !has('y') && !has('I') && !has('p') && !has('e') && !has('s');
      if (comparable && back)
        Require(*back <= *t, "a layout parses its own output to a later instant",
                "layout: " + l + "\ninput: " + text + "\nformatted: " + f + "\nparsed: " + FormatIso8601(*back));
    }
  }

  if (auto d = ParseDuration(parts[2]); d.ok()) {
    Require(*d >= 0, "ParseDuration gave a negative duration", std::string(parts[2]));
    (void)FormatDuration(*d);
  }
  return 0;
}
