#include "core/liveness.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace logferry {
namespace {

namespace fs = std::filesystem;

ProcessRow Row(const std::string& host, int64_t pid, int64_t heartbeat_us) {
  ProcessRow p;
  p.host = host;
  p.pid = pid;
  p.mode = "daemon";
  p.started_us = heartbeat_us;
  p.heartbeat_us = heartbeat_us;
  return p;
}

// A pid that certainly exited: a child reaped.
int64_t DeadPid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

TEST(LivenessTest, RunningNeedsARecentHeartbeatAndHereALivePid) {
  const int64_t now = 1'000'000'000'000;
  EXPECT_EQ(LivenessOf(Row(ThisHost(), getpid(), now - kProcessHeartbeatUs), now), Liveness::kRunning);
  EXPECT_EQ(LivenessOf(Row(ThisHost(), getpid(), now - kProcessStaleAfterUs - 1), now), Liveness::kGone);
  EXPECT_EQ(LivenessOf(Row(ThisHost(), DeadPid(), now), now), Liveness::kGone);
  // Elsewhere only the heartbeat can tell.
  EXPECT_EQ(LivenessOf(Row(ThisHost() + ".elsewhere", DeadPid(), now), now), Liveness::kRunning);
  EXPECT_EQ(LivenessOf(Row(ThisHost() + ".elsewhere", 1, now - kProcessStaleAfterUs - 1), now), Liveness::kGone);
  ProcessRow stopped = Row(ThisHost(), getpid(), now);
  stopped.stopped_us = now;
  EXPECT_EQ(LivenessOf(stopped, now), Liveness::kStopped);
}

TEST(LivenessTest, RecorderWritesStartPassesAndStop) {
  char tmpl[] = "/tmp/lf-liveness-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  {
    auto ledger = Ledger::Open(dir + "/ledger.db");
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    {
      ProcessRecorder recorder(ledger->get(), "once");
      auto rows = (*ledger)->Processes();
      ASSERT_TRUE(rows.ok());
      ASSERT_EQ(rows->size(), 1u);
      EXPECT_EQ((*rows)[0].pid, getpid());
      EXPECT_EQ((*rows)[0].host, ThisHost());
      EXPECT_EQ((*rows)[0].mode, "once");
      EXPECT_FALSE((*rows)[0].last_pass_started_us);
      EXPECT_EQ(LivenessOf((*rows)[0], Env::Default()->NowMicros()), Liveness::kRunning);
      recorder.PassStarted();
      recorder.PassEnded("ok; 1 object(s) and 0 partition(s) failing");
    }
    auto rows = (*ledger)->Processes();
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 1u);
    const ProcessRow& p = (*rows)[0];
    EXPECT_TRUE(p.last_pass_started_us);
    EXPECT_TRUE(p.last_pass_ended_us);
    EXPECT_EQ(p.last_outcome, "ok; 1 object(s) and 0 partition(s) failing");
    ASSERT_TRUE(p.stopped_us);
    EXPECT_EQ(LivenessOf(p, Env::Default()->NowMicros()), Liveness::kStopped);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace logferry
