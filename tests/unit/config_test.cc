#include "core/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <regex>

#include "aws/credentials.h"
#include "local_http_server.h"
#include "registry/scheme_registry.h"
#include "store/object_store.h"

namespace logferry {
namespace {

constexpr const char* kMinimal = R"(state_dir = "/var/lib/logferry"

[[table]]
name = "access"
source = "file:///data/bucket/logs/"
staging = "file:///data/staging"
warehouse = "duckdb:///data/logs.duckdb"
)";

StatusOr<Config> Parse(const std::string& text) {
  return ParseConfig(text, "test.toml");
}

// The error must name the key and point at "test.toml:<line>".
void ExpectError(const std::string& text, const std::string& key, int line) {
  auto c = Parse(text);
  ASSERT_FALSE(c.ok()) << "accepted:\n" << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find(key), std::string::npos) << "error does not name '" << key << "': " << m;
  EXPECT_NE(m.find("test.toml:" + std::to_string(line)), std::string::npos)
      << "error does not point at line " << line << ": " << m;
}

TEST(Config, Defaults) {
  auto c = Parse(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_dir, "/var/lib/logferry");
  EXPECT_EQ(c->LedgerPath(), "/var/lib/logferry/ledger.db");
  EXPECT_GE(c->workers, 1) << "workers=0 means one per core";
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->lock_timeout_us, 60 * kMicrosPerSecond);
  ASSERT_EQ(c->tables.size(), 1u);
  const TableConfig& t = c->tables[0];
  EXPECT_EQ(t.name, "access");
  EXPECT_EQ(t.source, "file:///data/bucket/logs/");
  EXPECT_EQ(t.staging, "file:///data/staging/") << "store URIs get a trailing slash";
  EXPECT_EQ(t.warehouse, "duckdb:///data/logs.duckdb");
  EXPECT_EQ(t.key_format, "%{path}%{time_slice}_%{index}.%{file_extension}");
  EXPECT_EQ(t.time_slice_format, "%Y%m%d%H");
  EXPECT_EQ(t.format.format, LogFormat::kOutFile);
  EXPECT_EQ(t.format.delimiter, '\t');
  EXPECT_TRUE(t.format.output_time);
  EXPECT_TRUE(t.format.output_tag);
  EXPECT_EQ(t.format.time_key, "time");
  EXPECT_EQ(t.format.time_kind, TimeFormatKind::kIso8601);
  EXPECT_EQ(t.compression, Compression::kAuto);
  EXPECT_EQ(t.zone.Name(), "+00:00");
  EXPECT_EQ(t.partition, "hour");
  EXPECT_EQ(t.partition_unit_us, kMicrosPerHour);
  EXPECT_EQ(t.settle_us, 10 * 60 * kMicrosPerSecond);
  EXPECT_EQ(t.interval_us, 60 * kMicrosPerSecond);
  EXPECT_EQ(t.retry_base_us, 30 * kMicrosPerSecond);
  EXPECT_EQ(t.retry_max_us, kMicrosPerHour);
  EXPECT_EQ(t.max_line_bytes, 134217728);
  EXPECT_EQ(c->FindTable("access"), &c->tables[0]);
  EXPECT_EQ(c->FindTable("nope"), nullptr);
  EXPECT_EQ(c->MinInterval(), 60 * kMicrosPerSecond);
}

TEST(Config, LedgerNamesAPostgresqlLedgerShownWithoutItsPassword) {
  auto c = Parse(std::string("ledger = \"postgresql://lf:s3cret@db:5432/logferry\"\n") + kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->LedgerPath(), "postgresql://lf:s3cret@db:5432/logferry");
  EXPECT_EQ(c->LedgerName(), "postgresql://lf@db:5432/logferry");
  EXPECT_EQ(c->SqliteLedgerPath(), "/var/lib/logferry/ledger.db");
  ExpectError(std::string("ledger = \"mysql://lf:s3cret@db/x\"\n") + kMinimal, "ledger", 1);
  auto bad = Parse(std::string("ledger = \"mysql://lf:s3cret@db/x\"\n") + kMinimal);
  EXPECT_EQ(bad.status().message().find("s3cret"), std::string::npos) << bad.status().message();
}

TEST(Config, TopLevelDefaultsAreInheritedAndOverridable) {
  auto c = Parse(R"(state_dir = "/s"
workers = 3
lock_timeout = "5s"
timezone = "+09:00"
settle = "0s"
staging = "file:///staging/"
warehouse = "duckdb:///w.duckdb"
format = "json"

[[table]]
name = "a"
source = "file:///a/"

[[table]]
name = "b"
source = "file:///b/"
timezone = "UTC"
format = "out_file"
partition = "day"
interval = "5s"
delimiter = "COMMA"
output_tag = false
time_format = "%d/%b/%Y:%H:%M:%S %z"
compression = "zstd"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->workers, 3);
  EXPECT_EQ(c->lock_timeout_us, 5 * kMicrosPerSecond);
  ASSERT_EQ(c->tables.size(), 2u);
  const TableConfig& a = c->tables[0];
  const TableConfig& b = c->tables[1];
  EXPECT_EQ(a.zone.Name(), "+09:00");
  EXPECT_EQ(a.format.zone.Name(), "+09:00") << "the zone reaches the normalizer";
  EXPECT_EQ(a.settle_us, 0);
  EXPECT_EQ(a.staging, "file:///staging/");
  EXPECT_EQ(a.warehouse, "duckdb:///w.duckdb");
  EXPECT_EQ(a.format.format, LogFormat::kJson);
  EXPECT_EQ(b.zone.Name(), "+00:00");
  EXPECT_EQ(b.settle_us, 0) << "inherited";
  EXPECT_EQ(b.format.format, LogFormat::kOutFile);
  EXPECT_EQ(b.partition_unit_us, kMicrosPerDay);
  EXPECT_EQ(b.format.delimiter, ',');
  EXPECT_FALSE(b.format.output_tag);
  EXPECT_EQ(b.format.time_kind, TimeFormatKind::kLayout);
  EXPECT_EQ(b.compression, Compression::kZstd);
  EXPECT_EQ(c->MinInterval(), 5 * kMicrosPerSecond);
}

TEST(Config, IntegersAndBooleansAreAcceptedAsValues) {
  auto c = Parse(std::string(kMinimal) + "max_line_bytes = 2048\noutput_time = false\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tables[0].max_line_bytes, 2048);
  EXPECT_FALSE(c->tables[0].format.output_time);
}

TEST(Config, UnknownKeysNameKeyAndLine) {
  ExpectError(std::string("state_dir = \"/s\"\nbogus = 1\n") +
                  std::string(kMinimal).substr(std::string(kMinimal).find("[[table]]")),
              "bogus", 2);
  ExpectError(std::string(kMinimal) + "sauce = \"x\"\n", "sauce", 8);
  // A table key at top level and a top-level key in a table.
  ExpectError(std::string("name = \"x\"\n") + kMinimal, "name", 1);
  ExpectError(std::string(kMinimal) + "workers = 2\n", "workers", 8);
}

TEST(Config, MissingKeysNameKeyAndTableLine) {
  ExpectError(R"(state_dir = "/s"

[[table]]
name = "a"
staging = "file:///st/"
warehouse = "duckdb:///w.duckdb"
)",
              "source", 3);
  ExpectError(R"(state_dir = "/s"
[[table]]
source = "file:///a/"
staging = "file:///st/"
warehouse = "duckdb:///w.duckdb"
)",
              "name", 2);
  auto c = Parse(std::string(kMinimal).substr(std::string(kMinimal).find('\n') + 1));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("state_dir"), std::string::npos) << c.status().message();
  c = Parse("state_dir = \"/s\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("[[table]]"), std::string::npos) << c.status().message();
}

TEST(Config, BadValuesNameKeyAndLine) {
  struct Case {
    const char* line;
    const char* key;
  };
  for (const Case& bad : {Case{"timezone = \"Tokyo\"", "timezone"},
                          Case{"settle = \"10 minutes\"", "settle"},
                          Case{"partition = \"week\"", "partition"},
                          Case{"format = \"xml\"", "format"},
                          Case{"compression = \"bz2\"", "compression"},
                          Case{"delimiter = \"ab\"", "delimiter"},
                          Case{"output_tag = \"yes\"", "output_tag"},
                          Case{"max_line_bytes = 10", "max_line_bytes"},
                          Case{"time_format = \"%Q\"", "time_format"},
                          Case{"time_format = \"epoch\"", "time_format"},
                          Case{"key_format = \"%{nope}\"", "key_format"},
                          Case{"retry_base = \"x\"", "retry_base"},
                          Case{"source = \"s3://bucket/\"", "source"},
                          Case{"staging = \"/plain/path\"", "staging"},
                          Case{"warehouse = \"bigquery://p/d\"", "warehouse"},
                          Case{"settle = 1.5", "settle"},
                          Case{"settle = [\"1s\"]", "settle"},
                          Case{"warehouse = \"duckdb://rel/w.duckdb\"", "warehouse"},
                          Case{"timezone = \"America/Nowhere\"", "timezone"},
                          Case{"key_format = \"%{path}%Y/%{index}/%m.gz\"", "key_format"}}) {
    SCOPED_TRACE(bad.line);
    ExpectError(std::string(kMinimal) + bad.line + "\n", bad.key, 8);
  }
  // Top-level values are checked too, pointing at their own line.
  ExpectError(
      "state_dir = \"/s\"\nworkers = 9999\n" + std::string(kMinimal).substr(std::string(kMinimal).find("[[table]]")),
      "workers", 2);
  ExpectError("state_dir = \"/s\"\nlock_timeout = \"soon\"\n" +
                  std::string(kMinimal).substr(std::string(kMinimal).find("[[table]]")),
              "lock_timeout", 2);
  // A bad top-level default is reported where it was written, not at the table.
  ExpectError("state_dir = \"/s\"\ntimezone = \"Mars\"\n" +
                  std::string(kMinimal).substr(std::string(kMinimal).find("[[table]]")),
              "timezone", 2);
}

TEST(Config, TomlSyntaxErrorsCarryALine) {
  auto c = Parse("state_dir = \"/s\"\n[[table]\nname = 1\n");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(std::regex_search(c.status().message(), std::regex("test\\.toml:\\d+"))) << c.status().message();
}

TEST(Config, EnvironmentVariablesAreExpanded) {
  setenv("LF_TEST_ROOT", "/srv/data", 1);
  auto c = Parse(R"(state_dir = "${LF_TEST_ROOT}/state"
[[table]]
name = "a"
source = "file://${LF_TEST_ROOT}/bucket/"
staging = "file:///st/"
warehouse = "duckdb:///w$${x}.duckdb"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_dir, "/srv/data/state");
  EXPECT_EQ(c->tables[0].source, "file:///srv/data/bucket/");
  EXPECT_EQ(c->tables[0].warehouse, "duckdb:///w${x}.duckdb") << "$$ is a literal dollar";
  unsetenv("LF_TEST_ROOT");
}

TEST(Config, UnsetEnvironmentVariableIsAnError) {
  unsetenv("LF_TEST_SURELY_UNSET");
  auto c = Parse(std::string(kMinimal) + "settle = \"${LF_TEST_SURELY_UNSET}\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("LF_TEST_SURELY_UNSET"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("settle"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("test.toml:8"), std::string::npos) << c.status().message();
  c = Parse(std::string(kMinimal) + "settle = \"${UNTERMINATED\"\n");
  ASSERT_FALSE(c.ok());
}

TEST(Config, DuplicateTableNames) {
  std::string text = std::string(kMinimal) + R"(
[[table]]
name = "access"
source = "file:///other/"
staging = "file:///st/"
warehouse = "duckdb:///w.duckdb"
)";
  ExpectError(text, "access", 10);
}

TEST(Config, IllegalTableNames) {
  // A leading '_' is reserved for logferry's own objects (_requests/).
  for (const char* name : {"1abc", "a-b", "", "a b", "t\xC3\xA9", "a.b", "_x", "_requests"}) {
    std::string text = std::regex_replace(std::string(kMinimal), std::regex("name = \"access\""),
                                          std::string("name = \"") + name + "\"");
    SCOPED_TRACE(name);
    ExpectError(text, "name", 4);
  }
  for (const char* name : {"x_", "Access_2016", "a"}) {
    std::string text = std::regex_replace(std::string(kMinimal), std::regex("name = \"access\""),
                                          std::string("name = \"") + name + "\"");
    EXPECT_TRUE(Parse(text).ok()) << name;
  }
}

TEST(Config, IntervalFloor) {
  auto c = Parse(std::string(kMinimal) + "interval = \"10ms\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("interval"), std::string::npos);
}

TEST(Config, S3EndpointsPerSideAndNotifications) {
  auto c = Parse(R"(state_dir = "/s"
endpoint = "http://127.0.0.1:9000/"
region = "eu-west-1"

[[table]]
name = "access"
source = "s3://app-logs/logs/"
staging = "s3://staging/parts"
staging_endpoint = "https://storage.googleapis.com"
warehouse = "duckdb:///data/logs.duckdb"
notifications = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3-events"
reconcile_every = "30m"
s3_addressing = "path"
ca_file = "/etc/ssl/private-ca.pem"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const TableConfig& t = c->tables[0];
  EXPECT_EQ(t.source_store.endpoint, "http://127.0.0.1:9000");  // top-level default, trailing '/' dropped
  EXPECT_EQ(t.staging_store.endpoint, "https://storage.googleapis.com");
  EXPECT_EQ(t.source_store.region, "eu-west-1");
  EXPECT_EQ(t.staging_store.addressing, "path");
  EXPECT_EQ(t.source_store.ca_file, "/etc/ssl/private-ca.pem");
  EXPECT_EQ(t.staging_store.ca_file, "/etc/ssl/private-ca.pem");
  EXPECT_EQ(t.staging, "s3://staging/parts/");
  EXPECT_EQ(t.notifications, "https://sqs.eu-west-1.amazonaws.com/123456789012/s3-events");
  EXPECT_EQ(t.reconcile_every_us, 30 * 60 * kMicrosPerSecond);
  EXPECT_EQ(t.sqs_wait_us, 20 * kMicrosPerSecond);
  EXPECT_EQ(t.sqs_visibility_us, 300 * kMicrosPerSecond);
}

// source_endpoint overrides `endpoint` for the source only, and the store
// opened from the parsed options sends its requests there.
TEST(Config, SourceEndpointOverridesEndpointForTheSourceOnly) {
  testutil::LocalHttpServer source_server([](const testutil::LocalHttpRequest&) {
    return testutil::LocalHttpResponse{
        200, {}, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"};
  });
  auto c = Parse(R"(state_dir = "/s"
endpoint = "http://127.0.0.1:1"

[[table]]
name = "access"
source = "s3://app-logs/logs/"
source_endpoint = ")" +
                 source_server.Url() + R"(/"
staging = "s3://staging/parts/"
warehouse = "duckdb:///data/logs.duckdb"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const TableConfig& t = c->tables[0];
  EXPECT_EQ(t.source_store.endpoint, source_server.Url());
  EXPECT_EQ(t.staging_store.endpoint, "http://127.0.0.1:1");
  StoreOptions options = t.source_store;
  options.aws_credentials = aws::MakeStaticProvider({.access_key_id = "AKID", .secret_access_key = "secret"});
  options.retry.max_attempts = 1;
  auto store = OpenObjectStore(t.source, options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto page = (*store)->List("", "", 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  auto requests = source_server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].path, "/app-logs");  // path-style on a custom endpoint
  EXPECT_NE(requests[0].query.find("prefix=logs%2F"), std::string::npos) << requests[0].query;
}

TEST(Config, BadS3AndQueueSettingsNameTheKey) {
  std::string base = std::string(kMinimal);
  ExpectError(base + "endpoint = \"127.0.0.1:9000\"\n", "endpoint", 8);
  ExpectError(base + "s3_addressing = \"sideways\"\n", "s3_addressing", 8);
  // Event notifications announce objects in S3, so they need an s3:// source.
  ExpectError(base + "notifications = \"https://sqs.us-east-1.amazonaws.com/1/q\"\n", "notifications", 8);
  ExpectError(R"(state_dir = "/s"
[[table]]
name = "a"
source = "s3://b/logs/"
staging = "file:///s"
warehouse = "duckdb:///w.duckdb"
notifications = "https://sqs.us-east-1.amazonaws.com/no-account"
)",
              "notifications", 7);
  ExpectError(R"(state_dir = "/s"
[[table]]
name = "a"
source = "s3:///logs/"
staging = "file:///s"
warehouse = "duckdb:///w.duckdb"
)",
              "source", 4);
}

TEST(Config, LoadConfigReportsMissingFile) {
  auto c = LoadConfig("/nonexistent/logferry.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST(Config, ReferenceListsEveryKey) {
  std::string ref = ConfigReference();
  for (const char* key : {"state_dir",   "workers",    "lock_timeout",      "name",        "source",      "staging",
                          "warehouse",   "key_format", "time_slice_format", "format",      "compression", "time_key",
                          "time_format", "timezone",   "delimiter",         "output_time", "output_tag",  "partition",
                          "settle",      "interval",   "max_line_bytes",    "retry_base",  "retry_max",   "log_level"})
    EXPECT_NE(ref.find(std::string("`") + key + "`"), std::string::npos) << key;
}

// An unknown level used to silence every log line, errors included.
TEST(Config, LogLevelMustBeOneOfTheKnownLevels) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    auto c = Parse(std::string("log_level = \"") + level + "\"\n" + kMinimal);
    ASSERT_TRUE(c.ok()) << level << ": " << c.status().ToString();
    EXPECT_EQ(c->log_level, level);
  }
  for (const char* level : {"verbose", "INFO", "warning", "none", ""}) {
    std::string text = std::string("log_level = \"") + level + "\"\n" + kMinimal;
    ExpectError(text, "log_level", 1);
    auto c = Parse(text);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("debug, info, warn, error or off"), std::string::npos) << c.status().message();
  }
}

std::string S3Table(const std::string& extra_top, const std::string& extra_table) {
  return "state_dir = \"/s\"\n" + extra_top + "[[table]]\nname = \"a\"\nsource = \"s3://b/logs/\"\n" +
         "staging = \"s3://st/parts/\"\nwarehouse = \"duckdb:///w.duckdb\"\n" + extra_table;
}

TEST(Config, PlainHttpToAFarHostIsRefusedNamingTheKey) {
  // Lines: 1 state_dir, 2 [[table]], 3 name, 4 source, 5 staging, 6 warehouse, 7 the key.
  for (const char* key : {"endpoint", "source_endpoint", "staging_endpoint"}) {
    std::string text = S3Table("", std::string(key) + " = \"http://minio.internal:9000\"\n");
    ExpectError(text, key, 7);
    EXPECT_NE(Parse(text).status().message().find("allow_insecure_http"), std::string::npos);
  }
  ExpectError(S3Table("", "notifications = \"http://sqs.internal:9324/123456789012/q\"\n"), "notifications", 7);
  ExpectError(S3Table("", "endpoint = \"http://127.example.com:9000\"\n"), "endpoint", 7);
  ExpectError(S3Table("", "endpoint = \"http://10.0.0.5\"\n"), "endpoint", 7);
}

TEST(Config, PlainHttpToLoopbackIsAccepted) {
  for (const char* url : {"http://127.0.0.1:9000", "http://127.9.9.9", "http://localhost:9000",
                          "http://minio.localhost:9000", "http://[::1]:9000", "https://minio.internal:9000"}) {
    auto c = Parse(S3Table("", std::string("endpoint = \"") + url + "\"\n"));
    EXPECT_TRUE(c.ok()) << url << ": " << c.status().ToString();
  }
}

TEST(Config, AllowInsecureHttpAllowsSigV4EndpointsOnly) {
  auto c = Parse(S3Table("allow_insecure_http = true\n",
                         "endpoint = \"http://minio.internal:9000\"\n"
                         "notifications = \"http://sqs.internal:9324/123456789012/q\"\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->allow_insecure_http);
  EXPECT_EQ(c->tables[0].source_store.endpoint, "http://minio.internal:9000");
  EXPECT_FALSE(Parse(kMinimal)->allow_insecure_http);
  ExpectError("allow_insecure_http = \"yes\"\n" + std::string(kMinimal), "allow_insecure_http", 1);
  // A bearer token never goes in clear text, whatever the setting.
  std::string gs = R"(state_dir = "/s"
allow_insecure_http = true
[[table]]
name = "a"
source = "gs://b/logs/"
staging = "gs://st/parts/"
warehouse = "bigquery://p/d"
)";
  ExpectError(gs + "source_endpoint = \"http://gcs.internal:4443\"\n", "source_endpoint", 8);
  ExpectError(gs + "bigquery_endpoint = \"http://bq.internal:9050\"\n", "bigquery_endpoint", 8);
  ExpectError(gs + "bigquery_endpoint = \"bq.internal:9050\"\n", "bigquery_endpoint", 8);
  EXPECT_TRUE(Parse(gs + "bigquery_endpoint = \"http://127.0.0.1:9050/\"\n").ok());
}

// Scoped environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Config, EndpointsFromTheEnvironmentPassTheSameTest) {
  std::string gs = R"(state_dir = "/s"
[[table]]
name = "a"
source = "gs://b/logs/"
staging = "file:///st/"
warehouse = "duckdb:///w.duckdb"
)";
  {
    ScopedEnv env("STORAGE_EMULATOR_HOST", "gcs-emulator:4443");
    auto c = Parse(gs);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("STORAGE_EMULATOR_HOST"), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("test.toml:2"), std::string::npos) << c.status().message();
  }
  {
    ScopedEnv env("STORAGE_EMULATOR_HOST", "127.0.0.1:4443");
    EXPECT_TRUE(Parse(gs).ok());
  }
  {
    ScopedEnv env("AWS_ENDPOINT_URL", "http://minio.internal:9000");
    auto c = Parse(S3Table("", ""));
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find("AWS_ENDPOINT_URL"), std::string::npos) << c.status().message();
    EXPECT_TRUE(Parse(S3Table("allow_insecure_http = true\n", "")).ok());
    // A configured endpoint wins over the environment, as in the store.
    EXPECT_TRUE(Parse(S3Table("", "endpoint = \"https://s3.example.com\"\n")).ok());
  }
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

TEST(Config, EnvironmentDefaultsAndRequiredMessages) {
  setenv("LF_TEST_SET", "/srv/set", 1);
  setenv("LF_TEST_EMPTY", "", 1);
  unsetenv("LF_TEST_SURELY_UNSET");
  auto state_dir = [](const std::string& expr) {
    auto c = Parse("state_dir = \"" + expr + "\"\n" + std::string(kMinimal).substr(std::string(kMinimal).find('\n')));
    return c.ok() ? c->state_dir : "error: " + c.status().message();
  };
  EXPECT_EQ(state_dir("${LF_TEST_SET:-/d}"), "/srv/set");
  EXPECT_EQ(state_dir("${LF_TEST_EMPTY:-/d}"), "/d") << "empty counts as unset, as in the shell";
  EXPECT_EQ(state_dir("${LF_TEST_SURELY_UNSET:-/var/lib/x}/s"), "/var/lib/x/s");
  EXPECT_EQ(state_dir("${LF_TEST_SURELY_UNSET:-}/s"), "/s");
  EXPECT_EQ(state_dir("${LF_TEST_SET:?needed}"), "/srv/set");
  std::string err = state_dir("${LF_TEST_EMPTY:?point it at the state directory}");
  EXPECT_NE(err.find("LF_TEST_EMPTY"), std::string::npos) << err;
  EXPECT_NE(err.find("point it at the state directory"), std::string::npos) << err;
  EXPECT_NE(err.find("test.toml:1"), std::string::npos) << err;
  err = state_dir("${LF_TEST_SET:+alt}");
  EXPECT_NE(err.find("${VAR:-default}"), std::string::npos) << "other shell forms are refused: " << err;
  unsetenv("LF_TEST_SET");
  unsetenv("LF_TEST_EMPTY");
}

TEST(Config, UnknownKeysNameTheClosest) {
  auto c = Parse(std::string(kMinimal) + "timezon = \"UTC\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("did you mean 'timezone'?"), std::string::npos) << c.status().message();
  c = Parse("stat_dir = \"/s\"\n" + std::string(kMinimal));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("did you mean 'state_dir'?"), std::string::npos) << c.status().message();
  c = Parse(std::string(kMinimal) + "completely_different = 1\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("did you mean"), std::string::npos) << c.status().message();
  c = Parse(std::string(kMinimal) + "worker = 4\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("did you mean 'workers'?"), std::string::npos) << c.status().message();
}

TEST(Config, IanaTimezonesReachKeysAndTimes) {
  auto c = Parse(std::string(kMinimal) + "timezone = \"America/New_York\"\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const TableConfig& t = c->tables[0];
  EXPECT_EQ(t.zone.Name(), "America/New_York");
  EXPECT_EQ(t.format.zone.Name(), "America/New_York");
  EXPECT_EQ(ParseEventTime("2016-07-01T12:00:00", t.format), ParseIso8601("2016-07-01T16:00:00Z"));
  EXPECT_EQ(ParseEventTime("2016-01-01T12:00:00", t.format), ParseIso8601("2016-01-01T17:00:00Z"));
}

}  // namespace
}  // namespace logferry
