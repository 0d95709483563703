#include "common/time.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <array>
#include <atomic>
#include <cstring>

#include "common/env.h"

namespace logferry {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

int64_t NowMicros() {
  return Env::Default()->NowMicros();
}

namespace {

inline void Put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

inline bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned c = static_cast<unsigned char>(s[pos + i]) - '0';
    if (c > 9) return false;
    v = v * 10 + static_cast<int>(c);
  }
  *out = v;
  return true;
}

bool ValidDate(int y, int m, int d) {
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
  if (d > kDays[m - 1]) return false;
  if (m == 2 && d == 29) return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return true;
}

// Parses "Z", "±HH", "±HH:MM", "±HHMM" at pos; advances pos.
bool ParseOffsetAt(std::string_view s, size_t* pos, int32_t* offset) {
  size_t p = *pos;
  if (p >= s.size()) return false;
  if (s[p] == 'Z' || s[p] == 'z') {
    *offset = 0;
    *pos = p + 1;
    return true;
  }
  if (s[p] != '+' && s[p] != '-') return false;
  int sign = s[p] == '-' ? -1 : 1;
  int hh = 0, mm = 0;
  if (!Digits(s, p + 1, 2, &hh)) return false;
  p += 3;
  if (p < s.size() && s[p] == ':') {
    if (!Digits(s, p + 1, 2, &mm)) return false;
    p += 3;
  } else if (Digits(s, p, 2, &mm)) {
    p += 2;
  }
  if (hh > 23 || mm > 59) return false;
  *offset = sign * (hh * 3600 + mm * 60);
  *pos = p;
  return true;
}

// The instant of a date-time written with an explicit offset, else on zone's wall clock.
int64_t Compose(int y, int mo, int d, int h, int mi, int sec, int64_t frac_us, std::optional<int32_t> offset,
                const TimeZone& zone) {
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t local = days * 86400 + h * 3600 + mi * 60 + sec;
  int64_t secs = offset ? local - *offset : zone.LocalToUtcSeconds(local);
  return secs * kMicrosPerSecond + frac_us;
}

// Parses "ffffff..." at pos (any number of digits, kept to microseconds).
bool ParseFractionDigits(std::string_view s, size_t* pos, int64_t* frac_us) {
  size_t p = *pos;
  size_t start = p;
  int64_t v = 0;
  int n = 0;
  while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
    if (n < 6) {
      v = v * 10 + (s[p] - '0');
      ++n;
    }
    ++p;
  }
  if (p == start) return false;
  while (n < 6) {
    v *= 10;
    ++n;
  }
  *frac_us = v;
  *pos = p;
  return true;
}

// Parses ".ffffff..." (or ",ffffff...") at pos.
bool ParseFraction(std::string_view s, size_t* pos, int64_t* frac_us) {
  size_t p = *pos;
  if (p >= s.size() || (s[p] != '.' && s[p] != ',')) return false;
  ++p;
  if (!ParseFractionDigits(s, &p, frac_us)) return false;
  *pos = p;
  return true;
}

const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};

}  // namespace

size_t FormatIso8601(int64_t micros, char* out) {
  int64_t days = FloorTo(micros, kMicrosPerDay) / kMicrosPerDay;
  int64_t rem = micros - days * kMicrosPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  unsigned secs = static_cast<unsigned>(rem / kMicrosPerSecond);
  unsigned frac = static_cast<unsigned>(rem % kMicrosPerSecond);
  unsigned yy = static_cast<unsigned>(y < 0 ? 0 : (y > 9999 ? 9999 : y));
  Put2(out, yy / 100);
  Put2(out + 2, yy % 100);
  out[4] = '-';
  Put2(out + 5, m);
  out[7] = '-';
  Put2(out + 8, d);
  out[10] = 'T';
  Put2(out + 11, secs / 3600);
  out[13] = ':';
  Put2(out + 14, (secs / 60) % 60);
  out[16] = ':';
  Put2(out + 17, secs % 60);
  size_t n = 19;
  if (frac != 0) {
    out[n++] = '.';
    for (int i = 5; i >= 0; --i) {
      out[n + i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    n += 6;
  }
  out[n++] = 'Z';
  return n;
}

std::string FormatIso8601(int64_t micros) {
  char buf[32];
  return std::string(buf, FormatIso8601(micros, buf));
}

std::string FormatHour(int64_t micros) {
  return FormatIso8601(micros).substr(0, 13);
}

std::string FormatCompactHour(int64_t micros) {
  std::string iso = FormatIso8601(micros);  // YYYY-MM-DDTHH:…
  return iso.substr(0, 4) + iso.substr(5, 2) + iso.substr(8, 2) + iso.substr(11, 2);
}

std::optional<int64_t> ParseIso8601(std::string_view s, int32_t default_offset) {
  return ParseIso8601(s, TimeZone::Fixed(default_offset));
}

std::optional<int64_t> ParseIso8601(std::string_view s, const TimeZone& zone) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!Digits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d))
    return std::nullopt;
  if (!ValidDate(y, mo, d)) return std::nullopt;
  size_t p = 10;
  int64_t frac = 0;
  std::optional<int32_t> offset;
  if (p < s.size() && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
    if (!Digits(s, p + 1, 2, &h)) return std::nullopt;
    p += 3;
    if (p < s.size() && s[p] == ':') {
      if (!Digits(s, p + 1, 2, &mi)) return std::nullopt;
      p += 3;
      if (p < s.size() && s[p] == ':') {
        if (!Digits(s, p + 1, 2, &sec)) return std::nullopt;
        p += 3;
        ParseFraction(s, &p, &frac);
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    if (sec == 60) sec = 59;  // leap second: clamp rather than reject a real log line
    if (p < s.size() && s[p] == ' ') ++p;
    if (p < s.size()) {
      int32_t explicit_offset = 0;
      if (!ParseOffsetAt(s, &p, &explicit_offset)) return std::nullopt;
      offset = explicit_offset;
    }
  }
  if (p != s.size()) return std::nullopt;
  return Compose(y, mo, d, h, mi, sec, frac, offset, zone);
}

StatusOr<TimeLayout> TimeLayout::Compile(std::string_view layout) {
  TimeLayout t;
  t.layout_ = std::string(layout);
  std::string lit;
  auto flush = [&] {
    if (!lit.empty()) {
      t.items_.push_back({0, lit});
      lit.clear();
    }
  };
  for (size_t i = 0; i < layout.size(); ++i) {
    char c = layout[i];
    if (c != '%') {
      lit += c;
      continue;
    }
    if (i + 1 >= layout.size()) return Status::InvalidArgument("time layout ends with '%'");
    char spec = layout[++i];
    switch (spec) {
      case '%':
        lit += '%';
        break;
      case 'T':
      case 'F': {
        // Shorthands: compiled as what they stand for.
        flush();
        StatusOr<TimeLayout> shorthand = Compile(spec == 'T' ? "%H:%M:%S" : "%Y-%m-%d");
        t.items_.insert(t.items_.end(), shorthand->items_.begin(), shorthand->items_.end());
        t.resolution_ = std::min(t.resolution_, shorthand->resolution_);
        break;
      }
      case 'Y':
      case 'y':
      case 'm':
      case 'd':
      case 'e':
      case 'H':
      case 'M':
      case 'S':
      case 'b':
      case 'j':
      case 'z':
      case 'Z':
      case 'L':
      case 'N':
      case 's':
      case 'p':
      case 'I':
        flush();
        t.items_.push_back({spec});
        if (spec == 'd' || spec == 'e' || spec == 'j') t.resolution_ = std::min(t.resolution_, kMicrosPerDay);
        if (spec == 'm' || spec == 'b') t.resolution_ = std::min(t.resolution_, 28 * kMicrosPerDay);
        if (spec == 'H' || spec == 'I') t.resolution_ = std::min(t.resolution_, kMicrosPerHour);
        if (spec == 'M') t.resolution_ = std::min<int64_t>(t.resolution_, 60 * kMicrosPerSecond);
        if (spec == 'S' || spec == 's') t.resolution_ = std::min<int64_t>(t.resolution_, kMicrosPerSecond);
        if (spec == 'L' || spec == 'N') t.resolution_ = 1;
        break;
      default:
        return Status::InvalidArgument(std::string("unsupported time layout directive %") + spec);
    }
  }
  flush();
  return t;
}

namespace {

// What a layout's directives read, before it becomes an instant.
struct LayoutFields {
  int y = 1970, mo = 1, d = 1, h = 0, mi = 0, sec = 0, yday = -1;
  bool pm = false, have_pm = false;
  int64_t frac = 0;
  std::optional<int32_t> offset;  // %z, %Z: else the zone's wall clock
  std::optional<int64_t> epoch;   // %s
};

// min_digits..max_digits decimal digits at *p.
bool ReadNumber(std::string_view s, size_t* p, size_t min_digits, size_t max_digits, int* v) {
  size_t start = *p;
  int64_t acc = 0;
  while (*p < s.size() && *p - start < max_digits && s[*p] >= '0' && s[*p] <= '9') acc = acc * 10 + (s[(*p)++] - '0');
  if (*p - start < min_digits) return false;
  *v = static_cast<int>(acc);
  return true;
}

bool ReadAmPm(std::string_view s, size_t* p, LayoutFields* f) {
  if (*p + 2 > s.size()) return false;
  char a = static_cast<char>(s[*p] | 0x20);
  if ((a != 'a' && a != 'p') || (s[*p + 1] | 0x20) != 'm') return false;
  f->have_pm = true;
  f->pm = a == 'p';
  *p += 2;
  return true;
}

bool ReadMonthName(std::string_view s, size_t* p, int* mo) {
  if (*p + 3 > s.size()) return false;
  char m3[3] = {static_cast<char>(s[*p] | 0x20), static_cast<char>(s[*p + 1] | 0x20),
                static_cast<char>(s[*p + 2] | 0x20)};
  int found = -1;
  for (int i = 0; i < 12; ++i)
    if (memcmp(m3, kMonths[i], 3) == 0) found = i;
  if (found < 0) return false;
  *mo = found + 1;
  *p += 3;
  return true;
}

bool ReadOffset(std::string_view s, size_t* p, std::optional<int32_t>* offset) {
  int32_t v = 0;
  if (!ParseOffsetAt(s, p, &v)) return false;
  *offset = v;
  return true;
}

bool ReadZone(std::string_view s, size_t* p, std::optional<int32_t>* offset) {
  // Zone abbreviations are ambiguous; only UTC/GMT/Z are understood.
  if (s.substr(*p, 3) == "UTC" || s.substr(*p, 3) == "GMT") {
    *offset = 0;
    *p += 3;
    return true;
  }
  return ReadOffset(s, p, offset);
}

bool ReadEpochSeconds(std::string_view s, size_t* p, std::optional<int64_t>* epoch) {
  bool neg = *p < s.size() && s[*p] == '-';
  if (neg) ++*p;
  size_t start = *p;
  int64_t v = 0;
  while (*p < s.size() && s[*p] >= '0' && s[*p] <= '9' && *p - start < 12) v = v * 10 + (s[(*p)++] - '0');
  if (*p == start) return false;
  *epoch = (neg ? -v : v) * kMicrosPerSecond;
  return true;
}

// One directive of a layout (TimeLayout::Compile accepts these only).
bool ReadDirective(char spec, std::string_view s, size_t* p, LayoutFields* f) {
  switch (spec) {
    case 'Y':
      return ReadNumber(s, p, 4, 4, &f->y);
    case 'y':
      if (!ReadNumber(s, p, 2, 2, &f->y)) return false;
      f->y += f->y < 69 ? 2000 : 1900;
      return true;
    case 'm':
      return ReadNumber(s, p, 2, 2, &f->mo);
    case 'd':
      return ReadNumber(s, p, 2, 2, &f->d);
    case 'e':
      if (*p < s.size() && s[*p] == ' ') ++*p;
      return ReadNumber(s, p, 1, 2, &f->d);
    case 'H':
    case 'I':
      return ReadNumber(s, p, 2, 2, &f->h);
    case 'M':
      return ReadNumber(s, p, 2, 2, &f->mi);
    case 'S':
      if (!ReadNumber(s, p, 2, 2, &f->sec)) return false;
      if (f->sec == 60) f->sec = 59;
      return true;
    case 'j':
      return ReadNumber(s, p, 3, 3, &f->yday);
    case 'p':
      return ReadAmPm(s, p, f);
    case 'b':
      return ReadMonthName(s, p, &f->mo);
    case 'z':
      return ReadOffset(s, p, &f->offset);
    case 'Z':
      return ReadZone(s, p, &f->offset);
    case 'L':
    case 'N':
      return ParseFractionDigits(s, p, &f->frac);
    case 's':
      return ReadEpochSeconds(s, p, &f->epoch);
    default:
      return true;
  }
}

// The instant the fields name; false if they name none.
bool ComposeFields(LayoutFields f, const TimeZone& zone, int64_t* out) {
  if (f.epoch) {
    *out = *f.epoch + f.frac;
    return true;
  }
  if (f.have_pm) {
    if (f.h < 1 || f.h > 12) return false;
    f.h = f.h % 12 + (f.pm ? 12 : 0);
  }
  if (f.yday >= 0) {
    if (f.yday < 1 || f.yday > 366) return false;
    int64_t days = DaysFromCivil(f.y, 1, 1) + f.yday - 1;
    if (f.h > 23 || f.mi > 59) return false;
    int64_t local = days * 86400 + f.h * 3600 + f.mi * 60 + f.sec;
    *out = (f.offset ? local - *f.offset : zone.LocalToUtcSeconds(local)) * kMicrosPerSecond + f.frac;
    return true;
  }
  if (!ValidDate(f.y, f.mo, f.d) || f.h > 23 || f.mi > 59) return false;
  *out = Compose(f.y, f.mo, f.d, f.h, f.mi, f.sec, f.frac, f.offset, zone);
  return true;
}

}  // namespace

size_t TimeLayout::ParsePrefix(std::string_view s, const TimeZone& zone, int64_t* out) const {
  LayoutFields f;
  size_t p = 0;
  for (const Item& it : items_) {
    if (it.spec != 0) {
      if (!ReadDirective(it.spec, s, &p, &f)) return 0;
    } else {
      if (s.substr(p, it.literal.size()) != it.literal) return 0;
      p += it.literal.size();
    }
  }
  return ComposeFields(f, zone, out) ? p : 0;
}

std::optional<int64_t> TimeLayout::Parse(std::string_view s, const TimeZone& zone) const {
  int64_t t;
  size_t n = ParsePrefix(s, zone, &t);
  if (n == 0 || n != s.size()) return std::nullopt;
  return t;
}

std::string TimeLayout::Format(int64_t micros, const TimeZone& zone) const {
  const int32_t offset_seconds = zone.OffsetAt(micros);
  int64_t local = micros + static_cast<int64_t>(offset_seconds) * kMicrosPerSecond;
  int64_t days = FloorTo(local, kMicrosPerDay) / kMicrosPerDay;
  int64_t rem = local - days * kMicrosPerDay;
  int64_t y;
  unsigned mo, d;
  CivilFromDays(days, &y, &mo, &d);
  unsigned secs = static_cast<unsigned>(rem / kMicrosPerSecond);
  char buf[64];
  std::string out;
  for (const Item& it : items_) {
    switch (it.spec) {
      case 0:
        out += it.literal;
        break;
      case 'Y':
        snprintf(buf, sizeof buf, "%04d", static_cast<int>(y));
        out += buf;
        break;
      case 'y':
        snprintf(buf, sizeof buf, "%02d", static_cast<int>(y % 100));
        out += buf;
        break;
      case 'm':
        snprintf(buf, sizeof buf, "%02u", mo);
        out += buf;
        break;
      case 'd':
        snprintf(buf, sizeof buf, "%02u", d);
        out += buf;
        break;
      case 'e':
        snprintf(buf, sizeof buf, "%2u", d);
        out += buf;
        break;
      case 'H':
        snprintf(buf, sizeof buf, "%02u", secs / 3600);
        out += buf;
        break;
      case 'I':
        snprintf(buf, sizeof buf, "%02u", (secs / 3600 + 11) % 12 + 1);
        out += buf;
        break;
      case 'p':
        out += secs / 3600 >= 12 ? "PM" : "AM";
        break;
      case 'M':
        snprintf(buf, sizeof buf, "%02u", (secs / 60) % 60);
        out += buf;
        break;
      case 'S':
        snprintf(buf, sizeof buf, "%02u", secs % 60);
        out += buf;
        break;
      case 'j':
        snprintf(buf, sizeof buf, "%03d", static_cast<int>(days - DaysFromCivil(y, 1, 1) + 1));
        out += buf;
        break;
      case 'b': {
        std::string m = kMonths[mo - 1];
        m[0] = static_cast<char>(m[0] - 32);
        out += m;
        break;
      }
      case 'L':
        snprintf(buf, sizeof buf, "%03d", static_cast<int>((rem % kMicrosPerSecond) / 1000));
        out += buf;
        break;
      case 'N':
        snprintf(buf, sizeof buf, "%06d000", static_cast<int>(rem % kMicrosPerSecond));
        out += buf;
        break;
      case 's':
        out += std::to_string(FloorTo(micros, kMicrosPerSecond) / kMicrosPerSecond);
        break;
      case 'z':
      case 'Z': {
        int32_t o = offset_seconds;
        snprintf(buf, sizeof buf, "%c%02d:%02d", o < 0 ? '-' : '+', std::abs(o) / 3600, (std::abs(o) / 60) % 60);
        out += buf;
        break;
      }
    }
  }
  return out;
}

// An IANA zone. Converting a wall-clock time is on the per-row path, so the
// offset of each wall-clock hour that holds no transition is cached: a slot
// packs the hour (biased to stay positive) and its offset into one atomic
// word, so threads share the cache without a lock, and a torn or stale slot
// is just a miss.
class TimeZone::Zone {
 public:
  Zone(cctz::time_zone tz, std::string name) : tz_(tz), name_(std::move(name)) {
    for (auto& slot : cache_) slot.store(0, std::memory_order_relaxed);
  }
  const std::string& name() const { return name_; }

  int64_t LocalToUtc(int64_t local) const {
    const int64_t hour = FloorTo(local, 3600) / 3600;
    const int64_t key = hour + kHourBias;
    const bool cacheable = key > 0 && key < (int64_t{1} << 32);
    std::atomic<uint64_t>& slot = cache_[static_cast<uint64_t>(key) % kSlots];
    if (cacheable) {
      uint64_t e = slot.load(std::memory_order_relaxed);
      if ((e >> 32) == static_cast<uint64_t>(key)) return local - static_cast<int32_t>(static_cast<uint32_t>(e));
    }
    const int32_t offset = OffsetOfLocal(local);
    if (cacheable && HourHasOneOffset(hour * 3600, offset))
      slot.store((static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(offset), std::memory_order_relaxed);
    return local - offset;
  }

  int32_t OffsetAt(int64_t utc_seconds) const {
    return tz_.lookup(cctz::time_point<cctz::seconds>(cctz::seconds(utc_seconds))).offset;
  }

 private:
  static constexpr int64_t kHourBias = int64_t{1} << 30;  // years 0001..9999 stay within 32 bits
  static constexpr size_t kSlots = 1024;                  // 42 days of hours; 8 KB a zone

  static cctz::civil_second Civil(int64_t local) { return cctz::civil_second(1970, 1, 1, 0, 0, 0) + local; }

  // The offset that maps this wall-clock time: the one before the change for
  // a skipped or repeated time (cctz's `pre`; see TimeZone).
  int32_t OffsetOfLocal(int64_t local) const {
    const cctz::time_zone::civil_lookup cl = tz_.lookup(Civil(local));
    return static_cast<int32_t>(local - cl.pre.time_since_epoch().count());
  }

  bool HourHasOneOffset(int64_t hour_start, int32_t offset) const {
    for (int64_t t : {hour_start, hour_start + 3599}) {
      const cctz::time_zone::civil_lookup cl = tz_.lookup(Civil(t));
      if (cl.kind != cctz::time_zone::civil_lookup::UNIQUE || t - cl.pre.time_since_epoch().count() != offset)
        return false;
    }
    return true;
  }

  cctz::time_zone tz_;
  std::string name_;
  mutable std::array<std::atomic<uint64_t>, kSlots> cache_;
};

TimeZone TimeZone::Fixed(int32_t offset_seconds) {
  TimeZone z;
  z.fixed_offset_ = offset_seconds;
  return z;
}

int64_t TimeZone::ZoneLocalToUtc(int64_t local_seconds) const {
  return zone_->LocalToUtc(local_seconds);
}

int32_t TimeZone::ZoneOffsetAt(int64_t micros) const {
  return zone_->OffsetAt(FloorTo(micros, kMicrosPerSecond) / kMicrosPerSecond);
}

std::string TimeZone::Name() const {
  if (zone_) return zone_->name();
  char buf[16];
  const int32_t o = fixed_offset_;
  snprintf(buf, sizeof buf, "%c%02d:%02d", o < 0 ? '-' : '+', std::abs(o) / 3600, (std::abs(o) / 60) % 60);
  return buf;
}

namespace {

// Area/Location names as the tz database spells them; nothing that could
// step out of the zoneinfo directory.
bool PlausibleZoneName(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] == '/' || s.find("..") != std::string_view::npos) return false;
  for (char c : s)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' && c != '+') return false;
  return true;
}

}  // namespace

StatusOr<TimeZone> TimeZone::Parse(std::string_view name) {
  if (auto off = ParseUtcOffset(name); off.ok()) return Fixed(*off);
  cctz::time_zone tz;
  std::string shown(name);
  if (name == "localtime") {
    tz = cctz::local_time_zone();
    shown = "localtime (" + tz.name() + ")";
  } else if (!PlausibleZoneName(name) || !cctz::load_time_zone(std::string(name), &tz)) {
    return Status::InvalidArgument(
        "timezone must be a UTC offset like +09:00, UTC, an IANA zone name like "
        "Asia/Tokyo or America/New_York, or localtime (got '" +
        std::string(name) + "'; is the tz database (tzdata) installed?)");
  }
  TimeZone z;
  z.zone_ = std::make_shared<const Zone>(tz, shown);
  return z;
}

StatusOr<int32_t> ParseUtcOffset(std::string_view s) {
  if (s == "UTC" || s == "utc" || s == "Z" || s == "GMT" || s == "Etc/UTC") return 0;
  size_t p = 0;
  int32_t off = 0;
  std::string norm(s);
  // Accept "+9" / "-5" (single-digit hours) as Fluentd does.
  if (norm.size() == 2 && (norm[0] == '+' || norm[0] == '-')) norm = std::string(1, norm[0]) + "0" + norm[1];
  if (!ParseOffsetAt(norm, &p, &off) || p != norm.size())
    return Status::InvalidArgument("timezone must be a UTC offset like +09:00, -0530 or UTC (got '" + std::string(s) +
                                   "')");
  return off;
}

StatusOr<int64_t> ParseDuration(std::string_view s) {
  if (s == "0") return int64_t{0};
  int64_t total = 0;
  size_t p = 0;
  if (s.empty()) return Status::InvalidArgument("empty duration");
  while (p < s.size()) {
    size_t start = p;
    int64_t v = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      v = v * 10 + (s[p++] - '0');
      if (v > 100'000'000) return Status::InvalidArgument("duration too large: '" + std::string(s) + "'");
    }
    if (p == start) return Status::InvalidArgument("bad duration '" + std::string(s) + "' (use e.g. 10m, 1h30m, 45s)");
    size_t us = p;
    while (p < s.size() && ((s[p] >= 'a' && s[p] <= 'z'))) ++p;
    std::string_view unit = s.substr(us, p - us);
    int64_t mult;
    if (unit == "ms")
      mult = 1000;
    else if (unit == "s")
      mult = kMicrosPerSecond;
    else if (unit == "m")
      mult = 60 * kMicrosPerSecond;
    else if (unit == "h")
      mult = kMicrosPerHour;
    else if (unit == "d")
      mult = kMicrosPerDay;
    else
      return Status::InvalidArgument("bad duration unit in '" + std::string(s) + "' (use ms, s, m, h, d)");
    total += v * mult;
    if (total > 100LL * 366 * kMicrosPerDay)
      return Status::InvalidArgument("duration longer than 100 years: '" + std::string(s) + "'");
  }
  return total;
}

std::string FormatDuration(int64_t micros) {
  if (micros < 0) return "-" + FormatDuration(-micros);
  int64_t s = micros / kMicrosPerSecond;
  char buf[64];
  if (s < 60)
    snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600)
    snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else if (s < 86400)
    snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>((s / 60) % 60));
  else
    snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
             static_cast<long long>((s / 3600) % 24));
  return buf;
}

}  // namespace logferry
