#include "tools/generator.h"

#include <algorithm>
#include <random>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "format/compression.h"
#include "format/key_format.h"
#include "format/msgpack_json.h"
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

}  // namespace

StatusOr<GenResult> Generate(const GenOptions& o) {
  if (o.hours <= 0 || o.rows_per_hour <= 0)
    return Status::InvalidArgument("--hours and --rows-per-hour must be positive");
  static const char* kFormats[] = {"out_file", "json", "ltsv", "csv", "tsv", "single_value", "msgpack"};
  if (std::find(std::begin(kFormats), std::end(kFormats), o.format) == std::end(kFormats))
    return Status::InvalidArgument("--format must be out_file, json, ltsv, csv, tsv, single_value or msgpack");
  LF_ASSIGN_OR_RETURN(auto store, FileStore::Open(FileUri(o.out_dir)));
  LF_ASSIGN_OR_RETURN(KeyFormat kf, KeyFormat::Compile("%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H",
                                                       o.offset_seconds));
  std::mt19937_64 rng(o.seed);
  LF_ASSIGN_OR_RETURN(TimeLayout local_layout, TimeLayout::Compile("%Y-%m-%dT%H:%M:%S%z"));
  GenResult result;
  char buf[1024];
  char path[128];
  for (int h = 0; h < o.hours; ++h) {
    int64_t hour = o.start_us + h * kMicrosPerHour;
    int objects = (o.split_every > 0 && h % o.split_every == o.split_every - 1) ? 2 : 1;
    std::vector<int64_t> times(static_cast<size_t>(o.rows_per_hour));
    for (auto& t : times) {
      bool late = std::uniform_real_distribution<double>(0, 1)(rng) < o.late_fraction && h > 0;
      int64_t base = late ? hour - kMicrosPerHour : hour;
      t = base + static_cast<int64_t>(rng() % static_cast<uint64_t>(kMicrosPerHour / 1000)) * 1000;
    }
    std::sort(times.begin(), times.end());
    size_t per_object = (times.size() + objects - 1) / objects;
    for (int idx = 0; idx < objects; ++idx) {
      std::string text;
      text.reserve(per_object * 420);
      size_t from = idx * per_object, to = std::min(times.size(), from + per_object);
      for (size_t i = from; i < to; ++i) {
        int64_t t = times[i];
        std::string local = local_layout.Format(t, o.offset_seconds);
        unsigned ip = static_cast<unsigned>(rng());
        const char* method = kMethods[rng() % 8];
        int code = kCodes[rng() % 11];
        snprintf(path, sizeof path, kPaths[rng() % 10], static_cast<int>(rng() % 5000));
        int size = code == 304 ? 0 : static_cast<int>(rng() % 200000);
        double latency = static_cast<double>(rng() % 2000000) / 1000.0;
        const char* agent = kAgents[rng() % 5];
        const char* referer = kReferers[rng() % 5];
        const char* country = kCountries[rng() % 5];
        unsigned asn = static_cast<unsigned>(rng() % 65000);
        char host[32];
        snprintf(host, sizeof host, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        char latency_text[32];
        snprintf(latency_text, sizeof latency_text, "%.3f", latency);
        if (o.format == "out_file" || o.format == "json") {
          int n = snprintf(buf, sizeof buf,
                           "{\"host\":\"%s\",\"user\":\"-\",\"method\":\"%s\",\"path\":\"%s\",\"code\":%d,"
                           "\"size\":%d,\"referer\":\"%s\",\"agent\":\"%s\",\"response-time\":%s,"
                           "\"geo\":{\"country\":\"%s\",\"asn\":%u}",
                           host, method, path, code, size, referer, agent, latency_text, country, asn);
          std::string rec(buf, static_cast<size_t>(n));
          if (o.format == "json") rec += ",\"time\":\"" + local + "\"";
          rec += "}";
          if (o.format == "out_file") text += local + "\tnginx.access\t" + rec + "\n";
          else text += rec + "\n";
        } else if (o.format == "msgpack") {
          msgpack::sbuffer sbuf;
          msgpack::packer<msgpack::sbuffer> pk(&sbuf);
          pk.pack_map(11);
          auto kv = [&](const char* k, const std::string& v) {
            pk.pack(std::string(k));
            pk.pack(v);
          };
          kv("time", local);
          kv("host", host);
          kv("user", "-");
          kv("method", method);
          kv("path", path);
          pk.pack(std::string("code"));
          pk.pack(code);
          pk.pack(std::string("size"));
          pk.pack(size);
          kv("referer", referer);
          kv("agent", agent);
          pk.pack(std::string("response-time"));
          pk.pack_double(latency);
          pk.pack(std::string("geo"));
          pk.pack_map(2);
          kv("country", country);
          pk.pack(std::string("asn"));
          pk.pack(asn);
          text.append(sbuf.data(), sbuf.size());
        } else {
          // Flat, string-valued records, as Fluentd's ltsv/csv/tsv formatters write them.
          const std::vector<std::pair<const char*, std::string>> fields = {
              {"time", local},   {"host", host},       {"user", "-"},     {"method", method},
              {"path", path},    {"code", std::to_string(code)},          {"size", std::to_string(size)},
              {"referer", referer}, {"agent", agent}, {"response_time", latency_text}, {"country", country}};
          if (o.format == "single_value") {
            text += std::string(host) + " - - [" + local + "] \"" + method + " " + path + " HTTP/1.1\" " +
                    std::to_string(code) + " " + std::to_string(size) + " \"" + referer + "\" \"" + agent + "\"\n";
          } else {
            for (size_t f = 0; f < fields.size(); ++f) {
              if (f) text += o.format == "csv" ? "," : "\t";
              if (o.format == "ltsv") text += std::string(fields[f].first) + ":" + fields[f].second;
              else if (o.format == "csv") text += "\"" + fields[f].second + "\"";
              else text += fields[f].second;
            }
            text += "\n";
          }
        }
        ++result.rows;
      }
      result.bytes_uncompressed += text.size();
      std::string key = kf.Format(o.prefix, hour, idx, o.gzip ? "gz" : "log");
      std::string data = o.gzip ? GzipCompress(text, 1) : text;
      LF_RETURN_IF_ERROR(store->WriteAll(key, data).status());
      ++result.objects;
    }
  }
  return result;
}

}  // namespace logferry
