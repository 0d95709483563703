#include "common/strings.h"

#include <isa-l/crc.h>
#include <openssl/evp.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace logferry {

namespace {

// Length of the valid UTF-8 sequence starting at p (0 if invalid).
inline size_t Utf8SeqLen(const unsigned char* p, const unsigned char* end) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else
    return 0;
  if (static_cast<size_t>(end - p) < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;  // overlong
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";

// Copies the UTF-8 sequence at *p, or U+FFFD for one byte that starts none;
// returns whether it had to replace.
inline bool AppendUtf8Sequence(std::string* out, const unsigned char** p, const unsigned char* end) {
  size_t n = Utf8SeqLen(*p, end);
  if (n == 0) {
    out->append(kReplacement, 3);
    ++*p;
    return true;
  }
  out->append(reinterpret_cast<const char*>(*p), n);
  *p += n;
  return false;
}

}  // namespace

size_t RepairUtf8(std::string_view in, std::string* out) {
  size_t bad = 0;
  auto* p = reinterpret_cast<const unsigned char*>(in.data());
  auto* end = p + in.size();
  while (p < end) {
    bad += AppendUtf8Sequence(out, &p, end);
  }
  return bad;
}

size_t FirstInvalidUtf8(std::string_view s) {
  auto* begin = reinterpret_cast<const unsigned char*>(s.data());
  auto* p = begin;
  auto* end = p + s.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    size_t n = Utf8SeqLen(p, end);
    if (n == 0) return static_cast<size_t>(p - begin);
    p += n;
  }
  return s.size();
}

bool IsValidUtf8(std::string_view s) {
  return FirstInvalidUtf8(s) == s.size();
}

#if defined(__SSE2__)
namespace {

// Bit i set where p[i] needs escaping or UTF-8 checking: a quote, a
// backslash, or (one signed compare) a control byte or any byte >= 0x80.
inline unsigned SpecialMask16(const void* p) {
  __m128i v = _mm_loadu_si128(static_cast<const __m128i*>(p));
  __m128i special =
      _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                   _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
  return static_cast<unsigned>(_mm_movemask_epi8(special));
}

}  // namespace
#endif

size_t AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  size_t replaced = 0;
#if defined(__SSE2__)
  // Most values in logs are short and need no escaping: quote them in a
  // stack buffer and append once (one copy, no per-byte loop).
  constexpr size_t kShort = 64;
  if (s.size() <= kShort) {
    alignas(16) char buf[kShort + 32];
    buf[0] = '"';
    if (!s.empty()) std::memcpy(buf + 1, s.data(), s.size());  // an empty view may hold a null pointer
    bool plain = true;
    for (size_t i = 0; i < s.size(); i += 16) {
      unsigned mask = SpecialMask16(buf + 1 + i);
      size_t valid = std::min<size_t>(16, s.size() - i);
      if (valid < 16) mask &= (1u << valid) - 1;
      if (mask) {
        plain = false;
        break;
      }
    }
    if (plain) {
      buf[s.size() + 1] = '"';
      out->append(buf, s.size() + 2);
      return 0;
    }
  }
#endif
  out->push_back('"');
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  auto* end = p + s.size();
  while (p < end) {
    // Copy a run of bytes that need no escaping in one append.
    const unsigned char* run = p;
#if defined(__SSE2__)
    // Sixteen bytes at a time: a signed compare below 0x20 catches control
    // bytes and every byte >= 0x80 at once. Most of a log line is such a run.
    while (end - p >= 16) {
      unsigned mask = SpecialMask16(p);
      if (mask != 0) {
        p += __builtin_ctz(mask);
        break;
      }
      p += 16;
    }
#endif
    while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) ++p;
    if (p > run) {
      out->append(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
      if (p == end) break;
    }
    unsigned char c = *p;
    if (c >= 0x80) {
      replaced += AppendUtf8Sequence(out, &p, end);
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
    ++p;
  }
  out->push_back('"');
  return replaced;
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

std::string HexEncode(const void* data, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

std::string Sha256Raw(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Md5Raw(std::string_view data) {
  Md5 md5;
  md5.Update(data.data(), data.size());
  return md5.Digest();
}

Md5::Md5() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_md5(), nullptr);
}

Md5::~Md5() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Md5::Update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Md5::Digest() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, static_cast<const EVP_MD_CTX*>(ctx_));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, md, &len);
  EVP_MD_CTX_free(copy);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(n);
  return out;
}

std::optional<std::string> Base64Decode(std::string_view data) {
  if (data.size() % 4 != 0) return std::nullopt;
  std::string out(data.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes.
  size_t pad = 0;
  if (!data.empty() && data.back() == '=') ++pad;
  if (data.size() > 1 && data[data.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexEncode(md, len);
}

uint32_t Crc32c(uint32_t crc, const void* data, size_t n) {
  // ISA-L's crc32_iscsi takes and returns the raw register; the standard
  // CRC32C pre- and post-inverts it.
  return ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(n), ~crc);
}

std::string Crc32cHex(uint32_t crc) {
  char buf[16];
  snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

std::string Excerpt(std::string_view raw, size_t max_bytes) {
  std::string out;
  auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  auto* end = p + raw.size();
  while (p < end && out.size() < max_bytes) {
    unsigned char c = *p;
    if (c < 0x20 && c != '\t') {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++p;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++p;
    } else {
      size_t n = Utf8SeqLen(p, end);
      if (n == 0) {
        char buf[8];
        snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
        ++p;
      } else {
        out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
    }
  }
  if (p < end) out += "…";
  return out;
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

namespace {

// Code points that move the cursor, end a line or reorder text on display.
bool IsDisplayControl(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

uint32_t DecodeUtf8(const unsigned char* p, size_t n) {
  if (n == 2) return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  if (n == 3) return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

}  // namespace

std::string EscapeForDisplay(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  auto* end = p + s.size();
  char buf[12];
  while (p < end) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++p;
    } else if (c == '\t' || c == '\n' || c == '\r') {
      out += c == '\t' ? "\\t" : c == '\n' ? "\\n" : "\\r";
      ++p;
    } else if (size_t n = c < 0x80 ? 0 : Utf8SeqLen(p, end); n == 0) {
      snprintf(buf, sizeof buf, "\\x%02x", c);  // C0, DEL, or not UTF-8
      out += buf;
      ++p;
    } else if (uint32_t cp = DecodeUtf8(p, n); IsDisplayControl(cp)) {
      snprintf(buf, sizeof buf, "\\u%04x", cp);
      out += buf;
      p += n;
    } else {
      out.append(reinterpret_cast<const char*>(p), n);
      p += n;
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

bool ParseUri(std::string_view s, Uri* out) {
  size_t p = s.find("://");
  if (p == std::string_view::npos || p == 0) return false;
  out->scheme = ToLower(s.substr(0, p));
  std::string_view rest = s.substr(p + 3);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    out->authority = std::string(rest);
    out->path.clear();
  } else {
    out->authority = std::string(rest.substr(0, slash));
    out->path = std::string(rest.substr(slash + 1));
  }
  return true;
}

namespace {

// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring).
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.size() > 64) return "";  // not a typo of a short name; and the table stays small
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (best_distance == 0 || best_distance > 2 || best_distance * 2 >= word.size()) return "";
  return best;
}

}  // namespace logferry
