#include "core/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>

#include "common/env.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"
#include "http/http_client.h"
#include "ledger/ledger.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

enum class Scope { kTop, kTable, kBoth };  // kBoth: in [[table]], or top level as a default for every table

// One key's value as text, and where it came from for messages: "file:line"
// of the value, or for a default that of its [[table]] (the file's name at
// the top level).
struct Setting {
  std::string key;
  std::string value;
  std::string where;
  bool is_default = false;
};
using Settings = std::map<std::string, Setting>;

// What a key's step writes: the top level, or one [[table]] (and its "file:line").
struct Target {
  Config* cfg;
  TableConfig* table = nullptr;
  const std::string* where = nullptr;
};

// Checks a key's value and stores it; may normalize s.value (a trimmed URL)
// for the checks that run after every key (kTableChecks).
using Step = Status (*)(Setting& s, Target& t);

struct KeySpec {
  const char* name;
  Scope scope;
  const char* def;  // nullptr: required
  const char* doc;
  Step apply;
};

Status Bad(const Setting& s, const std::string& msg) {
  return Status::InvalidArgument(s.where + ": key '" + s.key + "': " + msg);
}

std::string Where(const std::string& origin, const toml::node& n) {
  auto line = n.source().begin.line;
  return origin + ":" + std::to_string(line);
}

// One ${...} body, as the shell reads it: VAR, VAR:-default (when VAR is
// unset or empty), VAR:?message (an error naming VAR when it is unset or
// empty). The default and the message are literal text.
StatusOr<std::string> ExpandVariable(const std::string& body) {
  const size_t op = body.find(':');
  const std::string var = body.substr(0, op);
  std::optional<std::string> v = Env::Default()->GetEnv(var);
  if (op == std::string::npos) {
    if (!v) return Status::InvalidArgument("environment variable " + var + " is not set");
    return *v;
  }
  const std::string rest = body.substr(op + 1);
  if (rest.empty() || (rest[0] != '-' && rest[0] != '?'))
    return Status::InvalidArgument("'${" + body + "}': use ${VAR}, ${VAR:-default} or ${VAR:?message}");
  if (v && !v->empty()) return *v;
  if (rest[0] == '-') return rest.substr(1);
  return Status::InvalidArgument("environment variable " + var + " is not set or empty" +
                                 (rest.size() > 1 ? ": " + rest.substr(1) : std::string()));
}

// Expands ${VAR}, ${VAR:-default} and ${VAR:?message}; "$$" is a literal '$'.
StatusOr<std::string> ExpandEnv(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t end = s.find('}', i);
      if (end == std::string::npos) return Status::InvalidArgument("unterminated ${ in '" + s + "'");
      LF_ASSIGN_OR_RETURN(std::string value, ExpandVariable(s.substr(i + 2, end - i - 2)));
      out += value;
      i = end;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Values are read as strings whatever their TOML type, so "workers = 4" and
// settle = "10m" go through one path.
StatusOr<std::string> ValueText(const toml::node& n, const std::string& key, const std::string& where) {
  if (auto s = n.as_string()) return ExpandEnv(s->get());
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto b = n.as_boolean()) return std::string(b->get() ? "true" : "false");
  if (auto a = n.as_array(); a && (key == "keys" || key == "lineage")) {
    // Arrays (keys, lineage) are read as a comma-separated list.
    std::string out;
    for (const toml::node& e : *a) {
      auto s = e.as_string();
      if (!s) return Status::InvalidArgument(where + ": key '" + key + "' must be an array of strings");
      if (!out.empty()) out += ',';
      out += s->get();
    }
    return out;
  }
  return Status::InvalidArgument(where + ": key '" + key + "' must be a string, number or boolean");
}

bool LegalTableName(const std::string& s) {
  if (s.empty() || s.size() > 1024 || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

StatusOr<bool> ParseBool(const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  return Status::InvalidArgument("must be true or false");
}

// Plain http shows every request to whoever is on the path. To this machine
// it is fine; elsewhere only for SigV4-signed requests, which reveal no
// secret, and only when allow_insecure_http says so. A bearer token
// (Google) is never sent that way, so such an endpoint is an error whatever
// the setting. "" when url is acceptable, else why not.
std::string TransportProblem(const std::string& url, bool bearer, bool allow_insecure_http) {
  Url u;
  if (!ParseUrl(url, &u) || (u.scheme != "http" && u.scheme != "https"))
    return "'" + url + "' is not an http(s):// URL";
  if (u.scheme == "https" || IsLoopbackHost(u.host)) return "";
  if (bearer)
    return "'" + url +
           "' would send a bearer token in clear text to a host that is not loopback; use https:// "
           "(plain http only to 127.0.0.0/8, ::1, localhost, *.localhost)";
  if (allow_insecure_http) return "";
  return "'" + url +
         "' sends requests in clear text to a host that is not loopback; use https://, or set "
         "allow_insecure_http = true at the top level";
}

// A store side without a configured endpoint takes one from the
// environment, as the SDKs do; it must pass the same test.
Status CheckEnvTransport(const SchemeInfo& scheme, bool allow_insecure_http, const std::string& where) {
  auto from_env = scheme.environment_endpoint ? scheme.environment_endpoint() : std::nullopt;
  if (!from_env) return Status::Ok();
  std::string problem = TransportProblem(from_env->second, scheme.bearer_token, allow_insecure_http);
  if (!problem.empty())
    return Status::InvalidArgument(where + ": environment variable " + from_env->first + ": " + problem);
  return Status::Ok();
}

// Checks a store or warehouse URI against the registry: a scheme that
// claims it in this role, and the scheme's own test. "" or why not.
std::string UriProblem(const std::string& uri, unsigned role, const char* kind) {
  Uri u;
  const SchemeInfo* scheme = Schemes().Claim(uri);
  if (!ParseUri(uri, &u) || !scheme || !(scheme->roles & role))
    return "'" + uri + "' is not a supported " + kind + " URI (" + Schemes().Examples(role) + ")";
  std::string problem = scheme->validate ? scheme->validate(u) : "";
  return problem.empty() ? "" : "'" + uri + "' " + problem;
}

// What one key's value does to the config: check it and store it. Keys are
// applied in the key table's order, so a step may rely on the keys listed
// above it (notifications on source, say); checks that join keys listed
// further apart run after all of them (kTableChecks).

Status SetStateDir(Setting& s, Target& t) {
  t.cfg->state_dir = s.value;
  return Status::Ok();
}

Status SetLedger(Setting& s, Target& t) {
  if (s.value.empty()) return Status::Ok();
  if (!Ledger::IsShared(s.value))
    // Not echoed: it may hold a password.
    return Bad(s,
               "must be a postgresql:// URI (like postgresql://logferry@db.example:5432/logferry); leave it out for "
               "the SQLite ledger in state_dir");
  t.cfg->ledger = s.value;
  return Status::Ok();
}

Status SetWorkers(Setting& s, Target& t) {
  char* end;
  long n = strtol(s.value.c_str(), &end, 10);
  if (*end || n < 0 || n > 256)
    return Status::InvalidArgument(s.where + ": key 'workers' must be 0..256 (got '" + s.value + "')");
  t.cfg->workers = n == 0 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : static_cast<int>(n);
  return Status::Ok();
}

Status SetLogLevel(Setting& s, Target& t) {
  auto level = ParseLogLevel(s.value);
  if (!level.ok()) return Status::InvalidArgument(s.where + ": key 'log_level' " + level.status().message());
  t.cfg->log_level = s.value;
  return Status::Ok();
}

Status SetLogFormat(Setting& s, Target& t) {
  auto format = ParseLogLineFormat(s.value);
  if (!format.ok()) return Status::InvalidArgument(s.where + ": key 'log_format' " + format.status().message());
  t.cfg->log_format = s.value;
  return Status::Ok();
}

Status SetAllowInsecureHttp(Setting& s, Target& t) {
  auto b = ParseBool(s.value);
  if (!b.ok()) return Status::InvalidArgument(s.where + ": key 'allow_insecure_http' " + b.status().message());
  t.cfg->allow_insecure_http = *b;
  return Status::Ok();
}

// An address literal, not a host name: what it binds must not depend on DNS.
Status SetMetricsListen(Setting& s, Target& t) {
  const std::string& v = s.value;
  if (v.empty()) return Status::Ok();
  size_t colon = v.rfind(':');
  std::string host = colon == std::string::npos ? "" : v.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : v.substr(colon + 1);
  bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  unsigned char addr[16];
  char* end = nullptr;
  long n = strtol(port.c_str(), &end, 10);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), addr) != 1 || port.empty() || *end || n < 1 || n > 65535)
    return Status::InvalidArgument(s.where +
                                   ": key 'metrics_listen' must be IP:PORT, like 127.0.0.1:9464, 0.0.0.0:9464 or "
                                   "[::1]:9464 (got '" +
                                   v + "')");
  t.cfg->metrics_listen = v;
  return Status::Ok();
}

Status SetLockTimeout(Setting& s, Target& t) {
  auto d = ParseDuration(s.value);
  if (!d.ok()) return Status::InvalidArgument(s.where + ": key 'lock_timeout': " + d.status().message());
  t.cfg->lock_timeout_us = *d;
  return Status::Ok();
}

Status SetLease(Setting& s, Target& t) {
  auto d = ParseDuration(s.value);
  if (!d.ok()) return Status::InvalidArgument(s.where + ": key 'lease': " + d.status().message());
  // Renewed every quarter of it: shorter would spend the ledger on renewals.
  if (*d < 4 * kMicrosPerSecond) return Bad(s, "must be at least 4s (got '" + s.value + "')");
  t.cfg->lease_us = *d;
  return Status::Ok();
}

Status SetName(Setting& s, Target& t) {
  const std::string& name = s.value;
  if (!LegalTableName(name))
    return Bad(s, "'" + name + "' is not a legal table name (letters, digits, underscores; not starting with a digit)");
  // Staging holds <table>/… beside logferry's own _requests/, and the
  // warehouse may hold logferry's own _logferry_… tables.
  if (name[0] == '_')
    return Bad(s, "'" + name + "': names starting with '_' are reserved for logferry's own objects (_requests/)");
  if (t.cfg->FindTable(name)) return Bad(s, "table '" + name + "' is defined twice");
  t.table->name = name;
  return Status::Ok();
}

// source and staging: a store URI some scheme claims in that role.
template <std::string TableConfig::*kField, unsigned kRole>
Status SetStoreUri(Setting& s, Target& t) {
  std::string problem = UriProblem(s.value, kRole, "store");
  if (!problem.empty()) return Bad(s, problem);
  std::string& uri = t.table->*kField;
  uri = s.value;
  if (uri.back() != '/') uri += '/';
  return Status::Ok();
}

Status SetWarehouse(Setting& s, Target& t) {
  std::string problem = UriProblem(s.value, kRoleWarehouse, "warehouse");
  if (!problem.empty()) return Bad(s, problem);
  t.table->warehouse = s.value;
  return Status::Ok();
}

// endpoint, source_endpoint, staging_endpoint: checked and trimmed here;
// ResolveEndpoints gives each side its own.
Status CheckEndpoint(Setting& s, Target&) {
  if (s.value.empty()) return Status::Ok();
  Uri u;
  if (!ParseUri(s.value, &u) || (u.scheme != "http" && u.scheme != "https") || (u.path != "" && u.path != "/"))
    return Bad(s, "'" + s.value + "' is not an endpoint URL (http(s)://host[:port])");
  while (s.value.size() > 1 && s.value.back() == '/') s.value.pop_back();
  return Status::Ok();
}

// region, s3_addressing, ca_file: the same for both sides.
template <std::string StoreOptions::*kField>
Status SetStoreOption(Setting& s, Target& t) {
  t.table->source_store.*kField = t.table->staging_store.*kField = s.value;
  return Status::Ok();
}

Status SetAddressing(Setting& s, Target& t) {
  if (s.value != "auto" && s.value != "virtual" && s.value != "path")
    return Bad(s, "must be auto, virtual or path (got '" + s.value + "')");
  return SetStoreOption<&StoreOptions::addressing>(s, t);
}

Status SetNotifications(Setting& s, Target& t) {
  if (s.value.empty()) return Status::Ok();
  // The path (after the host's '/') is ACCOUNT/QUEUE.
  Uri u;
  bool parsed = ParseUri(s.value, &u);
  auto segments = Split(u.path, '/');
  std::erase(segments, std::string());
  if (!parsed || (u.scheme != "http" && u.scheme != "https") || segments.size() != 2 ||
      std::count(u.path.begin(), u.path.end(), '/') != 1)
    return Bad(s, "'" + s.value + "' is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)");
  if (!Schemes().Claim(t.table->source)->announces_events)
    return Bad(s,
               "S3 event notifications need an " + Schemes().Names(&SchemeInfo::announces_events, " or ") + " source");
  std::string problem = TransportProblem(s.value, false, t.cfg->allow_insecure_http);
  if (!problem.empty()) return Bad(s, problem);
  t.table->notifications = s.value;
  return Status::Ok();
}

template <std::string TableConfig::*kField>
Status SetText(Setting& s, Target& t) {
  t.table->*kField = s.value;
  return Status::Ok();
}

Status SetBigQueryEndpoint(Setting& s, Target& t) {
  while (s.value.size() > 1 && s.value.back() == '/') s.value.pop_back();
  if (!s.value.empty()) {
    std::string problem = TransportProblem(s.value, true, t.cfg->allow_insecure_http);
    if (!problem.empty()) return Bad(s, problem);
  }
  t.table->bigquery_endpoint = s.value;
  return Status::Ok();
}

Status SetClustering(Setting& s, Target& t) {
  t.table->clustering.clear();
  for (std::string& c : Split(s.value, ','))
    if (!c.empty()) t.table->clustering.push_back(c);
  if (t.table->clustering.size() > 4) return Bad(s, "at most 4 columns");
  return Status::Ok();
}

template <int64_t TableConfig::*kField, int64_t kLo, int64_t kHi>
Status SetCount(Setting& s, Target& t) {
  char* end;
  long long n = strtoll(s.value.c_str(), &end, 10);
  if (*end || s.value.empty() || n < kLo || n > kHi)
    return Bad(s, "must be between " + std::to_string(kLo) + " and " + std::to_string(kHi));
  t.table->*kField = n;
  return Status::Ok();
}

template <int64_t TableConfig::*kField>
Status SetDuration(Setting& s, Target& t) {
  auto d = ParseDuration(s.value);
  if (!d.ok()) return Bad(s, d.status().message());
  t.table->*kField = *d;
  return Status::Ok();
}

// SQS's limits and the loop's floor; these messages point at the [[table]].
Status SetSqsWait(Setting& s, Target& t) {
  LF_RETURN_IF_ERROR(SetDuration<&TableConfig::sqs_wait_us>(s, t));
  if (t.table->sqs_wait_us > 20 * kMicrosPerSecond)
    return Status::InvalidArgument(*t.where + ": key 'sqs_wait' must be at most 20s (SQS's limit)");
  return Status::Ok();
}

Status SetSqsVisibility(Setting& s, Target& t) {
  LF_RETURN_IF_ERROR(SetDuration<&TableConfig::sqs_visibility_us>(s, t));
  if (t.table->sqs_visibility_us < 10 * kMicrosPerSecond || t.table->sqs_visibility_us > 12 * kMicrosPerHour)
    return Status::InvalidArgument(*t.where + ": key 'sqs_visibility' must be between 10s and 12h (SQS's limit)");
  return Status::Ok();
}

Status SetInterval(Setting& s, Target& t) {
  LF_RETURN_IF_ERROR(SetDuration<&TableConfig::interval_us>(s, t));
  if (t.table->interval_us < kMicrosPerSecond / 10)
    return Status::InvalidArgument(*t.where + ": key 'interval' must be at least 100ms");
  return Status::Ok();
}

// "off", or how often an open partition may take an append.
Status SetFreshInterval(Setting& s, Target& t) {
  if (s.value == "off") {
    t.table->fresh_interval_us.reset();
    return Status::Ok();
  }
  auto d = ParseDuration(s.value);
  if (!d.ok()) return Bad(s, std::string(d.status().message()) + ", or \"off\"");
  t.table->fresh_interval_us = *d;
  return Status::Ok();
}

Status SetFormat(Setting& s, Target& t) {
  auto lf = ParseLogFormat(s.value);
  if (!lf.ok()) return Bad(s, lf.status().message());
  t.table->format_name = s.value;
  t.table->format.format = *lf;
  return Status::Ok();
}

Status SetCompression(Setting& s, Target& t) {
  auto c = ParseCompression(s.value);
  if (!c.ok()) return Bad(s, c.status().message());
  t.table->compression = *c;
  return Status::Ok();
}

Status SetTimeKey(Setting& s, Target& t) {
  t.table->format.time_key = s.value;
  return Status::Ok();
}

Status SetTimeFormat(Setting& s, Target& t) {
  FormatOptions& f = t.table->format;
  if (s.value == "iso8601") {
    f.time_kind = TimeFormatKind::kIso8601;
  } else if (s.value == "unix") {
    f.time_kind = TimeFormatKind::kUnix;
  } else if (s.value == "unix_ms") {
    f.time_kind = TimeFormatKind::kUnixMs;
  } else {
    auto layout = TimeLayout::Compile(s.value);
    if (!layout.ok()) return Bad(s, layout.status().message());
    if (s.value.find('%') == std::string::npos)
      return Bad(s, "must be iso8601, unix, unix_ms or a strftime layout (got '" + s.value + "')");
    f.time_kind = TimeFormatKind::kLayout;
    f.time_layout = *layout;
  }
  return Status::Ok();
}

Status SetTimezone(Setting& s, Target& t) {
  auto zone = TimeZone::Parse(s.value);
  if (!zone.ok()) return Bad(s, zone.status().message());
  t.table->timezone = s.value;
  t.table->zone = t.table->format.zone = *zone;
  return Status::Ok();
}

// csv's own default (",") is ApplyFormatDefaults'.
Status SetDelimiter(Setting& s, Target& t) {
  std::string d = s.value;
  if (d == "TAB" || d == "\\t")
    d = "\t";
  else if (d == "SPACE")
    d = " ";
  else if (d == "COMMA")
    d = ",";
  if (d.size() != 1) return Bad(s, "must be one character (or TAB, SPACE, COMMA)");
  t.table->format.delimiter = d[0];
  return Status::Ok();
}

Status SetLabelDelimiter(Setting& s, Target& t) {
  if (s.value.size() != 1) return Bad(s, "must be one character");
  t.table->format.label_delimiter = s.value[0];
  return Status::Ok();
}

Status SetKeys(Setting& s, Target& t) {
  t.table->format.keys.clear();
  if (!s.value.empty())
    for (std::string& k : Split(s.value, ',')) t.table->format.keys.push_back(k);
  return Status::Ok();
}

Status SetMessageKey(Setting& s, Target& t) {
  t.table->format.message_key = s.value;
  return Status::Ok();
}

template <bool FormatOptions::*kField>
Status SetFormatFlag(Setting& s, Target& t) {
  auto b = ParseBool(s.value);
  if (!b.ok()) return Bad(s, b.status().message());
  t.table->format.*kField = *b;
  return Status::Ok();
}

Status SetPartition(Setting& s, Target& t) {
  if (s.value == "hour")
    t.table->partition_unit_us = kMicrosPerHour;
  else if (s.value == "day")
    t.table->partition_unit_us = kMicrosPerDay;
  else
    return Bad(s, "must be hour or day (got '" + s.value + "')");
  t.table->partition = s.value;
  return Status::Ok();
}

Status SetMaxLineBytes(Setting& s, Target& t) {
  char* end;
  long long n = strtoll(s.value.c_str(), &end, 10);
  if (*end || n < 1024 || n > (1LL << 31)) return Bad(s, "must be between 1024 and 2147483648");
  t.table->max_line_bytes = n;
  return Status::Ok();
}

// "[]" is how the default reads in the reference; an empty list is the same.
Status SetLineage(Setting& s, Target& t) {
  Lineage l;
  if (!s.value.empty() && s.value != "[]") {
    for (const std::string& v : Split(s.value, ',')) {
      if (v == kLineageSource)
        l.source = true;
      else if (v == kLineageLine)
        l.line = true;
      else
        return Bad(s, "unknown value '" + v + "' (allowed: " + kLineageSource + ", " + kLineageLine + ")");
    }
  }
  t.table->lineage = l;
  return Status::Ok();
}

const KeySpec kKeys[] = {
    {"state_dir", Scope::kTop, nullptr,
     "Directory for the SQLite ledger (ledger.db; none with `ledger`) and scratch space (every worker its own).",
     SetStateDir},
    {"ledger", Scope::kTop, "",
     "A shared ledger on PostgreSQL 15 or later: postgresql://USER@HOST:PORT/DATABASE (libpq's URI; the "
     "password from ~/.pgpass, PGPASSWORD, or ${VAR} in the URI; never shown). Empty: the SQLite ledger "
     "state_dir/ledger.db. Several `logferry run` processes may share one; see operations.md, PostgreSQL "
     "ledger, and `logferry ledger migrate` to move a SQLite ledger there.",
     SetLedger},
    {"workers", Scope::kTop, "0", "Parallel staging workers; 0 means one per CPU core.", SetWorkers},
    {"log_level", Scope::kTop, "info", "debug, info, warn, error or off (trace means debug).", SetLogLevel},
    {"log_format", Scope::kTop, "text",
     "text (\"2016-08-01T00:00:00.000Z info message\") or json: one object per line with time, level, message, "
     "and table and object when the line concerns them. See operations.md, Logs.",
     SetLogFormat},
    {"allow_insecure_http", Scope::kTop, "false",
     "true allows plain http:// to a host that is not loopback for the SigV4-signed S3 and SQS endpoints "
     "(endpoint, source_endpoint and staging_endpoint of S3 sides, notifications, AWS_ENDPOINT_URL[_S3]). "
     "Off, and always for anything that sends a bearer token (Cloud Storage endpoints, STORAGE_EMULATOR_HOST, "
     "bigquery_endpoint), http:// is accepted only for 127.0.0.0/8, ::1, localhost and *.localhost.",
     SetAllowInsecureHttp},
    {"lock_timeout", Scope::kTop, "60s", "How long a command waits for the warehouse while another process holds it.",
     SetLockTimeout},
    {"lease", Scope::kTop, "2m",
     "How long a `logferry run` process's claim on an object it stages or a partition it loads lasts; it renews "
     "its claims every quarter of this while it works. Several processes may share one ledger (docs/operations.md, "
     "\"High availability\"): when one dies, the others take over its objects and partitions once its claims "
     "lapse (at once on its own host, where its pid is seen gone).",
     SetLease},
    {"metrics_listen", Scope::kTop, "",
     "Address (IP:PORT, like 127.0.0.1:9464) where `logferry run` serves Prometheus metrics at /metrics and health "
     "checks at /healthz and /readyz (docs/operations.md, \"Metrics and health\"). Empty: no endpoint. Read at "
     "start-up.",
     SetMetricsListen},
    {"name", Scope::kTable, nullptr,
     "Warehouse table name: letters, digits and underscores, not starting with a digit or '_'.", SetName},
    {"source", Scope::kBoth, nullptr, "Where Fluentd writes objects: {source}.",
     SetStoreUri<&TableConfig::source, kRoleSource>},
    {"staging", Scope::kBoth, nullptr, "Durable staging store for normalized parts: {staging}.",
     SetStoreUri<&TableConfig::staging, kRoleStaging>},
    {"endpoint", Scope::kBoth, "",
     "S3: an S3-compatible endpoint (http://127.0.0.1:9000 for MinIO, https://ACCOUNT.r2.cloudflarestorage.com, "
     "https://storage.googleapis.com with HMAC keys) for an S3 source and staging; empty: AWS_ENDPOINT_URL_S3, "
     "AWS_ENDPOINT_URL, else AWS.",
     CheckEndpoint},
    {"source_endpoint", Scope::kBoth, "",
     "Overrides `endpoint` for the source; for Cloud Storage the JSON API base URL (default STORAGE_EMULATOR_HOST, "
     "else "
     "https://storage.googleapis.com).",
     CheckEndpoint},
    {"staging_endpoint", Scope::kBoth, "",
     "Overrides `endpoint` for the staging store (Cloud Storage as for source_endpoint).", CheckEndpoint},
    {"region", Scope::kBoth, "",
     "AWS region for S3 and SQS; empty: AWS_REGION, AWS_DEFAULT_REGION, `region` of the AWS_PROFILE (else default) "
     "profile in ~/.aws/config (AWS_CONFIG_FILE), else us-east-1. An SQS queue URL on AWS names its own.",
     SetStoreOption<&StoreOptions::region>},
    {"ca_file", Scope::kBoth, "",
     "S3: a PEM file of CA certificates trusted instead of the system store for the table's S3-compatible "
     "endpoints (endpoint, source_endpoint, staging_endpoint, AWS_ENDPOINT_URL[_S3]), such as MinIO or Ceph behind a "
     "private CA; certificates are still verified. AWS itself and the notifications queue keep the system store.",
     SetStoreOption<&StoreOptions::ca_file>},
    {"s3_addressing", Scope::kBoth, "auto",
     "auto (virtual-hosted on AWS, path-style on a custom endpoint or a bucket with dots), virtual or path.",
     SetAddressing},
    {"notifications", Scope::kBoth, "",
     "SQS queue URL receiving the source bucket's S3 event notifications, exactly as AWS prints it "
     "(https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE). Empty: discover by listing only.",
     SetNotifications},
    {"reconcile_every", Scope::kBoth, "1h",
     "How often the whole source is listed when passes do not: behind notifications, for objects whose events were "
     "lost; behind windowed listings (`lookback`), for objects that landed in an older time slice or under a new "
     "%{path}. Also at start-up. 0: every interval.",
     SetDuration<&TableConfig::reconcile_every_us>},
    {"lookback", Scope::kBoth, "3h",
     "Without notifications: a pass lists, under each %{path} seen, only the keys from the time slice of now minus "
     "this on; the whole source only at start-up and every `reconcile_every`. It must cover how long after its "
     "slice ends an object may still be uploaded: Fluentd's timekey_wait, flush retries and clock skew. A later "
     "object is found by the next full listing, so too short costs latency, never an object. Applies only when "
     "key_format allows it (`logferry check` says); 0: list the whole source every pass.",
     SetDuration<&TableConfig::lookback_us>},
    {"sqs_wait", Scope::kBoth, "20s", "With notifications: long-poll wait of each ReceiveMessage (0s..20s).",
     SetSqsWait},
    {"sqs_visibility", Scope::kBoth, "5m",
     "With notifications: how long a received message stays hidden; extended while its objects are still staging.",
     SetSqsVisibility},
    {"warehouse", Scope::kBoth, nullptr, "{warehouse}.", SetWarehouse},
    {"credentials", Scope::kBoth, "",
     "Cloud Storage and BigQuery: a Google credentials file (service-account key or authorized_user); empty: "
     "GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file, GOOGLE_OAUTH_ACCESS_TOKEN, the metadata server.",
     SetText<&TableConfig::credentials>},
    {"bigquery_endpoint", Scope::kBoth, "",
     "BigQuery: the REST API's base URL; empty: https://bigquery.googleapis.com.", SetBigQueryEndpoint},
    {"location", Scope::kBoth, "US", "BigQuery: where the dataset lives and jobs run.",
     SetText<&TableConfig::location>},
    {"clustering", Scope::kBoth, "", "BigQuery: clustering columns for a new table, comma-separated (up to 4).",
     SetClustering},
    {"daily_load_budget", Scope::kBoth, "1000",
     "BigQuery: most load jobs per table in any 24 hours (BigQuery allows 1,500 a day, failures included); "
     "when it runs short a UTC day's partitions are merged into one job, and past it partitions wait.",
     SetCount<&TableConfig::daily_load_budget, 1, 1500>},
    {"max_uris_per_load", Scope::kBoth, "10000",
     "BigQuery: most staged files one load job names; a partition with more goes through a scratch table.",
     SetCount<&TableConfig::max_uris_per_load, 1, 10000>},
    {"key_format", Scope::kBoth, "%{path}%{time_slice}_%{index}.%{file_extension}",
     "Fluentd's s3_object_key_format, matched against keys relative to `source`; keys that do not match are "
     "ignored. %{path} matches any prefix, slashes included, so `source` may end at Fluentd's `path` or at the "
     "bucket's root with the path left to %{path}. strftime directives written in it "
     "(%{path}%Y/%m/%d/%H_%{index}.%{file_extension}) are read as the time slice, as Fluentd writes them.",
     SetText<&TableConfig::key_format>},
    {"time_slice_format", Scope::kBoth, "%Y%m%d%H",
     "Fluentd's time_slice_format (strftime layout; slashes are fine: %Y/%m/%d/%H), on the wall clock of `timezone`.",
     SetText<&TableConfig::time_slice_format>},
    {"format", Scope::kBoth, "out_file",
     "Fluentd's formatter: out_file (time<TAB>tag<TAB>json), json, ltsv, csv, tsv, single_value or msgpack.",
     SetFormat},
    {"compression", Scope::kBoth, "auto", "auto (by magic bytes), gzip, zstd or none.", SetCompression},
    {"time_key", Scope::kBoth, "time",
     "json, ltsv, csv, tsv, msgpack: the field holding the event time (absent: the key's time slice).", SetTimeKey},
    {"time_format", Scope::kBoth, "iso8601",
     "iso8601, unix, unix_ms, or a strftime layout such as %d/%b/%Y:%H:%M:%S %z.", SetTimeFormat},
    {"timezone", Scope::kBoth, "+00:00",
     "Zone of event times written without an offset and of the time slices in keys (Fluentd's `timezone`): a UTC "
     "offset (+09:00, -0530, UTC), an IANA name from the system tz database (Asia/Tokyo, America/New_York; "
     "daylight saving follows the zone), or localtime (TZ, else /etc/localtime). The default stays UTC, unlike "
     "Fluentd's server-local default, so that a config means the same on every host. A wall-clock time that a "
     "daylight-saving change skips is read with the offset before the change (02:30 on a skipped hour is 03:30 "
     "summer time); one it repeats is the first occurrence (summer time), as java.time and Python's zoneinfo do.",
     SetTimezone},
    {"delimiter", Scope::kBoth, "\t",
     "out_file, ltsv, tsv: field delimiter; csv: \",\" unless set (\"\\t\", \" \", \",\", or SPACE/TAB/COMMA).",
     SetDelimiter},
    {"label_delimiter", Scope::kBoth, ":", "ltsv: between a label and its value.", SetLabelDelimiter},
    {"keys", Scope::kBoth, "",
     "csv, tsv: the column names in order, as an array or a comma-separated string (required).", SetKeys},
    {"message_key", Scope::kBoth, "message", "single_value: the field each line becomes.", SetMessageKey},
    {"output_time", Scope::kBoth, "true", "out_file: whether lines start with the time field.",
     SetFormatFlag<&FormatOptions::output_time>},
    {"output_tag", Scope::kBoth, "true", "out_file: whether lines carry the tag field.",
     SetFormatFlag<&FormatOptions::output_tag>},
    {"partition", Scope::kBoth, "hour", "Warehouse partition unit: hour or day.", SetPartition},
    {"settle", Scope::kBoth, "10m", "Wait after a partition's period ends before loading it (late objects).",
     SetDuration<&TableConfig::settle_us>},
    {"interval", Scope::kBoth, "1m", "How often the daemon looks for work.", SetInterval},
    {"fresh_interval", Scope::kBoth, "0s",
     "How often new objects of a partition that is still open (period plus settle not passed) are appended to "
     "it, so rows are queryable before the partition loads; \"off\" waits for the load. 0s: every pass. "
     "BigQuery spaces appends further to keep half its daily_load_budget for loads.",
     SetFreshInterval},
    {"max_line_bytes", Scope::kBoth, "134217728", "Longest line accepted; longer lines are dead-lettered.",
     SetMaxLineBytes},
    {"max_partitions_per_object", Scope::kBoth, "48",
     "Most partitions one source object may write (1..10000); the partition of its key's time slice is always "
     "one. A record that would open one more is dead-lettered, so a few garbage timestamps cannot cost a load "
     "job each.",
     SetCount<&TableConfig::max_partitions_per_object, 1, 10000>},
    {"max_columns", Scope::kBoth, "1000",
     "Most columns the table may have (10..10000; BigQuery's limit is 10,000). Past it, new fields go to "
     "_overflow. Every DuckDB load costs memory in proportion to the table's width (about 1 MB a column).",
     SetCount<&TableConfig::max_columns, 10, 10000>},
    {"lineage", Scope::kBoth, "[]",
     "Columns saying where each row came from, e.g. [\"source\", \"line\"]: \"source\" adds _source (STRING, the "
     "object's key in the source store), \"line\" adds _line (INT64, the row's 1-based line number in the "
     "decompressed object, as bad records number them; msgpack: the record's ordinal). Off by default: every row "
     "carries them and BigQuery bills logical bytes, so an object key of 40 bytes on a row of 300 stores and scans "
     "about a sixth more. Turned on for a table with data, older rows hold NULL until restaged "
     "([schema.md](schema.md#lineage)).",
     SetLineage},
    {"retry_base", Scope::kBoth, "30s",
     "First retry delay for a failed object or load (doubles each time, with jitter).",
     SetDuration<&TableConfig::retry_base_us>},
    {"retry_max", Scope::kBoth, "1h", "Longest retry delay.", SetDuration<&TableConfig::retry_max_us>},
};

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& k : kKeys)
    if (name == k.name) return &k;
  return nullptr;
}

// "; did you mean 'X'?" for the known key closest to a mistyped one, or "".
std::string DidYouMean(const std::string& key, bool top) {
  std::vector<std::string> names;
  // Every key: one that belongs elsewhere is then named as such.
  for (const KeySpec& k : kKeys) names.emplace_back(k.name);
  if (top) names.emplace_back("table");
  std::string closest = ClosestMatch(key, names);
  return closest.empty() ? "" : "; did you mean '" + closest + "'?";
}

// Reads a section's keys (the top level, or one [[table]]) as text, checking
// that each is known and belongs there. At the top level, *tables gets the
// [[table]] array.
StatusOr<Settings> ReadSection(const toml::table& section, const std::string& origin, const toml::array** tables) {
  const bool top = tables != nullptr;
  Settings out;
  for (auto&& [k, node] : section) {
    std::string key(k.str());
    std::string where = Where(origin, node);
    if (top && key == "table") {
      *tables = node.as_array();
      if (!*tables) return Status::InvalidArgument(where + ": 'table' must be an array of tables: write [[table]]");
      continue;
    }
    const KeySpec* spec = FindKey(key);
    if (!spec)
      return Status::InvalidArgument(where + ": unknown key '" + key + "'" + (top ? "" : " in [[table]]") +
                                     DidYouMean(key, top));
    if (top && spec->scope == Scope::kTable)
      return Status::InvalidArgument(where + ": key '" + key + "' belongs in a [[table]] section");
    if (!top && spec->scope == Scope::kTop)
      return Status::InvalidArgument(where + ": key '" + key + "' belongs at the top level, not in [[table]]");
    auto v = ValueText(node, key, where);
    if (!v.ok()) return Status::InvalidArgument(where + ": key '" + key + "': " + v.status().message());
    out[key] = Setting{key, *v, where};
  }
  return out;
}

Status ApplyTopLevel(const Settings& top, const std::string& origin, Config* cfg) {
  Target target{cfg};
  for (const KeySpec& spec : kKeys) {
    if (spec.scope != Scope::kTop) continue;
    auto it = top.find(spec.name);
    if (it == top.end() && !spec.def)
      return Status::InvalidArgument(origin + ": missing required key '" + std::string(spec.name) + "'");
    Setting s = it != top.end() ? it->second : Setting{spec.name, spec.def, origin, true};
    LF_RETURN_IF_ERROR(spec.apply(s, target));
  }
  return Status::Ok();
}

// A [[table]] key's value: its own, else the top level's, else the default.
StatusOr<Setting> Resolve(const KeySpec& spec, const Settings& own, const Settings& top, const std::string& where) {
  if (auto it = own.find(spec.name); it != own.end()) return it->second;
  if (auto it = top.find(spec.name); it != top.end()) return it->second;
  if (!spec.def)
    return Status::InvalidArgument(where + ": [[table]] is missing required key '" + std::string(spec.name) + "'");
  return Setting{spec.name, spec.def, where, true};
}

// Checks that join keys listed apart, run once every key of a [[table]] is applied.

Status CheckStagingFitsWarehouse(const Settings& s, Target& t) {
  const SchemeInfo& warehouse = *Schemes().Claim(t.table->warehouse);
  const SchemeInfo* from = Schemes().Find(warehouse.loads_from);
  if (from && Schemes().Claim(t.table->staging) != from)
    return Bad(s.at("staging"), "a " + warehouse.name + ":// warehouse loads from " + from->service +
                                    ": staging must be " + from->example);
  return Status::Ok();
}

// `endpoint` is for the sides whose scheme shares it (S3); the per-side keys
// also take, say, a gs:// side's JSON API base URL. A remote side left
// without one takes it from the environment, which must pass the same test.
Status ResolveEndpoints(const Settings& s, Target& t) {
  const Setting& shared = s.at("endpoint");
  for (auto [uri, store, key] : {std::tuple{&t.table->source, &t.table->source_store, "source_endpoint"},
                                 std::tuple{&t.table->staging, &t.table->staging_store, "staging_endpoint"}}) {
    const SchemeInfo& scheme = *Schemes().Claim(*uri);
    const Setting* specific = &s.at(key);
    if (specific->value.empty() && scheme.shares_endpoint) specific = &shared;
    store->endpoint = specific->value;
    if (!scheme.remote) continue;
    if (specific->value.empty()) {
      LF_RETURN_IF_ERROR(CheckEnvTransport(scheme, t.cfg->allow_insecure_http, *t.where));
      continue;
    }
    std::string problem = TransportProblem(specific->value, scheme.bearer_token, t.cfg->allow_insecure_http);
    if (!problem.empty()) return Bad(*specific, problem);
  }
  return Status::Ok();
}

Status CheckKeyFormat(const Settings& s, Target& t) {
  auto compiled = KeyFormat::Compile(t.table->key_format, t.table->time_slice_format, t.table->zone);
  if (!compiled.ok()) return Bad(s.at("key_format"), compiled.status().message());
  return Status::Ok();
}

// csv's delimiter is ',' unless set; csv and tsv need their column names.
Status ApplyFormatDefaults(const Settings& s, Target& t) {
  FormatOptions& f = t.table->format;
  if (f.format == LogFormat::kCsv && s.at("delimiter").is_default) f.delimiter = ',';
  if ((f.format == LogFormat::kCsv || f.format == LogFormat::kTsv) && f.keys.empty())
    return Bad(s.at("format"), "format '" + t.table->format_name + "' needs key 'keys' (the column names, in order)");
  return Status::Ok();
}

using Check = Status (*)(const Settings& s, Target& t);
const Check kTableChecks[] = {CheckStagingFitsWarehouse, ResolveEndpoints, CheckKeyFormat, ApplyFormatDefaults};

StatusOr<TableConfig> ParseTable(const toml::node& node, const Settings& top, const std::string& origin, Config* cfg) {
  std::string where = Where(origin, node);
  const toml::table* section = node.as_table();
  if (!section) return Status::InvalidArgument(where + ": [[table]] entries must be tables");
  LF_ASSIGN_OR_RETURN(Settings own, ReadSection(*section, origin, nullptr));
  TableConfig tc;
  Target target{cfg, &tc, &where};
  Settings applied;
  for (const KeySpec& spec : kKeys) {
    if (spec.scope == Scope::kTop) continue;
    LF_ASSIGN_OR_RETURN(Setting s, Resolve(spec, own, top, where));
    LF_RETURN_IF_ERROR(spec.apply(s, target));
    applied.emplace(spec.name, std::move(s));
  }
  for (Check check : kTableChecks) LF_RETURN_IF_ERROR(check(applied, target));
  return tc;
}

}  // namespace

std::string Config::LedgerName() const {
  return Ledger::Describe(LedgerPath());
}

const TableConfig* Config::FindTable(const std::string& name) const {
  for (const TableConfig& t : tables)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t Config::MinInterval() const {
  int64_t m = INT64_MAX;
  for (const TableConfig& t : tables) m = std::min(m, t.interval_us);
  return m == INT64_MAX ? 60 * kMicrosPerSecond : m;
}

StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                                   std::string(e.description()));
  }
  Config cfg;
  cfg.path = origin;
  const toml::array* tables = nullptr;
  LF_ASSIGN_OR_RETURN(Settings top, ReadSection(root, origin, &tables));
  LF_RETURN_IF_ERROR(ApplyTopLevel(top, origin, &cfg));
  if (!tables || tables->empty())
    return Status::InvalidArgument(origin + ": no [[table]] section: at least one is required");
  for (const toml::node& node : *tables) {
    LF_ASSIGN_OR_RETURN(TableConfig tc, ParseTable(node, top, origin, &cfg));
    cfg.tables.push_back(std::move(tc));
  }
  return cfg;
}

StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

// A key's description, with the URIs the registered backends take in place
// of {source}, {staging} and {warehouse}: the core names no scheme itself.
std::string KeyDoc(const KeySpec& k) {
  std::string doc = k.doc;
  auto expand = [&doc](const std::string& token, const std::string& text) {
    for (size_t at = doc.find(token); at != std::string::npos; at = doc.find(token, at + text.size()))
      doc.replace(at, token.size(), text);
  };
  expand("{source}", Schemes().Examples(kRoleSource, " or "));
  expand("{staging}", Schemes().Examples(kRoleStaging, " or "));
  std::string warehouses;
  for (const std::string& name : Split(Schemes().Names(kRoleWarehouse, ","), ',')) {
    const SchemeInfo* w = Schemes().Find(name.substr(0, name.find(':')));
    if (!w) continue;
    warehouses += (warehouses.empty() ? "" : ", or ") + w->example;
    if (!w->loads_from.empty()) warehouses += " (staging must then be " + w->loads_from + "://)";
  }
  expand("{warehouse}", warehouses);
  return doc;
}

std::string ConfigReference() {
  std::string out = "| key | where | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const KeySpec& k : kKeys) {
    const char* scope = k.scope == Scope::kTop     ? "top level"
                        : k.scope == Scope::kTable ? "[[table]]"
                                                   : "[[table]] or top level (default for all tables)";
    std::string def = k.def ? std::string(k.def) : "(required)";
    if (def == "\t") def = "\\t";
    out += "| `" + std::string(k.name) + "` | " + scope + " | `" + def + "` | " + KeyDoc(k) + " |\n";
  }
  return out;
}

}  // namespace logferry
