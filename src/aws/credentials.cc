#include "aws/credentials.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <pugixml.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "aws/client.h"
#include "common/env.h"
#include "common/refreshing_cache.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry::aws {
namespace {

// The AWS SDKs refresh this long before Expiration, so a request signed just
// before the refresh still reaches the service with valid credentials.
constexpr int64_t kRefreshBeforeUs = 5 * 60 * kMicrosPerSecond;
// Metadata endpoints answer in milliseconds when they exist; on a laptop they
// do not, and the chain must fail fast instead of hanging a CLI command.
constexpr int64_t kMetadataConnectTimeoutMs = 1000;
constexpr int64_t kMetadataTimeoutMs = 2000;
constexpr int64_t kStsTimeoutMs = 10'000;
constexpr const char* kImdsTokenTtlSeconds = "21600";

// A source either does not apply here (nullopt: the chain moves on), or it is
// configured and gives credentials or an error (the chain stops, as the AWS
// CLI does: a half-configured source is a mistake to report, not to skip).
using SourceResult = std::optional<StatusOr<Credentials>>;

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Replaces every occurrence of each secret by "<redacted>". Messages are
// built without response bodies or secret values in the first place; this is
// the second line of defence (an error text echoed by a server, say).
std::string Redact(std::string message, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < 4) continue;
    for (size_t pos; (pos = message.find(secret)) != std::string::npos;)
      message.replace(pos, secret.size(), "<redacted>");
  }
  return message;
}

Status WithRedaction(const Status& status, const std::vector<std::string>& secrets) {
  return Status(status.code(), Redact(status.message(), secrets));
}

// Printable text for a message: an error code or short server text, never a
// body (bodies here carry credentials).
std::string Printable(std::string_view s, size_t max = 120) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > max) out += "...";
  return out;
}

StatusOr<std::string> ReadFile(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": " + (errno ? std::strerror(errno) : "cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------
// Shared credentials and config files: INI as the AWS CLI reads it. Section
// lines "[name]"; "key = value"; '#' and ';' start comment lines; indented
// lines continue a sub-section (s3 = ...) and are not needed here.

using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

// exists is false (and the result empty) when the file is absent. Messages
// name the file and line, never the line's text (it may hold a secret).
StatusOr<IniFile> ReadIni(const std::string& path, bool* exists) {
  *exists = false;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return IniFile{};
  std::ifstream in(path);
  if (!in) return Status::PermissionDenied("cannot read " + path);
  *exists = true;
  IniFile file;
  IniSection* section = nullptr;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    bool indented = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    std::string text = Trim(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text[0] == '[') {
      if (text.back() != ']')
        return Status::InvalidArgument(path + " line " + std::to_string(number) + ": unterminated section header");
      section = &file[Trim(std::string_view(text).substr(1, text.size() - 2))];
      continue;
    }
    if (indented) continue;  // a nested value ("s3 =\n  addressing_style = path")
    size_t eq = text.find('=');
    if (eq == std::string::npos)
      return Status::InvalidArgument(path + " line " + std::to_string(number) + ": expected 'key = value'");
    if (!section)
      return Status::InvalidArgument(path + " line " + std::to_string(number) + ": a value before any [section]");
    std::string value = Trim(std::string_view(text).substr(eq + 1));
    // An inline comment needs a space before it, so '#' inside a key is kept.
    for (std::string_view marker : {" #", " ;", "\t#", "\t;"}) {
      size_t c = value.find(marker);
      if (c != std::string::npos) value = Trim(value.substr(0, c));
    }
    (*section)[ToLower(Trim(std::string_view(text).substr(0, eq)))] = value;
  }
  return file;
}

struct Profile {
  std::string name;
  bool explicit_name = false;  // options.profile or AWS_PROFILE: it must exist
  bool found = false;
  IniSection credentials;  // from the credentials file
  IniSection config;       // from the config file
  std::string files;       // for messages

  // Credentials-file values win over config-file values, as in the AWS CLI.
  std::string Get(const std::string& key) const {
    if (auto it = credentials.find(key); it != credentials.end()) return it->second;
    if (auto it = config.find(key); it != config.end()) return it->second;
    return {};
  }
  bool Has(const std::string& key) const { return credentials.count(key) || config.count(key); }
};

std::string ExpandHome(const std::string& path, const std::string& home) {
  if (path == "~") return home;
  if (StartsWith(path, "~/")) return home + path.substr(1);
  return path;
}

// ---------------------------------------------------------------------------
// Response parsing. Messages name fields, never values.

StatusOr<int64_t> ParseExpiration(std::string_view text, std::string_view source) {
  auto t = ParseIso8601(Trim(text));
  if (!t) return Status::Corruption(std::string(source) + ": Expiration is not an ISO-8601 time");
  return *t;
}

// ECS and IMDS both answer with {"AccessKeyId", "SecretAccessKey", "Token",
// "Expiration"} (IMDS adds "Code": "Success").
StatusOr<Credentials> ParseJsonCredentials(std::string_view body, const std::string& source) {
  // No exceptions: nlohmann's parse errors quote the input around the error,
  // which here is next to a secret.
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption(source + ": response is not a JSON object");
  auto field = [&](const char* name) -> std::optional<std::string> {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (j.contains("Code")) {
    auto code = field("Code");
    // The value is not quoted: nothing in this body is safe to repeat.
    if (!code || *code != "Success") return Status::Unavailable(source + ": credentials response Code is not Success");
  }
  Credentials c;
  for (auto [name, out] : {std::pair{"AccessKeyId", &c.access_key_id},
                           std::pair{"SecretAccessKey", &c.secret_access_key}, std::pair{"Token", &c.session_token}}) {
    auto v = field(name);
    if (!v || v->empty()) return Status::Corruption(source + ": response has no string " + name);
    *out = std::move(*v);
  }
  auto expiration = field("Expiration");
  if (!expiration) return Status::Corruption(source + ": response has no string Expiration");
  LF_ASSIGN_OR_RETURN(c.expires_at_us, ParseExpiration(*expiration, source));
  c.source = source;
  return c;
}

// STS AssumeRoleWithWebIdentity, Query API: an XML
// AssumeRoleWithWebIdentityResponse, or an ErrorResponse.
StatusOr<Credentials> ParseStsResponse(int http_status, std::string_view body, const std::string& source) {
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(body.data(), body.size());
  if (http_status < 200 || http_status >= 300) {
    StatusCode code = ClassifyHttpStatus(http_status);
    std::string what = source + ": STS AssumeRoleWithWebIdentity returned HTTP " + std::to_string(http_status);
    pugi::xml_node error = parsed ? doc.child("ErrorResponse").child("Error") : pugi::xml_node();
    if (error) {
      std::string aws_code = error.child_value("Code");
      what += " " + Printable(aws_code, 60) + ": " + Printable(error.child_value("Message"), 200);
      code = ClassifyErrorCode(aws_code, code);
    }
    return Status(code, what);
  }
  if (!parsed)
    return Status::Corruption(source + ": STS response is not XML (" + parsed.description() + " at byte " +
                              std::to_string(parsed.offset) + ")");
  pugi::xml_node creds =
      doc.child("AssumeRoleWithWebIdentityResponse").child("AssumeRoleWithWebIdentityResult").child("Credentials");
  if (!creds) return Status::Corruption(source + ": STS response has no AssumeRoleWithWebIdentityResult/Credentials");
  Credentials c;
  for (auto [name, out] :
       {std::pair{"AccessKeyId", &c.access_key_id}, std::pair{"SecretAccessKey", &c.secret_access_key},
        std::pair{"SessionToken", &c.session_token}}) {
    *out = Trim(creds.child_value(name));
    if (out->empty()) return Status::Corruption(source + ": STS response has no " + name);
  }
  LF_ASSIGN_OR_RETURN(c.expires_at_us, ParseExpiration(creds.child_value("Expiration"), source));
  c.source = source;
  return c;
}

// Hosts the SDKs accept for AWS_CONTAINER_CREDENTIALS_FULL_URI over plain
// HTTP: loopback, and the ECS and EKS Pod Identity agent addresses.
bool IsAllowedContainerHost(std::string host) {
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.find(']') - 1);
  if (host == "localhost" || host == "::1" || StartsWith(host, "127.")) return true;
  return host == "169.254.170.2" || host == "169.254.170.23" || host == "fd00:ec2::23";
}

// The chain's defaults for what it reads from the outside world.
ChainOptions WithDefaults(ChainOptions options) {
  if (!options.getenv) options.getenv = [](const std::string& name) { return Env::Default()->GetEnvOr(name); };
  if (!options.now_us) options.now_us = [] { return Env::Default()->NowMicros(); };
  if (options.home.empty()) options.home = options.getenv("HOME");
  return options;
}

// The profile chosen as the AWS CLI chooses it (options.profile, AWS_PROFILE,
// AWS_DEFAULT_PROFILE, else "default"), read from the shared credentials and
// config files. options must have its defaults.
StatusOr<Profile> LoadSharedProfile(const ChainOptions& options) {
  auto Env = [&](const char* name) { return options.getenv(name); };
  Profile p;
  p.name = options.profile;
  if (p.name.empty()) p.name = Env("AWS_PROFILE");
  if (p.name.empty()) p.name = Env("AWS_DEFAULT_PROFILE");
  p.explicit_name = !p.name.empty();
  if (p.name.empty()) p.name = "default";

  std::string cred_path = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (cred_path.empty()) cred_path = options.home + "/.aws/credentials";
  std::string config_path = Env("AWS_CONFIG_FILE");
  if (config_path.empty()) config_path = options.home + "/.aws/config";
  cred_path = ExpandHome(cred_path, options.home);
  config_path = ExpandHome(config_path, options.home);
  p.files = cred_path + " and " + config_path;

  bool cred_exists = false, config_exists = false;
  auto cred_file = ReadIni(cred_path, &cred_exists);
  if (!cred_file.ok()) return cred_file.status().WithContext("shared credentials file");
  auto config_file = ReadIni(config_path, &config_exists);
  if (!config_file.ok()) return config_file.status().WithContext("shared config file");

  // "[name]" in the credentials file; "[profile name]" in the config file,
  // where the default profile may also be plain "[default]".
  if (auto it = cred_file->find(p.name); it != cred_file->end()) {
    p.credentials = it->second;
    p.found = true;
  }
  for (const std::string& section : {"profile " + p.name, p.name == "default" ? std::string("default") : ""}) {
    if (section.empty()) continue;
    if (auto it = config_file->find(section); it != config_file->end()) {
      for (const auto& [k, v] : it->second) p.config.emplace(k, v);
      p.found = true;
    }
  }
  if (p.explicit_name && !p.found) return Status::NotFound("profile \"" + p.name + "\" is not in " + p.files);
  return p;
}

// ---------------------------------------------------------------------------

class DefaultChain : public CredentialsProvider {
 public:
  explicit DefaultChain(ChainOptions options) : options_(WithDefaults(std::move(options))) {}

  StatusOr<Credentials> Get() override {
    return cache_.Get([this] { return Resolve(); });
  }

 private:
  std::string Env(const char* name) const { return options_.getenv(name); }

  const HttpClient& MetadataHttp() const {
    if (options_.http) return *options_.http;
    static HttpClient* client = [] {
      HttpClientOptions o;
      o.connect_timeout_ms = kMetadataConnectTimeoutMs;
      return new HttpClient(o);
    }();
    return *client;
  }
  const HttpClient& Http() const { return options_.http ? *options_.http : HttpClient::Default(); }

  StatusOr<Credentials> Resolve() {
    if (auto r = FromEnvironment()) return *std::move(r);
    LF_ASSIGN_OR_RETURN(Profile profile, LoadProfile());
    if (auto r = FromWebIdentity(profile)) return *std::move(r);
    if (auto r = FromProfile(profile)) return *std::move(r);
    if (auto r = FromEcs()) return *std::move(r);
    std::string imds_note;
    if (auto r = FromImds(&imds_note)) return *std::move(r);
    return Status::FailedPrecondition(
        "no AWS credentials found: none in the environment (AWS_ACCESS_KEY_ID), no web identity "
        "(AWS_WEB_IDENTITY_TOKEN_FILE), no keys for profile \"" +
        profile.name + "\" in " + profile.files +
        ", no ECS container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI), EC2 instance "
        "metadata: " +
        imds_note);
  }

  // 1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]. An
  // explicitly chosen profile (ChainOptions::profile, like the CLI's
  // --profile) skips them; AWS_PROFILE does not.
  SourceResult FromEnvironment() {
    if (!options_.profile.empty()) return std::nullopt;
    std::string id = Env("AWS_ACCESS_KEY_ID"), secret = Env("AWS_SECRET_ACCESS_KEY");
    if (id.empty() && secret.empty()) return std::nullopt;
    if (id.empty())
      return Status::InvalidArgument("environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    if (secret.empty())
      return Status::InvalidArgument("environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    std::string token = Env("AWS_SESSION_TOKEN");
    if (token.empty()) token = Env("AWS_SECURITY_TOKEN");  // the older name, still read by the CLI
    return Credentials{id, secret, token, 0, "environment"};
  }

  StatusOr<Profile> LoadProfile() const { return LoadSharedProfile(options_); }

  // 2. Web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (or the
  // profile's web_identity_token_file + role_arn) → STS.
  SourceResult FromWebIdentity(const Profile& profile) {
    std::string token_file = Env("AWS_WEB_IDENTITY_TOKEN_FILE");
    std::string role_arn = Env("AWS_ROLE_ARN");
    std::string session = Env("AWS_ROLE_SESSION_NAME");
    std::string source = "web identity";
    if (token_file.empty()) {
      token_file = profile.Get("web_identity_token_file");
      if (token_file.empty()) return std::nullopt;
      role_arn = profile.Get("role_arn");
      session = profile.Get("role_session_name");
      source = "web identity (profile " + profile.name + ")";
    }
    if (role_arn.empty())
      return Status::InvalidArgument(source +
                                     ": a web identity token file is set but no role ARN (AWS_ROLE_ARN or role_arn)");
    if (session.empty()) session = "logferry-" + std::to_string(options_.now_us() / kMicrosPerSecond);

    auto token_or = ReadFile(ExpandHome(token_file, options_.home));
    if (!token_or.ok())
      return Status::InvalidArgument(source + ": cannot read the web identity token file " +
                                     token_or.status().message());
    std::string token = Trim(*token_or);
    if (token.empty())
      return Status::InvalidArgument(source + ": the web identity token file " + token_file + " is empty");

    std::string body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + UriEncode(role_arn) +
                       "&RoleSessionName=" + UriEncode(session) + "&WebIdentityToken=" + UriEncode(token);
    // Unsigned: the token is the proof of identity.
    HttpRequest request;
    request.method = "POST";
    request.url = StsEndpoint(profile) + "/";
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}, {"Accept", "text/xml"}};
    request.body = body;
    request.carries_credentials = true;  // the web identity token
    request.timeout_ms = kStsTimeoutMs;
    auto response = Http().Send(request);
    if (!response.ok()) return WithRedaction(response.status().WithContext(source), {token});
    auto creds = ParseStsResponse(response->status, response->body, source);
    if (!creds.ok()) return WithRedaction(creds.status(), {token});
    return creds;
  }

  // The regional STS endpoint, as the AWS CLI v2 uses, unless one is given.
  std::string StsEndpoint(const Profile& profile) const {
    std::string endpoint = options_.sts_endpoint;
    if (endpoint.empty()) endpoint = Env("AWS_ENDPOINT_URL_STS");
    if (endpoint.empty()) endpoint = Env("AWS_ENDPOINT_URL");
    if (endpoint.empty()) {
      std::string region = options_.region;
      if (region.empty()) region = Env("AWS_REGION");
      if (region.empty()) region = Env("AWS_DEFAULT_REGION");
      if (region.empty()) region = profile.Get("region");
      endpoint = region.empty() ? "https://sts.amazonaws.com"
                                : "https://sts." + region + ".amazonaws.com" + (StartsWith(region, "cn-") ? ".cn" : "");
    }
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    return endpoint;
  }

  // 3. Keys in the shared files.
  SourceResult FromProfile(const Profile& profile) {
    std::string source = "profile " + profile.name;
    std::string id = profile.Get("aws_access_key_id"), secret = profile.Get("aws_secret_access_key");
    if (!id.empty() || !secret.empty()) {
      if (id.empty() || secret.empty())
        return Status::InvalidArgument(source + " in " + profile.files + ": aws_access_key_id and " +
                                       "aws_secret_access_key must both be set");
      std::string token = profile.Get("aws_session_token");
      if (token.empty()) token = profile.Get("aws_security_token");
      return Credentials{id, secret, token, 0, source};
    }
    // What the AWS CLI could do here and logferry cannot: say so rather than
    // fall through to metadata and fail there with a confusing message.
    if (profile.Has("credential_process"))
      return Status::InvalidArgument(source +
                                     ": credential_process is not supported by logferry; export the keys "
                                     "(AWS_ACCESS_KEY_ID, ...) or use a web identity or instance role");
    if (profile.Has("sso_session") || profile.Has("sso_start_url"))
      return Status::InvalidArgument(source + ": AWS SSO (IAM Identity Center) profiles are not supported by logferry");
    if (profile.Has("role_arn"))
      return Status::InvalidArgument(source +
                                     ": role_arn with source_profile or credential_source (STS AssumeRole) "
                                     "is not supported by logferry; only role_arn with web_identity_token_file");
    // A profile may hold only settings (region, say) while the keys come from
    // the container or the instance, as with the AWS CLI.
    return std::nullopt;
  }

  // 4. ECS (and EKS Pod Identity) container credentials.
  SourceResult FromEcs() {
    std::string relative = Env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    std::string full = Env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (relative.empty() && full.empty()) return std::nullopt;
    const std::string source = "ecs";
    std::string url;
    if (!relative.empty()) {
      std::string host = options_.ecs_host;
      while (!host.empty() && host.back() == '/') host.pop_back();
      url = host + (StartsWith(relative, "/") ? "" : "/") + relative;
    } else {
      Url parsed;
      if (!ParseUrl(full, &parsed) || (parsed.scheme != "http" && parsed.scheme != "https"))
        return Status::InvalidArgument(source + ": AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL");
      if (parsed.scheme != "https" && !IsAllowedContainerHost(parsed.host))
        return Status::InvalidArgument(source + ": AWS_CONTAINER_CREDENTIALS_FULL_URI host " + parsed.host +
                                       " is not allowed over http (only loopback and the ECS/EKS agent addresses; "
                                       "use https)");
      url = full;
    }

    std::string authorization = Env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    std::string token_file = Env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (!token_file.empty()) {  // the SDKs prefer the file: EKS rotates it
      auto content = ReadFile(token_file);
      if (!content.ok())
        return Status::InvalidArgument(source + ": cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " +
                                       content.status().message());
      authorization = Trim(*content);
    }
    if (authorization.find_first_of("\r\n") != std::string::npos)
      return Status::InvalidArgument(source + ": the container authorization token contains a line break");

    HttpRequest request;
    request.url = url;
    request.timeout_ms = kMetadataTimeoutMs;
    request.headers = {{"Accept", "application/json"}};
    if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
    auto response = MetadataHttp().Send(request);
    if (!response.ok()) return WithRedaction(response.status().WithContext(source), {authorization});
    if (response->status != 200)
      return Status(ClassifyHttpStatus(response->status),
                    source + ": container credentials endpoint returned HTTP " + std::to_string(response->status));
    auto creds = ParseJsonCredentials(response->body, source);
    if (!creds.ok()) return WithRedaction(creds.status(), {authorization});
    return creds;
  }

  // 5. EC2 instance metadata, IMDSv2: a session token first, then the role
  // name and the role's credentials. Falls back to IMDSv1 (no token) only
  // when the token PUT is refused with 403/404/405, as the AWS CLI does.
  // *note says why it did not apply when it returns nullopt.
  SourceResult FromImds(std::string* note) {
    std::string disabled = ToLower(Env("AWS_EC2_METADATA_DISABLED"));
    if (disabled == "true") {
      *note = "disabled (AWS_EC2_METADATA_DISABLED)";
      return std::nullopt;
    }
    std::string endpoint = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (endpoint.empty()) endpoint = options_.imds_endpoint;
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    const std::string source = "imds";

    HttpRequest token_request;
    token_request.method = "PUT";
    token_request.url = endpoint + "/latest/api/token";
    token_request.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", kImdsTokenTtlSeconds}};
    token_request.timeout_ms = kMetadataTimeoutMs;
    auto token_response = MetadataHttp().Send(token_request);
    if (!token_response.ok()) {
      *note = "not reachable at " + endpoint + " (" + token_response.status().message() + ")";
      return std::nullopt;
    }
    std::string token;
    int status = token_response->status;
    if (status == 200) {
      token = Trim(token_response->body);
    } else if (status != 403 && status != 404 && status != 405) {
      return Status(ClassifyHttpStatus(status),
                    source + ": token request (PUT /latest/api/token) returned HTTP " + std::to_string(status));
    }

    auto get = [&](const std::string& path) {
      HttpRequest r;
      r.url = endpoint + path;
      r.timeout_ms = kMetadataTimeoutMs;
      if (!token.empty()) r.headers.emplace_back("X-aws-ec2-metadata-token", token);
      return MetadataHttp().Send(r);
    };
    const std::string base = "/latest/meta-data/iam/security-credentials/";
    auto roles = get(base);
    if (!roles.ok()) return WithRedaction(roles.status().WithContext(source), {token});
    if (roles->status == 404) {
      *note = "no IAM role attached to this instance";
      return std::nullopt;
    }
    if (roles->status != 200)
      return Status(ClassifyHttpStatus(roles->status),
                    source + ": GET " + base + " returned HTTP " + std::to_string(roles->status) +
                        (roles->status == 401 ? " (the metadata token was refused)" : ""));
    std::string role = Trim(std::string_view(roles->body).substr(0, roles->body.find('\n')));
    if (role.empty()) {
      *note = "no IAM role attached to this instance";
      return std::nullopt;
    }
    auto creds_response = get(base + UriEncode(role));
    if (!creds_response.ok()) return WithRedaction(creds_response.status().WithContext(source), {token});
    if (creds_response->status != 200)
      return Status(ClassifyHttpStatus(creds_response->status),
                    source + ": GET " + base + "<role> returned HTTP " + std::to_string(creds_response->status));
    auto creds = ParseJsonCredentials(creds_response->body, source);
    if (!creds.ok()) return WithRedaction(creds.status(), {token});
    return creds;
  }

  ChainOptions options_;
  RefreshingCache<Credentials> cache_{kRefreshBeforeUs, [this] { return options_.now_us(); }};
};

class StaticProvider : public CredentialsProvider {
 public:
  explicit StaticProvider(Credentials credentials) : credentials_(std::move(credentials)) {
    if (credentials_.source.empty()) credentials_.source = "static";
  }
  StatusOr<Credentials> Get() override {
    if (credentials_.access_key_id.empty() || credentials_.secret_access_key.empty())
      return Status::InvalidArgument("static credentials: access key id and secret access key are required");
    return credentials_;
  }

 private:
  Credentials credentials_;
};

}  // namespace

std::unique_ptr<CredentialsProvider> MakeDefaultChain(ChainOptions options) {
  return std::make_unique<DefaultChain>(std::move(options));
}

std::string RegionFromProfile(ChainOptions options) {
  options = WithDefaults(std::move(options));
  // A profile that cannot be read names no region here; the credential
  // chain reports what is wrong with it.
  auto profile = LoadSharedProfile(options);
  return profile.ok() ? profile->Get("region") : std::string();
}

std::unique_ptr<CredentialsProvider> MakeStaticProvider(Credentials credentials) {
  return std::make_unique<StaticProvider>(std::move(credentials));
}

}  // namespace logferry::aws
