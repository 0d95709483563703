// The core retry policy's delays: capped exponential backoff with half
// jitter. Bounds only, over many draws; nothing here waits: the waits go
// to a fake clock.
#include "common/retry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "support/fake_env.h"

namespace logferry {
namespace {

TEST(RetryPolicy, BackoffStaysWithinHalfJitterOfTheCappedExponential) {
  RetryPolicy p;
  p.initial_backoff_us = 100'000;
  p.max_backoff_us = 5'000'000;
  for (int failures = 1; failures <= 70; ++failures) {
    // d = min(max, initial * 2^(failures-1)); the draw is in [d/2, d].
    int64_t d = p.max_backoff_us;
    if (failures <= 6) d = std::min<int64_t>(p.max_backoff_us, p.initial_backoff_us << (failures - 1));
    std::set<int64_t> seen;
    for (int draw = 0; draw < 2000; ++draw) {
      int64_t b = p.Backoff(failures);
      ASSERT_GE(b, d / 2) << "failures " << failures;
      ASSERT_LE(b, d) << "failures " << failures;
      seen.insert(b);
    }
    // Jittered: 2000 draws from a range of 50,000+ values are not all alike.
    EXPECT_GT(seen.size(), 100u) << "failures " << failures;
  }
  // The cap holds from the first doubling that reaches it onward.
  EXPECT_LE(p.Backoff(7), p.max_backoff_us);
  EXPECT_GE(p.Backoff(7), p.max_backoff_us / 2);
}

TEST(RetryPolicy, CapBelowTheFirstDelayWinsAndHugeCountsDoNotOverflow) {
  RetryPolicy p;
  p.initial_backoff_us = 30'000'000;
  p.max_backoff_us = 1'000'000;
  for (int draw = 0; draw < 1000; ++draw) {
    int64_t b = p.Backoff(1 + draw % 5);
    ASSERT_GE(b, 500'000);
    ASSERT_LE(b, 1'000'000);
  }
  // The object-level policy: retry_max of 12 h, any number of failures.
  p.initial_backoff_us = 30'000'000;
  p.max_backoff_us = 12LL * 3600 * 1'000'000;
  for (int failures : {1, 10, 11, 12, 100, 1000, 1 << 30}) {
    int64_t b = p.Backoff(failures);
    ASSERT_GT(b, 0) << failures;
    ASSERT_LE(b, p.max_backoff_us) << failures;
  }
}

TEST(RetryPolicy, WithRetryStopsAtTheAttemptBudgetAndOnPermanentErrors) {
  testutil::FakeEnv env;
  RetryPolicy p;
  p.max_attempts = 4;
  p.initial_backoff_us = 1;
  p.max_backoff_us = 2;
  p.env = &env;
  int calls = 0;
  auto fails = [&](StatusCode code) {
    return [&calls, code]() -> StatusOr<int> {
      ++calls;
      return Status(code, "failed");
    };
  };
  EXPECT_EQ(WithRetry(p, fails(StatusCode::kUnavailable)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 4);
  calls = 0;
  EXPECT_EQ(WithRetry(p, fails(StatusCode::kPermissionDenied)).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(calls, 1);
  calls = 0;
  auto third_time = WithRetry(p, [&]() -> StatusOr<int> {
    if (++calls < 3) return Status::Unavailable("blip");
    return calls;
  });
  ASSERT_TRUE(third_time.ok());
  EXPECT_EQ(*third_time, 3);
}

// Backoff waits go through the policy's Env: six attempts (five backoffs of
// 1 s doubling to a 16 s cap) take no wall time, and the fake clock moves by
// exactly what was slept, each wait within its half-jitter bounds.
TEST(RetryPolicy, BackoffSleepsOnTheEnvClock) {
  testutil::FakeEnv env;
  RetryPolicy p;
  p.max_attempts = 6;
  p.initial_backoff_us = 1'000'000;
  p.max_backoff_us = 16'000'000;
  p.env = &env;
  int64_t start = env.NowMicros();
  int calls = 0;
  auto wall0 = std::chrono::steady_clock::now();
  auto result = WithRetry(p, [&]() -> StatusOr<int> {
    ++calls;
    return Status::Unavailable("still down");
  });
  auto wall = std::chrono::steady_clock::now() - wall0;
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 6);
  std::vector<int64_t> sleeps = env.sleeps();
  ASSERT_EQ(sleeps.size(), 5u);
  int64_t total = 0;
  for (size_t i = 0; i < sleeps.size(); ++i) {
    int64_t d = std::min<int64_t>(16'000'000, 1'000'000LL << i);
    EXPECT_GE(sleeps[i], d / 2) << "backoff " << i;
    EXPECT_LE(sleeps[i], d) << "backoff " << i;
    total += sleeps[i];
  }
  EXPECT_EQ(env.NowMicros() - start, total);
  EXPECT_GE(total, 15'500'000);  // (1 + 2 + 4 + 8 + 16) s, halved at worst
  EXPECT_LT(wall, std::chrono::seconds(1)) << "slept for real";
}

// A resumable operation scripted as a string, one letter an attempt:
// F a transient failure, P progress, S no progress (counts as a failure),
// X a permanent failure, D done. Past the script's end every attempt fails.
struct Scripted {
  std::string script;
  size_t calls = 0;
  int resumes = 0;
  Attempt Next() {
    char c = calls < script.size() ? script[calls] : 'F';
    ++calls;
    switch (c) {
      case 'P':
        return Attempt::Again(true);
      case 'S':
        return Attempt::Again(false);
      case 'X':
        return Attempt::Failed(Status::PermissionDenied("no"));
      case 'D':
        return Attempt::Done(Status::Ok());
      default:
        return Attempt::Failed(Status::Unavailable("blip"));
    }
  }
  Status Run(const RetryPolicy& p) {
    return WithResumableRetry(
        p, [&] { return Next(); },
        [&]() -> std::optional<Status> {
          ++resumes;
          return std::nullopt;
        });
  }
};

RetryPolicy FakeClockPolicy(testutil::FakeEnv* env) {
  RetryPolicy p;
  p.max_attempts = 4;
  p.initial_backoff_us = 1'000;
  p.max_backoff_us = 1'000'000;
  p.env = env;
  return p;
}

// Expects each sleep to be the backoff after the given number of failures.
void ExpectBackoffs(const RetryPolicy& p, const std::vector<int64_t>& sleeps, const std::vector<int>& failures) {
  ASSERT_EQ(sleeps.size(), failures.size());
  for (size_t i = 0; i < sleeps.size(); ++i) {
    int64_t d = p.initial_backoff_us << (failures[i] - 1);
    EXPECT_GE(sleeps[i], d / 2) << "sleep " << i;
    EXPECT_LE(sleeps[i], d) << "sleep " << i;
  }
}

// Progress starts the count over: three failures, progress, three more,
// progress, and only then four in a row exhaust max_attempts = 4. Each run
// of failures backs off from the first delay again, and every retried
// failure is followed by the resume step.
TEST(RetryPolicy, ResumableRetryProgressResetsTheAttemptCount) {
  testutil::FakeEnv env;
  RetryPolicy p = FakeClockPolicy(&env);
  Scripted op{"FFFPFFFPFFFF"};
  Status s = op.Run(p);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(op.calls, 12u);
  EXPECT_EQ(op.resumes, 9);
  ExpectBackoffs(p, env.sleeps(), {1, 2, 3, 1, 2, 3, 1, 2, 3});
}

// Without progress the bound holds: max_attempts attempts, then the last
// failure. An attempt that says "again" without progress counts and backs
// off like a failure, but is not followed by the resume step (it reported
// where things stand itself).
TEST(RetryPolicy, ResumableRetryIsBoundedWithoutProgress) {
  testutil::FakeEnv env;
  RetryPolicy p = FakeClockPolicy(&env);
  Scripted all_fail;
  EXPECT_EQ(all_fail.Run(p).code(), StatusCode::kUnavailable);
  EXPECT_EQ(all_fail.calls, 4u);
  EXPECT_EQ(all_fail.resumes, 3);
  ExpectBackoffs(p, env.sleeps(), {1, 2, 3});

  testutil::FakeEnv env2;
  p.env = &env2;
  Scripted stalled{"FSFF"};
  EXPECT_EQ(stalled.Run(p).code(), StatusCode::kUnavailable);
  EXPECT_EQ(stalled.calls, 4u);
  EXPECT_EQ(stalled.resumes, 2);
  ExpectBackoffs(p, env2.sleeps(), {1, 2, 3});
}

// A server that always answers "go on" without taking anything (a GCS 308
// with no progress) used to loop forever: now max_attempts such answers end
// the operation with the stalled status. The script is long but finite, so
// the test ends even if the bound breaks.
TEST(RetryPolicy, ResumableRetryGivesUpWhenAgainNeverProgresses) {
  testutil::FakeEnv env;
  RetryPolicy p = FakeClockPolicy(&env);
  int calls = 0;
  Status s = WithResumableRetry(
      p,
      [&] {
        ++calls;
        if (calls > 1000) return Attempt::Done(Status::Internal("unbounded"));
        return Attempt::Again(false, Status::Unavailable("308 without progress"));
      },
      []() -> std::optional<Status> { return Status::Internal("not asked"); });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "308 without progress");
  EXPECT_EQ(calls, 4);
  ExpectBackoffs(p, env.sleeps(), {1, 2, 3});
}

// Permanent failures and Done are returned at once, even a transient Done;
// a resume step that finishes the operation ends it.
TEST(RetryPolicy, ResumableRetryStopsOnPermanentDoneAndAFinishingResume) {
  testutil::FakeEnv env;
  RetryPolicy p = FakeClockPolicy(&env);
  Scripted permanent{"FX"};
  EXPECT_EQ(permanent.Run(p).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(permanent.calls, 2u);
  Scripted done{"FPD"};
  EXPECT_TRUE(done.Run(p).ok());
  EXPECT_EQ(done.calls, 3u);
  EXPECT_EQ(done.resumes, 1);

  int calls = 0;
  Status expired = WithResumableRetry(
      p,
      [&] {
        ++calls;
        return Attempt::Done(Status::Unavailable("session expired"));
      },
      []() -> std::optional<Status> { return Status::Internal("not asked"); });
  EXPECT_EQ(expired.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 1);

  calls = 0;
  int resumes = 0;
  Status resumed = WithResumableRetry(
      p,
      [&] {
        ++calls;
        return Attempt::Failed(Status::Unavailable("reset"));
      },
      [&]() -> std::optional<Status> {
        if (++resumes < 2) return std::nullopt;
        return Status::Ok();  // the server had it all
      });
  EXPECT_TRUE(resumed.ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(resumes, 2);
}

}  // namespace
}  // namespace logferry
