#include "reprocess.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "core/config.h"
#include "core/preview.h"
#include "core/restage.h"
#include "fail.h"
#include "ledger/ledger.h"

namespace logferry::cli {

namespace {

// Every option of these subcommands; each binds the ones it takes.
struct Args {
  std::string config_path = "logferry.toml";
  std::string table, from, to, key, file, reason;
  bool failed = false, as_json = false;
  size_t rows = 10;
};

const TableConfig& TableOrFail(const Config& config, const std::string& name) {
  if (name.empty()) {
    if (config.tables.size() == 1) return config.tables.front();
    Fail("several tables are configured: say which with --table", 2);
  }
  const TableConfig* t = config.FindTable(name);
  if (!t) Fail("no table '" + name + "' in " + config.path, 2);
  return *t;
}

int64_t ParseTime(const std::string& s, const char* flag) {
  auto t = ParseIso8601(s, 0);
  if (!t)
    Fail(std::string(flag) + " must be a time like 2016-08-01T00 (UTC) or 2016-08-01T09+09:00 (got '" + s + "')", 2);
  return *t;
}

std::string WorkingDirectory() {
  char cwd[4096];
  return getcwd(cwd, sizeof cwd) ? std::string(cwd) : std::string(".");
}

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// What restage, skip and unskip change: the ledger, which must exist (they
// act on objects a run has discovered).
struct Opened {
  Config config;
  const TableConfig* table = nullptr;
  std::unique_ptr<Ledger> ledger;
};

Opened OpenLedger(const Args& a) {
  Opened o;
  o.config = OrFail(LoadConfig(a.config_path), 2);
  o.table = &TableOrFail(o.config, a.table);
  if (Ledger::IsShared(o.config.LedgerPath())) {
    o.ledger = OrFail(Ledger::OpenExisting(o.config.LedgerPath()));
    return o;
  }
  if (!Exists(o.config.LedgerPath()))
    Fail("no ledger at " + o.config.LedgerPath() + ": nothing has been discovered yet (check state_dir)");
  o.ledger = OrFail(Ledger::Open(o.config.LedgerPath()));
  return o;
}

// --- restage ---

RestageSelection SelectionOrFail(const Args& a, int64_t unit_us) {
  int forms = (a.from.empty() ? 0 : 1) + (a.key.empty() ? 0 : 1) + (a.failed ? 1 : 0);
  if (forms != 1 || (a.from.empty() && !a.to.empty()))
    Fail("restage takes one of: --from TS [--to TS], --key KEY, --failed", 2);
  RestageSelection sel;
  sel.key = a.key;
  sel.failed = a.failed;
  if (!a.from.empty()) {
    int64_t from = ParseTime(a.from, "--from");
    int64_t to = a.to.empty() ? from + unit_us : ParseTime(a.to, "--to");
    if (to <= from) Fail("--to must be after --from", 2);
    sel.slices = {from, to};
  }
  return sel;
}

void PrintRestage(const TableRuntime& t, const RestageReport& r) {
  const std::string& name = t.config->name;
  if (r.selected() == 0) {
    printf("restage: no objects of %s selected\n", name.c_str());
  } else {
    printf(
        "restage: %lld object(s) of %s sent back to staging (%lld staged, %lld failed, %lld already pending); the "
        "next pass (the daemon's, or `logferry run --once`) stages them with the current config and reloads "
        "their partitions\n",
        static_cast<long long>(r.selected()), name.c_str(), static_cast<long long>(r.sent.staged),
        static_cast<long long>(r.sent.failed), static_cast<long long>(r.sent.pending));
  }
  for (const std::string& k : r.gone)
    printf("  kept %s: no longer in the source; its rows stay\n", EscapeForDisplay(t.source->UriOf(k)).c_str());
  for (const std::string& k : r.changed)
    printf("  kept %s: replaced in the source; the next pass stages the new version\n",
           EscapeForDisplay(t.source->UriOf(k)).c_str());
  if (r.without_slice > 0)
    printf("  %lld object(s) have no time slice in their key: select them with --key\n",
           static_cast<long long>(r.without_slice));
}

int CmdRestage(const Args& a) {
  Opened o = OpenLedger(a);
  RestageSelection sel = SelectionOrFail(a, o.table->partition_unit_us);
  TableRuntime t = OrFail(OpenTableForReading(*o.table, o.table->source, nullptr));
  std::string reason = "restage requested at " + FormatIso8601(Env::Default()->NowMicros());
  RestageReport r = OrFail(Restage(t, *o.ledger, sel, reason));
  PrintRestage(t, r);
  return 0;
}

// --- skip, unskip ---

int CmdSkip(const Args& a) {
  Opened o = OpenLedger(a);
  if (a.reason.empty()) Fail("--reason must say why the object is skipped", 2);
  ObjectRow row = OrFail(o.ledger->Skip(o.table->name, a.key, a.reason, Env::Default()->NowMicros()));
  printf("skipped %s of table %s (etag %s)%s: %s\n", EscapeForDisplay(a.key).c_str(), o.table->name.c_str(),
         EscapeForDisplay(row.etag).c_str(), row.skip_reason == a.reason ? "" : ", already",
         EscapeForDisplay(row.skip_reason).c_str());
  return 0;
}

int CmdUnskip(const Args& a) {
  Opened o = OpenLedger(a);
  ObjectRow row = OrFail(o.ledger->Unskip(o.table->name, a.key));
  printf("unskipped %s of table %s (etag %s): the next pass stages it\n", EscapeForDisplay(a.key).c_str(),
         o.table->name.c_str(), EscapeForDisplay(row.etag).c_str());
  return 0;
}

// --- preview ---

// The table's schema as the ledger has it, read-only; none (with a note
// why) when there is no ledger or it cannot be read.
std::unique_ptr<Ledger> ReadOnlyLedger(const Config& config, std::string* note) {
  auto ledger = Ledger::OpenReadOnly(config.LedgerPath());
  if (ledger.ok()) return std::move(ledger).value();
  *note = ledger.status().IsNotFound() ? "no ledger yet: every column is new"
                                       : "the ledger cannot be read (" + ledger.status().message() +
                                             "): columns are compared with the fixed ones only";
  return nullptr;
}

std::string ColumnPath(const ColumnRecord& c) {
  return c.parent_path.empty() ? c.name : c.parent_path + "." + c.name;
}

nlohmann::ordered_json PreviewJson(const PreviewResult& r, const TableConfig& cfg, const std::string& note) {
  nlohmann::ordered_json j = {{"object", r.uri},
                              {"table", cfg.name},
                              {"lines", r.lines_read},
                              {"rows", r.rows_total},
                              {"bad_records", r.bad_total},
                              {"values_repaired", r.warnings},
                              {"bytes_uncompressed", r.bytes_uncompressed}};
  j["first_rows"] = nlohmann::ordered_json::array();
  for (const std::string& row : r.rows) {
    // A row the encoder made is JSON; should one not parse (bytes that are
    // not UTF-8), it is shown as its text rather than as no value.
    auto parsed = nlohmann::ordered_json::parse(row, nullptr, false);
    j["first_rows"].push_back(parsed.is_discarded() ? nlohmann::ordered_json(row) : parsed);
  }
  j["bad_lines"] = nlohmann::ordered_json::array();
  for (const BadRecord& b : r.bad)
    j["bad_lines"].push_back({{"line", b.line},
                              {"byte_offset", b.byte_offset},
                              {"field", b.field},
                              {"reason", b.reason},
                              {"excerpt", b.excerpt}});
  j["new_columns"] = nlohmann::ordered_json::array();
  for (const ColumnRecord& c : r.new_columns)
    j["new_columns"].push_back({{"column", ColumnPath(c)}, {"type", ColumnTypeName(c.type)}, {"repeated", c.repeated}});
  j["partitions"] = nlohmann::ordered_json::array();
  for (const auto& [start, rows] : r.partitions)
    j["partitions"].push_back({{"partition", FormatIso8601(start)}, {"rows", rows}});
  if (!note.empty()) j["note"] = note;
  return j;
}

// For people: each row exactly as the part would hold it (escaped for the
// terminal, like everything that came from a bucket).
void PrintPreview(const PreviewResult& r, const TableConfig& cfg, const std::string& note) {
  printf("preview of %s (table %s): %lld line(s), %lld row(s), %lld bad record(s), %lld value(s) repaired\n",
         EscapeForDisplay(r.uri).c_str(), cfg.name.c_str(), static_cast<long long>(r.lines_read),
         static_cast<long long>(r.rows_total), static_cast<long long>(r.bad_total), static_cast<long long>(r.warnings));
  printf("\nrows as they would load (NDJSON, first %zu of %lld):\n", r.rows.size(),
         static_cast<long long>(r.rows_total));
  for (const std::string& row : r.rows) printf("  %s\n", EscapeForDisplay(row).c_str());
  printf("\nbad lines (first %zu of %lld):\n", r.bad.size(), static_cast<long long>(r.bad_total));
  for (const BadRecord& b : r.bad)
    printf("  line %lld (byte %lld)%s: %s\n      %s\n", static_cast<long long>(b.line),
           static_cast<long long>(b.byte_offset),
           b.field.empty() ? "" : (" field '" + EscapeForDisplay(b.field) + "'").c_str(),
           EscapeForDisplay(b.reason).c_str(), EscapeForDisplay(b.excerpt).c_str());
  printf("\ncolumns it would add (%zu)%s:\n", r.new_columns.size(), note.empty() ? "" : (" — " + note).c_str());
  for (const ColumnRecord& c : r.new_columns)
    printf("  %s %s%s\n", EscapeForDisplay(ColumnPath(c)).c_str(), ColumnTypeName(c.type),
           c.repeated ? " (repeated)" : "");
  printf("\npartitions it spans (%zu, by %s):\n", r.partitions.size(), cfg.partition.c_str());
  for (const auto& [start, rows] : r.partitions)
    printf("  %s  %lld row(s)\n", FormatIso8601(start).c_str(), static_cast<long long>(rows));
}

int CmdPreview(const Args& a) {
  Config config = OrFail(LoadConfig(a.config_path), 2);
  const TableConfig& cfg = TableOrFail(config, a.table);
  if (a.key.empty() == a.file.empty()) Fail("preview takes a KEY of the table's source or --file PATH", 2);
  std::string source = cfg.source, key = a.key;
  if (!a.file.empty()) {
    std::string path = a.file[0] == '/' ? a.file : WorkingDirectory() + "/" + a.file;
    size_t slash = path.rfind('/');
    source = "file://" + path.substr(0, slash + 1);
    key = path.substr(slash + 1);
  }
  std::string note;
  std::unique_ptr<Ledger> ledger = ReadOnlyLedger(config, &note);
  TableRuntime t = OrFail(OpenTableForReading(cfg, source, ledger.get()));
  PreviewResult r = OrFail(PreviewObject(t, key, a.rows));
  if (a.as_json)
    std::cout << PreviewJson(r, cfg, note).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
              << "\n";
  else
    PrintPreview(r, cfg, note);
  return 0;
}

void AddConfig(CLI::App* c, Args* a) {
  c->add_option("-c,--config", a->config_path, "Config file (TOML)")->capture_default_str();
  c->add_option("--table", a->table, "Table (optional with one table)");
}

}  // namespace

std::vector<Command> AddReprocessCommands(CLI::App& app) {
  static Args a;
  std::vector<Command> out;
  CLI::App* c = app.add_subcommand("restage", "Stage source objects again with the current config");
  AddConfig(c, &a);
  c->add_option("--from", a.from, "Objects whose key's time slice starts at or after this time (UTC or offset)");
  c->add_option("--to", a.to, "... and before this one (default: one partition after --from)");
  c->add_option("--key", a.key, "One object, by its key under the table's source");
  c->add_flag("--failed", a.failed, "Every failed object, due now");
  out.push_back({c, [] { return CmdRestage(a); }});
  c = app.add_subcommand("skip", "Acknowledge a permanently broken object: it stops failing runs, status and verify");
  AddConfig(c, &a);
  c->add_option("--key", a.key, "The object's key under the table's source")->required();
  c->add_option("--reason", a.reason, "Why (shown by status and verify)")->required();
  out.push_back({c, [] { return CmdSkip(a); }});
  c = app.add_subcommand("unskip", "Undo skip: the object is staged again on the next pass");
  AddConfig(c, &a);
  c->add_option("--key", a.key, "The object's key under the table's source")->required();
  out.push_back({c, [] { return CmdUnskip(a); }});
  c = app.add_subcommand("preview",
                         "Parse one object with the current config and show what would load; writes nothing");
  AddConfig(c, &a);
  c->add_option("key", a.key, "A key under the table's source");
  c->add_option("--file", a.file, "A local file instead");
  c->add_option("--rows", a.rows, "Rows (and bad lines) to show")->capture_default_str();
  c->add_flag("--json", a.as_json, "Machine-readable output");
  out.push_back({c, [] { return CmdPreview(a); }});
  return out;
}

}  // namespace logferry::cli
