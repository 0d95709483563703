// A throwaway PostgreSQL 15 server (Debian's postgresql package) for one test
// process, started on first use and stopped at exit. Tests run as root and
// initdb refuses root, so the server runs as the postgres user (runuser),
// listening on 127.0.0.1 only, on a free port, its data in a temp directory.
// A server that cannot start is a failure, never a skip: CI installs it
// (scripts/setup.sh).
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "moto_server.h"  // FreePort

namespace logferry::testing {

class PgServer {
 public:
  // The process's server; nullptr (with why in *error) when it cannot start.
  static PgServer* Get(std::string* error) {
    static std::unique_ptr<PgServer> server = Start(&StartError());
    if (!server) *error = StartError();
    return server.get();
  }

  ~PgServer() {
    Run(AsPostgres("/usr/lib/postgresql/15/bin/pg_ctl -D " + dir_ + "/data -m immediate -w stop"));
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // A new, empty database; its URI.
  std::string FreshDatabase() {
    std::string name = "t" + std::to_string(++databases_);
    if (!Psql("CREATE DATABASE " + name)) return "";
    return Uri(name);
  }
  std::string Uri(const std::string& database) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }
  // Runs SQL as the superuser; whether it succeeded.
  bool Psql(const std::string& sql, const std::string& database = "postgres") const {
    return Run(PsqlCommand(database) + " -c \"" + sql + "\" >/dev/null 2>&1");
  }
  // The first value a query returns ("" on failure).
  std::string Query(const std::string& sql, const std::string& database) const {
    std::string out;
    FILE* f = popen(PsqlCommand(database).append(" -At -c \"" + sql + "\" 2>/dev/null").c_str(), "r");
    if (!f) return out;
    char buf[256];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  // psql on a database, for popen.
  std::string PsqlCommand(const std::string& database) const {
    return "psql -X -q -h 127.0.0.1 -p " + std::to_string(port_) + " -U postgres -d " + database;
  }
  // Stops and starts the server (a ledger's connection breaks meanwhile).
  bool Stop() { return Run(AsPostgres(PgCtl() + "-m fast -w stop")); }
  bool Restart() { return Run(AsPostgres(PgCtl() + StartOptions() + " -w -t 60 start")); }

 private:
  PgServer() = default;
  static std::string& StartError() {
    static std::string error;
    return error;
  }
  static bool Run(const std::string& command) { return std::system(command.c_str()) == 0; }
  static std::string AsPostgres(const std::string& command) {
    return "runuser -u postgres -- " + command + " >/dev/null 2>&1";
  }
  std::string PgCtl() const { return "/usr/lib/postgresql/15/bin/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/log "; }
  std::string StartOptions() const {
    return "-o '-p " + std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off'";
  }

  static std::unique_ptr<PgServer> Start(std::string* error) {
    std::unique_ptr<PgServer> s(new PgServer());
    char tmpl[] = "/tmp/lf-pg-XXXXXX";
    if (!mkdtemp(tmpl)) {
      *error = "mkdtemp failed";
      return nullptr;
    }
    s->dir_ = tmpl;
    s->port_ = MotoServer::FreePort();
    const passwd* pg = getpwnam("postgres");
    if (!pg || chown(tmpl, pg->pw_uid, pg->pw_gid) != 0) {
      *error = "no postgres user (is Debian's postgresql installed? scripts/setup.sh)";
      return nullptr;
    }
    if (!Run(AsPostgres("/usr/lib/postgresql/15/bin/initdb --no-sync -A trust -U postgres -D " + s->dir_ + "/data"))) {
      *error = "initdb failed";
      return nullptr;
    }
    if (!s->Restart()) {
      *error = "PostgreSQL did not start; see " + s->dir_ + "/log";
      return nullptr;
    }
    return s;
  }

  std::string dir_;
  int port_ = 0;
  std::atomic<int> databases_{0};
};

}  // namespace logferry::testing
