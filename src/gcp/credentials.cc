#include "gcp/credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/refreshing_cache.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry::gcp {
namespace {

constexpr const char* kDefaultTokenUri = "https://oauth2.googleapis.com/token";
constexpr const char* kDefaultScope = "https://www.googleapis.com/auth/cloud-platform";
constexpr const char* kDefaultMetadataHost = "169.254.169.254";
constexpr const char* kMetadataTokenPath = "/computeMetadata/v1/instance/service-accounts/default/token";
constexpr const char* kJwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// Google's client libraries refresh this long before expiry, so a request
// authorized just before the refresh still reaches the service in time.
constexpr int64_t kRefreshBeforeUs = 5 * 60 * kMicrosPerSecond;
// Google accepts assertions valid for at most one hour.
constexpr int64_t kJwtLifetimeS = 3600;
// A token response without expires_in: Google documents one-hour tokens.
constexpr int64_t kDefaultTokenLifetimeS = 3600;
// The metadata server answers in milliseconds where it exists; on a laptop
// 169.254.169.254 is often a black hole, and the chain must give up quickly
// instead of hanging a CLI command. The whole request may take longer: on
// GKE the metadata server may itself fetch the token first.
constexpr int64_t kMetadataConnectTimeoutMs = 1000;
constexpr int64_t kMetadataTimeoutMs = 10'000;
constexpr int64_t kTokenEndpointTimeoutMs = 30'000;

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string Base64Url(std::string_view data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

// Printable text for a message: an error code or a short server text, never
// a body.
std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > max) out += "...";
  return out;
}

// Secrets a message must not carry. Messages are built from field names and
// Google's error codes in the first place; this catches a server that echoes
// a secret back in its error text.
class Secrets {
 public:
  // Very short values are skipped: redacting "a" would mangle the message
  // and no real key, token or client secret is that short.
  // The form-encoded spelling too: that is how it crossed the wire, and how
  // a server echoing the request would repeat it.
  void Add(std::string_view secret) {
    if (Trim(secret).size() < 8) return;
    values_.emplace_back(secret);
    std::string encoded = UriEncode(secret);
    if (encoded != secret) values_.push_back(std::move(encoded));
  }
  // A PEM key as a whole and line by line: an echo of any one base64 line is
  // a piece of the key.
  void AddPem(std::string_view pem) {
    Add(pem);
    for (const std::string& line : Split(pem, '\n')) {
      std::string t = Trim(line);
      if (!StartsWith(t, "-----")) Add(t);
    }
  }
  // A JWT as a whole and its signature (the part that proves the key).
  void AddJwt(std::string_view jwt) {
    Add(jwt);
    size_t dot = jwt.rfind('.');
    if (dot != std::string_view::npos) Add(jwt.substr(dot + 1));
  }
  std::string Redact(std::string message) const {
    for (const std::string& secret : values_)
      for (size_t pos; (pos = message.find(secret)) != std::string::npos;)
        message.replace(pos, secret.size(), "<redacted>");
    return message;
  }
  Status Redact(const Status& status) const { return Status(status.code(), Redact(status.message())); }

 private:
  std::vector<std::string> values_;
};

StatusOr<std::string> ReadFile(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": " + (errno ? std::strerror(errno) : "cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::InvalidArgument(path + ": read failed");
  return ss.str();
}

// Parses without exceptions: nlohmann's parse errors quote the input around
// the error, which in these bodies sits next to a secret.
std::optional<nlohmann::json> ParseJsonObject(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string StringField(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += UriEncode(name) + "=" + UriEncode(value);
  }
  return out;
}

// An OAuth 2.0 token response (RFC 6749 section 5.1) as Google's token
// endpoint and the metadata server send it. The caller has added the
// request's secrets; the response's own access token is added here so no
// later message can carry it.
StatusOr<AccessToken> ParseTokenResponse(const HttpResponse& response, const std::string& source, int64_t now_us,
                                         Secrets secrets) {
  std::optional<nlohmann::json> j = ParseJsonObject(response.body);
  if (j) secrets.Add(StringField(*j, "access_token"));
  auto fail = [&](const std::string& what) { return secrets.Redact(Status::Corruption(source + ": " + what)); };
  if (!j) return fail("the token response is not a JSON object");
  auto token = j->find("access_token");
  if (token == j->end() || !token->is_string() || token->get<std::string>().empty())
    return fail("the token response has no string access_token");
  // The value is not quoted: a server that puts a token where the type goes
  // would have a prefix of it printed, past the redaction of the whole.
  if (j->contains("token_type") && ToLower(StringField(*j, "token_type")) != "bearer")
    return fail("the token response's token_type is not Bearer");
  int64_t lifetime_s = kDefaultTokenLifetimeS;
  if (auto it = j->find("expires_in"); it != j->end()) {
    // Google sends a number; a numeric string is accepted as some proxies
    // re-encode it.
    std::optional<double> seconds;
    if (it->is_number()) seconds = it->get<double>();
    if (it->is_string()) {
      const std::string& text = it->get_ref<const std::string&>();
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (!text.empty() && end && *end == '\0') seconds = v;
    }
    if (!seconds || !std::isfinite(*seconds) || *seconds <= 0 || *seconds > 10 * 365 * 86400.0)
      return fail("the token response's expires_in is not a positive number of seconds");
    lifetime_s = static_cast<int64_t>(*seconds);
  }
  AccessToken out;
  out.token = token->get<std::string>();
  out.expires_at_us = now_us + lifetime_s * kMicrosPerSecond;
  out.source = source;
  return out;
}

// A non-2xx answer from a token endpoint: {"error": code, "error_description":
// text}. 400/401/403 mean the grant itself was refused (invalid_grant,
// invalid_client, a disabled account): retrying cannot help.
Status TokenEndpointError(const HttpResponse& response, const std::string& source, const std::string& what,
                          const Secrets& secrets) {
  StatusCode code = ClassifyHttpStatus(response.status);
  if (response.status == 400 || response.status == 401 || response.status == 403) code = StatusCode::kPermissionDenied;
  std::string message = source + ": " + what + " returned HTTP " + std::to_string(response.status);
  if (std::optional<nlohmann::json> j = ParseJsonObject(response.body)) {
    // Redacted before it is cut short, so a cut cannot hide a secret's end.
    std::string error = secrets.Redact(StringField(*j, "error"));
    std::string description = secrets.Redact(StringField(*j, "error_description"));
    if (!error.empty()) message += " " + Printable(error, 60);
    if (!description.empty()) message += ": " + Printable(description, 200);
  }
  return secrets.Redact(Status(code, message));
}

// ---------------------------------------------------------------------------
// Sources. Each fetches a fresh token each time it is asked; caching is the
// provider's.

class Source {
 public:
  virtual ~Source() = default;
  virtual StatusOr<AccessToken> Fetch(int64_t now_us) = 0;
};

// POSTs a form to a token endpoint and parses the answer.
StatusOr<AccessToken> ExchangeAtTokenEndpoint(const HttpClient& http, const std::string& token_uri,
                                              const std::string& form, const std::string& source,
                                              const std::string& token_source, const std::string& what, int64_t now_us,
                                              const Secrets& secrets) {
  HttpRequest request;
  request.method = "POST";
  request.url = token_uri;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  request.body = form;
  request.carries_credentials = true;  // a JWT assertion, or a client secret and refresh token
  request.timeout_ms = kTokenEndpointTimeoutMs;
  auto response = http.Send(request);
  // The transport's message names the method and URL already.
  if (!response.ok()) return secrets.Redact(response.status().WithContext(source));
  if (response->status < 200 || response->status >= 300) return TokenEndpointError(*response, source, what, secrets);
  auto token = ParseTokenResponse(*response, source, now_us, secrets);
  if (!token.ok()) return token.status();
  token->source = token_source;
  return token;
}

class ServiceAccountSource : public Source {
 public:
  ServiceAccountSource(const HttpClient& http, std::string email, std::string private_key, std::string key_id,
                       std::string token_uri, std::string scope, const std::string& origin)
      : http_(http),
        email_(std::move(email)),
        private_key_(std::move(private_key)),
        key_id_(std::move(key_id)),
        token_uri_(std::move(token_uri)),
        scope_(std::move(scope)),
        name_("service account " + email_),
        described_(name_ + " (" + origin + ")") {}

  StatusOr<AccessToken> Fetch(int64_t now_us) override {
    Secrets secrets;
    secrets.AddPem(private_key_);
    auto jwt = SignServiceAccountJwt(email_, private_key_, scope_, token_uri_, now_us / kMicrosPerSecond, key_id_);
    if (!jwt.ok()) return secrets.Redact(jwt.status().WithContext(described_));
    secrets.AddJwt(*jwt);
    std::string form = FormEncode({{"grant_type", kJwtBearerGrant}, {"assertion", *jwt}});
    return ExchangeAtTokenEndpoint(http_, token_uri_, form, described_, name_,
                                   "token endpoint " + token_uri_ + " (JWT bearer grant)", now_us, secrets);
  }

 private:
  const HttpClient& http_;
  std::string email_, private_key_, key_id_, token_uri_, scope_;
  std::string name_;       // AccessToken::source
  std::string described_;  // for messages: where the key came from
};

// gcloud's `auth application-default login` file: an OAuth client and the
// user's refresh token. Scopes were fixed at login; the refresh does not
// take one.
class AuthorizedUserSource : public Source {
 public:
  AuthorizedUserSource(const HttpClient& http, std::string client_id, std::string client_secret,
                       std::string refresh_token, std::string token_uri, const std::string& origin)
      : http_(http),
        client_id_(std::move(client_id)),
        client_secret_(std::move(client_secret)),
        refresh_token_(std::move(refresh_token)),
        token_uri_(std::move(token_uri)),
        described_("authorized user (" + origin + ")") {}

  StatusOr<AccessToken> Fetch(int64_t now_us) override {
    Secrets secrets;
    secrets.Add(client_secret_);
    secrets.Add(refresh_token_);
    std::string form = FormEncode({{"grant_type", "refresh_token"},
                                   {"client_id", client_id_},
                                   {"client_secret", client_secret_},
                                   {"refresh_token", refresh_token_}});
    return ExchangeAtTokenEndpoint(http_, token_uri_, form, described_, "authorized user",
                                   "token endpoint " + token_uri_ + " (refresh token grant)", now_us, secrets);
  }

 private:
  const HttpClient& http_;
  std::string client_id_, client_secret_, refresh_token_, token_uri_;
  std::string described_;
};

class EnvironmentSource : public Source {
 public:
  explicit EnvironmentSource(std::string token) : token_(std::move(token)) {}
  // Nobody can refresh it: it never expires as far as we know, and a stale
  // one shows up as the services' 401s.
  StatusOr<AccessToken> Fetch(int64_t) override { return AccessToken{token_, 0, "environment"}; }

 private:
  std::string token_;
};

class MetadataSource : public Source {
 public:
  MetadataSource(const HttpClient& http, std::string base_url, std::string scope)
      : http_(http),
        base_url_(std::move(base_url)),
        scope_(std::move(scope)),
        described_("metadata server at " + base_url_) {}

  const std::string& base_url() const { return base_url_; }

  StatusOr<AccessToken> Fetch(int64_t now_us) override {
    bool unreachable = false;
    auto token = FetchOrUnreachable(now_us, &unreachable);
    if (unreachable) return token.status().WithContext(described_);
    return token;
  }

  // *unreachable is set, and the transport's error returned as it is, when
  // nothing answered at the address: on the first resolution that means
  // "not on Google Cloud" rather than an error of this source.
  StatusOr<AccessToken> FetchOrUnreachable(int64_t now_us, bool* unreachable) {
    *unreachable = false;
    HttpRequest request;
    request.url = base_url_ + kMetadataTokenPath;
    // The default service account's token already has the VM's scopes;
    // another scope must be asked for by name.
    if (scope_ != kDefaultScope) request.url += "?scopes=" + UriEncode(scope_);
    // Without it the server answers 403: the header proves the request was
    // made on purpose, not by a forwarded or redirected request.
    request.headers = {{"Metadata-Flavor", "Google"}};
    request.timeout_ms = kMetadataTimeoutMs;
    auto response = http_.Send(request);
    if (!response.ok()) {
      *unreachable = true;
      return response.status();
    }
    // Something else may listen at the address (a laptop's network, a proxy):
    // only Google's server says what it is.
    if (response->Header("metadata-flavor") != "Google")
      return Status::FailedPrecondition(
          described_ + ": the answer (HTTP " + std::to_string(response->status) +
          ") has no Metadata-Flavor: Google header; this is not a Google metadata server");
    if (response->status == 404)
      return Status::FailedPrecondition(described_ + ": no default service account is attached (HTTP 404)");
    if (response->status != 200) {
      StatusCode code = ClassifyHttpStatus(response->status);
      if (response->status == 400) code = StatusCode::kPermissionDenied;
      return Status(code,
                    described_ + ": GET " + kMetadataTokenPath + " returned HTTP " + std::to_string(response->status));
    }
    auto token = ParseTokenResponse(*response, described_, now_us, Secrets());
    if (!token.ok()) return token.status();
    token->source = "metadata";
    return token;
  }

 private:
  const HttpClient& http_;
  std::string base_url_, scope_, described_;
};

// ---------------------------------------------------------------------------

class DefaultProvider : public TokenProvider {
 public:
  explicit DefaultProvider(TokenOptions options) : options_(std::move(options)) {
    if (!options_.getenv) options_.getenv = [](const std::string& name) { return Env::Default()->GetEnvOr(name); };
    if (!options_.now_us) options_.now_us = [] { return Env::Default()->NowMicros(); };
    if (options_.home.empty()) options_.home = options_.getenv("HOME");
    if (options_.scope.empty()) options_.scope = kDefaultScope;
    if (options_.metadata_host.empty()) options_.metadata_host = options_.getenv("GCE_METADATA_HOST");
    if (options_.metadata_host.empty()) options_.metadata_host = kDefaultMetadataHost;
  }

  StatusOr<AccessToken> Get() override {
    return cache_.Get([this] { return Fetch(); });
  }

 private:
  std::string Env(const char* name) const { return options_.getenv(name); }
  const HttpClient& Http() const { return options_.http ? *options_.http : HttpClient::Default(); }
  // Not options_.http: that one is set up for the token endpoints (TLS, a CA
  // file), and its connect timeout would make a laptop wait.
  static const HttpClient& MetadataHttp() {
    static HttpClient* client = [] {
      HttpClientOptions o;
      o.connect_timeout_ms = kMetadataConnectTimeoutMs;
      return new HttpClient(o);
    }();
    return *client;
  }

  // REQUIRES: called only by cache_ (never two at once). The source is chosen once; later refreshes
  // ask it again (a key file is not re-read, and a metadata server that
  // answered once is not mistaken for absent when it blips).
  StatusOr<AccessToken> Fetch() {
    int64_t now = options_.now_us();
    if (source_) return source_->Fetch(now);
    auto resolved = Resolve(now);
    if (!resolved.ok()) return resolved.status();
    auto [source, first] = std::move(*resolved);
    // Only a source that worked is kept: a failed first attempt (a key file
    // being fixed, a token endpoint down) resolves afresh next time.
    if (first.ok()) source_ = std::move(source);
    return first;
  }

  using Resolved = std::pair<std::unique_ptr<Source>, StatusOr<AccessToken>>;

  StatusOr<Resolved> Resolve(int64_t now) {
    auto fetch = [&](std::unique_ptr<Source> source) -> StatusOr<Resolved> {
      StatusOr<AccessToken> token = source->Fetch(now);
      return Resolved{std::move(source), std::move(token)};
    };
    // 1. and 2.: a file someone named must work; its absence is an error.
    if (!options_.key_file.empty()) {
      LF_ASSIGN_OR_RETURN(auto source, LoadCredentialsFile(options_.key_file, "key file " + options_.key_file));
      return fetch(std::move(source));
    }
    if (std::string path = Env("GOOGLE_APPLICATION_CREDENTIALS"); !path.empty()) {
      LF_ASSIGN_OR_RETURN(auto source, LoadCredentialsFile(path, "GOOGLE_APPLICATION_CREDENTIALS=" + path));
      return fetch(std::move(source));
    }
    // 3. gcloud's ADC file only when it exists.
    std::string config_dir = Env("CLOUDSDK_CONFIG");
    if (config_dir.empty()) config_dir = options_.home + "/.config/gcloud";
    std::string adc_path = config_dir + "/application_default_credentials.json";
    std::error_code ec;
    if (std::filesystem::exists(adc_path, ec)) {
      LF_ASSIGN_OR_RETURN(auto source, LoadCredentialsFile(adc_path, "gcloud ADC file " + adc_path));
      return fetch(std::move(source));
    }
    // 4.
    for (const char* name : {"GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN"}) {
      std::string token = Trim(Env(name));
      if (!token.empty()) return fetch(std::make_unique<EnvironmentSource>(token));
    }
    // 5.
    std::string host = options_.metadata_host;
    if (!StartsWith(host, "http://") && !StartsWith(host, "https://")) host = "http://" + host;
    while (!host.empty() && host.back() == '/') host.pop_back();
    auto metadata = std::make_unique<MetadataSource>(MetadataHttp(), host, options_.scope);
    bool unreachable = false;
    StatusOr<AccessToken> token = metadata->FetchOrUnreachable(now, &unreachable);
    if (unreachable)
      return Status::FailedPrecondition(
          "no Google credentials found: no credentials file configured, GOOGLE_APPLICATION_CREDENTIALS is not set, "
          "no gcloud ADC file at " +
          adc_path +
          ", GOOGLE_OAUTH_ACCESS_TOKEN and CLOUDSDK_AUTH_ACCESS_TOKEN are not set, and no metadata server "
          "answered at " +
          host + " (" + token.status().message() + ")");
    return Resolved{std::move(metadata), std::move(token)};
  }

  // A service_account key or an authorized_user file. origin says where the
  // path came from, for messages. Messages name fields, never their values.
  StatusOr<std::unique_ptr<Source>> LoadCredentialsFile(const std::string& path, const std::string& origin) {
    auto text = ReadFile(path);
    if (!text.ok())
      return Status::InvalidArgument(origin + ": cannot read the credentials file: " + text.status().message());
    std::optional<nlohmann::json> j = ParseJsonObject(*text);
    if (!j) return Status::InvalidArgument(origin + ": the credentials file is not a JSON object");
    std::string type = StringField(*j, "type");
    auto require = [&](const char* field, std::string* out) -> Status {
      *out = StringField(*j, field);
      if (out->empty())
        return Status::InvalidArgument(origin + ": the " + type + " credentials file has no string \"" + field + "\"");
      return Status::Ok();
    };
    std::string token_uri = options_.token_uri;
    if (token_uri.empty()) token_uri = StringField(*j, "token_uri");
    if (token_uri.empty()) token_uri = kDefaultTokenUri;
    // What goes there is the signed assertion or the refresh token: a key
    // file naming a plain-http token_uri elsewhere would hand it to anyone
    // on the path (the HTTP client refuses it too; this says which field).
    if (Url url;
        !ParseUrl(token_uri, &url) || (url.scheme != "https" && !(url.scheme == "http" && IsLoopbackHost(url.host))))
      return Status::InvalidArgument(origin + ": token_uri '" + Printable(token_uri, 200) +
                                     "' must be an https:// URL (plain http only to a loopback host)");

    if (type == "service_account") {
      std::string email, key;
      LF_RETURN_IF_ERROR(require("client_email", &email));
      LF_RETURN_IF_ERROR(require("private_key", &key));
      return std::unique_ptr<Source>(std::make_unique<ServiceAccountSource>(
          Http(), email, key, StringField(*j, "private_key_id"), token_uri, options_.scope, origin));
    }
    if (type == "authorized_user") {
      std::string client_id, client_secret, refresh_token;
      LF_RETURN_IF_ERROR(require("client_id", &client_id));
      LF_RETURN_IF_ERROR(require("client_secret", &client_secret));
      LF_RETURN_IF_ERROR(require("refresh_token", &refresh_token));
      return std::unique_ptr<Source>(
          std::make_unique<AuthorizedUserSource>(Http(), client_id, client_secret, refresh_token, token_uri, origin));
    }
    if (type.empty()) return Status::InvalidArgument(origin + ": the credentials file has no \"type\"");
    return Status::InvalidArgument(origin + ": credentials of type \"" + Printable(type, 60) +
                                   "\" are not supported (service_account and authorized_user are)");
  }

  TokenOptions options_;
  // Its fetches never overlap, which is what guards source_.
  RefreshingCache<AccessToken> cache_{kRefreshBeforeUs, [this] { return options_.now_us(); }};
  std::unique_ptr<Source> source_;
};

class StaticProvider : public TokenProvider {
 public:
  explicit StaticProvider(std::string token) : token_(std::move(token)) {}
  StatusOr<AccessToken> Get() override {
    if (token_.empty()) return Status::InvalidArgument("static token: the token is empty");
    return AccessToken{token_, 0, "static"};
  }

 private:
  std::string token_;
};

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

std::unique_ptr<TokenProvider> MakeTokenProvider(TokenOptions options) {
  return std::make_unique<DefaultProvider>(std::move(options));
}

std::unique_ptr<TokenProvider> MakeStaticTokenProvider(std::string token) {
  return std::make_unique<StaticProvider>(std::move(token));
}

StatusOr<std::string> SignServiceAccountJwt(const std::string& client_email, const std::string& private_key_pem,
                                            const std::string& scope, const std::string& audience, int64_t now_s,
                                            const std::string& key_id) {
  std::string header = R"({"alg":"RS256","typ":"JWT")";
  if (!key_id.empty()) header += ",\"kid\":" + JsonQuote(key_id);
  header += "}";
  std::string claims = "{\"iss\":" + JsonQuote(client_email) + ",\"scope\":" + JsonQuote(scope) +
                       ",\"aud\":" + JsonQuote(audience) + ",\"exp\":" + std::to_string(now_s + kJwtLifetimeS) +
                       ",\"iat\":" + std::to_string(now_s) + "}";
  std::string signing_input = Base64Url(header) + "." + Base64Url(claims);

  // OpenSSL's error queue is cleared on every failure: its texts are not
  // secret, but a stale entry would confuse the next unrelated caller.
  auto fail = [](const std::string& what) {
    ERR_clear_error();
    return Status::InvalidArgument(what);
  };
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  if (!bio) return fail("cannot allocate a BIO for the private key");
  // The empty passphrase callback keeps OpenSSL from prompting on a terminal
  // for an encrypted key.
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key) return fail("private_key is not a PEM private key");
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) return fail("private_key is not an RSA key (RS256 needs one)");
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t signature_size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &signature_size, reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1)
    return fail("RS256 signing failed to start");
  std::string signature(signature_size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &signature_size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
    return fail("RS256 signing failed");
  signature.resize(signature_size);
  return signing_input + "." + Base64Url(signature);
}

}  // namespace logferry::gcp
