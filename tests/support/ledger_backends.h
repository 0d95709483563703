// The ledger unit tests run on both backends: value-parameterized by
// Backend, instantiated as Sqlite/... and Postgres/... (ctest runs the
// Postgres ones in one process, on one server: CMakeLists.txt).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "pg_server.h"

namespace logferry::testing {

enum class Backend { kSqlite, kPostgres };

// Where a new, empty ledger of that backend is: a file in dir, or a fresh
// database on the process's PostgreSQL server ("" after a failure).
inline std::string NewLedgerLocation(Backend backend, const std::string& dir) {
  if (backend == Backend::kSqlite) return dir + "/ledger.db";
  std::string error;
  PgServer* server = PgServer::Get(&error);
  if (!server) {
    ADD_FAILURE() << "PostgreSQL 15 could not start: " << error;
    return "";
  }
  std::string uri = server->FreshDatabase();
  if (uri.empty()) ADD_FAILURE() << "CREATE DATABASE failed";
  return uri;
}

}  // namespace logferry::testing

// Test names: Sqlite/Suite.Test/ledger and Postgres/Suite.Test/ledger.
#define LF_INSTANTIATE_LEDGER_BACKENDS(suite)                                                           \
  INSTANTIATE_TEST_SUITE_P(Sqlite, suite, ::testing::Values(::logferry::testing::Backend::kSqlite),     \
                           [](const auto&) { return std::string("ledger"); });                          \
  INSTANTIATE_TEST_SUITE_P(Postgres, suite, ::testing::Values(::logferry::testing::Backend::kPostgres), \
                           [](const auto&) { return std::string("ledger"); })
