#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <utility>
#include <vector>

#include "common/strings.h"

namespace logferry::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// Headers that are never signed: Authorization is what we compute; the others
// may be added, changed or dropped on the way (curl's Expect handling, proxies
// adding trace ids), which would break the signature. The AWS SDKs skip the
// same ones.
bool IsUnsignedHeader(std::string_view lower_name) {
  return lower_name == "authorization" || lower_name == "user-agent" || lower_name == "expect" ||
         lower_name == "x-amzn-trace-id";
}

// Leading and trailing whitespace removed, inner runs of spaces collapsed to
// one (SigV4's "Trimall").
std::string TrimAll(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

// RFC 3986 dot-segment removal, with empty segments dropped as well: the
// SigV4 suite canonicalizes "//example//" to "/example/".
std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> kept;
  size_t start = 0;
  bool trailing_slash = false;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view segment = path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    bool last = slash == std::string_view::npos;
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (!segment.empty() && segment != ".") {
      kept.push_back(segment);
    }
    if (last) {
      trailing_slash = segment.empty() || segment == "." || segment == "..";
      break;
    }
    start = slash + 1;
  }
  std::string out = "/";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i) out.push_back('/');
    out.append(kept[i]);
  }
  if (!kept.empty() && trailing_slash) out.push_back('/');
  return out;
}

// The query as SigV4 wants it: every name and value decoded and encoded again
// per RFC 3986 (so "a b", "a%20b" and raw UTF-8 all sign alike), sorted by
// name then value, a bare name given an empty value.
std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    size_t amp = query.find('&', start);
    std::string_view item = query.substr(start, amp == std::string_view::npos ? query.npos : amp - start);
    if (!item.empty()) {
      size_t eq = item.find('=');
      std::string_view name = item.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
      params.emplace_back(UriEncode(UriDecode(name)), UriEncode(UriDecode(value)));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string AmzDate(int64_t unix_time) {
  time_t t = static_cast<time_t>(unix_time);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

void RemoveHeader(HttpHeaders* headers, std::string_view lower_name) {
  headers->erase(
      std::remove_if(headers->begin(), headers->end(), [&](const auto& h) { return ToLower(h.first) == lower_name; }),
      headers->end());
}

// The signing key depends only on (secret, date, region, service): one HMAC
// chain per day instead of four HMACs per request. A few entries per thread
// cover a process that talks to S3, SQS and STS without any locking.
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  struct Entry {
    std::string secret, date, region, service, key;
  };
  thread_local std::array<Entry, 4> cache;
  thread_local size_t next = 0;
  for (const Entry& e : cache)
    if (!e.key.empty() && e.secret == secret && e.date == date && e.region == region && e.service == service)
      return e.key;
  std::string key = HmacSha256("AWS4" + std::string(secret), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  Entry& slot = cache[next];
  next = (next + 1) % cache.size();
  slot = Entry{std::string(secret), std::string(date), std::string(region), std::string(service), key};
  return key;
}

}  // namespace

std::string CanonicalRequest(const HttpRequest& request, std::string_view payload_hash, bool double_encode_path,
                             std::string* signed_headers) {
  Url url;
  if (!ParseUrl(request.url, &url)) url.path = "/";

  std::string path;
  if (double_encode_path) {
    path = UriEncode(NormalizePath(url.path), /*keep_slash=*/true);
  } else {
    // S3 signs the path exactly as sent: keys may legitimately contain "//"
    // or "./", and the caller has already encoded them once.
    path = url.path.empty() ? "/" : url.path;
  }

  // Lower-cased names, values of repeated headers joined by ',' in the order
  // they appear; std::stable_sort keeps that order within a name.
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : request.headers) {
    std::string lower = ToLower(name);
    std::string trimmed = TrimAll(value);
    // curl does not send a header whose value is empty, so signing one would
    // sign something the server never sees.
    if (IsUnsignedHeader(lower) || trimmed.empty()) continue;
    headers.emplace_back(std::move(lower), std::move(trimmed));
  }
  std::stable_sort(headers.begin(), headers.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers, names;
  for (size_t i = 0; i < headers.size();) {
    size_t j = i;
    std::string joined;
    while (j < headers.size() && headers[j].first == headers[i].first) {
      if (j > i) joined.push_back(',');
      joined += headers[j].second;
      ++j;
    }
    canonical_headers += headers[i].first + ":" + joined + "\n";
    if (!names.empty()) names.push_back(';');
    names += headers[i].first;
    i = j;
  }

  std::string out;
  out.reserve(256 + canonical_headers.size() + path.size() + url.query.size());
  out += request.method;
  out += '\n';
  out += path;
  out += '\n';
  out += CanonicalQuery(url.query);
  out += '\n';
  out += canonical_headers;
  out += '\n';
  out += names;
  out += '\n';
  out += payload_hash;
  if (signed_headers) *signed_headers = std::move(names);
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request) {
  std::string out;
  out += kAlgorithm;
  out += '\n';
  out += amz_date;
  out += '\n';
  out += scope;
  out += '\n';
  out += Sha256Hex(canonical_request);
  return out;
}

Status SignRequest(HttpRequest* request, const Credentials& credentials, const SigningParams& params,
                   std::string_view payload_hash) {
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty())
    return Status::InvalidArgument("signing " + params.service + " request: no AWS credentials");
  if (params.service.empty() || params.region.empty())
    return Status::InvalidArgument("signing request: service and region are required");
  Url url;
  if (!ParseUrl(request->url, &url)) return Status::InvalidArgument("signing " + params.service + " request: bad URL");

  std::string body_hash = payload_hash.empty() ? Sha256Hex(request->body) : std::string(payload_hash);
  std::string amz_date = AmzDate(params.unix_time);
  std::string date = amz_date.substr(0, 8);

  // Replace, never duplicate: a retried request is signed again with a new
  // time, and a stale second X-Amz-Date would break the signature.
  for (std::string_view name : {"host", "x-amz-date", "authorization", "x-amz-security-token", "x-amz-content-sha256"})
    RemoveHeader(&request->headers, name);
  request->headers.emplace_back("Host", url.Authority());
  request->headers.emplace_back("X-Amz-Date", amz_date);
  if (params.add_content_sha256) request->headers.emplace_back("x-amz-content-sha256", body_hash);
  if (!credentials.session_token.empty())
    request->headers.emplace_back("X-Amz-Security-Token", credentials.session_token);

  std::string signed_headers;
  std::string canonical = CanonicalRequest(*request, body_hash, params.double_encode_path, &signed_headers);
  std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  std::string to_sign = StringToSign(amz_date, scope, canonical);
  std::string key = SigningKey(credentials.secret_access_key, date, params.region, params.service);
  std::string mac = HmacSha256(key, to_sign);
  std::string signature = HexEncode(mac.data(), mac.size());

  request->headers.emplace_back("Authorization", std::string(kAlgorithm) + " Credential=" + credentials.access_key_id +
                                                     "/" + scope + ", SignedHeaders=" + signed_headers +
                                                     ", Signature=" + signature);
  return Status::Ok();
}

}  // namespace logferry::aws
