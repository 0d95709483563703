#include "http/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <mutex>

#include "common/strings.h"

namespace logferry {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle per thread: curl keeps the connection cache in the handle,
// so reusing it keeps connections (and TLS sessions) alive between requests.
struct ThreadHandle {
  CURL* curl = nullptr;
  ~ThreadHandle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

CURL* HandleForThisThread() {
  thread_local ThreadHandle handle;
  if (!handle.curl) {
    GlobalInit();
    handle.curl = curl_easy_init();
  } else {
    curl_easy_reset(handle.curl);
  }
  return handle.curl;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  // A new status line (after 100 Continue, say) starts a new header block.
  if (StartsWith(line, "HTTP/")) {
    response->headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  response->headers.emplace_back(ToLower(line.substr(0, colon)), std::string(value));
  return size * n;
}

// The URL without its query: queries can hold capabilities (upload ids,
// signatures) and never belong in a message.
std::string_view UrlForMessages(std::string_view url) {
  return url.substr(0, url.find('?'));
}

// The ECS and EKS Pod Identity agents: link-local, and where the SDKs send
// the container authorization token over plain http.
bool IsContainerAgentHost(std::string_view host) {
  return host == "169.254.170.2" || host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

bool IsLocalOnlyHost(std::string_view host) {
  return IsContainerAgentHost(host) || host == "169.254.169.254" || host == "[fd00:ec2::254]" ||
         host == "metadata.google.internal" || IsLoopbackHost(host);
}

bool SendsCredentials(const HttpRequest& request) {
  if (request.carries_credentials) return true;
  for (const auto& [name, value] : request.headers)
    if (ToLower(name) == "authorization" && !StartsWith(value, "AWS4-HMAC-SHA256 ")) return true;
  return false;
}

// Plain http to anywhere but this machine (or its container agent) would
// show a credential to everyone on the path.
bool CredentialsExposed(const HttpRequest& request) {
  if (!StartsWith(ToLower(request.url.substr(0, 7)), "http://") || !SendsCredentials(request)) return false;
  Url url;
  return !ParseUrl(request.url, &url) || !(IsLoopbackHost(url.host) || IsContainerAgentHost(url.host));
}

void AddSecret(std::vector<std::string>* out, std::string_view value) {
  // Shorter values are not secrets of any scheme used here, and replacing
  // them would mangle the message.
  if (value.size() < 8) return;
  out->emplace_back(value);
  std::string encoded = UriEncode(value);
  if (encoded != value) out->push_back(std::move(encoded));
}

std::vector<std::string> CredentialValues(const HttpRequest& request) {
  std::vector<std::string> out;
  for (const auto& [name, value] : request.headers) {
    std::string lower = ToLower(name);
    if (lower != "authorization" && lower != "proxy-authorization" && lower != "x-amz-security-token" &&
        lower != "x-aws-ec2-metadata-token" && lower != "cookie")
      continue;
    AddSecret(&out, value);
    if (size_t sp = value.find(' '); sp != std::string::npos) AddSecret(&out, value.substr(sp + 1));
    if (size_t sig = value.find("Signature="); sig != std::string::npos) AddSecret(&out, value.substr(sig + 10));
  }
  if (request.carries_credentials) {
    for (const std::string& pair : Split(request.body, '&')) {
      size_t eq = pair.find('=');
      if (eq == std::string::npos) continue;
      AddSecret(&out, pair.substr(eq + 1));
      AddSecret(&out, UriDecode(pair.substr(eq + 1), true));
    }
  }
  // Longest first: a whole header value goes before the token inside it.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

// "[redacted]" rather than "<redacted>": the body is still parsed (S3's XML
// errors), and brackets are inert in XML and JSON alike.
constexpr std::string_view kRedacted = "[redacted]";

// Replaces what follows each (case-insensitive) marker while it is made of
// the given characters, when at least min_len of them follow.
void RedactAfter(std::string* text, std::string_view marker, std::string_view chars, size_t min_len) {
  std::string lower = ToLower(*text);
  for (size_t pos = 0; (pos = lower.find(marker, pos)) != std::string::npos;) {
    size_t start = pos + marker.size();
    size_t end = lower.find_first_not_of(chars, start);
    if (end == std::string::npos) end = lower.size();
    if (end - start >= min_len) {
      text->replace(start, end - start, kRedacted);
      lower.replace(start, end - start, kRedacted);
    }
    pos = start;
  }
}

void RedactResponse(HttpResponse* response, const HttpRequest& request) {
  response->body = RedactCredentials(std::move(response->body), request);
  for (auto& header : response->headers) header.second = RedactCredentials(std::move(header.second), request);
}

}  // namespace

std::string_view HttpResponse::Header(std::string_view lower_name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it)
    if (it->first == lower_name) return it->second;
  return {};
}

bool HttpResponse::HasHeader(std::string_view lower_name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == lower_name; });
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  GlobalInit();
}

HttpClient::~HttpClient() = default;

HttpClient& HttpClient::Default() {
  static HttpClient* client = new HttpClient();
  return *client;
}

StatusOr<HttpResponse> HttpClient::Send(const HttpRequest& request) const {
  if (CredentialsExposed(request))
    return Status::InvalidArgument(request.method + " " + std::string(UrlForMessages(request.url)) +
                                   ": refusing to send credentials over plain http to a host that is not loopback; "
                                   "use https");
  CURL* curl = HandleForThisThread();
  if (!curl) return Status::Internal("curl_easy_init failed");
  HttpResponse response;

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(request.low_speed_bytes));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.low_speed_time_s));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  // Metadata and container-credential endpoints are link-local or loopback:
  // a configured HTTP proxy must never see those requests (the SDKs bypass
  // proxies for them too). curl resolves *.localhost to loopback as well,
  // which is what a virtual-hosted bucket on a localhost endpoint becomes.
  Url url;
  if (ParseUrl(request.url, &url) && IsLocalOnlyHost(url.host)) curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  // Bodies are compared against checksums of the stored bytes: no transparent
  // decoding of Content-Encoding.
  curl_easy_setopt(curl, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);

  bool has_body =
      request.method == "PUT" || request.method == "POST" || request.method == "PATCH" || !request.body.empty();
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data() ? request.body.data() : "");
    if (request.method != "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* headers = nullptr;
  bool has_content_type = false;
  for (const auto& [name, value] : request.headers) {
    if (ToLower(name) == "content-type") has_content_type = true;
    std::string line = name + ": " + value;
    headers = curl_slist_append(headers, line.c_str());
  }
  // curl's default for a body is application/x-www-form-urlencoded, which
  // some servers treat as a form to parse (moto hangs on it).
  if (has_body && !has_content_type) headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
  // No "Expect: 100-continue" round trip: bodies here are bounded chunks.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    std::string what = request.method + " " + std::string(UrlForMessages(request.url)) + ": " + curl_easy_strerror(rc);
    // A TLS verification failure is a configuration problem, not a blip.
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_URL_MALFORMAT ||
        rc == CURLE_UNSUPPORTED_PROTOCOL)
      return Status::InvalidArgument(what);
    return Status::Unavailable(what);
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  // Error texts are quoted into messages and logs; success bodies are data
  // and stay exactly as stored.
  if (response.status < 200 || response.status >= 300) RedactResponse(&response, request);
  return response;
}

StatusCode ClassifyHttpStatus(int status) {
  if (status >= 200 && status < 300) return StatusCode::kOk;
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    case 401:
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kAlreadyExists;
    case 412:
      return StatusCode::kFailedPrecondition;
    case 416:
      return StatusCode::kInvalidArgument;
    default:
      return status >= 500 ? StatusCode::kUnavailable : StatusCode::kInvalidArgument;
  }
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view s, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Url::Authority() const {
  return port ? host + ":" + std::to_string(port) : host;
}

std::string Url::Origin() const {
  return scheme + "://" + Authority();
}

bool ParseUrl(std::string_view s, Url* out) {
  size_t sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  Url url;
  url.scheme = ToLower(s.substr(0, sep));
  std::string_view rest = s.substr(sep + 3);
  size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  std::string_view after = path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
    url.port = std::stoi(std::string(port));
    if (url.port <= 0 || url.port > 65535) return false;
    authority = authority.substr(0, colon);
  }
  url.host = ToLower(authority);
  size_t q = after.find('?');
  url.path = std::string(after.substr(0, q));
  if (q != std::string_view::npos) url.query = std::string(after.substr(q + 1));
  if (url.path.empty()) url.path = "/";
  *out = std::move(url);
  return true;
}

bool IsLoopbackHost(std::string_view host) {
  std::string h = ToLower(host);
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string::npos) return false;
    h = h.substr(1, close - 1);
  }
  if (h == "localhost" || EndsWith(h, ".localhost")) return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  return false;
}

std::string RedactCredentials(std::string text, const HttpRequest& request) {
  for (const std::string& secret : CredentialValues(request))
    for (size_t pos = 0; (pos = text.find(secret, pos)) != std::string::npos; pos += kRedacted.size())
      text.replace(pos, secret.size(), kRedacted);
  static constexpr std::string_view kToken68 = "abcdefghijklmnopqrstuvwxyz0123456789-._~+/=ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  RedactAfter(&text, "bearer ", kToken68, 8);
  RedactAfter(&text, "signature=", "0123456789abcdefABCDEF", 16);
  return text;
}

}  // namespace logferry
