// The scheme registry: config validation, OpenObjectStore and OpenWarehouse
// follow what is registered, messages list what is registered, and the
// backend properties the core relies on come from the backends.
#include "registry/scheme_registry.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "core/config.h"
#include "store/file_store.h"
#include "store/gcs_store.h"

namespace logferry {
namespace {

std::string ConfigWith(const std::string& source, const std::string& warehouse = "duckdb:///data/w.duckdb") {
  return "state_dir = \"/var/lib/logferry\"\n\n[[table]]\nname = \"access\"\nsource = \"" + source +
         "\"\nstaging = \"file:///data/staging/\"\nwarehouse = \"" + warehouse + "\"\n";
}

TEST(SchemeRegistry, BuiltInsClaimTheirSchemesAndMessagesListThem) {
  for (const char* name : {"file", "s3", "gs", "duckdb", "bigquery"}) {
    const SchemeInfo* s = Schemes().Claim(std::string(name) + "://x/y");
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->name, name);
  }
  EXPECT_EQ(Schemes().Claim("S3://bucket/x")->name, "s3") << "schemes are case-insensitive";
  EXPECT_EQ(Schemes().Claim("ftp://host/x"), nullptr);
  EXPECT_EQ(Schemes().Claim("/plain/path"), nullptr);

  auto c = ParseConfig(ConfigWith("ftp://host/logs/"), "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("(file:///dir/, s3://bucket/prefix/, gs://bucket/prefix/)"), std::string::npos)
      << c.status().message();
  c = ParseConfig(ConfigWith("file:///data/logs/", "snowflake://a/b"), "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("(duckdb:///path/file.duckdb, bigquery://project/dataset)"), std::string::npos)
      << c.status().message();
  auto store = OpenObjectStore("ftp://host/x");
  EXPECT_NE(store.status().message().find("(supported: file://, s3://, gs://)"), std::string::npos)
      << store.status().message();
  // A warehouse scheme is not a store, and a store scheme not a warehouse.
  EXPECT_EQ(OpenObjectStore("duckdb:///tmp/x.duckdb").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenWarehouse("file:///tmp/x", {}).status().code(), StatusCode::kInvalidArgument);
  c = ParseConfig(ConfigWith("duckdb:///data/logs/"), "t.toml");
  EXPECT_FALSE(c.ok());
}

// A scheme registered at run time is accepted by the config, opened by
// OpenObjectStore and listed in messages; unregistered, it is refused again.
TEST(SchemeRegistry, ConfigAndOpenFollowWhatIsRegistered) {
  ASSERT_FALSE(ParseConfig(ConfigWith("tst://bucket/logs/"), "t.toml").ok());
  SchemeInfo tst;
  tst.name = "tst";
  tst.example = "tst://bucket/";
  tst.roles = kRoleSource;
  tst.validate = [](const Uri& u) { return u.authority.empty() ? std::string("names no bucket") : ""; };
  tst.open_store = [](std::string_view uri, const StoreOptions&) { return FileStore::Open(FileUri("/tmp/tst/")); };
  Schemes().Register(tst);

  auto c = ParseConfig(ConfigWith("tst://bucket/logs/"), "t.toml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  c = ParseConfig(ConfigWith("tst:///logs/"), "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'tst:///logs/' names no bucket"), std::string::npos) << c.status().message();
  c = ParseConfig(ConfigWith("ftp://host/logs/"), "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("gs://bucket/prefix/, tst://bucket/)"), std::string::npos)
      << c.status().message();
  auto store = OpenObjectStore("tst://bucket/logs/");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->uri(), "file:///tmp/tst/");
  // Its role is source only: it cannot be staging.
  std::string as_staging = ConfigWith("file:///data/logs/");
  as_staging.replace(as_staging.find("file:///data/staging/"), 21, "tst://bucket/stage/");
  EXPECT_FALSE(ParseConfig(as_staging, "t.toml").ok());

  Schemes().Unregister("tst");
  EXPECT_FALSE(ParseConfig(ConfigWith("tst://bucket/logs/"), "t.toml").ok());
  EXPECT_EQ(OpenObjectStore("tst://bucket/logs/").status().code(), StatusCode::kInvalidArgument);
}

// The gs backend, not the core, reads STORAGE_EMULATOR_HOST: it decides
// when an emulator stands in (no real credentials) and which endpoint the
// config's transport check must see.
TEST(SchemeRegistry, TheGsBackendDecidesWhenAnEmulatorStandsIn) {
  const SchemeInfo* gs = Schemes().Find("gs");
  ASSERT_NE(gs, nullptr);
  ASSERT_TRUE(gs->emulated && gs->environment_endpoint);
  unsetenv("STORAGE_EMULATOR_HOST");
  EXPECT_FALSE(gs->emulated({}, ""));
  EXPECT_FALSE(gs->environment_endpoint().has_value());
  setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443", 1);
  EXPECT_TRUE(gs->emulated({}, ""));
  EXPECT_FALSE(gs->emulated({}, "/etc/key.json")) << "a configured credentials file is used";
  StoreOptions with_endpoint;
  with_endpoint.endpoint = "http://127.0.0.1:9000";
  EXPECT_FALSE(gs->emulated(with_endpoint, "")) << "a configured endpoint is not the emulator";
  auto env = gs->environment_endpoint();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->first, "STORAGE_EMULATOR_HOST");
  EXPECT_EQ(env->second, "http://127.0.0.1:4443");
  unsetenv("STORAGE_EMULATOR_HOST");
  EXPECT_TRUE(Schemes().Find("bigquery")->daily_job_budget);
  EXPECT_FALSE(Schemes().Find("duckdb")->daily_job_budget);
  EXPECT_EQ(Schemes().Find("bigquery")->loads_from, "gs");
}

}  // namespace
}  // namespace logferry
