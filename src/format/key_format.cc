#include "format/key_format.h"

#include <algorithm>
#include <optional>
#include <utility>

namespace logferry {

namespace {

// Fluentd formats strftime directives written in s3_object_key_format itself
// (%{path}%Y/%m/%d/%H_%{index}.gz) with the chunk's time, as it does
// %{time_slice}. The span from the first directive to the end of the last is
// read as the key's time slice; nullopt when there is no directive.
StatusOr<std::optional<std::pair<std::string, std::string>>> InlineTimeSlice(std::string_view fmt) {
  size_t first = std::string_view::npos, last_end = 0;
  bool placeholder_since_first = false;
  for (size_t i = 0; i + 1 < fmt.size(); ++i) {
    if (fmt[i] != '%') continue;
    if (fmt[i + 1] == '{') {
      size_t end = fmt.find('}', i);
      if (end == std::string_view::npos) break;  // Compile reports it
      placeholder_since_first = first != std::string_view::npos;
      i = end;
      continue;
    }
    if (first == std::string_view::npos) first = i;
    if (placeholder_since_first)
      return Status::InvalidArgument("key_format: a %{...} placeholder between strftime directives ('" +
                                     std::string(fmt) + "'); keep the time parts together");
    last_end = ++i + 1;
  }
  if (first == std::string_view::npos) return std::optional<std::pair<std::string, std::string>>();
  if (fmt.find("%{time_slice}") != std::string_view::npos)
    return Status::InvalidArgument("key_format has both %{time_slice} and strftime directives ('" + std::string(fmt) +
                                   "'); use one");
  std::string rewritten = std::string(fmt.substr(0, first)) + "%{time_slice}" + std::string(fmt.substr(last_end));
  return std::optional(std::pair(rewritten, std::string(fmt.substr(first, last_end - first))));
}

// Why a time_slice_format's text does not sort like the times it names;
// empty when it does. It does when its fields run from the year down
// without a gap (%Y%m%d%H, %Y-%m-%d/%H%M, %Y%j), each zero-padded to a fixed
// width, between constant literals: two slices' texts then first differ in
// the most significant field that differs.
std::string UnsortedSliceLayout(std::string_view layout) {
  std::string fields;
  for (size_t i = 0; i + 1 < layout.size(); ++i) {
    if (layout[i] != '%') continue;
    char c = layout[++i];
    if (c == '%') continue;
    if (c == 'F')
      fields += "Ymd";
    else if (c == 'T')
      fields += "HMS";
    else if (std::string_view("YmdjHMS").find(c) != std::string_view::npos)
      fields += c;
    else
      return "time_slice_format '" + std::string(layout) + "' has %" + c +
             ", whose text does not sort like time (names, unpadded, two-digit or epoch fields, offsets)";
  }
  if (fields.empty()) return "time_slice_format '" + std::string(layout) + "' names no time";
  if (std::string_view("YmdHMS").substr(0, fields.size()) == fields ||
      std::string_view("YjHMS").substr(0, fields.size()) == fields)
    return "";
  return "time_slice_format '" + std::string(layout) + "' does not run from the year down to its finest field";
}

}  // namespace

StatusOr<KeyFormat> KeyFormat::Compile(std::string_view key_format, std::string_view time_slice_format,
                                       const TimeZone& zone) {
  LF_ASSIGN_OR_RETURN(auto inline_slice, InlineTimeSlice(key_format));
  std::string_view fmt = inline_slice ? std::string_view(inline_slice->first) : key_format;
  KeyFormat kf;
  LF_ASSIGN_OR_RETURN(kf.slice_, TimeLayout::Compile(inline_slice ? inline_slice->second : time_slice_format));
  kf.zone_ = zone;
  std::string lit;
  for (size_t i = 0; i < fmt.size();) {
    if (fmt.substr(i, 2) == "%{") {
      size_t end = fmt.find('}', i);
      if (end == std::string_view::npos) return Status::InvalidArgument("unterminated %{ in key_format");
      std::string_view name = fmt.substr(i + 2, end - i - 2);
      Kind k;
      if (name == "path")
        k = Kind::kPath;
      else if (name == "time_slice")
        k = Kind::kTimeSlice;
      else if (name == "index")
        k = Kind::kIndex;
      else if (name == "file_extension")
        k = Kind::kExtension;
      else if (name == "hex_random" || name == "uuid_flush" || name == "chunk_id" || name == "unique_id")
        k = Kind::kHex;
      else if (name == "hostname" || name == "tag")
        k = Kind::kAnyNoSlash;
      else
        return Status::InvalidArgument("unknown placeholder %{" + std::string(name) + "} in key_format");
      if (!lit.empty()) kf.items_.push_back({Kind::kLiteral, lit});
      lit.clear();
      kf.items_.push_back({k, ""});
      i = end + 1;
    } else {
      lit += fmt[i++];
    }
  }
  if (!lit.empty()) kf.items_.push_back({Kind::kLiteral, lit});
  return kf;
}

bool KeyFormat::MatchFrom(size_t item, std::string_view key, size_t pos, KeyMatch* m, std::vector<bool>* failed) const {
  if (item == items_.size()) return pos == key.size();
  const size_t state = item * (key.size() + 1) + pos;
  if ((*failed)[state]) return false;
  if (MatchItem(item, key, pos, m, failed)) return true;
  (*failed)[state] = true;
  return false;
}

bool KeyFormat::MatchItem(size_t item, std::string_view key, size_t pos, KeyMatch* m, std::vector<bool>* failed) const {
  const Item& it = items_[item];
  auto try_span = [&](size_t min_len, auto&& ok_char) {
    size_t end = pos;
    while (end < key.size() && end - pos < min_len && ok_char(key[end])) ++end;
    if (end - pos < min_len) return false;
    for (;;) {
      if (MatchFrom(item + 1, key, end, m, failed)) return true;
      if (end >= key.size() || !ok_char(key[end])) return false;
      ++end;
    }
  };
  switch (it.kind) {
    case Kind::kLiteral:
      return key.substr(pos, it.literal.size()) == it.literal &&
             MatchFrom(item + 1, key, pos + it.literal.size(), m, failed);
    case Kind::kPath:
      return try_span(0, [](char) { return true; });
    case Kind::kAnyNoSlash:
      return try_span(1, [](char c) { return c != '/'; });
    case Kind::kHex:
      return try_span(1, [](char c) { return isxdigit(static_cast<unsigned char>(c)) || c == '-'; });
    case Kind::kExtension:
      return try_span(1, [](char c) { return c != '/'; });
    case Kind::kIndex: {
      size_t end = pos;
      while (end < key.size() && key[end] >= '0' && key[end] <= '9') ++end;
      if (end == pos || end - pos > 12) return false;
      int64_t saved = m->index;
      m->index = std::stoll(std::string(key.substr(pos, end - pos)));
      if (MatchFrom(item + 1, key, end, m, failed)) return true;
      m->index = saved;
      return false;
    }
    case Kind::kTimeSlice: {
      int64_t t;
      size_t n = slice_.ParsePrefix(key.substr(pos), zone_, &t);
      if (n == 0) return false;
      auto saved = m->time_slice_us;
      m->time_slice_us = t;
      m->time_slice_pos = pos;
      if (MatchFrom(item + 1, key, pos + n, m, failed)) return true;
      m->time_slice_us = saved;
      return false;
    }
  }
  return false;
}

std::optional<KeyMatch> KeyFormat::Match(std::string_view key) const {
  KeyMatch m;
  std::vector<bool> failed(items_.size() * (key.size() + 1));
  if (!MatchFrom(0, key, 0, &m, &failed)) return std::nullopt;
  return m;
}

std::string KeyFormat::WindowBlocker() const {
  auto slice = std::find_if(items_.begin(), items_.end(), [](const Item& it) { return it.kind == Kind::kTimeSlice; });
  if (slice == items_.end()) return "key_format has no time slice";
  for (auto it = items_.begin(); it != slice; ++it) {
    if (it->kind == Kind::kIndex) return "%{index} comes before the time slice";
    if (it->kind == Kind::kHex) return "a random or per-chunk placeholder comes before the time slice";
    if (it->kind == Kind::kExtension) return "%{file_extension} comes before the time slice";
  }
  return UnsortedSliceLayout(slice_.layout());
}

std::optional<std::string> KeyFormat::SlicePrefix(std::string_view key) const {
  auto m = Match(key);
  if (!m || m->time_slice_pos == std::string_view::npos) return std::nullopt;
  return std::string(key.substr(0, m->time_slice_pos));
}

std::string KeyFormat::WindowStart(std::string_view prefix, int64_t from_us, int64_t now_us) const {
  // The wall clock is not monotonic where the zone's offset drops: a key
  // written after from_us may name an earlier wall-clock slice, by at most
  // the drop. Offsets change at most every half hour or so; sample at that.
  int32_t first = zone_.OffsetAt(from_us), lowest = first;
  if (!zone_.is_fixed()) {
    int64_t step = std::max<int64_t>(30 * 60 * kMicrosPerSecond, (now_us - from_us) / 2000);
    for (int64_t t = from_us; t < now_us; t += step) lowest = std::min(lowest, zone_.OffsetAt(t));
    lowest = std::min(lowest, zone_.OffsetAt(now_us));
  }
  std::string start = std::string(prefix) + slice_.Format(from_us - (first - lowest) * kMicrosPerSecond, zone_);
  // Keys of that slice are longer than the text above, and so after it,
  // unless nothing may follow the slice: then start just before the text.
  auto slice = std::find_if(items_.begin(), items_.end(), [](const Item& it) { return it.kind == Kind::kTimeSlice; });
  bool may_end = slice + 1 == items_.end() || slice[1].kind == Kind::kPath;
  if (may_end && start.size() > prefix.size()) --start.back();
  return start;
}

bool KeyFormat::PastWindow(std::string_view prefix, std::string_view key, int64_t until_us) const {
  std::string last = slice_.Format(until_us, zone_);
  if (key.size() < prefix.size() + last.size() || key.substr(0, prefix.size()) != prefix) return false;
  return key.substr(prefix.size(), last.size()) > last;
}

std::string KeyFormat::Format(std::string_view path, int64_t slice_us, int index, std::string_view ext) const {
  std::string out;
  for (const Item& it : items_) {
    switch (it.kind) {
      case Kind::kLiteral:
        out += it.literal;
        break;
      case Kind::kPath:
        out += path;
        break;
      case Kind::kTimeSlice:
        out += slice_.Format(slice_us, zone_);
        break;
      case Kind::kIndex:
        out += std::to_string(index);
        break;
      case Kind::kExtension:
        out += ext;
        break;
      case Kind::kHex:
        out += "0123456789abcdef";
        break;
      case Kind::kAnyNoSlash:
        out += "host";
        break;
    }
  }
  return out;
}

}  // namespace logferry
