#include "core/pipeline.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "aws/credentials.h"
#include "aws/sqs.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"
#include "core/liveness.h"
#include "core/requests.h"
#include "core/stage.h"
#include "discovery/listing_discovery.h"
#include "discovery/sqs_discovery.h"
#include "format/normalizer.h"
#include "gcp/credentials.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

// Object/partition retry delay: capped exponential backoff with jitter,
// driven by how many attempts have failed so far.
int64_t NextAttempt(const TableConfig& cfg, int failures, int64_t now_us) {
  RetryPolicy p;
  p.initial_backoff_us = cfg.retry_base_us;
  p.max_backoff_us = std::max(cfg.retry_max_us, cfg.retry_base_us);
  return now_us + p.Backoff(std::max(1, failures));
}

// One request to a remote service: retried quickly, a few times, because a
// reset or a 503 is common and cheap to retry; the object-level backoff
// (retry_base/retry_max) takes over when this gives up.
RetryPolicy StoreRetryPolicy(Env* env) {
  RetryPolicy p;
  p.max_attempts = 6;
  p.initial_backoff_us = 100'000;
  p.max_backoff_us = 5'000'000;
  p.env = env;
  return p;
}

// Calls fn every every_us of env's monotonic clock, on a thread of its own,
// until destroyed. It waits in slices of at most kSliceUs of real time, so
// that a fake clock a test moves on is noticed soon, while stopping stays
// prompt (a condition variable, not a sleep).
class Heartbeat {
 public:
  Heartbeat(Env* env, int64_t every_us, std::function<void()> fn)
      : env_(env), every_us_(every_us), fn_(std::move(fn)), thread_([this] { Run(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  static constexpr int64_t kSliceUs = 100'000;

  void Run() {
    std::unique_lock lock(mu_);
    int64_t next = env_->MonotonicMicros() + every_us_;
    while (!stopped_) {
      int64_t left = next - env_->MonotonicMicros();
      if (left > 0) {
        cv_.wait_for(lock, std::chrono::microseconds(std::min(left, kSliceUs)));
        continue;
      }
      lock.unlock();
      fn_();
      lock.lock();
      next = env_->MonotonicMicros() + every_us_;
    }
  }

  Env* env_;
  int64_t every_us_;
  std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // guarded by mu_
  std::thread thread_;    // last: starts once the rest is ready
};

// How long a claim lasts (`lease`); a hand-made Config (tests) gets the default.
int64_t LeaseOf(const Config& config) {
  return config.lease_us > 0 ? config.lease_us : 120 * kMicrosPerSecond;
}

}  // namespace

std::shared_ptr<aws::CredentialsProvider> SharedAwsCredentials() {
  static const std::shared_ptr<aws::CredentialsProvider> chain = aws::MakeDefaultChain();
  return chain;
}

std::shared_ptr<gcp::TokenProvider> SharedGcpTokens(const std::string& credentials_file) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<gcp::TokenProvider>> providers;
  std::lock_guard lock(mu);
  auto& p = providers[credentials_file];
  if (!p) {
    gcp::TokenOptions o;
    o.key_file = credentials_file;
    p = gcp::MakeTokenProvider(o);
  }
  return p;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenTableStore(const std::string& uri, const StoreOptions& side,
                                                      const std::string& google_credentials, Env* env) {
  StoreOptions options = side;
  options.retry = StoreRetryPolicy(env);
  const SchemeInfo* scheme = Schemes().Claim(uri);
  CredentialKind needs = scheme ? scheme->credentials : CredentialKind::kNone;
  if (needs == CredentialKind::kAws) options.aws_credentials = SharedAwsCredentials();
  // An emulator standing in for the service gets no real credentials.
  bool emulated = scheme && scheme->emulated && scheme->emulated(options, google_credentials);
  if (needs == CredentialKind::kGoogle && !emulated) options.gcp_tokens = SharedGcpTokens(google_credentials);
  return OpenObjectStore(uri, options);
}

WarehouseOptions WarehouseOptionsFor(const Config& config, const TableConfig& tc, bool read_only, Env* env) {
  WarehouseOptions wo;
  wo.read_only = read_only;
  wo.lock_timeout_us = config.lock_timeout_us;
  wo.endpoint = tc.bigquery_endpoint;
  wo.location = tc.location;
  wo.clustering = tc.clustering;
  wo.partition_unit_us = tc.partition_unit_us;
  wo.max_uris_per_load = static_cast<size_t>(tc.max_uris_per_load);
  wo.daily_load_budget = tc.daily_load_budget;
  wo.retry = StoreRetryPolicy(env);
  const SchemeInfo* scheme = Schemes().Claim(tc.warehouse);
  if (scheme && scheme->credentials == CredentialKind::kGoogle) wo.gcp_tokens = SharedGcpTokens(tc.credentials);
  return wo;
}

Pipeline::Pipeline(const Config& config, Ledger* ledger, Env* env) : config_(config), ledger_(ledger), env_(env) {
  ProcessRow self;
  self.host = ThisHost();
  self.pid = getpid();
  self.started_us = env_->NowMicros();
  worker_ = self.worker_id();
}

// The partitions one load step claimed, released when it ends (a release
// that fails leaves the lease to lapse).
class Pipeline::PartitionLeases {
 public:
  PartitionLeases(Pipeline& pipeline, std::string table) : p_(pipeline), table_(std::move(table)) {}
  // A destructor must not throw: a release that cannot be made lapses.
  ~PartitionLeases() {
    try {
      for (int64_t partition_us : held_) {
        Status s = p_.ledger_->ReleasePartition(table_, partition_us, p_.worker_);
        if (!s.ok())
          log::Warn("releasing {} {} failed (its lease lapses): {}", table_, FormatHour(partition_us), s.ToString());
      }
    } catch (...) {
    }
  }
  PartitionLeases(const PartitionLeases&) = delete;
  PartitionLeases& operator=(const PartitionLeases&) = delete;

  // False when another worker holds the partition, or it needs no load any more.
  StatusOr<bool> Claim(int64_t partition_us) {
    int64_t now = p_.env_->NowMicros();
    LF_ASSIGN_OR_RETURN(bool mine,
                        p_.ledger_->ClaimPartition(table_, partition_us, p_.worker_, now, now + LeaseOf(p_.config_)));
    if (mine) held_.push_back(partition_us);
    return mine;
  }

 private:
  Pipeline& p_;
  std::string table_;
  std::vector<int64_t> held_;
};

std::string Pipeline::PartKey(const std::string& table, int64_t hour_us, const std::string& version_id) {
  std::string iso = FormatIso8601(hour_us);
  return table + "/dt=" + iso.substr(0, 10) + "/hr=" + iso.substr(11, 2) + "/" + version_id + ".ndjson.gz";
}

Status Pipeline::Init() {
  tables_.clear();
  tables_.reserve(config_.tables.size());
  for (const TableConfig& tc : config_.tables) {
    TableRuntime t;
    t.config = &tc;
    LF_ASSIGN_OR_RETURN(t.source, OpenTableStore(tc.source, tc.source_store, tc.credentials, env_));
    LF_ASSIGN_OR_RETURN(t.staging, OpenTableStore(tc.staging, tc.staging_store, tc.credentials, env_));
    LF_ASSIGN_OR_RETURN(KeyFormat kf, KeyFormat::Compile(tc.key_format, tc.time_slice_format, tc.zone));
    t.key_format = std::make_unique<KeyFormat>(std::move(kf));
    LF_ASSIGN_OR_RETURN(t.discovery, OpenDiscovery(t));
    LF_RETURN_IF_ERROR(ledger_->CheckTableSettings(tc.name, "partition=" + tc.partition + ",format=" + tc.format_name));
    LF_ASSIGN_OR_RETURN(t.schema, OpenTableSchema(*ledger_, tc));
    tables_.push_back(std::move(t));
  }
  return Status::Ok();
}

StatusOr<std::string> ProbeNotifications(const TableConfig& tc) {
  LF_ASSIGN_OR_RETURN(
      auto queue, aws::SqsQueue::Open(tc.notifications, tc.source_store.region, SharedAwsCredentials(), RetryPolicy{}));
  LF_ASSIGN_OR_RETURN(auto depth, queue->Depth());
  return std::to_string(depth.first) + " waiting, " + std::to_string(depth.second) + " in flight";
}

namespace {

// Why a table without notifications lists its whole source every pass;
// empty when passes list windows (discovery/listing_discovery.h).
std::string NoWindowReason(const TableConfig& tc, const KeyFormat& key_format) {
  if (tc.lookback_us <= 0) return "lookback = 0";
  if (tc.reconcile_every_us <= 0) return "reconcile_every = 0";
  return key_format.WindowBlocker();
}

ListingWindow ListingWindowFor(const TableConfig& tc, const KeyFormat* kf) {
  if (!tc.notifications.empty() || !NoWindowReason(tc, *kf).empty()) return {};
  ListingWindow w;
  w.lookback_us = tc.lookback_us;
  w.full_every_us = tc.reconcile_every_us;
  w.slice_of = [kf](std::string_view key) -> std::optional<std::pair<std::string, int64_t>> {
    auto m = kf->Match(key);
    if (!m || !m->time_slice_us) return std::nullopt;
    return std::pair(std::string(key.substr(0, m->time_slice_pos)), *m->time_slice_us);
  };
  w.start_after = [kf](std::string_view prefix, int64_t from_us, int64_t now_us) {
    return kf->WindowStart(prefix, from_us, now_us);
  };
  w.past = [kf](std::string_view prefix, std::string_view key, int64_t until_us) {
    return kf->PastWindow(prefix, key, until_us);
  };
  return w;
}

}  // namespace

// "3h", "90m", "45s": durations as a config would say them.
std::string ShortDuration(int64_t us) {
  for (auto [unit, name] : {std::pair{kMicrosPerHour, "h"}, {60 * kMicrosPerSecond, "m"}, {kMicrosPerSecond, "s"}})
    if (us % unit == 0) return std::to_string(us / unit) + name;
  return FormatDuration(us);
}

std::string DescribeDiscovery(const TableConfig& tc, const KeyFormat& key_format) {
  std::string every = tc.reconcile_every_us > 0 ? "every " + ShortDuration(tc.reconcile_every_us) : "every pass";
  if (!tc.notifications.empty()) return "notifications, full listing at start-up and " + every;
  std::string why = NoWindowReason(tc, key_format);
  if (!why.empty()) return "full listing every pass: " + why;
  return "windowed listing: lookback " + ShortDuration(tc.lookback_us) + ", full listing " + every;
}

// A table with `notifications` learns of objects from S3 events on that
// queue (config validation has checked that its source's scheme announces
// them), with a listing every reconcile_every as the safety net; any other
// table lists its source: the recent key ranges every pass where its
// key_format allows, and all of it at start-up and every reconcile_every.
StatusOr<std::unique_ptr<Discovery>> Pipeline::OpenDiscovery(const TableRuntime& t) {
  const TableConfig& tc = *t.config;
  const KeyFormat* key_format = t.key_format.get();
  DiscoveryContext context{tc.name, t.source.get(),
                           [key_format](std::string_view key) { return key_format->Match(key).has_value(); }, ledger_,
                           env_};
  auto listing = std::make_unique<ListingDiscovery>(context, ListingWindowFor(tc, key_format));
  if (tc.notifications.empty()) return std::unique_ptr<Discovery>(std::move(listing));
  SqsDiscoveryOptions sqs;
  sqs.queue_url = tc.notifications;
  sqs.region = tc.source_store.region;
  sqs.credentials = SharedAwsCredentials();
  sqs.retry = StoreRetryPolicy(env_);
  sqs.source_uri = tc.source;
  sqs.wait_us = tc.sqs_wait_us;
  sqs.visibility_us = tc.sqs_visibility_us;
  LF_ASSIGN_OR_RETURN(auto events, SqsDiscovery::Open(context, sqs));
  return WithReconcileListing(std::move(events), std::move(listing), tc.reconcile_every_us, context);
}

TableRuntime* Pipeline::table(const std::string& name) {
  for (TableRuntime& t : tables_)
    if (t.config->name == name) return &t;
  return nullptr;
}

StatusOr<int64_t> Pipeline::Discover(TableRuntime& t, PassStats* stats) {
  DiscoveryStats found;
  Status s = t.discovery->Poll(PollOptions{single_pass_}, &found);
  if (stats) {
    stats->messages_received += found.received;
    stats->full_listings += found.full_listings;
    stats->windowed_listings += found.windowed_listings;
  }
  if (!s.ok()) return s;
  return found.recorded;
}

Status Pipeline::Acknowledge(TableRuntime& t, PassStats* stats) {
  DiscoveryStats settled;
  Status s = t.discovery->Acknowledge(&settled);
  if (stats) {
    stats->messages_deleted += settled.acknowledged;
    stats->messages_in_flight = t.discovery->held();
  }
  return s;
}

namespace {

// A worker's one object: anything thrown below (std::stoll, a JSON get<>,
// bad_alloc) fails this object, not the process. *threw tells the worker to
// start over with a fresh normalizer: the thrown one may be half-way through
// a record.
StatusOr<StageOutcome> StageGuarded(TableRuntime& t, const ObjectRow& obj, RowNormalizer& norm, bool* threw) {
  *threw = true;
  try {
    auto outcome = StageObject(t, obj, norm);
    *threw = false;
    return outcome;
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory while staging");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("unexpected error while staging: ") + Excerpt(e.what(), 300));
  } catch (...) {
    return Status::Internal("unexpected error while staging (not a std::exception)");
  }
}

// An object whose every line is bad almost always means a wrong setting,
// not bad data: name the likely one.
void WarnEveryLineBad(const std::string& uri, const StagedObject& staged) {
  auto all = [&](std::string_view prefix) {
    return std::all_of(staged.bad_records.begin(), staged.bad_records.end(),
                       [&](const BadRecord& b) { return StartsWith(b.reason, prefix); });
  };
  const char* key = all("unparseable time") ? "time_format" : all("no '") ? "time_key" : "format";
  const BadRecord& first = staged.bad_records.front();
  log::Warn("{}: every line ({}) is a bad record; check `{}` (line {}: {})", uri, staged.bad_total, key, first.line,
            first.reason);
}

}  // namespace

// What the workers of one Stage step share.
struct Pipeline::StageRun {
  std::vector<ObjectRow> due;
  int64_t started_us = 0;  // env's monotonic clock
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0}, failed{0}, rows{0}, bad{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex commit_mu;  // schema records and the commit that relies on them go together
  std::mutex fatal_mu;
  Status fatal;  // guarded by fatal_mu

  void Fatal(Status s) {
    std::lock_guard lock(fatal_mu);
    fatal = std::move(s);
  }
};

// How many objects a staging thread claims at a time. Workers sharing a
// ledger share a backlog claim by claim, and a pass ends when its last claim
// is staged: a claim of 8 large objects per thread left one of two workers
// staging 16 of 24 while the other had finished (1.5x, not 2x). So a claim
// holds about kBytes of source, sized from the objects claimed before (the
// first claim takes one): one ledger transaction per ~60 ms of staging
// (gzip out_file, one core); small objects claim a commit group's worth.
class Pipeline::ClaimSize {
 public:
  static constexpr uint64_t kBytes = 2 << 20;
  static constexpr int64_t kMaxObjects = 64;  // CommitGroup::kMaxObjects: one commit per claim

  int64_t PerThread() const { return per_thread_; }
  void Claimed(const std::vector<ObjectRow>& objects) {
    if (objects.empty()) return;
    uint64_t bytes = 0;
    for (const ObjectRow& o : objects) bytes += o.size;
    uint64_t mean = std::max<uint64_t>(1, bytes / objects.size());
    per_thread_ = static_cast<int64_t>(std::clamp<uint64_t>(kBytes / mean, 1, kMaxObjects));
  }

 private:
  int64_t per_thread_ = 1;
};

Status Pipeline::StageAndExtend(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats) {
  int64_t every_us = t.discovery->extend_every_us();
  if (every_us <= 0) return Stage(t, stop, stats);
  // Held notifications stay invisible for as long as staging takes.
  Heartbeat heartbeat(env_, every_us, [&t] { t.discovery->Extend(); });
  return Stage(t, stop, stats);
}

Status Pipeline::Stage(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats) {
  Heartbeat keeper(env_, LeaseOf(config_) / 4, [this] { RenewLeases(); });
  Status s;
  std::set<int64_t> tried;  // each object once per step, as before batches: a failure waits for its backoff
  ClaimSize claim;
  while (!stop.load()) {
    auto staged = StageBatch(t, stop, stats, &tried, &claim);
    s = staged.status();
    if (!s.ok() || *staged == 0) break;
  }
  // Claims not worked on (a stop, a failed commit) go back at once.
  Status released = ledger_->ReleaseLeases(worker_);
  if (!released.ok()) log::Warn("releasing this worker's leases failed (they lapse): {}", released.ToString());
  return s;
}

StatusOr<size_t> Pipeline::StageBatch(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
                                      std::set<int64_t>* tried, ClaimSize* claim) {
  StageRun run;
  int64_t now = env_->NowMicros();
  // A claim returns this worker's own leases too, which may all be objects
  // tried in this step already (a failed commit): then look past them.
  for (int64_t limit = claim->PerThread() * std::max(1, config_.workers);; limit *= 2) {
    LF_ASSIGN_OR_RETURN(run.due, ledger_->ClaimObjects(t.config->name, worker_, now, now + LeaseOf(config_), limit));
    bool more = static_cast<int64_t>(run.due.size()) == limit;
    claim->Claimed(run.due);
    std::erase_if(run.due, [&](const ObjectRow& o) { return !tried->insert(o.id).second; });
    if (!run.due.empty() || !more) break;
  }
  if (run.due.empty()) return 0;
  run.started_us = env_->MonotonicMicros();
  std::vector<ObjectVersion> versions;
  for (const ObjectRow& obj : run.due) versions.emplace_back(obj.key, obj.etag);
  t.discovery->BeginStaging(versions);
  RunStageWorkers(t, run, stop);
  t.discovery->EndStaging();
  stats->staged_objects += run.done;
  stats->failed_objects += run.failed;
  stats->rows_staged += run.rows;
  stats->bad_records += run.bad;
  stats->bytes_read += run.bytes;
  stats->stage_seconds += static_cast<double>(env_->MonotonicMicros() - run.started_us) / kMicrosPerSecond;
  if (!run.fatal.ok()) return run.fatal;
  return run.due.size();
}

void Pipeline::RenewLeases() {
  Status s = ledger_->RenewLeases(worker_, env_->NowMicros() + LeaseOf(config_));
  if (!s.ok()) log::Warn("renewing this worker's leases failed (retried): {}", s.ToString());
}

void Pipeline::FreeLeasesOfGoneLocalWorkers() {
  auto leases = ledger_->Leases(env_->NowMicros());
  if (!leases.ok() || leases->empty()) return;  // nothing to free, or the leases lapse
  auto processes = ledger_->Processes();
  if (!processes.ok()) return;
  std::set<std::string> holders;
  for (const LeaseRow& l : *leases) holders.insert(l.worker);
  const std::string host = ThisHost();
  for (const ProcessRow& p : *processes) {
    std::string id = p.worker_id();
    if (p.host != host || id == worker_ || !holders.count(id)) continue;
    bool gone = p.stopped_us || (kill(static_cast<pid_t>(p.pid), 0) != 0 && errno == ESRCH);
    if (!gone) continue;
    log::Info("freeing the leases of worker {}: its process is gone", id);
    Status s = ledger_->ReleaseLeases(id);
    if (!s.ok()) log::Warn("freeing the leases of {} failed (they lapse): {}", id, s.ToString());
  }
}

void Pipeline::RunStageWorkers(TableRuntime& t, StageRun& run, const std::atomic<bool>& stop) {
  // Past StageGuarded only the ledger and the schema run; should they throw,
  // the pass reports it instead of the process ending.
  auto worker = [&] {
    try {
      StageWorker(t, run, stop);
    } catch (const std::exception& e) {
      run.Fatal(Status::Internal(std::string("staging worker stopped: ") + Excerpt(e.what(), 300)));
    }
  };
  int n = std::max(1, std::min<int>(config_.workers, static_cast<int>(run.due.size())));
  std::vector<std::thread> threads;
  for (int i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& th : threads) th.join();
}

// Objects a worker has staged and not yet committed: small objects commit
// together, one ledger transaction (and one sync) for the group instead of
// one each. Bounded in objects, parts, kept bad records and source bytes;
// and in time, so that a slow object does not hold finished ones back long.
struct Pipeline::CommitGroup {
  static constexpr size_t kMaxObjects = 64;
  static constexpr size_t kMaxParts = 1024;
  static constexpr size_t kMaxBadRecords = kMaxStoredBadRecords;
  static constexpr uint64_t kMaxSourceBytes = 16 << 20;
  static constexpr uint64_t kLargeObjectBytes = 1 << 20;  // commits without waiting for others
  static constexpr int64_t kMaxAgeUs = 1'000'000;

  std::vector<const ObjectRow*> objects;
  std::vector<StageOutcome> outcomes;
  size_t parts = 0, bad_records = 0;
  uint64_t source_bytes = 0;
  int64_t first_us = 0;  // monotonic clock, when the oldest was staged

  void Add(const ObjectRow& obj, StageOutcome outcome, int64_t now_us) {
    if (objects.empty()) first_us = now_us;
    parts += outcome.staged.parts.size();
    bad_records += outcome.staged.bad_records.size();
    source_bytes += obj.size;
    objects.push_back(&obj);
    outcomes.push_back(std::move(outcome));
  }
  // Whether to commit before staging `next` (nullptr: no object follows).
  bool Due(const ObjectRow* next, int64_t now_us) const {
    if (objects.empty()) return false;
    return next == nullptr || next->size >= kLargeObjectBytes || objects.size() >= kMaxObjects || parts >= kMaxParts ||
           bad_records >= kMaxBadRecords || source_bytes >= kMaxSourceBytes || now_us - first_us >= kMaxAgeUs;
  }
  void Clear() {
    objects.clear();
    outcomes.clear();
    parts = bad_records = 0;
    source_bytes = 0;
  }
};

void Pipeline::StageWorker(TableRuntime& t, StageRun& run, const std::atomic<bool>& stop) {
  const TableConfig& cfg = *t.config;
  auto norm = std::make_unique<RowNormalizer>(t.schema.get(), cfg.format, cfg.lineage);
  CommitGroup group;
  for (;;) {
    size_t i = stop.load() ? run.due.size() : run.next.fetch_add(1);
    const ObjectRow* next = i < run.due.size() ? &run.due[i] : nullptr;
    if (group.Due(next, env_->MonotonicMicros())) CommitGroupNow(t, run, group);
    if (next == nullptr) return;
    const ObjectRow& obj = *next;
    LogScope scope(cfg.name, t.source->UriOf(obj.key));
    // Once per pass: the stores have retried each request already, and a
    // transient failure that outlasted them waits for the object's backoff.
    bool threw = false;
    auto outcome = StageGuarded(t, obj, *norm, &threw);
    if (threw) norm = std::make_unique<RowNormalizer>(t.schema.get(), cfg.format, cfg.lineage);
    if (outcome.ok()) {
      group.Add(obj, std::move(*outcome), env_->MonotonicMicros());
      continue;
    }
    FailObject(t, run, obj, outcome.status());
    t.discovery->FinishedStaging({obj.key, obj.etag});
  }
}

void Pipeline::FailObject(TableRuntime& t, StageRun& run, const ObjectRow& obj, const Status& failure) {
  std::string error = t.source->UriOf(obj.key) + ": " + failure.ToString();
  log::Warn("staging failed: {}", error);
  Status s = ledger_->MarkFailed(obj.id, error, NextAttempt(*t.config, obj.attempts + 1, env_->NowMicros()));
  if (!s.ok()) run.Fatal(s);
  ++run.failed;
}

namespace {

Status SyncPartNames(TableRuntime& t, const std::vector<StageOutcome>& outcomes) {
  std::vector<std::string> keys;
  for (const StageOutcome& o : outcomes)
    for (const PartRow& p : o.staged.parts) keys.push_back(p.key);
  return t.staging->SyncWritten(keys);
}

}  // namespace

// The columns the parts rely on go with the group; put back for the next
// commit when no object of it committed.
void Pipeline::CommitGroupNow(TableRuntime& t, StageRun& run, CommitGroup& group) {
  // The parts (bytes and names) are made durable before the ledger says they exist.
  if (Status synced = SyncPartNames(t, group.outcomes); !synced.ok()) {
    for (const ObjectRow* obj : group.objects) {
      FailObject(t, run, *obj, synced);
      t.discovery->FinishedStaging({obj->key, obj->etag});
    }
    group.Clear();
    return;
  }
  std::vector<StagedObject> staged;
  staged.reserve(group.outcomes.size());
  for (StageOutcome& o : group.outcomes) staged.push_back(std::move(o.staged));
  StatusOr<std::vector<Status>> results = Status::Internal("not committed");
  {
    std::lock_guard lock(run.commit_mu);
    std::vector<Column*> taken;
    std::vector<ColumnRecord> columns = t.schema->TakeUnpersisted(&taken);
    results = ledger_->CommitStagedGroup(columns, staged, env_->NowMicros());
    bool any = results.ok() && std::any_of(results->begin(), results->end(), [](const Status& s) { return s.ok(); });
    if (!any) t.schema->Requeue(taken);
  }
  for (size_t i = 0; i < staged.size(); ++i) {
    const ObjectRow& obj = *group.objects[i];
    Status s = results.ok() ? (*results)[i] : results.status();
    group.outcomes[i].staged = std::move(staged[i]);
    if (s.ok()) {
      ReportCommitted(t, run, obj, group.outcomes[i]);
    } else {
      LogScope scope(t.config->name, t.source->UriOf(obj.key));
      log::Error("ledger commit for {} failed: {}", t.source->UriOf(obj.key), s.ToString());
      run.Fatal(s);
      ++run.failed;
    }
    t.discovery->FinishedStaging({obj.key, obj.etag});
  }
  group.Clear();
}

void Pipeline::ReportCommitted(TableRuntime& t, StageRun& run, const ObjectRow& obj, const StageOutcome& o) {
  std::optional<LogScope> scope;
  if (o.staged.bad_total > 0 || o.staged.warnings > 0) scope.emplace(t.config->name, t.source->UriOf(obj.key));
  if (o.staged.bad_total > 0)
    log::Warn(
        "{}: {} bad record(s); first at line {}: {}{}", t.source->UriOf(obj.key), o.staged.bad_total,
        o.staged.bad_records.front().line, o.staged.bad_records.front().reason,
        o.staged.bad_records.front().field.empty() ? "" : " (field '" + o.staged.bad_records.front().field + "')");
  if (o.staged.rows_staged == 0 && o.staged.bad_total > 0) WarnEveryLineBad(t.source->UriOf(obj.key), o.staged);
  if (o.staged.warnings > 0)
    log::Info("{}: {} value(s) repaired or rewritten; latest: {}", t.source->UriOf(obj.key), o.staged.warnings,
              o.staged.warning);
  ++run.done;
  run.rows += o.staged.rows_staged;
  run.bad += o.staged.bad_total;
  run.bytes += o.bytes_uncompressed;
  if (progress_) ReportProgress(t, run);
}

void Pipeline::ReportProgress(const TableRuntime& t, const StageRun& run) {
  double secs = static_cast<double>(env_->MonotonicMicros() - run.started_us) / kMicrosPerSecond;
  uint64_t bytes = run.bytes.load();
  char line[256];
  snprintf(line, sizeof line, "[%s] staged %lld/%zu objects, %s, %.0f MB/s", t.config->name.c_str(),
           static_cast<long long>(run.done.load()) + run.failed.load(), run.due.size(), HumanBytes(bytes).c_str(),
           secs > 0 ? bytes / 1e6 / secs : 0.0);
  progress_(line);
}

Status Pipeline::ProcessRequests(TableRuntime& t) {
  return RequestInbox(config_, *t.config, *t.staging, *ledger_).FileAll().status().WithContext("listing requests");
}

Status Pipeline::FinishRequests(TableRuntime& t) {
  LF_ASSIGN_OR_RETURN(auto queued, ledger_->Requests(t.config->name, "queued"));
  if (queued.empty()) return Status::Ok();
  LF_ASSIGN_OR_RETURN(auto parts, ledger_->Partitions(t.config->name));
  int64_t now = env_->NowMicros();
  for (const RequestRow& r : queued) {
    int64_t loaded = 0, waiting = 0;
    std::string errors;
    for (const PartitionRow& p : parts) {
      if (p.partition_us >= r.to_us || p.partition_us + t.config->partition_unit_us <= r.from_us) continue;
      if (p.requested) {
        ++waiting;
        if (!p.last_error.empty()) errors = p.last_error;
      } else if (p.loaded_us && *p.loaded_us >= r.created_us) {
        ++loaded;
      }
    }
    if (waiting > 0) {
      if (!errors.empty())
        LF_RETURN_IF_ERROR(
            ledger_->FinishRequest(r.id, "queued", std::to_string(waiting) + " partition(s) failing: " + errors, now));
      continue;
    }
    LF_RETURN_IF_ERROR(ledger_->FinishRequest(r.id, "done", std::to_string(loaded) + " partition(s) loaded", now));
  }
  return Status::Ok();
}

namespace {

// The ledger's record of one table's load jobs, as a warehouse with a job
// budget reads it.
class LedgerJobLog final : public LoadJobLog {
 public:
  LedgerJobLog(Ledger& ledger, std::string table) : ledger_(ledger), table_(std::move(table)) {}
  StatusOr<Recent> SentInLastDay(int64_t now_us) override {
    LF_ASSIGN_OR_RETURN(TableCounts counts, ledger_.Counts(table_, now_us));
    return Recent{counts.load_jobs_24h, counts.oldest_load_job_24h_us};
  }
  StatusOr<bool> WasSent(const std::string& job_id) override { return ledger_.LoadJobKnown(job_id); }

 private:
  Ledger& ledger_;
  std::string table_;
};

// The ledger's name for the job that loads these partitions: the one load's
// own id, or the merged id of several.
std::string JobIdOf(const std::vector<LoadPlan>& plans) {
  return plans.size() == 1 ? plans[0].load_id : Ledger::MergedLoadId(plans);
}

// What the warehouse reads of a ledger snapshot.
PartitionLoad ToPartitionLoad(const LoadPlan& plan) {
  PartitionLoad load{plan.table, plan.partition_us, plan.load_id, {}, plan.expected_rows, plan.generation};
  load.parts.reserve(plan.parts.size());
  for (const PartRow& p : plan.parts) load.parts.push_back({p.key, p.rows, p.crc32c, p.columns});
  return load;
}

// Whether the warehouse holds the job back (then it and the `waiting`
// partitions counted from it wait for a later pass).
StatusOr<bool> HeldBack(Warehouse& wh, LoadJobLog& jobs, const std::string& table, const std::string& job_id,
                        size_t waiting, int64_t now_us) {
  LF_ASSIGN_OR_RETURN(std::optional<std::string> why, wh.WhyWait(job_id, waiting, jobs, now_us));
  if (why) log::Warn("{}: {}", table, *why);
  return why.has_value();
}

// The partitions due, in the jobs the warehouse groups them into.
StatusOr<std::vector<std::vector<PartitionRow>>> GroupIntoJobs(Warehouse& wh, LoadJobLog& jobs,
                                                               const std::string& table,
                                                               const std::vector<PartitionRow>& due, int64_t now) {
  // A partition whose last load failed goes alone, so that a lasting
  // failure cannot keep the partitions grouped with it from loading.
  std::vector<int64_t> starts;
  std::vector<std::vector<int64_t>> alone;
  std::map<int64_t, const PartitionRow*> by_start;
  for (const PartitionRow& p : due) {
    (p.attempts > 0 ? alone.emplace_back() : starts).push_back(p.partition_us);
    by_start[p.partition_us] = &p;
  }
  LF_ASSIGN_OR_RETURN(JobGroups groups, wh.GroupIntoJobs(starts, jobs, now));
  groups.jobs.insert(groups.jobs.end(), alone.begin(), alone.end());
  if (!groups.why.empty()) log::Info("{}: {}", table, groups.why);
  std::vector<std::vector<PartitionRow>> batches;
  for (const std::vector<int64_t>& group : groups.jobs) {
    std::vector<PartitionRow>& batch = batches.emplace_back();
    for (int64_t partition_us : group) {
      auto it = by_start.find(partition_us);
      if (it == by_start.end()) return Status::Internal("the warehouse grouped a partition that is not due");
      batch.push_back(*it->second);
    }
  }
  return batches;
}

// A finish the ledger refused because this worker lost the partition while
// its load ran (stopped, or cut off from the ledger, for longer than
// `lease`, and another worker took the partition over): the ledger marked
// the partition to be replaced again, and the step goes on.
bool WarnIfLapsed(const Status& recorded) {
  if (recorded.code() != StatusCode::kFailedPrecondition) return false;
  log::Warn("{}", recorded.message());
  return true;
}

}  // namespace

// plan → budget → replace → record: the core plans which partitions are due
// (with their staged parts, from the ledger); the warehouse groups them into
// jobs and may hold a job back (BigQuery's daily job budget); each job
// replaces its partitions; the ledger records each partition's outcome.
Status Pipeline::Load(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
                      std::optional<std::pair<int64_t, int64_t>> range) {
  const TableConfig& cfg = *t.config;
  LF_ASSIGN_OR_RETURN(auto due,
                      ledger_->DuePartitions(cfg.name, cfg.partition_unit_us, cfg.settle_us, env_->NowMicros()));
  if (range) {
    std::erase_if(due, [&](const PartitionRow& p) {
      return p.partition_us >= range->second || p.partition_us + cfg.partition_unit_us <= range->first;
    });
  }
  std::vector<PartitionRow> open;
  if (!range && cfg.fresh_interval_us) {
    LF_ASSIGN_OR_RETURN(open, ledger_->OpenPartitions(cfg.name, cfg.partition_unit_us, cfg.settle_us,
                                                      *cfg.fresh_interval_us, env_->NowMicros()));
  }
  if (due.empty() && open.empty()) return Status::Ok();
  Heartbeat keeper(env_, LeaseOf(config_) / 4, [this] { RenewLeases(); });
  // Holding the warehouse open across snapshot → replace → record makes the
  // three one unit with respect to other processes loading the same table.
  LF_ASSIGN_OR_RETURN(auto wh, OpenWarehouseForLoad(t, due, stats));
  if (!wh) return Status::Ok();  // the due partitions failed with the reason
  LedgerJobLog jobs(*ledger_, cfg.name);
  LF_RETURN_IF_ERROR(SettleAppends(t, *wh, due, stats));
  LF_RETURN_IF_ERROR(LoadDue(t, *wh, jobs, due, stop, stats));
  if (wh->CanAppend()) LF_RETURN_IF_ERROR(AppendOpen(t, *wh, jobs, open, stop, stats));
  return Status::Ok();
}

Status Pipeline::LoadDue(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const std::vector<PartitionRow>& due,
                         const std::atomic<bool>& stop, PassStats* stats) {
  if (due.empty()) return Status::Ok();
  const TableConfig& cfg = *t.config;
  LF_ASSIGN_OR_RETURN(auto batches, GroupIntoJobs(wh, jobs, cfg.name, due, env_->NowMicros()));
  size_t waiting = 0;
  for (const auto& batch : batches) waiting += batch.size();
  for (const std::vector<PartitionRow>& batch : batches) {
    if (stop.load()) break;
    LF_ASSIGN_OR_RETURN(bool sent, LoadJob(t, wh, jobs, batch, waiting, stats));
    if (!sent) break;  // held back by the warehouse, and every job after it too
    waiting -= batch.size();
  }
  return Status::Ok();
}

// Appends still in flight for partitions about to be replaced run first
// (under their own ids, so nothing is applied twice): a warehouse whose
// jobs outlive the process must not finish an append after the replace.
Status Pipeline::SettleAppends(TableRuntime& t, Warehouse& wh, const std::vector<PartitionRow>& due, PassStats* stats) {
  if (!wh.CanAppend()) return Status::Ok();
  for (const PartitionRow& p : due) {
    PartitionLeases lease(*this, t.config->name);
    LF_ASSIGN_OR_RETURN(bool mine, lease.Claim(p.partition_us));
    if (!mine) continue;  // another worker settles it
    LF_ASSIGN_OR_RETURN(AppendPlan plan,
                        ledger_->BeginAppend(t.config->name, p.partition_us, env_->NowMicros(), /*resume_only=*/true));
    if (plan.kind == AppendPlan::Kind::kAppend) LF_RETURN_IF_ERROR(RunAppend(t, wh, plan, stats));
  }
  return Status::Ok();
}

// Open partitions take their new parts as appends, within the spacing the
// warehouse allows (BigQuery's job budget); a partition whose warehouse
// rows no longer match its live parts (a rewritten object) is replaced.
Status Pipeline::AppendOpen(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const std::vector<PartitionRow>& open,
                            const std::atomic<bool>& stop, PassStats* stats) {
  const TableConfig& cfg = *t.config;
  for (const PartitionRow& p : open) {
    if (stop.load()) break;
    int64_t now = env_->NowMicros();
    LF_ASSIGN_OR_RETURN(std::optional<int64_t> spacing, wh.AppendSpacing(jobs, now));
    if (!spacing) break;  // no budget for appends now: the partitions load when due
    if (p.last_append_us && *p.last_append_us + *spacing > now) continue;
    PartitionLeases lease(*this, cfg.name);
    LF_ASSIGN_OR_RETURN(bool mine, lease.Claim(p.partition_us));
    if (!mine) continue;  // another worker appends to it
    LF_RETURN_IF_ERROR(AppendNewParts(t, wh, jobs, p, stats));
  }
  return Status::Ok();
}

// A resumed append (a run stopped while it was in flight) carries only its
// own parts, so the parts staged since follow in a second one at once.
Status Pipeline::AppendNewParts(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const PartitionRow& p,
                                PassStats* stats) {
  for (int round = 0; round < 2; ++round) {
    LF_ASSIGN_OR_RETURN(AppendPlan plan,
                        ledger_->BeginAppend(t.config->name, p.partition_us, env_->NowMicros(), false));
    if (plan.kind == AppendPlan::Kind::kReplace) return LoadJob(t, wh, jobs, {p}, 1, stats).status();
    if (plan.kind != AppendPlan::Kind::kAppend) return Status::Ok();
    LF_RETURN_IF_ERROR(RunAppend(t, wh, plan, stats));
    if (!plan.resumed) return Status::Ok();
  }
  return Status::Ok();
}

// Sends one append and records its outcome. An unknown outcome
// (kUnavailable) leaves it in flight, to be resumed under the same id.
Status Pipeline::RunAppend(TableRuntime& t, Warehouse& wh, const AppendPlan& plan, PassStats* stats) {
  const TableConfig& cfg = *t.config;
  int64_t now = env_->NowMicros();
  LoadPlan job{.table = plan.table,
               .partition_us = plan.partition_us,
               .generation = plan.generation,
               .load_id = plan.load_id,
               .parts = plan.parts};
  Status checked = CheckStagedParts(t, job);
  if (checked.ok()) checked = ledger_->RecordLoadJob({job}, plan.load_id, now);
  PartitionLoad load = ToPartitionLoad(job);
  load.expected_rows = plan.expected_rows;
  StatusOr<int64_t> rows = checked.ok() ? wh.AppendToPartition(load, cfg.partition_unit_us, *t.staging, *t.schema)
                                        : StatusOr<int64_t>(checked);
  now = env_->NowMicros();
  if (rows.ok()) {
    Status recorded = ledger_->FinishAppend(plan, *rows, now);
    if (WarnIfLapsed(recorded)) return Status::Ok();
    LF_RETURN_IF_ERROR(recorded);
    ++stats->partitions_appended;
    log::Debug("appended {} part(s) to {} {} ({} rows now, job {})", plan.parts.size(), cfg.name,
               FormatHour(plan.partition_us), *rows, plan.load_id);
    if (*rows != plan.expected_rows)
      log::Warn("{} {}: {} rows after an append, the ledger expects {}; the partition will be replaced", cfg.name,
                FormatHour(plan.partition_us), *rows, plan.expected_rows);
    return Status::Ok();
  }
  log::Warn("append to {} {} failed: {}", cfg.name, FormatHour(plan.partition_us), rows.status().ToString());
  if (rows.status().code() == StatusCode::kUnavailable) return Status::Ok();
  return ledger_->FailAppend(plan, rows.status().ToString(), now);
}

// A warehouse that cannot be opened, or whose table cannot be set up, fails
// every due partition with that error: status shows it, and they back off
// like any failed load instead of the pass failing alike every interval.
// nullptr then; an error only when the ledger cannot record it.
StatusOr<std::unique_ptr<Warehouse>> Pipeline::OpenWarehouseForLoad(TableRuntime& t,
                                                                    const std::vector<PartitionRow>& due,
                                                                    PassStats* stats) {
  const TableConfig& cfg = *t.config;
  auto wh = OpenWarehouse(cfg.warehouse, WarehouseOptionsFor(config_, cfg, /*read_only=*/false, env_));
  Status s = wh.status();
  if (s.ok()) s = (*wh)->EnsureTable(cfg.name, *t.schema);
  if (s.ok()) return std::move(*wh);
  std::string error = "warehouse " + cfg.warehouse + ": " + s.ToString();
  int64_t now = env_->NowMicros();
  int64_t next = INT64_MAX;
  for (const PartitionRow& p : due) {
    LoadPlan never_begun{cfg.name, p.partition_us};  // no load row: nothing was sent
    int64_t retry_us = NextAttempt(cfg, p.attempts + 1, now);
    next = std::min(next, retry_us);
    LF_RETURN_IF_ERROR(ledger_->FailLoad(never_begun, error, retry_us, now));
    ++stats->partitions_failed;
  }
  log::Warn("{}: {} partition(s) cannot load, retried from {}: {}", cfg.name, due.size(), FormatIso8601(next), error);
  return std::unique_ptr<Warehouse>();
}

// One job: false when the warehouse holds it back.
StatusOr<bool> Pipeline::LoadJob(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs,
                                 const std::vector<PartitionRow>& batch, size_t waiting, PassStats* stats) {
  const TableConfig& cfg = *t.config;
  int64_t now = env_->NowMicros();
  std::vector<LoadPlan> plans;
  std::vector<int> attempts;
  PartitionLeases leases(*this, cfg.name);
  for (const PartitionRow& p : batch) {
    LF_ASSIGN_OR_RETURN(bool mine, leases.Claim(p.partition_us));
    if (!mine) continue;  // another worker loads it, or has loaded it since `due` was read
    LF_ASSIGN_OR_RETURN(LoadPlan plan, ledger_->BeginLoad(cfg.name, p.partition_us, now));
    plans.push_back(std::move(plan));
    attempts.push_back(p.attempts);
  }
  if (plans.empty()) return true;
  LF_ASSIGN_OR_RETURN(bool held, HeldBack(wh, jobs, cfg.name, JobIdOf(plans), waiting, now));
  if (held) return false;
  size_t planned = plans.size();
  LF_RETURN_IF_ERROR(DropPlansWithDamagedParts(t, &plans, &attempts, now, stats));
  if (plans.empty()) return true;
  std::string job_id = JobIdOf(plans);
  if (plans.size() != planned) {
    LF_ASSIGN_OR_RETURN(held, HeldBack(wh, jobs, cfg.name, job_id, waiting, now));
    if (held) return false;
  }
  // Counted before it is sent: a crash after this line may have started
  // the job, and BigQuery counts it whether or not we see it finish.
  LF_RETURN_IF_ERROR(ledger_->RecordLoadJob(plans, job_id, now));
  std::vector<PartitionLoad> loads;
  for (const LoadPlan& plan : plans) loads.push_back(ToPartitionLoad(plan));
  auto replaced = wh.ReplacePartitions(job_id, loads, cfg.partition_unit_us, *t.staging, *t.schema);
  LF_RETURN_IF_ERROR(RecordLoads(t, plans, attempts, replaced, job_id, stats));
  return true;
}

// A partition with a missing or damaged part leaves the job (its object is
// staged again) instead of holding the others back.
Status Pipeline::DropPlansWithDamagedParts(TableRuntime& t, std::vector<LoadPlan>* plans, std::vector<int>* attempts,
                                           int64_t now, PassStats* stats) {
  std::vector<LoadPlan> ready;
  std::vector<int> ready_attempts;
  for (size_t i = 0; i < plans->size(); ++i) {
    const LoadPlan& plan = (*plans)[i];
    Status checked = CheckStagedParts(t, plan);
    if (checked.ok()) {
      ready.push_back(plan);
      ready_attempts.push_back((*attempts)[i]);
      continue;
    }
    log::Warn("load of {} {} failed: {}", t.config->name, FormatHour(plan.partition_us), checked.ToString());
    LF_RETURN_IF_ERROR(
        ledger_->FailLoad(plan, checked.ToString(), NextAttempt(*t.config, (*attempts)[i] + 1, now), now));
    ++stats->partitions_failed;
  }
  *plans = std::move(ready);
  *attempts = std::move(ready_attempts);
  return Status::Ok();
}

// Each partition is loaded when the job succeeded and the warehouse's count
// matches the ledger's; otherwise it fails and backs off.
Status Pipeline::RecordLoads(TableRuntime& t, const std::vector<LoadPlan>& plans, const std::vector<int>& attempts,
                             const StatusOr<std::map<int64_t, int64_t>>& replaced, const std::string& job_id,
                             PassStats* stats) {
  const TableConfig& cfg = *t.config;
  int64_t now = env_->NowMicros();
  for (size_t i = 0; i < plans.size(); ++i) {
    const LoadPlan& plan = plans[i];
    Status ps = replaced.status();
    int64_t n = -1;
    if (ps.ok() && replaced->count(plan.partition_us)) n = replaced->at(plan.partition_us);
    if (ps.ok() && n != plan.expected_rows)
      ps = Status::Internal("partition " + FormatHour(plan.partition_us) + " holds " + std::to_string(n) +
                            " rows after the load but the ledger expects " + std::to_string(plan.expected_rows));
    if (ps.ok()) {
      Status recorded = ledger_->FinishLoad(plan, n, now);
      if (WarnIfLapsed(recorded)) continue;
      LF_RETURN_IF_ERROR(recorded);
      ++stats->partitions_loaded;
      log::Debug("loaded {} {} ({} rows, {} parts, job {})", cfg.name, FormatHour(plan.partition_us), n,
                 plan.parts.size(), job_id);
    } else {
      log::Warn("load of {} {} failed: {}", cfg.name, FormatHour(plan.partition_us), ps.ToString());
      LF_RETURN_IF_ERROR(ledger_->FailLoad(plan, ps.ToString(), NextAttempt(cfg, attempts[i] + 1, now), now));
      ++stats->partitions_failed;
    }
  }
  return Status::Ok();
}

// Parts are checked against their recorded checksum before they are loaded;
// a missing or damaged one sends its object back to be staged again.
Status Pipeline::CheckStagedParts(TableRuntime& t, const LoadPlan& plan) {
  for (const PartRow& part : plan.parts) {
    auto data = t.staging->ReadAll(part.key, 1ull << 40);
    std::string problem;
    if (!data.ok())
      problem = data.status().ToString();
    else if (Crc32cHex(Crc32c(0, data->data(), data->size())) != part.crc32c)
      problem = "checksum mismatch (expected crc32c " + part.crc32c + ")";
    if (!problem.empty()) {
      Status s = Status::Corruption("staged part " + t.staging->UriOf(part.key) + ": " + problem +
                                    "; its object will be staged again");
      Status restaged = ledger_->Restage(part.object_id, s.message());
      if (!restaged.ok())
        return restaged.WithContext("staged part " + t.staging->UriOf(part.key) + ": " + problem +
                                    "; sending its object back to staging failed");
      return s;
    }
  }
  return Status::Ok();
}

Status Pipeline::CollectGarbage(TableRuntime& t) {
  LF_ASSIGN_OR_RETURN(auto parts, ledger_->CollectableParts(t.config->name));
  for (const PartRow& p : parts) {
    LF_RETURN_IF_ERROR(t.staging->Delete(p.key));
    LF_RETURN_IF_ERROR(ledger_->ForgetPart(p));
  }
  return Status::Ok();
}

Status Pipeline::SweepStaging(TableRuntime& t) {
  const std::string prefix = t.config->name + "/";
  LF_RETURN_IF_ERROR(t.staging->RemoveStaleTemporaries(prefix, kMicrosPerHour));
  LF_ASSIGN_OR_RETURN(auto files, t.staging->ListAll(prefix));
  // Read after the listing, leases before parts: a listed file was written
  // under a lease taken first, which is either still live or was released
  // by the commit that recorded the part.
  LF_ASSIGN_OR_RETURN(auto leased, ledger_->LeasedVersions(t.config->name, env_->NowMicros()));
  LF_ASSIGN_OR_RETURN(auto known, ledger_->PartKeys(t.config->name));
  for (const ObjectInfo& f : files) {
    if (known.count(f.key)) continue;
    std::string name = f.key.substr(f.key.rfind('/') + 1);
    if (leased.count(name.substr(0, name.find('.')))) continue;  // being staged by a worker
    log::Info("removing stray staged file {} (left by an interrupted run)", t.staging->UriOf(f.key));
    LF_RETURN_IF_ERROR(t.staging->Delete(f.key));
  }
  return Status::Ok();
}

void PassStats::Add(const PassStats& o) {
  discovered += o.discovered;
  staged_objects += o.staged_objects;
  failed_objects += o.failed_objects;
  rows_staged += o.rows_staged;
  bad_records += o.bad_records;
  bytes_read += o.bytes_read;
  partitions_loaded += o.partitions_loaded;
  partitions_failed += o.partitions_failed;
  partitions_appended += o.partitions_appended;
  requests += o.requests;
  messages_received += o.messages_received;
  messages_deleted += o.messages_deleted;
  messages_in_flight += o.messages_in_flight;
  list_requests += o.list_requests;
  full_listings += o.full_listings;
  windowed_listings += o.windowed_listings;
  stage_seconds += o.stage_seconds;
}

StatusOr<PassStats> Pipeline::RunOnce(const std::atomic<bool>& stop) {
  FreeLeasesOfGoneLocalWorkers();
  PassStats stats;
  Status first_error;
  for (TableRuntime& t : tables_) {
    if (stop.load()) break;
    PassStats table_stats;
    int64_t lists = t.source->list_requests() + t.staging->list_requests();
    Status s = RunTable(t, stop, &table_stats);
    table_stats.list_requests = t.source->list_requests() + t.staging->list_requests() - lists;
    stats.Add(table_stats);
    if (table_observer_) table_observer_(t, table_stats);
    if (first_error.ok()) first_error = s;
  }
  if (!first_error.ok()) return first_error;
  return stats;
}

// Other workers sharing the ledger record columns too: read them when the
// ledger's schema version moved, so that staging offers values to the
// table's real types and loads know every column the parts hold. Only
// between steps: no normalizer is running then.
Status Pipeline::RefreshSchema(TableRuntime& t) {
  LF_ASSIGN_OR_RETURN(int64_t version, ledger_->SchemaVersion(t.config->name));
  if (version == t.schema_version) return Status::Ok();
  LF_ASSIGN_OR_RETURN(auto columns, ledger_->Columns(t.config->name));
  t.schema->Restore(columns);
  t.schema_version = version;
  return Status::Ok();
}

Status Pipeline::RunTable(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats) {
  LogScope scope(t.config->name);
  Status first_error;
  auto step = [&](const char* what, const Status& s) {
    if (!s.ok()) {
      log::Error("{}: {} failed: {}", t.config->name, what, s.ToString());
      if (first_error.ok()) first_error = s.WithContext(t.config->name + ": " + what);
    }
    return s.ok();
  };
  auto discovered = Discover(t, stats);
  if (discovered.ok()) stats->discovered += *discovered;
  step("discover", discovered.status());
  if (stop.load()) return first_error;
  step("schema", RefreshSchema(t));
  step("stage", StageAndExtend(t, stop, stats));
  step("notifications", Acknowledge(t, stats));
  if (stop.load()) return first_error;
  step("requests", ProcessRequests(t));
  step("schema", RefreshSchema(t));
  step("load", Load(t, stop, stats));
  step("requests", FinishRequests(t));
  step("gc", CollectGarbage(t));
  // Strays appear only when a run dies mid-stage: sweep on a process's
  // first pass and hourly after that, not every pass (it lists all parts).
  if (!stop.load() && env_->NowMicros() - t.last_sweep_us >= kMicrosPerHour) {
    if (step("sweep", SweepStaging(t))) t.last_sweep_us = env_->NowMicros();
  }
  return first_error;
}

}  // namespace logferry
