// Normalization throughput: logferry vs DuckDB vs the Python Lambda it replaces.
//
// All three read the same generated records (gzip objects), parse every line
// as JSON and write gzip NDJSON. Throughput is reported in MB (10^6 bytes) of
// *uncompressed input* per second, per core: CPU-time based (input / CPU
// seconds, the honest per-core number even when a run is not perfectly
// parallel) and wall based (input / (wall seconds * threads)).
//
// Inputs: out_file lines ("time\ttag\t{json}") are not JSON, so DuckDB's
// read_json and the Python baseline cannot read them as such. run.sh therefore
// generates the same records twice with the same seed: --data in out_file
// format (what Fluentd writes; logferry's production input) and --json-data
// in json format (time inside the record). logferry runs on both, so there
// is an apples-to-apples row (same files as DuckDB and Python) as well as the
// production one.
//
// logferry runs its real staging path: StageObject() reading through
// OpenObjectStore("file://...")->OpenRead, ISA-L gzip decoding, RowNormalizer,
// ISA-L gzip level 1 encoding and atomic (fsync'd) FileStore writes into a
// scratch staging directory. Only the ledger commit is left out: it is a
// handful of SQLite rows per object and not what this measures.
#include <duckdb.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/pipeline.h"
#include "core/stage.h"
#include "format/compression.h"
#include "format/key_format.h"
#include "format/normalizer.h"
#include "registry/scheme_registry.h"
#include "schema/schema.h"
#include "store/object_store.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace logferry;

namespace {

struct Args {
  std::string data;       // out_file objects (logferry's production input)
  std::string json_data;  // the same records as json lines (for all engines)
  std::string scratch;    // where outputs go; default: a fresh dir under $TMPDIR
  std::string python = "python3";
  std::string python_script;
  int threads = 1;
  int duckdb_threads = 1;
  bool skip_python = false;
  bool skip_duckdb = false;
  bool keep_scratch = false;
  bool duckdb_variants = false;
  int repeat = 1;
  bool breakdown = false;
  std::string lineage;  // the tables' `lineage` list, comma-separated ("" = off)
};

[[noreturn]] void Usage(const char* msg) {
  if (msg) fprintf(stderr, "normalize_bench: %s\n", msg);
  fprintf(stderr,
          "usage: logferry_bench --data DIR [--json-data DIR] [--threads N] [--duckdb-threads N]\n"
          "                      [--skip-python] [--skip-duckdb] [--python-script PATH] [--python BIN]\n"
          "                      [--scratch DIR] [--keep-scratch] [--repeat N] [--duckdb-variants] [--breakdown]\n"
          "                      [--lineage source,line]\n"
          "  --data DIR        objects written by `logferry gen --out DIR` (out_file format)\n"
          "  --json-data DIR   the same records from `logferry gen --format json` (same seed and size);\n"
          "                    DuckDB and Python need it (they cannot read out_file lines as JSON)\n"
          "  --threads N       logferry staging workers (default 1: per-core numbers)\n"
          "  --duckdb-threads  SET threads=N for DuckDB (default 1)\n"
          "  --repeat N        run logferry N times and report the run with the least CPU time\n"
          "                    (DuckDB and Python run once: they take 10x longer and vary less)\n"
          "  --duckdb-variants also time DuckDB writing uncompressed output, and reading with\n"
          "                    declared columns (no inference), to show where its time goes\n"
          "  --breakdown       also time logferry's stages one by one (in memory, one thread)\n"
          "  --lineage LIST    stage with these lineage columns (source, line; default none)\n");
  exit(2);
}

int ParseInt(const char* flag, const char* v) {
  char* end = nullptr;
  long n = strtol(v, &end, 10);
  if (!end || *end || n < 1 || n > 1024) {
    fprintf(stderr, "normalize_bench: %s needs a positive integer\n", flag);
    exit(2);
  }
  return static_cast<int>(n);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) Usage((f + " needs a value").c_str());
      return argv[++i];
    };
    if (f == "--data")
      a.data = next();
    else if (f == "--json-data")
      a.json_data = next();
    else if (f == "--threads")
      a.threads = ParseInt("--threads", next());
    else if (f == "--duckdb-threads")
      a.duckdb_threads = ParseInt("--duckdb-threads", next());
    else if (f == "--skip-python")
      a.skip_python = true;
    else if (f == "--skip-duckdb")
      a.skip_duckdb = true;
    else if (f == "--python-script")
      a.python_script = next();
    else if (f == "--python")
      a.python = next();
    else if (f == "--scratch")
      a.scratch = next();
    else if (f == "--keep-scratch")
      a.keep_scratch = true;
    else if (f == "--duckdb-variants")
      a.duckdb_variants = true;
    else if (f == "--repeat")
      a.repeat = ParseInt("--repeat", next());
    else if (f == "--breakdown")
      a.breakdown = true;
    else if (f == "--lineage")
      a.lineage = next();
    else if (f == "-h" || f == "--help")
      Usage(nullptr);
    else
      Usage(("unknown argument " + f).c_str());
  }
  if (a.data.empty() && a.json_data.empty()) Usage("--data (or --json-data) is required");
  return a;
}

[[noreturn]] void Die(const std::string& what, const Status& s) {
  fprintf(stderr, "normalize_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  exit(1);
}

template <typename T>
T OrDie(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what, v.status());
  return std::move(v).value();
}

// Other processes competing for the cores inflate wall times (and, less,
// CPU times): the load average is printed so a reader can tell.
std::string LoadAvg() {
  std::string s;
  if (FILE* f = fopen("/proc/loadavg", "r")) {
    char buf[128];
    if (fgets(buf, sizeof buf, f)) s = buf;
    fclose(f);
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

double Seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
}

double SelfCpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return Seconds(ru.ru_utime) + Seconds(ru.ru_stime);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Result {
  std::string engine;
  std::string input;   // which data set
  uint64_t bytes = 0;  // uncompressed input
  int64_t rows = 0;
  uint64_t out_bytes = 0;
  double wall = 0, cpu = 0;
  int threads = 1;
  double MBps() const { return bytes / 1e6 / wall; }
  double PerCoreCpu() const { return bytes / 1e6 / cpu; }
  double PerCoreWall() const { return bytes / 1e6 / (wall * threads); }
};

// The objects of a generated data set, in key order.
struct DataSet {
  std::string dir;
  std::vector<ObjectInfo> objects;
  uint64_t uncompressed = 0;
  int64_t lines = 0;
};

// Lists the objects Fluentd's default key format matches, and decodes each
// once: that counts the uncompressed bytes (the unit every engine is measured
// in) and leaves the files in the page cache, so no engine pays for the disk
// while another does not.
DataSet LoadDataSet(const std::string& dir) {
  DataSet d;
  d.dir = fs::absolute(dir).lexically_normal().string();
  while (d.dir.size() > 1 && d.dir.back() == '/') d.dir.pop_back();
  auto store = OrDie(OpenObjectStore("file://" + d.dir + "/"), "opening " + d.dir);
  auto kf = OrDie(KeyFormat::Compile("%{path}%{time_slice}_%{index}.%{file_extension}", "%Y%m%d%H", TimeZone()),
                  "key format");
  for (ObjectInfo& o : OrDie(store->ListAll(""), "listing " + d.dir))
    if (kf.Match(o.key)) d.objects.push_back(std::move(o));
  if (d.objects.empty()) {
    fprintf(stderr, "normalize_bench: no objects under %s (generate them with `logferry gen --out %s`)\n",
            d.dir.c_str(), d.dir.c_str());
    exit(1);
  }
  std::vector<char> buf(4 << 20);
  for (const ObjectInfo& o : d.objects) {
    auto in = OrDie(OpenDecoder(OrDie(store->OpenRead(o.key), "reading " + o.key), Compression::kAuto), o.key);
    for (;;) {
      size_t n = OrDie(in->Read(buf.data(), buf.size()), "decoding " + o.key);
      if (n == 0) break;
      d.uncompressed += n;
      d.lines += std::count(buf.data(), buf.data() + n, '\n');
    }
  }
  return d;
}

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  return n;
}

Result RunLogferry(const DataSet& d, const std::string& format, int threads, const std::string& scratch,
                   const std::string& lineage) {
  std::string staging = scratch + "/logferry-" + format;
  fs::remove_all(staging);
  std::string toml = "state_dir = " + TomlString(scratch + "/state") +
                     "\n[[table]]\nname = \"bench\"\nsource = " + TomlString("file://" + d.dir + "/") +
                     "\nstaging = " + TomlString("file://" + staging + "/") +
                     "\nwarehouse = " + TomlString("duckdb://" + scratch + "/unused.duckdb") + "\nformat = \"" +
                     format + "\"\ntimezone = \"+09:00\"\nlineage = " + TomlString(lineage) + "\n";
  Config cfg = OrDie(ParseConfig(toml, "bench"), "config");
  const TableConfig& tc = cfg.tables.at(0);

  // The same wiring as Pipeline::Init(), minus the ledger.
  TableRuntime t;
  t.config = &tc;
  t.source = OrDie(OpenObjectStore(tc.source), "source");
  t.staging = OrDie(OpenObjectStore(tc.staging), "staging");
  t.key_format = std::make_unique<KeyFormat>(
      OrDie(KeyFormat::Compile(tc.key_format, tc.time_slice_format, tc.zone), "key format"));
  t.schema = std::make_unique<SchemaRegistry>(FixedColumns(tc.format.format));
  if (Status s = AddLineageColumns(t.schema.get(), tc.lineage); !s.ok()) Die("lineage", s);

  std::vector<ObjectRow> rows;
  for (size_t i = 0; i < d.objects.size(); ++i) {
    ObjectRow r;
    r.id = static_cast<int64_t>(i + 1);
    r.table = tc.name;
    r.key = d.objects[i].key;
    r.etag = d.objects[i].etag;
    r.size = d.objects[i].size;
    char v[32];
    snprintf(v, sizeof v, "v%08zx", i);
    r.version_id = v;
    rows.push_back(std::move(r));
  }

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> staged{0}, bad{0};
  double cpu0 = SelfCpu(), t0 = Now();
  auto worker = [&] {
    RowNormalizer norm(t.schema.get(), tc.format, tc.lineage);
    for (size_t i; (i = next.fetch_add(1)) < rows.size();) {
      StageOutcome o = OrDie(StageObject(t, rows[i], norm), "staging " + rows[i].key);
      std::vector<std::string> keys;  // durable as OpenWrite's were (the pipeline syncs per commit group)
      for (const PartRow& p : o.staged.parts) keys.push_back(p.key);
      if (Status synced = t.staging->SyncWritten(keys); !synced.ok()) Die("syncing " + rows[i].key, synced);
      bytes += o.bytes_uncompressed;
      staged += o.staged.rows_staged;
      bad += o.staged.bad_total;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  Result r;
  r.wall = Now() - t0;
  r.cpu = SelfCpu() - cpu0;
  r.engine = "logferry";
  r.input = format;
  r.bytes = bytes.load();
  r.rows = staged.load();
  r.threads = threads;
  r.out_bytes = DirBytes(staging);
  if (bad.load() > 0)
    fprintf(stderr, "warning: logferry dead-lettered %lld line(s)\n", static_cast<long long>(bad.load()));
  fs::remove_all(staging);
  return r;
}

std::string SqlString(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

void DuckQuery(duckdb_connection con, const std::string& sql, duckdb_result* res) {
  if (duckdb_query(con, sql.c_str(), res) == DuckDBError) {
    fprintf(stderr, "normalize_bench: DuckDB: %s\n  in: %.300s\n", duckdb_result_error(res), sql.c_str());
    exit(1);
  }
}

enum class DuckVariant {
  kAsIssued,  // the query: inferred schema, gzip output
  kPlainOut,  // the same, uncompressed output
  kTyped,     // declared columns (no inference, time kept as text), gzip output
};

// The columns `logferry gen --format json` writes.
constexpr const char* kGenColumns =
    "{host: 'VARCHAR', \"user\": 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR', code: 'BIGINT', size: 'BIGINT', "
    "referer: 'VARCHAR', agent: 'VARCHAR', \"response-time\": 'DOUBLE', geo: 'STRUCT(country VARCHAR, asn BIGINT)', "
    "time: 'VARCHAR'}";

Result RunDuckDb(const DataSet& d, int threads, const std::string& scratch, DuckVariant variant) {
  bool gzip = variant != DuckVariant::kPlainOut;
  std::string out = scratch + (gzip ? "/duckdb-out.json.gz" : "/duckdb-out.json");
  fs::remove(out);
  duckdb_database db;
  duckdb_connection con;
  if (duckdb_open(nullptr, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
    fprintf(stderr, "normalize_bench: cannot open an in-memory DuckDB\n");
    exit(1);
  }
  duckdb_result res;
  DuckQuery(con, "SET threads=" + std::to_string(threads), &res);
  duckdb_destroy_result(&res);
  std::string files;
  for (const ObjectInfo& o : d.objects) {
    if (!files.empty()) files += ',';
    files += SqlString(d.dir + "/" + o.key);
  }
  // As issued, schema inference is on (as a user would write it); its
  // sampling is part of the measured time, as the Lambda's parsing is of its.
  std::string sql = "COPY (SELECT * FROM read_json([" + files + "], format='newline_delimited', compression='gzip'" +
                    (variant == DuckVariant::kTyped ? std::string(", columns=") + kGenColumns : std::string()) +
                    ")) TO " + SqlString(out) + (gzip ? " (FORMAT json, COMPRESSION gzip)" : " (FORMAT json)");
  double cpu0 = SelfCpu(), t0 = Now();
  DuckQuery(con, sql, &res);
  Result r;
  r.wall = Now() - t0;
  r.cpu = SelfCpu() - cpu0;
  r.rows = static_cast<int64_t>(duckdb_rows_changed(&res));
  duckdb_destroy_result(&res);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  r.engine = std::string("DuckDB ") + duckdb_library_version();
  if (variant == DuckVariant::kPlainOut) r.engine += " no-gzip";
  if (variant == DuckVariant::kTyped) r.engine += " typed";
  r.input = "json";
  r.bytes = d.uncompressed;
  r.threads = threads;
  std::error_code ec;
  r.out_bytes = fs::file_size(out, ec);
  fs::remove(out);
  return r;
}

Result RunPython(const DataSet& d, const Args& a, const std::string& scratch) {
  std::string out_dir = scratch + "/python-out";
  std::string report = scratch + "/python-report.txt";
  fs::remove_all(out_dir);
  std::vector<std::string> argv_s = {a.python, a.python_script, "--format", "json", "--out-dir",
                                     out_dir,  "--report",      report,     d.dir};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  double t0 = Now();
  pid_t pid;
  if (int e = posix_spawnp(&pid, a.python.c_str(), nullptr, nullptr, argv.data(), environ)) {
    fprintf(stderr, "normalize_bench: cannot start %s: %s\n", a.python.c_str(), strerror(e));
    exit(1);
  }
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "normalize_bench: the Python baseline failed (status %d)\n", status);
    exit(1);
  }
  Result r;
  r.wall = Now() - t0;
  r.cpu = Seconds(ru.ru_utime) + Seconds(ru.ru_stime);
  r.engine = "Python lambda_baseline.py";
  r.input = "json";
  r.bytes = d.uncompressed;
  r.threads = 1;
  if (FILE* f = fopen(report.c_str(), "r")) {
    long long rows = 0;
    unsigned long long bytes = 0;
    if (fscanf(f, "rows %lld bytes %llu", &rows, &bytes) == 2) {
      r.rows = rows;
      if (bytes != d.uncompressed)
        fprintf(stderr, "warning: Python read %llu bytes, expected %llu\n", bytes,
                static_cast<unsigned long long>(d.uncompressed));
    }
    fclose(f);
  }
  r.out_bytes = DirBytes(out_dir);
  fs::remove_all(out_dir);
  fs::remove(report);
  return r;
}

double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

// Where staging's time goes: each stage of StageObject run on its own over
// the same objects, in memory (no files written), timed in thread CPU time.
// Inflate and deflate are ISA-L's and near their floor; the simdjson walk
// (On-Demand, touching every value's raw text) is the yardstick for the
// normalizer's own work. Whole objects are held in memory, which is less
// cache-friendly than StageObject's 4 MiB window, so the stage sum runs a
// little above StageObject's CPU time on big objects.
void Breakdown(const DataSet& d, const std::string& format, const std::string& lineage) {
  auto store = OrDie(OpenObjectStore("file://" + d.dir + "/"), d.dir);
  std::string toml =
      "state_dir = \"/nonexistent\"\n[[table]]\nname = \"bench\"\nsource = \"file:///x/\"\n"
      "staging = \"file:///y/\"\nwarehouse = \"duckdb:///z.duckdb\"\nformat = \"" +
      format + "\"\ntimezone = \"+09:00\"\nlineage = " + TomlString(lineage) + "\n";
  Config cfg = OrDie(ParseConfig(toml, "bench"), "config");
  const TableConfig& tc = cfg.tables.at(0);
  SchemaRegistry schema(FixedColumns(tc.format.format));
  if (Status s = AddLineageColumns(&schema, tc.lineage); !s.ok()) Die("lineage", s);
  RowNormalizer norm(&schema, tc.format, tc.lineage);
  simdjson::ondemand::parser walker;
  LineError err;
  double t_inflate = 0, t_split = 0, t_walk = 0, t_norm = 0, t_deflate = 0, t_deflate_in = 0;
  uint64_t in_bytes = 0, out_bytes = 0, gz_bytes = 0, gz_in_bytes = 0;
  int64_t lines = 0, bad = 0, walk_values = 0;
  std::string text, rows, gz, first_row;
  std::vector<char> buf(4 << 20);
  for (const ObjectInfo& o : d.objects) {
    text.clear();
    double t0 = ThreadCpu();
    auto in = OrDie(OpenDecoder(OrDie(store->OpenRead(o.key), o.key), Compression::kAuto), o.key);
    for (;;) {
      size_t n = OrDie(in->Read(buf.data(), buf.size()), o.key);
      if (n == 0) break;
      text.append(buf.data(), n);
    }
    double t1 = ThreadCpu();
    t_inflate += t1 - t0;
    in_bytes += text.size();
    size_t len = text.size();
    text.append(kJsonPadding, ' ');
    const char* base = text.data();

    // Line splitting alone.
    t0 = ThreadCpu();
    int64_t n_lines = 0;
    for (size_t pos = 0; pos < len;) {
      const char* nl = static_cast<const char*>(memchr(base + pos, '\n', len - pos));
      size_t end = nl ? static_cast<size_t>(nl - base) : len;
      ++n_lines;
      pos = end + 1;
    }
    t_split += ThreadCpu() - t0;
    lines += n_lines;

    // simdjson On-Demand touching every value's raw text: the parse floor.
    t0 = ThreadCpu();
    for (size_t pos = 0; pos < len;) {
      const char* nl = static_cast<const char*>(memchr(base + pos, '\n', len - pos));
      size_t end = nl ? static_cast<size_t>(nl - base) : len;
      size_t json_at = pos;
      if (format == "out_file") {
        const char* tab = static_cast<const char*>(memchr(base + pos, '\t', end - pos));
        if (tab) tab = static_cast<const char*>(memchr(tab + 1, '\t', end - (tab + 1 - base)));
        json_at = tab ? static_cast<size_t>(tab + 1 - base) : pos;
      }
      simdjson::ondemand::document doc;
      if (!walker.iterate(base + json_at, end - json_at, text.size() - json_at).get(doc)) {
        std::function<void(simdjson::ondemand::value)> walk = [&](simdjson::ondemand::value v) {
          simdjson::ondemand::json_type t;
          if (v.type().get(t)) return;
          if (t == simdjson::ondemand::json_type::object) {
            simdjson::ondemand::object obj;
            if (v.get_object().get(obj)) return;
            for (auto f : obj) {
              simdjson::ondemand::field fld;
              if (std::move(f).get(fld)) return;
              walk(fld.value());
            }
          } else if (t == simdjson::ondemand::json_type::array) {
            simdjson::ondemand::array arr;
            if (v.get_array().get(arr)) return;
            for (auto e : arr) {
              simdjson::ondemand::value ev;
              if (e.get(ev)) return;
              walk(ev);
            }
          } else {
            walk_values += static_cast<int64_t>(v.raw_json_token().size() > 0);
          }
        };
        simdjson::ondemand::value root;
        if (!doc.get_value().get(root)) walk(root);
      }
      pos = end + 1;
    }
    t_walk += ThreadCpu() - t0;

    // RowNormalizer, as StageObject calls it (rows appended, not encoded).
    rows.clear();
    t0 = ThreadCpu();
    norm.BeginObject(o.key);
    int64_t line_no = 0;
    for (size_t pos = 0; pos < len;) {
      const char* nl = static_cast<const char*>(memchr(base + pos, '\n', len - pos));
      size_t end = nl ? static_cast<size_t>(nl - base) : len;
      std::string_view line(base + pos, end - pos);
      if (norm.Normalize(line, text.size() - pos, std::nullopt, &err, ++line_no))
        rows.append(norm.row());
      else
        ++bad;
      pos = end + 1;
    }
    t_norm += ThreadCpu() - t0;
    out_bytes += rows.size();
    if (first_row.empty() && !rows.empty()) first_row = rows.substr(0, rows.find('\n'));

    // ISA-L level 1 in PartWriter's 256 KiB steps, over the normalized rows.
    gz.clear();
    t0 = ThreadCpu();
    {
      GzipEncoder enc(1);
      for (size_t pos = 0; pos < rows.size(); pos += 256 << 10)
        enc.Write(std::string_view(rows).substr(pos, 256 << 10), &gz);
      enc.Finish(&gz);
    }
    t_deflate += ThreadCpu() - t0;
    gz_bytes += gz.size();

    // The same over the input, for scale: how much of deflate's cost is
    // the normalized rows being longer than the input lines.
    gz.clear();
    t0 = ThreadCpu();
    {
      GzipEncoder enc(1);
      for (size_t pos = 0; pos < len; pos += 256 << 10)
        enc.Write(std::string_view(base, len).substr(pos, 256 << 10), &gz);
      enc.Finish(&gz);
    }
    t_deflate_in += ThreadCpu() - t0;
    gz_in_bytes += gz.size();
  }
  double mb = in_bytes / 1e6;
  double total = t_inflate + t_norm + t_deflate;
  printf("\nbreakdown: logferry stages on %s data, %.1f MB in, %lld lines (%lld bad), one thread, CPU seconds\n",
         format.c_str(), mb, static_cast<long long>(lines), static_cast<long long>(bad));
  printf("  normalized rows are %.1f MB (%.2fx the input); first row:\n    %.300s\n", out_bytes / 1e6,
         static_cast<double>(out_bytes) / in_bytes, first_row.c_str());
  auto row = [&](const char* name, double t, bool in_total) {
    printf("  %-44s %7.3f s %8.1f MB/s of input %s\n", name, t, mb / t,
           in_total ? (std::to_string(static_cast<int>(100 * t / total + 0.5)) + "%").c_str() : "");
  };
  row("inflate (ISA-L, OpenDecoder)", t_inflate, true);
  row("normalize (RowNormalizer::Normalize)", t_norm, true);
  row("  of which: line split (memchr)", t_split, false);
  row("  for scale: simdjson On-Demand walk", t_walk, false);
  row("deflate level 1 of the normalized rows", t_deflate, true);
  printf("  %-44s %7.3f s %8.1f MB/s   (%.1f MB out, %.1f MB when deflating the input instead: %.3f s)\n",
         "sum (StageObject minus files and buffers)", total, mb / total, gz_bytes / 1e6, gz_in_bytes / 1e6,
         t_deflate_in);
}

template <typename F>
Result BestOf(int n, F run) {
  Result best = run();
  for (int i = 1; i < n; ++i) {
    Result r = run();
    if (r.cpu < best.cpu) best = r;
  }
  return best;
}

void PrintRow(const Result& r) {
  printf("%-29s %-8s %3d %9.1f %10lld %8.2f %8.2f %9.1f %10.1f %10.1f %8.1f\n", r.engine.c_str(), r.input.c_str(),
         r.threads, r.bytes / 1e6, static_cast<long long>(r.rows), r.wall, r.cpu, r.MBps(), r.PerCoreCpu(),
         r.PerCoreWall(), r.out_bytes / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Args a = ParseArgs(argc, argv);
  if (a.python_script.empty()) {
    // Default: lambda_baseline.py next to this source file's bench/ dir.
    fs::path guess = fs::path(__FILE__).parent_path() / "lambda_baseline.py";
    a.python_script = guess.string();
  }
  bool own_scratch = a.scratch.empty();
  if (own_scratch) {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/logferry-bench-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      perror("mkdtemp");
      return 1;
    }
    a.scratch = tmpl;
  } else {
    fs::create_directories(a.scratch);
  }
  a.scratch = fs::absolute(a.scratch).string();

  std::optional<DataSet> of, js;
  if (!a.data.empty()) {
    of = LoadDataSet(a.data);
    printf("out_file data: %s: %zu objects, %lld lines, %.1f MB uncompressed\n", of->dir.c_str(), of->objects.size(),
           static_cast<long long>(of->lines), of->uncompressed / 1e6);
  }
  if (!a.json_data.empty()) {
    js = LoadDataSet(a.json_data);
    printf("json data:     %s: %zu objects, %lld lines, %.1f MB uncompressed\n", js->dir.c_str(), js->objects.size(),
           static_cast<long long>(js->lines), js->uncompressed / 1e6);
  }
  if (!js && (!a.skip_duckdb || !a.skip_python))
    printf("note: no --json-data; DuckDB and Python are skipped (they cannot read out_file lines as JSON)\n");
  printf("scratch: %s\nload average before: %s (%u cores)\n\n", a.scratch.c_str(), LoadAvg().c_str(),
         std::thread::hardware_concurrency());

  std::vector<Result> results;
  std::optional<Result> lf_of, lf_js, duck, duck_plain, duck_typed, py;
  if (of) {
    printf("running logferry on out_file data (%d thread(s))...\n", a.threads);
    lf_of = BestOf(a.repeat, [&] { return RunLogferry(*of, "out_file", a.threads, a.scratch, a.lineage); });
    results.push_back(*lf_of);
  }
  if (js) {
    printf("running logferry on json data (%d thread(s))...\n", a.threads);
    lf_js = BestOf(a.repeat, [&] { return RunLogferry(*js, "json", a.threads, a.scratch, a.lineage); });
    results.push_back(*lf_js);
    if (!a.skip_duckdb) {
      printf("running DuckDB read_json -> COPY (FORMAT json, COMPRESSION gzip) (threads=%d)...\n", a.duckdb_threads);
      duck = RunDuckDb(*js, a.duckdb_threads, a.scratch, DuckVariant::kAsIssued);
      results.push_back(*duck);
      if (a.duckdb_variants) {
        printf("running DuckDB variants: uncompressed output; declared columns...\n");
        duck_plain = RunDuckDb(*js, a.duckdb_threads, a.scratch, DuckVariant::kPlainOut);
        results.push_back(*duck_plain);
        duck_typed = RunDuckDb(*js, a.duckdb_threads, a.scratch, DuckVariant::kTyped);
        results.push_back(*duck_typed);
      }
    }
    if (!a.skip_python) {
      printf("running %s %s (one process)...\n", a.python.c_str(), a.python_script.c_str());
      py = RunPython(*js, a, a.scratch);
      results.push_back(*py);
    }
  }

  printf("\nload average after: %s\n", LoadAvg().c_str());
  printf(
      "\nMB = 10^6 bytes of uncompressed input. per core (cpu) = MB / CPU seconds (user+sys);\n"
      "per core (wall) = MB / (wall seconds * threads).\n\n");
  printf("%-29s %-8s %3s %9s %10s %8s %8s %9s %10s %10s %8s\n", "engine", "input", "thr", "MB in", "rows", "wall s",
         "cpu s", "MB/s", "MB/s/core", "MB/s/core", "MB out");
  printf("%-29s %-8s %3s %9s %10s %8s %8s %9s %10s %10s %8s\n", "", "", "", "", "", "", "", "", "(cpu)", "(wall)", "");
  for (const Result& r : results) PrintRow(r);

  auto ratio = [](const char* name, const std::optional<Result>& x, const std::optional<Result>& y) {
    if (!x || !y) return;
    printf("  %-34s %6.1fx per core (cpu)   %6.1fx per core (wall)\n", name, x->PerCoreCpu() / y->PerCoreCpu(),
           x->PerCoreWall() / y->PerCoreWall());
  };
  printf("\nratios:\n");
  ratio("logferry(out_file) / DuckDB:", lf_of, duck);
  ratio("logferry(json) / DuckDB:", lf_js, duck);
  ratio("logferry(json) / DuckDB no-gzip:", lf_js, duck_plain);
  ratio("logferry(json) / DuckDB typed:", lf_js, duck_typed);
  ratio("logferry(out_file) / Python:", lf_of, py);
  ratio("logferry(json) / Python:", lf_js, py);

  // The targets, stated against the production input (out_file) when
  // there is one. Informational: a benchmark is not a test.
  const std::optional<Result>& lf = lf_of ? lf_of : lf_js;
  if (lf) {
    printf("\ntargets (logferry %s, per core by CPU time):\n", lf->input.c_str());
    printf("  >= 300 MB/s per core: %.1f MB/s -> %s\n", lf->PerCoreCpu(), lf->PerCoreCpu() >= 300 ? "met" : "MISSED");
    if (duck) {
      double x = lf->PerCoreCpu() / duck->PerCoreCpu();
      printf("  >= 4x DuckDB per core: %.1fx -> %s\n", x, x >= 4 ? "met" : "MISSED");
    }
  }
  if (a.breakdown) {
    if (of) Breakdown(*of, "out_file", a.lineage);
    if (js) Breakdown(*js, "json", a.lineage);
  }
  for (const Result& r : results) {
    int64_t expect = r.input == "json" && js ? js->lines : (of ? of->lines : 0);
    if (r.rows != expect)
      printf("warning: %s on %s wrote %lld rows, input has %lld lines\n", r.engine.c_str(), r.input.c_str(),
             static_cast<long long>(r.rows), static_cast<long long>(expect));
  }
  if (own_scratch && !a.keep_scratch) fs::remove_all(a.scratch);
  return 0;
}
