#include "core/config.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "http/http_client.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

enum class Scope { kTop, kTable, kBoth };  // kBoth: in [[table]], or top level as a default for every table

struct KeySpec {
  const char* name;
  Scope scope;
  const char* def;  // nullptr: required
  const char* doc;
};

const KeySpec kKeys[] = {
    {"state_dir", Scope::kTop, nullptr, "Directory for the ledger (ledger.db) and scratch space."},
    {"workers", Scope::kTop, "0", "Parallel staging workers; 0 means one per CPU core."},
    {"log_level", Scope::kTop, "info", "trace, debug, info, warn or error."},
    {"allow_insecure_http", Scope::kTop, "false",
     "true allows plain http:// to a host that is not loopback for the SigV4-signed S3 and SQS endpoints "
     "(endpoint, source_endpoint and staging_endpoint of s3:// sides, notifications, AWS_ENDPOINT_URL[_S3]). "
     "Off, and always for anything that sends a bearer token (gs:// endpoints, STORAGE_EMULATOR_HOST, "
     "bigquery_endpoint), http:// is accepted only for 127.0.0.0/8, ::1, localhost and *.localhost."},
    {"lock_timeout", Scope::kTop, "60s", "How long a command waits for the warehouse while another process holds it."},
    {"name", Scope::kTable, nullptr,
     "Warehouse table name: letters, digits and underscores, not starting with a digit or '_'."},
    {"source", Scope::kBoth, nullptr,
     "Where Fluentd writes objects: file:///dir/prefix/, s3://bucket/prefix/ or gs://bucket/prefix/."},
    {"staging", Scope::kBoth, nullptr,
     "Durable staging store for normalized parts: file:///dir/, s3://bucket/prefix/ or gs://bucket/prefix/."},
    {"endpoint", Scope::kBoth, "",
     "s3://: an S3-compatible endpoint (http://127.0.0.1:9000 for MinIO, https://ACCOUNT.r2.cloudflarestorage.com, "
     "https://storage.googleapis.com with HMAC keys) for the s3:// source and staging; empty: AWS_ENDPOINT_URL_S3, "
     "AWS_ENDPOINT_URL, else AWS."},
    {"source_endpoint", Scope::kBoth, "",
     "Overrides `endpoint` for the source; for gs:// the JSON API base URL (default STORAGE_EMULATOR_HOST, else "
     "https://storage.googleapis.com)."},
    {"staging_endpoint", Scope::kBoth, "",
     "Overrides `endpoint` for the staging store (gs:// as for source_endpoint)."},
    {"region", Scope::kBoth, "",
     "AWS region for S3 and SQS; empty: AWS_REGION, AWS_DEFAULT_REGION, `region` of the AWS_PROFILE (else default) "
     "profile in ~/.aws/config (AWS_CONFIG_FILE), else us-east-1. An SQS queue URL on AWS names its own."},
    {"ca_file", Scope::kBoth, "",
     "s3://: a PEM file of CA certificates trusted instead of the system store for the table's S3-compatible "
     "endpoints (endpoint, source_endpoint, staging_endpoint, AWS_ENDPOINT_URL[_S3]), such as MinIO or Ceph behind a "
     "private CA; certificates are still verified. AWS itself and the notifications queue keep the system store."},
    {"s3_addressing", Scope::kBoth, "auto",
     "auto (virtual-hosted on AWS, path-style on a custom endpoint or a bucket with dots), virtual or path."},
    {"notifications", Scope::kBoth, "",
     "SQS queue URL receiving the source bucket's S3 event notifications, exactly as AWS prints it "
     "(https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE). Empty: discover by listing only."},
    {"reconcile_every", Scope::kBoth, "1h",
     "With notifications: how often a full listing looks for objects whose events were lost (0: every interval)."},
    {"sqs_wait", Scope::kBoth, "20s", "With notifications: long-poll wait of each ReceiveMessage (0s..20s)."},
    {"sqs_visibility", Scope::kBoth, "5m",
     "With notifications: how long a received message stays hidden; extended while its objects are still staging."},
    {"warehouse", Scope::kBoth, nullptr,
     "duckdb:///path/file.duckdb, or bigquery://project/dataset (staging must then be gs://)."},
    {"credentials", Scope::kBoth, "",
     "gs:// and bigquery://: a Google credentials file (service-account key or authorized_user); empty: "
     "GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file, GOOGLE_OAUTH_ACCESS_TOKEN, the metadata server."},
    {"bigquery_endpoint", Scope::kBoth, "",
     "bigquery://: the REST API's base URL; empty: https://bigquery.googleapis.com."},
    {"location", Scope::kBoth, "US", "bigquery://: where the dataset lives and jobs run."},
    {"clustering", Scope::kBoth, "", "bigquery://: clustering columns for a new table, comma-separated (up to 4)."},
    {"daily_load_budget", Scope::kBoth, "1000",
     "bigquery://: most load jobs per table in any 24 hours (BigQuery allows 1,500 a day, failures included); "
     "when it runs short a UTC day's partitions are merged into one job, and past it partitions wait."},
    {"max_uris_per_load", Scope::kBoth, "10000",
     "bigquery://: most staged files one load job names; a partition with more goes through a scratch table."},
    {"key_format", Scope::kBoth, "%{path}%{time_slice}_%{index}.%{file_extension}",
     "Fluentd's s3_object_key_format; keys under `source` that do not match are ignored."},
    {"time_slice_format", Scope::kBoth, "%Y%m%d%H", "Fluentd's time_slice_format (strftime layout)."},
    {"format", Scope::kBoth, "out_file",
     "Fluentd's formatter: out_file (time<TAB>tag<TAB>json), json, ltsv, csv, tsv, single_value or msgpack."},
    {"compression", Scope::kBoth, "auto", "auto (by magic bytes), gzip, zstd or none."},
    {"time_key", Scope::kBoth, "time",
     "json, ltsv, csv, tsv, msgpack: the field holding the event time (absent: the key's time slice)."},
    {"time_format", Scope::kBoth, "iso8601",
     "iso8601, unix, unix_ms, or a strftime layout such as %d/%b/%Y:%H:%M:%S %z."},
    {"timezone", Scope::kBoth, "+00:00", "UTC offset for times (and time slices) without one, e.g. +09:00."},
    {"delimiter", Scope::kBoth, "\t",
     "out_file, ltsv, tsv: field delimiter; csv: \",\" unless set (\"\\t\", \" \", \",\", or SPACE/TAB/COMMA)."},
    {"label_delimiter", Scope::kBoth, ":", "ltsv: between a label and its value."},
    {"keys", Scope::kBoth, "",
     "csv, tsv: the column names in order, as an array or a comma-separated string (required)."},
    {"message_key", Scope::kBoth, "message", "single_value: the field each line becomes."},
    {"output_time", Scope::kBoth, "true", "out_file: whether lines start with the time field."},
    {"output_tag", Scope::kBoth, "true", "out_file: whether lines carry the tag field."},
    {"partition", Scope::kBoth, "hour", "Warehouse partition unit: hour or day."},
    {"settle", Scope::kBoth, "10m", "Wait after a partition's period ends before loading it (late objects)."},
    {"interval", Scope::kBoth, "1m", "How often the daemon looks for work."},
    {"max_line_bytes", Scope::kBoth, "134217728", "Longest line accepted; longer lines are dead-lettered."},
    {"max_partitions_per_object", Scope::kBoth, "48",
     "Most partitions one source object may write (1..10000); the partition of its key's time slice is always "
     "one. A record that would open one more is dead-lettered, so a few garbage timestamps cannot cost a load "
     "job each."},
    {"max_columns", Scope::kBoth, "1000",
     "Most columns the table may have (10..10000; BigQuery's limit is 10,000). Past it, new fields go to "
     "_overflow. Every DuckDB load costs memory in proportion to the table's width (about 1 MB a column)."},
    {"retry_base", Scope::kBoth, "30s",
     "First retry delay for a failed object or load (doubles each time, with jitter)."},
    {"retry_max", Scope::kBoth, "1h", "Longest retry delay."},
};

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& k : kKeys)
    if (name == k.name) return &k;
  return nullptr;
}

std::string Where(const std::string& origin, const toml::node& n) {
  auto line = n.source().begin.line;
  return origin + ":" + std::to_string(line);
}

// Expands ${VAR}; "$$" is a literal '$'.
StatusOr<std::string> ExpandEnv(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t end = s.find('}', i);
      if (end == std::string::npos) return Status::InvalidArgument("unterminated ${ in '" + s + "'");
      std::string var = s.substr(i + 2, end - i - 2);
      std::optional<std::string> v = Env::Default()->GetEnv(var);
      if (!v) return Status::InvalidArgument("environment variable " + var + " is not set");
      out += *v;
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
  if (auto a = n.as_array(); a && key == "keys") {
    // Arrays (keys) are read as a comma-separated list.
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

}  // namespace

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
  std::map<std::string, std::pair<std::string, std::string>> top;  // key -> (value, where)
  const toml::array* tables = nullptr;
  for (auto&& [k, node] : root) {
    std::string key(k.str());
    std::string where = Where(origin, node);
    if (key == "table") {
      tables = node.as_array();
      if (!tables) return Status::InvalidArgument(where + ": 'table' must be an array of tables: write [[table]]");
      continue;
    }
    const KeySpec* spec = FindKey(key);
    if (!spec) return Status::InvalidArgument(where + ": unknown key '" + key + "'");
    if (spec->scope == Scope::kTable)
      return Status::InvalidArgument(where + ": key '" + key + "' belongs in a [[table]] section");
    auto v = ValueText(node, key, where);
    if (!v.ok()) return Status::InvalidArgument(where + ": key '" + key + "': " + v.status().message());
    top[key] = {*v, where};
  }
  auto top_value = [&](const char* key) -> std::pair<std::string, std::string> {
    auto it = top.find(key);
    if (it != top.end()) return it->second;
    const KeySpec* spec = FindKey(key);
    return {spec->def ? spec->def : "", origin};
  };
  if (!top.count("state_dir")) return Status::InvalidArgument(origin + ": missing required key 'state_dir'");
  cfg.state_dir = top["state_dir"].first;
  {
    auto [v, where] = top_value("workers");
    char* end;
    long n = strtol(v.c_str(), &end, 10);
    if (*end || n < 0 || n > 256)
      return Status::InvalidArgument(where + ": key 'workers' must be 0..256 (got '" + v + "')");
    cfg.workers = n == 0 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : static_cast<int>(n);
  }
  {
    auto [v, where] = top_value("log_level");
    if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error")
      return Status::InvalidArgument(where + ": key 'log_level' must be trace, debug, info, warn or error (got '" + v +
                                     "')");
    cfg.log_level = v;
  }
  {
    auto [v, where] = top_value("allow_insecure_http");
    auto b = ParseBool(v);
    if (!b.ok()) return Status::InvalidArgument(where + ": key 'allow_insecure_http' " + b.status().message());
    cfg.allow_insecure_http = *b;
  }
  {
    auto [v, where] = top_value("lock_timeout");
    auto d = ParseDuration(v);
    if (!d.ok()) return Status::InvalidArgument(where + ": key 'lock_timeout': " + d.status().message());
    cfg.lock_timeout_us = *d;
  }
  if (!tables || tables->empty())
    return Status::InvalidArgument(origin + ": no [[table]] section: at least one is required");

  for (const toml::node& tn : *tables) {
    const toml::table* t = tn.as_table();
    std::string twhere = Where(origin, tn);
    if (!t) return Status::InvalidArgument(twhere + ": [[table]] entries must be tables");
    std::map<std::string, std::pair<std::string, std::string>> vals;
    for (auto&& [k, node] : *t) {
      std::string key(k.str());
      std::string where = Where(origin, node);
      const KeySpec* spec = FindKey(key);
      if (!spec) return Status::InvalidArgument(where + ": unknown key '" + key + "' in [[table]]");
      if (spec->scope == Scope::kTop)
        return Status::InvalidArgument(where + ": key '" + key + "' belongs at the top level, not in [[table]]");
      auto v = ValueText(node, key, where);
      if (!v.ok()) return Status::InvalidArgument(where + ": key '" + key + "': " + v.status().message());
      vals[key] = {*v, where};
    }
    auto get = [&](const char* key) -> StatusOr<std::pair<std::string, std::string>> {
      auto it = vals.find(key);
      if (it != vals.end()) return it->second;
      auto tt = top.find(key);
      if (tt != top.end()) return tt->second;
      const KeySpec* spec = FindKey(key);
      if (!spec->def)
        return Status::InvalidArgument(twhere + ": [[table]] is missing required key '" + std::string(key) + "'");
      return std::pair<std::string, std::string>{spec->def, twhere};
    };
#define LF_GET(var, key) LF_ASSIGN_OR_RETURN(auto var, get(key))
#define LF_BAD(where, key, msg) Status::InvalidArgument(where + ": key '" + std::string(key) + "': " + (msg))
    TableConfig tc;
    LF_GET(name, "name");
    if (!LegalTableName(name.first))
      return LF_BAD(
          name.second, "name",
          "'" + name.first + "' is not a legal table name (letters, digits, underscores; not starting with a digit)");
    // Staging holds <table>/… beside logferry's own _requests/, and the
    // warehouse may hold logferry's own _logferry_… tables.
    if (name.first[0] == '_')
      return LF_BAD(name.second, "name",
                    "'" + name.first + "': names starting with '_' are reserved for logferry's own objects (_requests/)");
    if (cfg.FindTable(name.first)) return LF_BAD(name.second, "name", "table '" + name.first + "' is defined twice");
    tc.name = name.first;
    LF_GET(source, "source");
    LF_GET(staging, "staging");
    LF_GET(warehouse, "warehouse");
    for (auto [kv, role, key] :
         {std::tuple{&source, kRoleSource, "source"}, std::tuple{&staging, kRoleStaging, "staging"}}) {
      std::string problem = UriProblem(kv->first, role, "store");
      if (!problem.empty()) return LF_BAD(kv->second, key, problem);
    }
    std::string wh_problem = UriProblem(warehouse.first, kRoleWarehouse, "warehouse");
    if (!wh_problem.empty()) return LF_BAD(warehouse.second, "warehouse", wh_problem);
    const SchemeInfo& source_scheme = *Schemes().Claim(source.first);
    const SchemeInfo& wh_scheme = *Schemes().Claim(warehouse.first);
    if (const SchemeInfo* from = Schemes().Find(wh_scheme.loads_from); from && Schemes().Claim(staging.first) != from)
      return LF_BAD(
          staging.second, "staging",
          "a " + wh_scheme.name + ":// warehouse loads from " + from->service + ": staging must be " + from->example);
    tc.source = source.first;
    tc.staging = staging.first;
    tc.warehouse = warehouse.first;
    if (tc.source.back() != '/') tc.source += '/';
    if (tc.staging.back() != '/') tc.staging += '/';

    LF_GET(endpoint, "endpoint");
    LF_GET(source_endpoint, "source_endpoint");
    LF_GET(staging_endpoint, "staging_endpoint");
    LF_GET(region, "region");
    LF_GET(addressing, "s3_addressing");
    if (addressing.first != "auto" && addressing.first != "virtual" && addressing.first != "path")
      return LF_BAD(addressing.second, "s3_addressing", "must be auto, virtual or path (got '" + addressing.first + "')");
    Uri u;
    for (auto* kv : {&endpoint, &source_endpoint, &staging_endpoint}) {
      if (kv->first.empty()) continue;
      if (!ParseUri(kv->first, &u) || (u.scheme != "http" && u.scheme != "https") || (u.path != "" && u.path != "/"))
        return LF_BAD(kv->second, kv == &endpoint ? "endpoint" : kv == &source_endpoint ? "source_endpoint" : "staging_endpoint",
                      "'" + kv->first + "' is not an endpoint URL (http(s)://host[:port])");
      while (kv->first.size() > 1 && kv->first.back() == '/') kv->first.pop_back();
    }
    // `endpoint` is for the sides whose scheme shares it (S3); the per-side
    // keys also take, say, a gs:// side's JSON API base URL.
    auto side_endpoint = [&](const std::string& uri, const std::string& specific) {
      if (!specific.empty()) return specific;
      return Schemes().Claim(uri)->shares_endpoint ? endpoint.first : std::string();
    };
    tc.source_store.endpoint = side_endpoint(source.first, source_endpoint.first);
    tc.staging_store.endpoint = side_endpoint(staging.first, staging_endpoint.first);
    for (auto [side, specific, key] : {std::tuple{&source, &source_endpoint, "source_endpoint"},
                                       std::tuple{&staging, &staging_endpoint, "staging_endpoint"}}) {
      const SchemeInfo& scheme = *Schemes().Claim(side->first);
      if (!scheme.remote) continue;
      if (scheme.shares_endpoint && specific->first.empty() && !endpoint.first.empty()) {
        specific = &endpoint;
        key = "endpoint";
      }
      if (specific->first.empty()) {
        LF_RETURN_IF_ERROR(CheckEnvTransport(scheme, cfg.allow_insecure_http, twhere));
        continue;
      }
      std::string problem = TransportProblem(specific->first, scheme.bearer_token, cfg.allow_insecure_http);
      if (!problem.empty()) return LF_BAD(specific->second, key, problem);
    }
    tc.source_store.region = tc.staging_store.region = region.first;
    tc.source_store.addressing = tc.staging_store.addressing = addressing.first;
    LF_GET(ca_file, "ca_file");
    tc.source_store.ca_file = tc.staging_store.ca_file = ca_file.first;
    LF_GET(notifications, "notifications");
    if (!notifications.first.empty()) {
      // The path (after the host's '/') is ACCOUNT/QUEUE.
      bool parsed = ParseUri(notifications.first, &u);
      auto segments = Split(u.path, '/');
      std::erase(segments, std::string());
      if (!parsed || (u.scheme != "http" && u.scheme != "https") || segments.size() != 2 ||
          std::count(u.path.begin(), u.path.end(), '/') != 1)
        return LF_BAD(notifications.second, "notifications",
                      "'" + notifications.first + "' is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)");
      if (!source_scheme.announces_events)
        return LF_BAD(
            notifications.second, "notifications",
            "S3 event notifications need an " + Schemes().Names(&SchemeInfo::announces_events, " or ") + " source");
    }
    if (!notifications.first.empty()) {
      std::string problem = TransportProblem(notifications.first, false, cfg.allow_insecure_http);
      if (!problem.empty()) return LF_BAD(notifications.second, "notifications", problem);
    }
    tc.notifications = notifications.first;
    LF_GET(credentials, "credentials");
    tc.credentials = credentials.first;
    LF_GET(bq_endpoint, "bigquery_endpoint");
    while (bq_endpoint.first.size() > 1 && bq_endpoint.first.back() == '/') bq_endpoint.first.pop_back();
    if (!bq_endpoint.first.empty()) {
      std::string problem = TransportProblem(bq_endpoint.first, true, cfg.allow_insecure_http);
      if (!problem.empty()) return LF_BAD(bq_endpoint.second, "bigquery_endpoint", problem);
    }
    tc.bigquery_endpoint = bq_endpoint.first;
    LF_GET(location, "location");
    tc.location = location.first;
    LF_GET(clustering, "clustering");
    tc.clustering.clear();
    for (std::string& c : Split(clustering.first, ','))
      if (!c.empty()) tc.clustering.push_back(c);
    if (tc.clustering.size() > 4) return LF_BAD(clustering.second, "clustering", "at most 4 columns");
    for (auto [key, out, lo, hi] :
         {std::tuple<const char*, int64_t*, int64_t, int64_t>{"daily_load_budget", &tc.daily_load_budget, 1, 1500},
          {"max_uris_per_load", &tc.max_uris_per_load, 1, 10000},
          {"max_partitions_per_object", &tc.max_partitions_per_object, 1, 10000},
          {"max_columns", &tc.max_columns, 10, 10000}}) {
      LF_GET(v, key);
      char* end;
      long long n = strtoll(v.first.c_str(), &end, 10);
      if (*end || v.first.empty() || n < lo || n > hi)
        return LF_BAD(v.second, key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
      *out = n;
    }

    LF_GET(tz, "timezone");
    auto off = ParseUtcOffset(tz.first);
    if (!off.ok()) return LF_BAD(tz.second, "timezone", off.status().message());
    tc.timezone = tz.first;
    tc.offset_seconds = *off;
    tc.format.offset_seconds = *off;

    LF_GET(kf, "key_format");
    LF_GET(tsf, "time_slice_format");
    auto compiled = KeyFormat::Compile(kf.first, tsf.first, *off);
    if (!compiled.ok()) return LF_BAD(kf.second, "key_format", compiled.status().message());
    tc.key_format = kf.first;
    tc.time_slice_format = tsf.first;

    LF_GET(fmt, "format");
    auto lf = ParseLogFormat(fmt.first);
    if (!lf.ok()) return LF_BAD(fmt.second, "format", lf.status().message());
    tc.format_name = fmt.first;
    tc.format.format = *lf;
    LF_GET(comp, "compression");
    auto c = ParseCompression(comp.first);
    if (!c.ok()) return LF_BAD(comp.second, "compression", c.status().message());
    tc.compression = *c;
    LF_GET(tk, "time_key");
    tc.format.time_key = tk.first;
    LF_GET(tf, "time_format");
    if (tf.first == "iso8601")
      tc.format.time_kind = TimeFormatKind::kIso8601;
    else if (tf.first == "unix")
      tc.format.time_kind = TimeFormatKind::kUnix;
    else if (tf.first == "unix_ms")
      tc.format.time_kind = TimeFormatKind::kUnixMs;
    else {
      auto layout = TimeLayout::Compile(tf.first);
      if (!layout.ok()) return LF_BAD(tf.second, "time_format", layout.status().message());
      if (tf.first.find('%') == std::string::npos)
        return LF_BAD(tf.second, "time_format",
                      "must be iso8601, unix, unix_ms or a strftime layout (got '" + tf.first + "')");
      tc.format.time_kind = TimeFormatKind::kLayout;
      tc.format.time_layout = *layout;
    }
    LF_GET(delim, "delimiter");
    std::string d = delim.first;
    if (d == "TAB" || d == "\\t")
      d = "\t";
    else if (d == "SPACE")
      d = " ";
    else if (d == "COMMA")
      d = ",";
    if (d.size() != 1) return LF_BAD(delim.second, "delimiter", "must be one character (or TAB, SPACE, COMMA)");
    tc.format.delimiter = d[0];
    bool delimiter_set = vals.count("delimiter") || top.count("delimiter");
    if (*lf == LogFormat::kCsv && !delimiter_set) tc.format.delimiter = ',';
    LF_GET(ld, "label_delimiter");
    if (ld.first.size() != 1) return LF_BAD(ld.second, "label_delimiter", "must be one character");
    tc.format.label_delimiter = ld.first[0];
    LF_GET(keys, "keys");
    tc.format.keys.clear();
    if (!keys.first.empty())
      for (std::string& k : Split(keys.first, ',')) tc.format.keys.push_back(k);
    if ((*lf == LogFormat::kCsv || *lf == LogFormat::kTsv) && tc.format.keys.empty())
      return LF_BAD(fmt.second, "format", "format '" + fmt.first + "' needs key 'keys' (the column names, in order)");
    LF_GET(mk, "message_key");
    tc.format.message_key = mk.first;
    LF_GET(ot, "output_time");
    auto otb = ParseBool(ot.first);
    if (!otb.ok()) return LF_BAD(ot.second, "output_time", otb.status().message());
    tc.format.output_time = *otb;
    LF_GET(og, "output_tag");
    auto ogb = ParseBool(og.first);
    if (!ogb.ok()) return LF_BAD(og.second, "output_tag", ogb.status().message());
    tc.format.output_tag = *ogb;

    LF_GET(part, "partition");
    if (part.first == "hour")
      tc.partition_unit_us = kMicrosPerHour;
    else if (part.first == "day")
      tc.partition_unit_us = kMicrosPerDay;
    else
      return LF_BAD(part.second, "partition", "must be hour or day (got '" + part.first + "')");
    tc.partition = part.first;
    struct Dur {
      const char* key;
      int64_t* out;
    };
    for (Dur du : {Dur{"settle", &tc.settle_us}, Dur{"interval", &tc.interval_us}, Dur{"retry_base", &tc.retry_base_us},
                   Dur{"retry_max", &tc.retry_max_us}, Dur{"reconcile_every", &tc.reconcile_every_us},
                   Dur{"sqs_wait", &tc.sqs_wait_us}, Dur{"sqs_visibility", &tc.sqs_visibility_us}}) {
      LF_GET(v, du.key);
      auto dur = ParseDuration(v.first);
      if (!dur.ok()) return LF_BAD(v.second, du.key, dur.status().message());
      *du.out = *dur;
    }
    if (tc.sqs_wait_us > 20 * kMicrosPerSecond)
      return Status::InvalidArgument(twhere + ": key 'sqs_wait' must be at most 20s (SQS's limit)");
    if (tc.sqs_visibility_us < 10 * kMicrosPerSecond || tc.sqs_visibility_us > 12 * kMicrosPerHour)
      return Status::InvalidArgument(twhere + ": key 'sqs_visibility' must be between 10s and 12h (SQS's limit)");
    if (tc.interval_us < kMicrosPerSecond / 10)
      return Status::InvalidArgument(twhere + ": key 'interval' must be at least 100ms");
    LF_GET(mlb, "max_line_bytes");
    char* end;
    long long n = strtoll(mlb.first.c_str(), &end, 10);
    if (*end || n < 1024 || n > (1LL << 31))
      return LF_BAD(mlb.second, "max_line_bytes", "must be between 1024 and 2147483648");
    tc.max_line_bytes = n;
#undef LF_GET
#undef LF_BAD
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

std::string ConfigReference() {
  std::string out = "| key | where | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const KeySpec& k : kKeys) {
    const char* scope = k.scope == Scope::kTop     ? "top level"
                        : k.scope == Scope::kTable ? "[[table]]"
                                                   : "[[table]] or top level (default for all tables)";
    std::string def = k.def ? std::string(k.def) : "(required)";
    if (def == "\t") def = "\\t";
    out += "| `" + std::string(k.name) + "` | " + scope + " | `" + def + "` | " + k.doc + " |\n";
  }
  return out;
}

}  // namespace logferry
