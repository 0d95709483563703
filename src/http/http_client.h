// A small HTTP client on libcurl for the cloud backends (S3, SQS, STS, GCS,
// BigQuery, metadata servers). Requests and responses are whole bodies in
// memory: callers that move large objects split them (ranged GETs, multipart
// uploads), which also gives them resumable units for retries.
//
// Errors: a transport failure (refused, reset, timeout, TLS, truncated body)
// is kUnavailable; any HTTP status is a successful Send and the caller
// classifies it (ClassifyHttpStatus is the common rule). Messages never carry
// request headers or bodies, so credentials cannot leak through them.
//
// Credentials and plain http: a request that carries a credential (an
// Authorization header other than a SigV4 signature, or carries_credentials)
// is refused with kInvalidArgument, before any connection, when its URL is
// http:// to a host that is neither loopback nor one of the link-local
// container-credential agents (169.254.170.2, 169.254.170.23, fd00:ec2::23).
// A SigV4 signature is not refused: it proves one request for 15 minutes and
// never reveals the secret key (config decides whether http is allowed).
// A response whose status is not 2xx has every credential value of its
// request (and Bearer / Signature= patterns) replaced by [redacted] in its
// body and headers before the caller sees it, so a server that echoes
// Authorization cannot put a token into an error message.
// Thread-safe: each thread reuses its own connection pool.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace logferry {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute; path and query already percent-encoded
  HttpHeaders headers;
  std::string_view body;  // not owned; must outlive Send
  // The body holds a credential (a JWT assertion, a refresh token, a web
  // identity token) in form encoding: never sent over plain http to a
  // non-loopback host, and its values are redacted from error responses.
  bool carries_credentials = false;
  int64_t timeout_ms = 60'000;
  // A transfer slower than this many bytes/s for low_speed_time_s is a stall
  // (kUnavailable) even before timeout_ms.
  int64_t low_speed_bytes = 1;
  int64_t low_speed_time_s = 30;
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // names lower-cased, in arrival order
  std::string body;

  // The last header with this (lower-case) name, or "" when absent.
  std::string_view Header(std::string_view lower_name) const;
  bool HasHeader(std::string_view lower_name) const;
};

struct HttpClientOptions {
  bool verify_tls = true;
  std::string ca_file;  // empty: the system store
  int64_t connect_timeout_ms = 10'000;
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  StatusOr<HttpResponse> Send(const HttpRequest& request) const;

  // The process-wide client with default options.
  static HttpClient& Default();

 private:
  HttpClientOptions options_;
};

// The status-code half of error classification shared by the backends:
// 408/429/500/502/503/504 are transient (kUnavailable); 401/403 permission;
// 404 not found; 409 already exists; 412 failed precondition; other 4xx
// invalid argument.
StatusCode ClassifyHttpStatus(int status);

// RFC 3986 percent-encoding of everything except unreserved characters
// (A-Z a-z 0-9 - _ . ~); keep_slash leaves '/' as is (S3 object paths).
std::string UriEncode(std::string_view s, bool keep_slash = false);
// Decodes %XX; plus_is_space also turns '+' into ' ' (form encoding, as S3
// event notifications use for keys).
std::string UriDecode(std::string_view s, bool plus_is_space = false);

// Splits "scheme://host[:port]/path?query" (no userinfo).
struct Url {
  std::string scheme, host, path, query;
  int port = 0;  // 0: the scheme's default
  // "host" or "host:port" as a Host header spells it.
  std::string Authority() const;
  std::string Origin() const;  // scheme://authority
};
bool ParseUrl(std::string_view s, Url* out);

// 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z), localhost and *.localhost;
// host as ParseUrl gives it (IPv6 in brackets, maybe with a port).
bool IsLoopbackHost(std::string_view host);

// text with the request's credential values (Authorization and its token
// or signature, X-Amz-Security-Token, form values of a carries_credentials
// body) and any "Bearer <token>" or "Signature=<hex>" replaced by [redacted].
std::string RedactCredentials(std::string text, const HttpRequest& request);

}  // namespace logferry
