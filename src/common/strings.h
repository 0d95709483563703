// Small string helpers shared across modules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace logferry {

// Appends s as a JSON string literal (with quotes). Invalid UTF-8 is replaced
// by U+FFFD so the output is always loadable; returns how many bytes were.
size_t AppendJsonString(std::string* out, std::string_view s);
std::string JsonQuote(std::string_view s);

// Replaces invalid UTF-8 sequences with U+FFFD; returns how many were replaced.
size_t RepairUtf8(std::string_view in, std::string* out);
bool IsValidUtf8(std::string_view s);
// Offset of the first byte that is not valid UTF-8 (s.size() if none).
size_t FirstInvalidUtf8(std::string_view s);

std::string HexEncode(const void* data, size_t n);
std::string Sha256Hex(std::string_view data);
// Raw digests (32 and 16 bytes) and standard base64 with padding.
std::string Sha256Raw(std::string_view data);
std::string Md5Raw(std::string_view data);
// An incremental MD5 (GCS reports it for objects uploaded in one piece).
class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void Update(const void* data, size_t n);
  // The raw 16-byte digest of everything so far; Update may go on after it.
  std::string Digest() const;

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header
};
std::string Base64Encode(std::string_view data);
// nullopt on characters outside the alphabet or bad padding.
std::optional<std::string> Base64Decode(std::string_view data);
// CRC32C (Castagnoli), as GCS and S3 checksums use; incremental.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
std::string Crc32cHex(uint32_t crc);

// The candidate closest to word by edit distance (insertions, deletions,
// substitutions, adjacent swaps), for "did you mean ...?" hints; "" when
// none is close enough to be a likely typo (at most 2 edits, and fewer than
// half of word's length).
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// A short excerpt of raw input for error messages and the bad-records table:
// at most max_bytes, valid UTF-8, control bytes shown as \xNN.
std::string Excerpt(std::string_view raw, size_t max_bytes = 200);

// Text from outside (object keys, field names, request names, server
// messages) made safe to print on a terminal or as one log line: tab, LF and
// CR become \t \n \r; other C0 controls, DEL and bytes that are not UTF-8
// become \xHH; C1 controls (U+0080..U+009F), the line and paragraph
// separators (U+2028, U+2029) and the bidirectional controls (U+061C,
// U+200E, U+200F, U+202A..U+202E, U+2066..U+2069) become \uHHHH. Everything
// else, backslash included, is kept: the result is for people to read, and
// --json output carries exact values.
std::string EscapeForDisplay(std::string_view s);

std::vector<std::string> Split(std::string_view s, char sep);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);
std::string ToLower(std::string_view s);
std::string HumanBytes(uint64_t n);

// A URI split as scheme://authority/path (path without leading '/').
struct Uri {
  std::string scheme;
  std::string authority;
  std::string path;
};
bool ParseUri(std::string_view s, Uri* out);

}  // namespace logferry
