// Runs SQL statements on a DuckDB database file with the C API logferry
// links, and prints the process's CPU seconds (user + system, every
// thread) when they are done, database closed (its last checkpoint
// included): DuckDB's own cost for bench/load_bench.py to compare with.
//
//   logferry_duckdb_sql DB_FILE SQL...
#include <duckdb.h>
#include <sys/resource.h>

#include <cstdio>

namespace {

double CpuSeconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DB_FILE SQL...\n", argv[0]);
    return 2;
  }
  double start = CpuSeconds();
  duckdb_database db;
  duckdb_connection con;
  if (duckdb_open(argv[1], &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
    std::fprintf(stderr, "cannot open %s\n", argv[1]);
    return 1;
  }
  int rc = 0;
  for (int i = 2; i < argc && rc == 0; ++i) {
    duckdb_result res;
    if (duckdb_query(con, argv[i], &res) == DuckDBError) {
      std::fprintf(stderr, "%s: %s\n", argv[i], duckdb_result_error(&res));
      rc = 1;
    }
    duckdb_destroy_result(&res);
  }
  duckdb_disconnect(&con);
  duckdb_close(&db);
  std::printf("cpu_seconds %.3f\n", CpuSeconds() - start);
  return rc;
}
