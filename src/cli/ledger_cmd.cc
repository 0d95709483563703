#include "ledger_cmd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "common/env.h"
#include "common/strings.h"
#include "core/config.h"
#include "core/liveness.h"
#include "fail.h"
#include "ledger/ledger.h"

namespace logferry::cli {

namespace {

struct Args {
  std::string config_path = "logferry.toml";
  std::string to;
  bool force = false;
};

// A `logferry run` still working on the SQLite ledger would go on writing
// there, and what it wrote after the copy would be lost.
void RefuseWhileRunning(const Config& config, const std::string& path) {
  auto ledger = OrFail(Ledger::OpenReadOnly(path));
  auto processes = OrFail(ledger->Processes());
  int64_t now = Env::Default()->NowMicros();
  for (const ProcessRow& p : processes)
    if (LivenessOf(p, now) == Liveness::kRunning)
      Fail("'logferry run' (pid " + std::to_string(p.pid) + " on " + p.host + ") is using the ledger " + path +
           ": stop it before migrating (or --force)");
}

int Migrate(const Args& a) {
  Config config = OrFail(LoadConfig(a.config_path), 2);
  if (!Ledger::IsShared(a.to)) Fail("--to must be a postgresql:// URI (postgresql://USER@HOST:PORT/DATABASE)", 2);
  std::string path = config.SqliteLedgerPath();
  if (access(path.c_str(), F_OK) != 0) Fail("no SQLite ledger at " + path + " (check state_dir)");
  if (!a.force) RefuseWhileRunning(config, path);
  std::vector<TableCopy> copied = OrFail(Ledger::CopySqliteToPostgres(path, a.to));
  std::string to = Ledger::Describe(a.to);
  printf("copied the ledger %s to %s (rows per table, checked):\n", path.c_str(), to.c_str());
  for (const TableCopy& t : copied) printf("  %-16s %lld\n", t.table.c_str(), static_cast<long long>(t.rows));
  printf("now set, at the top of %s:\n  ledger = \"%s\"\nand start logferry again. %s is unchanged.\n",
         config.path.c_str(), to.c_str(), path.c_str());
  return 0;
}

}  // namespace

std::vector<Command> AddLedgerCommands(CLI::App& app) {
  static Args args;
  CLI::App* ledger = app.add_subcommand("ledger", "Commands on the ledger itself (migrate)");
  ledger->require_subcommand(1);
  // Before or after `migrate`: logferry ledger -c CONFIG migrate ... works too.
  ledger->add_option("-c,--config", args.config_path, "Config file (TOML)");
  CLI::App* m = ledger->add_subcommand(
      "migrate", "Copy the SQLite ledger of state_dir into a new PostgreSQL ledger (it stays unchanged)");
  m->add_option("-c,--config", args.config_path, "Config file (TOML)")->capture_default_str();
  m->add_option("--to", args.to, "The PostgreSQL ledger: postgresql://USER@HOST:PORT/DATABASE")->required();
  m->add_flag("--force", args.force, "Migrate even though a 'logferry run' seems to be using the SQLite ledger");
  return {{m, [] { return Migrate(args); }}};
}

}  // namespace logferry::cli
