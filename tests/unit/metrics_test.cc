// The daemon's metrics, health checks and systemd notifications, without a
// daemon: a Metrics fed by hand on a fake clock, and a unix datagram socket
// standing in for systemd. tests/e2e/test_metrics.py scrapes the real one.
#include "metrics/metrics.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/config.h"
#include "ledger/ledger.h"
#include "metrics/service_notify.h"
#include "support/fake_env.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;
using testutil::FakeEnv;

constexpr int64_t kSecond = 1'000'000;

Config TestConfig(const std::string& top = "") {
  auto c =
      ParseConfig("state_dir = \"/tmp/unused\"\n" + top +
                      "\n[[table]]\nname = \"access\"\nsource = \"file:///tmp/src/\"\nstaging = \"file:///tmp/stg/\"\n"
                      "warehouse = \"duckdb:///tmp/w.duckdb\"\ninterval = \"10s\"\n",
                  "test.toml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : Config{};
}

// The value of one sample line ("name{labels} value"), or -1 when absent.
double Sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsTest, EveryTableHasItsSeriesAtZeroBeforeTheFirstPass) {
  FakeEnv env;
  Config config = TestConfig();
  Metrics m(config, &env);
  std::string text = m.Scrape();
  EXPECT_EQ(Sample(text, "logferry_rows_staged_total{table=\"access\"}"), 0);
  EXPECT_EQ(Sample(text, "logferry_objects_discovered_total{table=\"access\"}"), 0);
  EXPECT_EQ(Sample(text, "logferry_passes_total{outcome=\"ok\"}"), 0);
  EXPECT_EQ(Sample(text, "logferry_last_success_timestamp_seconds"), 0);
  EXPECT_NE(text.find("# TYPE logferry_pass_duration_seconds histogram"), std::string::npos);
  // No queue configured: no SQS series.
  EXPECT_EQ(text.find("logferry_sqs_messages_received_total{"), std::string::npos);
}

TEST(MetricsTest, CountersAddUpPassesAndGaugesComeFromTheLedger) {
  FakeEnv env;
  Config config = TestConfig();
  Metrics m(config, &env);
  PassStats s;
  s.discovered = 3;
  s.staged_objects = 2;
  s.failed_objects = 1;
  s.rows_staged = 100;
  s.bad_records = 4;
  s.bytes_read = 5000;
  s.partitions_loaded = 2;
  m.AddTablePass("access", s);
  m.AddTablePass("access", s);

  fs::path dir = fs::temp_directory_path() / ("metrics_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto ledger = Ledger::Open((dir / "ledger.db").string());
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ASSERT_TRUE((*ledger)->RecordDiscovered("access", {{"a.log", 10, 0, "e1"}}, "listing", env.NowMicros()).ok());
  env.Advance(90 * kSecond);
  m.EndPass(1.5, true, **ledger);
  std::string text = m.Scrape();
  fs::remove_all(dir);

  EXPECT_EQ(Sample(text, "logferry_rows_staged_total{table=\"access\"}"), 200);
  EXPECT_EQ(Sample(text, "logferry_objects_failed_total{table=\"access\"}"), 2);
  EXPECT_EQ(Sample(text, "logferry_source_read_bytes_total{table=\"access\"}"), 10000);
  EXPECT_EQ(Sample(text, "logferry_partitions_loaded_total{table=\"access\"}"), 4);
  EXPECT_EQ(Sample(text, "logferry_objects{state=\"pending\",table=\"access\"}"), 1);
  EXPECT_EQ(Sample(text, "logferry_oldest_pending_object_age_seconds{table=\"access\"}"), 90);
  EXPECT_EQ(Sample(text, "logferry_passes_total{outcome=\"ok\"}"), 1);
  EXPECT_EQ(Sample(text, "logferry_last_success_timestamp_seconds"), env.NowMicros() / kSecond);
  EXPECT_EQ(Sample(text, "logferry_pass_duration_seconds_count"), 1);
  // Nothing loaded yet: no lag to speak of.
  EXPECT_EQ(text.find("logferry_lag_seconds{"), std::string::npos);
}

// Reading the ledger's counts costs in proportion to its objects: not after
// every pass, but after a pass that changed the table, and every 5 minutes.
TEST(MetricsTest, LedgerCountsAreReadAfterChangesAndEveryFiveMinutes) {
  FakeEnv env;
  Config config = TestConfig();
  Metrics m(config, &env);
  fs::path dir = fs::temp_directory_path() / ("metrics_refresh_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto ledger = Ledger::Open((dir / "ledger.db").string());
  ASSERT_TRUE(ledger.ok());
  auto discover = [&](const char* key) {
    ASSERT_TRUE((*ledger)->RecordDiscovered("access", {{key, 10, 0, key}}, "listing", env.NowMicros()).ok());
  };
  auto pending = [&] { return Sample(m.Scrape(), "logferry_objects{state=\"pending\",table=\"access\"}"); };
  discover("a.log");
  m.EndPass(0.1, true, **ledger);
  EXPECT_EQ(pending(), 1) << "the first pass reads them";
  discover("b.log");  // by another process: this one's pass saw nothing
  env.Advance(60 * kSecond);
  m.AddTablePass("access", PassStats{});
  m.EndPass(0.1, true, **ledger);
  EXPECT_EQ(pending(), 1);
  PassStats found;
  found.discovered = 1;
  found.list_requests = 3;
  found.windowed_listings = 1;
  m.AddTablePass("access", found);
  m.EndPass(0.1, true, **ledger);
  EXPECT_EQ(pending(), 2);
  discover("c.log");
  env.Advance(5 * 60 * kSecond);
  m.EndPass(0.1, true, **ledger);
  EXPECT_EQ(pending(), 3) << "five minutes on";
  std::string text = m.Scrape();
  EXPECT_EQ(Sample(text, "logferry_list_requests_total{table=\"access\"}"), 3);
  EXPECT_EQ(Sample(text, "logferry_source_listings_total{kind=\"window\",table=\"access\"}"), 1);
  EXPECT_EQ(Sample(text, "logferry_source_listings_total{kind=\"full\",table=\"access\"}"), 0);
  fs::remove_all(dir);
}

TEST(MetricsTest, HealthFailsAfterThreeIntervalsWithoutAPass) {
  FakeEnv env;
  Config config = TestConfig();  // interval 10s
  Metrics m(config, &env);
  EXPECT_EQ(m.Health().http_status, 200);
  env.Advance(31 * kSecond);
  HealthAnswer late = m.Health();
  EXPECT_EQ(late.http_status, 503);
  EXPECT_NE(late.text.find("three intervals"), std::string::npos) << late.text;

  fs::path dir = fs::temp_directory_path() / ("metrics_health_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto ledger = Ledger::Open((dir / "ledger.db").string());
  ASSERT_TRUE(ledger.ok());
  m.EndPass(0.1, false, **ledger);  // a failed pass still shows the loop is alive
  fs::remove_all(dir);
  EXPECT_EQ(m.Health().http_status, 200);
  env.Advance(29 * kSecond);
  EXPECT_EQ(m.Health().http_status, 200);
  env.Advance(2 * kSecond);
  EXPECT_EQ(m.Health().http_status, 503);
}

TEST(MetricsTest, ReadyOnlyOnceToldSo) {
  FakeEnv env;
  Config config = TestConfig();
  Metrics m(config, &env);
  EXPECT_EQ(m.Ready().http_status, 503);
  m.SetReady();
  EXPECT_EQ(m.Ready().http_status, 200);
}

TEST(MetricsTest, ServeFailsClearlyWhenThePortIsTaken) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string listen_at = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  Config config = TestConfig("metrics_listen = \"" + listen_at + "\"");
  auto served = Metrics::Serve(config);
  close(fd);
  ASSERT_FALSE(served.ok());
  EXPECT_NE(served.status().message().find("metrics_listen " + listen_at), std::string::npos)
      << served.status().ToString();
}

TEST(MetricsConfigTest, ListenAddressMustBeAnIpAndPort) {
  for (const char* good : {"127.0.0.1:9464", "0.0.0.0:1", "[::1]:9464"}) {
    auto c = ParseConfig(std::string("state_dir = \"/tmp\"\nmetrics_listen = \"") + good +
                             "\"\n[[table]]\nname = \"a\"\nsource = \"file:///s/\"\nstaging = \"file:///t/\"\n"
                             "warehouse = \"duckdb:///w.duckdb\"\n",
                         "t.toml");
    ASSERT_TRUE(c.ok()) << good << ": " << c.status().ToString();
    EXPECT_EQ(c->metrics_listen, good);
  }
  for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "::1:9464"}) {
    auto c = ParseConfig(std::string("state_dir = \"/tmp\"\nmetrics_listen = \"") + bad +
                             "\"\n[[table]]\nname = \"a\"\nsource = \"file:///s/\"\nstaging = \"file:///t/\"\n"
                             "warehouse = \"duckdb:///w.duckdb\"\n",
                         "t.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("metrics_listen"), std::string::npos) << c.status().ToString();
  }
}

// The example the Debian package installs as /etc/logferry/logferry.toml.example.
TEST(MetricsConfigTest, PackagedExampleConfigIsValid) {
  const char* source_dir = std::getenv("LOGFERRY_SOURCE_DIR");  // ctest sets it
  if (!source_dir || !*source_dir) source_dir = LOGFERRY_TEST_SOURCE_DIR;
  auto c = LoadConfig(std::string(source_dir) + "/packaging/logferry.toml.example");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_dir, "/var/lib/logferry");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
}

// systemd's side of sd_notify: a unix datagram socket named by NOTIFY_SOCKET.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = (fs::temp_directory_path() / ("notify_test_" + std::to_string(getpid()) + ".sock")).string();
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval timeout{5, 0};  // a message that never comes fails the test instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
    unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  std::string Receive() {
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? "(nothing received)" : std::string(buf, n);
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

TEST(ServiceNotifierTest, SendsReadyStatusWatchdogAndStopping) {
  NotifySocket systemd;
  ASSERT_TRUE(systemd.bound());
  FakeEnv env;
  ServiceNotifier notifier(&env);
  ASSERT_TRUE(notifier.enabled());
  notifier.Ready("started");
  EXPECT_EQ(systemd.Receive(), "READY=1\nSTATUS=started");
  notifier.Ping();
  EXPECT_EQ(systemd.Receive(), "WATCHDOG=1");
  notifier.Ping();                    // within the same second: not sent again
  notifier.Status("one\nMAINPID=1");  // a newline cannot smuggle in another assignment
  EXPECT_EQ(systemd.Receive(), "STATUS=one MAINPID=1");
  env.Advance(2 * kSecond);
  notifier.Ping();
  EXPECT_EQ(systemd.Receive(), "WATCHDOG=1");
  notifier.Stopping();
  EXPECT_EQ(systemd.Receive(), "STOPPING=1");
}

TEST(ServiceNotifierTest, DoesNothingWithoutNotifySocket) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  notifier.Ready("x");  // must not fail or block
  notifier.Ping();
}

}  // namespace
}  // namespace logferry
