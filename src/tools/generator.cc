#include "tools/generator.h"

#include <algorithm>
#include <msgpack.hpp>
#include <random>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "format/compression.h"
#include "format/key_format.h"
#include "store/file_store.h"

namespace logferry {

namespace {

const char* kMethods[] = {"GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"};
const int kCodes[] = {200, 200, 200, 200, 200, 200, 304, 301, 404, 500, 503};
const char* kPaths[] = {"/",
                        "/index.html",
                        "/api/v1/items",
                        "/api/v1/items/%d",
                        "/api/v1/users/%d/orders",
                        "/static/app.%d.js",
                        "/images/logo.png",
                        "/search?q=term%d",
                        "/login",
                        "/health"};
const char* kAgents[] = {
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/601.7.7 (KHTML, like Gecko) Version/9.1.2 "
    "Safari/601.7.7",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:48.0) Gecko/20100101 Firefox/48.0", "curl/7.47.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)"};
const char* kReferers[] = {"-", "-", "https://www.example.com/", "https://www.google.com/search?q=logs",
                           "https://t.co/abc123"};
const char* kCountries[] = {"JP", "US", "DE", "IN", "BR"};

// One access-log record, drawn in a fixed order from the generator's stream
// so that a seed always gives the same bytes.
struct Access {
  std::string local;  // event time, local, ISO 8601 with offset
  char host[32];
  const char* method;
  int code;
  char path[128];
  int size;
  double latency;
  char latency_text[32];
  const char* agent;
  const char* referer;
  const char* country;
  unsigned asn;
};

Access Draw(std::mt19937_64& rng, int64_t t, const TimeLayout& layout, const TimeZone& zone) {
  Access a;
  a.local = layout.Format(t, zone);
  unsigned ip = static_cast<unsigned>(rng());
  a.method = kMethods[rng() % 8];
  a.code = kCodes[rng() % 11];
  snprintf(a.path, sizeof a.path, kPaths[rng() % 10], static_cast<int>(rng() % 5000));
  a.size = a.code == 304 ? 0 : static_cast<int>(rng() % 200000);
  a.latency = static_cast<double>(rng() % 2000000) / 1000.0;
  a.agent = kAgents[rng() % 5];
  a.referer = kReferers[rng() % 5];
  a.country = kCountries[rng() % 5];
  a.asn = static_cast<unsigned>(rng() % 65000);
  snprintf(a.host, sizeof a.host, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  snprintf(a.latency_text, sizeof a.latency_text, "%.3f", a.latency);
  return a;
}

// out_file ("time<TAB>tag<TAB>{json}") or json (the time inside the record).
void AppendJson(const Access& a, bool out_file, std::string* text) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "{\"host\":\"%s\",\"user\":\"-\",\"method\":\"%s\",\"path\":\"%s\",\"code\":%d,"
                   "\"size\":%d,\"referer\":\"%s\",\"agent\":\"%s\",\"response-time\":%s,"
                   "\"geo\":{\"country\":\"%s\",\"asn\":%u}",
                   a.host, a.method, a.path, a.code, a.size, a.referer, a.agent, a.latency_text, a.country, a.asn);
  std::string rec(buf, static_cast<size_t>(n));
  if (!out_file) rec += ",\"time\":\"" + a.local + "\"";
  rec += "}";
  if (out_file)
    *text += a.local + "\tnginx.access\t" + rec + "\n";
  else
    *text += rec + "\n";
}

void AppendMsgpack(const Access& a, std::string* text) {
  msgpack::sbuffer sbuf;
  msgpack::packer<msgpack::sbuffer> pk(&sbuf);
  auto kv = [&](const char* k, const std::string& v) {
    pk.pack(std::string(k));
    pk.pack(v);
  };
  pk.pack_map(11);
  kv("time", a.local);
  kv("host", a.host);
  kv("user", "-");
  kv("method", a.method);
  kv("path", a.path);
  pk.pack(std::string("code"));
  pk.pack(a.code);
  pk.pack(std::string("size"));
  pk.pack(a.size);
  kv("referer", a.referer);
  kv("agent", a.agent);
  pk.pack(std::string("response-time"));
  pk.pack_double(a.latency);
  pk.pack(std::string("geo"));
  pk.pack_map(2);
  kv("country", a.country);
  pk.pack(std::string("asn"));
  pk.pack(a.asn);
  text->append(sbuf.data(), sbuf.size());
}

// Flat, string-valued records, as Fluentd's ltsv/csv/tsv/single_value
// formatters write them.
void AppendFlat(const Access& a, const std::string& format, std::string* text) {
  if (format == "single_value") {
    *text += std::string(a.host) + " - - [" + a.local + "] \"" + a.method + " " + a.path + " HTTP/1.1\" " +
             std::to_string(a.code) + " " + std::to_string(a.size) + " \"" + a.referer + "\" \"" + a.agent + "\"\n";
    return;
  }
  const std::vector<std::pair<const char*, std::string>> fields = {{"time", a.local},
                                                                   {"host", a.host},
                                                                   {"user", "-"},
                                                                   {"method", a.method},
                                                                   {"path", a.path},
                                                                   {"code", std::to_string(a.code)},
                                                                   {"size", std::to_string(a.size)},
                                                                   {"referer", a.referer},
                                                                   {"agent", a.agent},
                                                                   {"response_time", a.latency_text},
                                                                   {"country", a.country}};
  for (size_t f = 0; f < fields.size(); ++f) {
    if (f) *text += format == "csv" ? "," : "\t";
    if (format == "ltsv")
      *text += std::string(fields[f].first) + ":" + fields[f].second;
    else if (format == "csv")
      *text += "\"" + fields[f].second + "\"";
    else
      *text += fields[f].second;
  }
  *text += "\n";
}

void AppendRecord(const Access& a, const std::string& format, std::string* text) {
  if (format == "out_file" || format == "json")
    AppendJson(a, format == "out_file", text);
  else if (format == "msgpack")
    AppendMsgpack(a, text);
  else
    AppendFlat(a, format, text);
}

// The sorted event times of one hour's rows; a late_fraction of them fall in
// the hour before (late arrivals), except in the first hour.
std::vector<int64_t> EventTimes(const GenOptions& o, int h, std::mt19937_64& rng) {
  int64_t hour = o.start_us + h * kMicrosPerHour;
  std::vector<int64_t> times(static_cast<size_t>(o.rows_per_hour));
  for (auto& t : times) {
    bool late = std::uniform_real_distribution<double>(0, 1)(rng) < o.late_fraction && h > 0;
    int64_t base = late ? hour - kMicrosPerHour : hour;
    t = base + static_cast<int64_t>(rng() % static_cast<uint64_t>(kMicrosPerHour / 1000)) * 1000;
  }
  std::sort(times.begin(), times.end());
  return times;
}

Status CheckOptions(const GenOptions& o) {
  if (o.hours <= 0 || o.rows_per_hour <= 0 || o.objects_per_hour <= 0)
    return Status::InvalidArgument("--hours, --rows-per-hour and --objects-per-hour must be positive");
  static const char* kFormats[] = {"out_file", "json", "ltsv", "csv", "tsv", "single_value", "msgpack"};
  if (std::find(std::begin(kFormats), std::end(kFormats), o.format) == std::end(kFormats))
    return Status::InvalidArgument("--format must be out_file, json, ltsv, csv, tsv, single_value or msgpack");
  return Status::Ok();
}

}  // namespace

StatusOr<GenResult> Generate(const GenOptions& o) {
  LF_RETURN_IF_ERROR(CheckOptions(o));
  LF_ASSIGN_OR_RETURN(auto store, FileStore::Open(FileUri(o.out_dir)));
  LF_ASSIGN_OR_RETURN(KeyFormat kf,
                      KeyFormat::Compile("%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H", o.zone));
  std::mt19937_64 rng(o.seed);
  LF_ASSIGN_OR_RETURN(TimeLayout local_layout, TimeLayout::Compile("%Y-%m-%dT%H:%M:%S%z"));
  GenResult result;
  for (int h = 0; h < o.hours; ++h) {
    int64_t hour = o.start_us + h * kMicrosPerHour;
    int objects = o.objects_per_hour * ((o.split_every > 0 && h % o.split_every == o.split_every - 1) ? 2 : 1);
    std::vector<int64_t> times = EventTimes(o, h, rng);
    size_t per_object = (times.size() + objects - 1) / objects;
    for (int idx = 0; idx < objects && static_cast<size_t>(idx) * per_object < times.size(); ++idx) {
      std::string text;
      text.reserve(per_object * 420);
      size_t from = idx * per_object, to = std::min(times.size(), from + per_object);
      for (size_t i = from; i < to; ++i) {
        AppendRecord(Draw(rng, times[i], local_layout, o.zone), o.format, &text);
        ++result.rows;
      }
      result.bytes_uncompressed += text.size();
      std::string key = kf.Format(o.prefix, hour, idx, o.gzip ? "gz" : "log");
      LF_RETURN_IF_ERROR(store->WriteAll(key, o.gzip ? GzipCompress(text, 1) : text).status());
      ++result.objects;
    }
  }
  return result;
}

}  // namespace logferry
