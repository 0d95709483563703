#include "core/pipeline.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/credentials.h"
#include "common/strings.h"
#include "common/time.h"
#include "core/requests.h"
#include "core/s3_events.h"
#include "core/stage.h"
#include "format/normalizer.h"
#include "gcp/credentials.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Object/partition retry delay: capped exponential backoff with jitter,
// driven by how many attempts have failed so far.
int64_t NextAttempt(const TableConfig& cfg, int failures, int64_t now_us) {
  RetryPolicy p;
  p.initial_backoff_us = cfg.retry_base_us;
  p.max_backoff_us = std::max(cfg.retry_max_us, cfg.retry_base_us);
  return now_us + p.Backoff(std::max(1, failures));
}

}  // namespace

namespace {

// One request to a remote service: retried quickly, a few times, because a
// reset or a 503 is common and cheap to retry; the object-level backoff
// (retry_base/retry_max) takes over when this gives up.
RetryPolicy StoreRetryPolicy() {
  RetryPolicy p;
  p.max_attempts = 6;
  p.initial_backoff_us = 100'000;
  p.max_backoff_us = 5'000'000;
  return p;
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
                                                      const std::string& google_credentials) {
  StoreOptions options = side;
  options.retry = StoreRetryPolicy();
  const SchemeInfo* scheme = Schemes().Claim(uri);
  CredentialKind needs = scheme ? scheme->credentials : CredentialKind::kNone;
  if (needs == CredentialKind::kAws) options.aws_credentials = SharedAwsCredentials();
  // An emulator standing in for the service gets no real credentials.
  bool emulated = scheme && scheme->emulated && scheme->emulated(options, google_credentials);
  if (needs == CredentialKind::kGoogle && !emulated) options.gcp_tokens = SharedGcpTokens(google_credentials);
  return OpenObjectStore(uri, options);
}

WarehouseOptions WarehouseOptionsFor(const Config& config, const TableConfig& tc, bool read_only) {
  WarehouseOptions wo;
  wo.read_only = read_only;
  wo.lock_timeout_us = config.lock_timeout_us;
  wo.scratch_dir = config.state_dir + "/scratch";
  wo.endpoint = tc.bigquery_endpoint;
  wo.location = tc.location;
  wo.clustering = tc.clustering;
  wo.partition_unit_us = tc.partition_unit_us;
  wo.max_uris_per_load = static_cast<size_t>(tc.max_uris_per_load);
  wo.daily_load_budget = tc.daily_load_budget;
  wo.retry = StoreRetryPolicy();
  const SchemeInfo* scheme = Schemes().Claim(tc.warehouse);
  if (scheme && scheme->credentials == CredentialKind::kGoogle) wo.gcp_tokens = SharedGcpTokens(tc.credentials);
  return wo;
}

Pipeline::Pipeline(const Config& config, Ledger* ledger) : config_(config), ledger_(ledger) {}

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
    LF_ASSIGN_OR_RETURN(t.source, OpenTableStore(tc.source, tc.source_store, tc.credentials));
    LF_ASSIGN_OR_RETURN(t.staging, OpenTableStore(tc.staging, tc.staging_store, tc.credentials));
    if (!tc.notifications.empty()) {
      Uri u;
      ParseUri(tc.source, &u);
      t.source_bucket = u.authority;
      t.source_prefix = u.path;  // "logs/" (ParseUri drops the leading '/')
      LF_ASSIGN_OR_RETURN(t.queue, aws::SqsQueue::Open(tc.notifications, tc.source_store.region, SharedAwsCredentials(),
                                                       StoreRetryPolicy()));
    }
    LF_ASSIGN_OR_RETURN(KeyFormat kf, KeyFormat::Compile(tc.key_format, tc.time_slice_format, tc.offset_seconds));
    t.key_format = std::make_unique<KeyFormat>(std::move(kf));
    t.schema = std::make_unique<SchemaRegistry>(FixedColumns(tc.format.format));
    t.schema->set_column_limit(static_cast<size_t>(tc.max_columns));
    LF_RETURN_IF_ERROR(ledger_->CheckTableSettings(tc.name, "partition=" + tc.partition + ",format=" + tc.format_name));
    LF_ASSIGN_OR_RETURN(auto columns, ledger_->Columns(tc.name));
    t.schema->Restore(columns);
    tables_.push_back(std::move(t));
  }
  return Status::Ok();
}

TableRuntime* Pipeline::table(const std::string& name) {
  for (TableRuntime& t : tables_)
    if (t.config->name == name) return &t;
  return nullptr;
}

StatusOr<int64_t> Pipeline::Discover(TableRuntime& t, PassStats* stats) {
  int64_t added = 0;
  Status event_error;
  if (t.queue) {
    auto received = ReceiveNotifications(t, stats);
    if (received.ok()) {
      added += *received;
    } else {
      // Lost or late events are what the listing is for: report and go on.
      event_error = received.status().WithContext("receiving notifications from " + t.queue->url());
    }
  }
  int64_t now = NowMicros();
  bool list_now = !t.queue || t.last_listing_us == 0 || now - t.last_listing_us >= t.config->reconcile_every_us ||
                  !event_error.ok();
  if (list_now) {
    auto listed = t.source->ListAll("");
    if (!listed.ok()) return listed.status().WithContext("listing " + t.source->uri());
    std::vector<ObjectInfo> ours;
    for (ObjectInfo& o : *listed)
      if (t.key_format->Match(o.key)) ours.push_back(std::move(o));
    LF_ASSIGN_OR_RETURN(int64_t found, ledger_->RecordDiscovered(t.config->name, ours, "listing", now));
    if (t.queue && found > 0)
      spdlog::warn("{}: the listing found {} object(s) no notification announced", t.config->name, found);
    added += found;
    t.last_listing_us = now;
  }
  if (!event_error.ok()) return event_error;
  return added;
}

StatusOr<int64_t> Pipeline::ReceiveNotifications(TableRuntime& t, PassStats* stats) {
  const TableConfig& cfg = *t.config;
  int wait_s = static_cast<int>(cfg.sqs_wait_us / kMicrosPerSecond);
  if (single_pass_) wait_s = std::min(wait_s, 1);
  int visibility_s = static_cast<int>(cfg.sqs_visibility_us / kMicrosPerSecond);
  int64_t added = 0;
  // Bounded per pass so staging and loading are never starved by a deep
  // queue; what is left waits for the next pass.
  for (int batch = 0; batch < 100; ++batch) {
    LF_ASSIGN_OR_RETURN(auto messages, t.queue->Receive(10, batch == 0 ? wait_s : 0, visibility_s));
    if (messages.empty()) break;
    if (stats) stats->messages_received += static_cast<int64_t>(messages.size());
    for (const aws::SqsMessage& m : messages) {
      LF_ASSIGN_OR_RETURN(int64_t n, HandleNotification(t, m));
      added += n;
    }
  }
  return added;
}

StatusOr<int64_t> Pipeline::HandleNotification(TableRuntime& t, const aws::SqsMessage& m) {
  const TableConfig& cfg = *t.config;
  int64_t now = NowMicros();
  auto parsed = ParseS3EventMessage(m.body);
  if (!parsed.ok()) {
    // Never deleted: the queue's redrive policy moves it to its dead-letter
    // queue after maxReceiveCount deliveries.
    spdlog::warn("{}: notification {} from {} is not usable and stays on the queue: {}", cfg.name, m.message_id,
                 t.queue->url(), parsed.status().message());
    NotificationRow row{
        m.message_id,         cfg.name, t.queue->url(), "failing", m.receive_count, parsed.status().message(),
        Excerpt(m.body, 200), now};
    LF_RETURN_IF_ERROR(ledger_->RecordNotification(row));
    return int64_t{0};
  }
  HeldMessage held;
  held.receipt_handle = m.receipt_handle;
  held.receive_count = m.receive_count;
  held.received_us = now;
  std::vector<ObjectInfo> found;
  Status unchecked;
  for (const S3EventObject& e : parsed->created) {
    if (e.bucket != t.source_bucket || !StartsWith(e.key, t.source_prefix)) continue;
    std::string key = e.key.substr(t.source_prefix.size());
    if (!t.key_format->Match(key)) continue;
    // The object as it is now: the event may be older than an overwrite,
    // and its etag is the version the ledger must name.
    auto info = t.source->Stat(key);
    if (info.status().code() == StatusCode::kPermissionDenied && GoneFromListing(t, key)) continue;
    if (info.status().IsNotFound()) continue;  // deleted since; nothing to stage
    if (!info.ok()) {
      if (unchecked.ok())
        unchecked = info.status().WithContext("checking " + t.source->UriOf(key) + " announced by an event");
      continue;
    }
    held.objects.emplace_back(info->key, info->etag);
    found.push_back(std::move(*info));
  }
  int64_t added = 0;
  if (!found.empty()) {
    LF_ASSIGN_OR_RETURN(added, ledger_->RecordDiscovered(cfg.name, found, "event", now));
  }
  if (!unchecked.ok()) {
    // One message's object must not hold up the rest of the batch. Like an
    // unusable body, the message is recorded and left on the queue, not held
    // (never extended or deleted): a later delivery may succeed, and the
    // redrive policy moves it aside if none does.
    spdlog::warn("{}: notification {} from {} stays on the queue: {}", cfg.name, m.message_id, t.queue->url(),
                 unchecked.ToString());
    NotificationRow row{
        m.message_id,         cfg.name, t.queue->url(), "failing", m.receive_count, unchecked.ToString(),
        Excerpt(m.body, 200), now};
    LF_RETURN_IF_ERROR(ledger_->RecordNotification(row));
    {
      std::lock_guard lock(*t.held_mu);
      t.held.erase(m.message_id);
    }
    // A transient failure that outlasted the retries means the source is
    // struggling: the rest of the batch would wait as long for the same
    // answer. Stopping here leaves it to come back, and Discover lists.
    if (unchecked.IsTransient()) return unchecked;
    return added;
  }
  std::lock_guard lock(*t.held_mu);
  auto it = t.held.find(m.message_id);
  if (it != t.held.end()) {
    // Redelivered while held: only the newest receipt handle can delete it.
    it->second.receipt_handle = m.receipt_handle;
    it->second.receive_count = m.receive_count;
  } else {
    t.held.emplace(m.message_id, std::move(held));
  }
  return added;
}

bool Pipeline::GoneFromListing(TableRuntime& t, const std::string& key) {
  // Without s3:ListBucket, S3 answers HeadObject for a missing key with 403,
  // not 404, so as not to reveal whether it exists. A listing under the key
  // itself, which a policy granting ListBucket on the source prefix allows,
  // tells a deleted object from a real permission problem.
  auto page = t.source->List(key, "", 1);
  return page.ok() && (page->objects.empty() || page->objects.front().key != key);
}

Status Pipeline::SettleNotifications(TableRuntime& t, PassStats* stats) {
  if (!t.queue) return Status::Ok();
  const TableConfig& cfg = *t.config;
  std::vector<std::pair<std::string, HeldMessage>> held;
  {
    std::lock_guard lock(*t.held_mu);
    held.assign(t.held.begin(), t.held.end());
  }
  Status first_error;
  for (auto& [id, m] : held) {
    bool staged = true;
    std::string failing;
    for (const auto& [key, etag] : m.objects) {
      LF_ASSIGN_OR_RETURN(auto row, ledger_->FindObject(cfg.name, key, etag));
      if (!row || row->state == ObjectState::kStaged || row->state == ObjectState::kSuperseded) continue;
      staged = false;
      if (row->state == ObjectState::kFailed && row->attempts >= 3)
        failing = t.source->UriOf(key) + ": " + row->last_error;
    }
    int64_t now = NowMicros();
    if (!staged) {
      if (!failing.empty()) {
        NotificationRow row{id, cfg.name, t.queue->url(), "failing", m.receive_count, failing, "", now};
        LF_RETURN_IF_ERROR(ledger_->RecordNotification(row));
      }
      continue;
    }
    Status s = t.queue->Delete(m.receipt_handle);
    if (!s.ok() && s.code() != StatusCode::kInvalidArgument) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    // An expired receipt (kInvalidArgument) means the message was or will
    // be redelivered; that delivery deletes it.
    if (s.ok() && stats) ++stats->messages_deleted;
    {
      std::lock_guard lock(*t.held_mu);
      auto it = t.held.find(id);
      if (it != t.held.end() && it->second.receipt_handle == m.receipt_handle) t.held.erase(it);
    }
    NotificationRow row{id, cfg.name, t.queue->url(), "done", m.receive_count, "", "", now};
    auto prior = ledger_->Notifications(cfg.name, "failing");
    if (prior.ok())
      for (const NotificationRow& p : *prior)
        if (p.message_id == id) LF_RETURN_IF_ERROR(ledger_->RecordNotification(row));
  }
  return first_error;
}

void Pipeline::ExtendHeldNotifications(TableRuntime& t) {
  if (!t.queue) return;
  int visibility_s = static_cast<int>(t.config->sqs_visibility_us / kMicrosPerSecond);
  std::vector<std::pair<std::string, HeldMessage>> held;
  std::set<std::pair<std::string, std::string>> staging_now;
  {
    std::lock_guard lock(*t.held_mu);
    held.assign(t.held.begin(), t.held.end());
    staging_now = t.staging_now;
  }
  std::vector<std::pair<std::string, std::string>> receipts;
  for (const auto& [id, m] : held) {
    // Extending a message that waits on a failing object would keep it in
    // flight for as long as other objects stage, and it would never reach the
    // queue's maxReceiveCount. Messages whose objects are all staged are
    // kept: the settle step after staging deletes them.
    bool waits_elsewhere = false;
    for (const auto& object : m.objects) {
      if (staging_now.count(object)) continue;
      auto row = ledger_->FindObject(t.config->name, object.first, object.second);
      if (row.ok() && (!*row || (*row)->state == ObjectState::kStaged || (*row)->state == ObjectState::kSuperseded))
        continue;
      waits_elsewhere = true;
      break;
    }
    if (waits_elsewhere) {
      spdlog::debug("{}: notification {} waits on an object that is not being staged; not extended", t.config->name,
                    id);
      continue;
    }
    receipts.emplace_back(id, m.receipt_handle);
  }
  for (const auto& [id, receipt] : receipts) {
    Status s = t.queue->ExtendVisibility(receipt, visibility_s);
    if (s.ok()) continue;
    // The receipt expired: the message is back on the queue and will be
    // received again; forget this delivery.
    spdlog::debug("{}: cannot extend notification {}: {}", t.config->name, id, s.ToString());
    if (s.code() == StatusCode::kInvalidArgument) {
      std::lock_guard lock(*t.held_mu);
      auto it = t.held.find(id);
      if (it != t.held.end() && it->second.receipt_handle == receipt) t.held.erase(it);
    }
  }
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

}  // namespace

Status Pipeline::Stage(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats) {
  LF_ASSIGN_OR_RETURN(std::vector<ObjectRow> due, ledger_->DueObjects(t.config->name, NowMicros()));
  if (due.empty()) return Status::Ok();
  const TableConfig& cfg = *t.config;
  auto finished = [&t](const ObjectRow& obj) {
    std::lock_guard lock(*t.held_mu);
    t.staging_now.erase({obj.key, obj.etag});
  };
  {
    std::lock_guard lock(*t.held_mu);
    for (const ObjectRow& obj : due) t.staging_now.emplace(obj.key, obj.etag);
  }
  struct ClearOnExit {
    TableRuntime& t;
    ~ClearOnExit() {
      std::lock_guard lock(*t.held_mu);
      t.staging_now.clear();
    }
  } clear_on_exit{t};
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0}, failed{0}, rows{0}, bad{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex commit_mu;  // schema records and the commit that relies on them go together
  Status fatal;
  std::mutex fatal_mu;
  auto t0 = std::chrono::steady_clock::now();

  auto work = [&] {
    auto norm = std::make_unique<RowNormalizer>(t.schema.get(), cfg.format);
    for (;;) {
      if (stop.load()) return;
      size_t i = next.fetch_add(1);
      if (i >= due.size()) return;
      const ObjectRow& obj = due[i];
      // Once per pass: the stores have retried each request already, and a
      // transient failure that outlasted them waits for the object's backoff.
      bool threw = false;
      auto outcome = StageGuarded(t, obj, *norm, &threw);
      if (threw) norm = std::make_unique<RowNormalizer>(t.schema.get(), cfg.format);
      int64_t now = NowMicros();
      if (!outcome.ok()) {
        std::string error = t.source->UriOf(obj.key) + ": " + outcome.status().ToString();
        spdlog::warn("staging failed: {}", error);
        Status s = ledger_->MarkFailed(obj.id, error, NextAttempt(cfg, obj.attempts + 1, now));
        finished(obj);
        if (!s.ok()) {
          std::lock_guard lock(fatal_mu);
          fatal = s;
        }
        ++failed;
        continue;
      }
      StageOutcome& o = *outcome;
      Status s;
      {
        std::lock_guard lock(commit_mu);
        std::vector<Column*> taken;
        o.staged.columns = t.schema->TakeUnpersisted(&taken);
        s = ledger_->CommitStaged(o.staged, now);
        if (!s.ok()) t.schema->Requeue(taken);
      }
      finished(obj);
      if (!s.ok()) {
        spdlog::error("ledger commit for {} failed: {}", t.source->UriOf(obj.key), s.ToString());
        std::lock_guard lock(fatal_mu);
        fatal = s;
        ++failed;
        continue;
      }
      if (o.staged.bad_total > 0)
        spdlog::warn(
            "{}: {} bad record(s); first at line {}: {}{}", t.source->UriOf(obj.key), o.staged.bad_total,
            o.staged.bad_records.front().line, o.staged.bad_records.front().reason,
            o.staged.bad_records.front().field.empty() ? "" : " (field '" + o.staged.bad_records.front().field + "')");
      if (o.staged.warnings > 0)
        spdlog::info("{}: {} value(s) repaired or rewritten; latest: {}", t.source->UriOf(obj.key), o.staged.warnings,
                     o.staged.warning);
      ++done;
      rows += o.staged.rows_staged;
      bad += o.staged.bad_total;
      bytes += o.bytes_uncompressed;
      if (progress_) {
        double secs = SecondsSince(t0);
        char line[256];
        snprintf(line, sizeof line, "[%s] staged %lld/%zu objects, %s, %.0f MB/s", cfg.name.c_str(),
                 static_cast<long long>(done.load() + failed.load()), due.size(), HumanBytes(bytes.load()).c_str(),
                 secs > 0 ? bytes.load() / 1e6 / secs : 0.0);
        progress_(line);
      }
    }
  };
  // Past StageGuarded only the ledger and the schema run; should they throw,
  // the pass reports it instead of the process ending.
  auto worker = [&] {
    try {
      work();
    } catch (const std::exception& e) {
      std::lock_guard lock(fatal_mu);
      fatal = Status::Internal(std::string("staging worker stopped: ") + Excerpt(e.what(), 300));
    }
  };
  int n = std::max(1, std::min<int>(config_.workers, static_cast<int>(due.size())));
  std::vector<std::thread> threads;
  for (int i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& th : threads) th.join();
  stats->staged_objects += done;
  stats->failed_objects += failed;
  stats->rows_staged += rows;
  stats->bad_records += bad;
  stats->bytes_read += bytes;
  stats->stage_seconds += SecondsSince(t0);
  return fatal;
}

Status Pipeline::ProcessRequests(TableRuntime& t) {
  return RequestInbox(config_, *t.config, *t.staging, *ledger_).FileAll().status().WithContext("listing requests");
}

Status Pipeline::FinishRequests(TableRuntime& t) {
  LF_ASSIGN_OR_RETURN(auto queued, ledger_->Requests(t.config->name, "queued"));
  if (queued.empty()) return Status::Ok();
  LF_ASSIGN_OR_RETURN(auto parts, ledger_->Partitions(t.config->name));
  int64_t now = NowMicros();
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
  PartitionLoad load{plan.table, plan.partition_us, plan.load_id, {}, plan.expected_rows};
  load.parts.reserve(plan.parts.size());
  for (const PartRow& p : plan.parts) load.parts.push_back({p.key, p.rows, p.crc32c, p.columns});
  return load;
}

// Whether the warehouse holds the job back (then it and the `waiting`
// partitions counted from it wait for a later pass).
StatusOr<bool> HeldBack(Warehouse& wh, LoadJobLog& jobs, const std::string& table, const std::string& job_id,
                        size_t waiting, int64_t now_us) {
  LF_ASSIGN_OR_RETURN(std::optional<std::string> why, wh.WhyWait(job_id, waiting, jobs, now_us));
  if (why) spdlog::warn("{}: {}", table, *why);
  return why.has_value();
}

// The partitions due, in the jobs the warehouse groups them into.
StatusOr<std::vector<std::vector<PartitionRow>>> GroupIntoJobs(Warehouse& wh, LoadJobLog& jobs,
                                                               const std::string& table,
                                                               const std::vector<PartitionRow>& due) {
  std::vector<int64_t> starts;
  std::map<int64_t, const PartitionRow*> by_start;
  for (const PartitionRow& p : due) {
    starts.push_back(p.partition_us);
    by_start[p.partition_us] = &p;
  }
  LF_ASSIGN_OR_RETURN(JobGroups groups, wh.GroupIntoJobs(starts, jobs, NowMicros()));
  if (!groups.why.empty()) spdlog::info("{}: {}", table, groups.why);
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

}  // namespace

// plan → budget → replace → record: the core plans which partitions are due
// (with their staged parts, from the ledger); the warehouse groups them into
// jobs and may hold a job back (BigQuery's daily job budget); each job
// replaces its partitions; the ledger records each partition's outcome.
Status Pipeline::Load(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
                      std::optional<std::pair<int64_t, int64_t>> range) {
  const TableConfig& cfg = *t.config;
  LF_ASSIGN_OR_RETURN(auto due, ledger_->DuePartitions(cfg.name, cfg.partition_unit_us, cfg.settle_us, NowMicros()));
  if (range) {
    std::erase_if(due, [&](const PartitionRow& p) {
      return p.partition_us >= range->second || p.partition_us + cfg.partition_unit_us <= range->first;
    });
  }
  if (due.empty()) return Status::Ok();
  // Holding the warehouse open across snapshot → replace → record makes the
  // three one unit with respect to other processes loading the same table.
  LF_ASSIGN_OR_RETURN(auto wh, OpenWarehouse(cfg.warehouse, WarehouseOptionsFor(config_, cfg, /*read_only=*/false)));
  LF_RETURN_IF_ERROR(wh->EnsureTable(cfg.name, *t.schema));
  LedgerJobLog jobs(*ledger_, cfg.name);
  LF_ASSIGN_OR_RETURN(auto batches, GroupIntoJobs(*wh, jobs, cfg.name, due));
  size_t waiting = 0;
  for (const auto& batch : batches) waiting += batch.size();
  for (const std::vector<PartitionRow>& batch : batches) {
    if (stop.load()) break;
    LF_ASSIGN_OR_RETURN(bool sent, LoadJob(t, *wh, jobs, batch, waiting, stats));
    if (!sent) break;  // held back by the warehouse, and every job after it too
    waiting -= batch.size();
  }
  return Status::Ok();
}

// One job: false when the warehouse holds it back.
StatusOr<bool> Pipeline::LoadJob(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs,
                                 const std::vector<PartitionRow>& batch, size_t waiting, PassStats* stats) {
  const TableConfig& cfg = *t.config;
  int64_t now = NowMicros();
  std::vector<LoadPlan> plans;
  std::vector<int> attempts;
  for (const PartitionRow& p : batch) {
    LF_ASSIGN_OR_RETURN(LoadPlan plan, ledger_->BeginLoad(cfg.name, p.partition_us, now));
    plans.push_back(std::move(plan));
    attempts.push_back(p.attempts);
  }
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
    spdlog::warn("load of {} {} failed: {}", t.config->name, FormatHour(plan.partition_us), checked.ToString());
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
  int64_t now = NowMicros();
  for (size_t i = 0; i < plans.size(); ++i) {
    const LoadPlan& plan = plans[i];
    Status ps = replaced.status();
    int64_t n = -1;
    if (ps.ok() && replaced->count(plan.partition_us)) n = replaced->at(plan.partition_us);
    if (ps.ok() && n != plan.expected_rows)
      ps = Status::Internal("partition " + FormatHour(plan.partition_us) + " holds " + std::to_string(n) +
                            " rows after the load but the ledger expects " + std::to_string(plan.expected_rows));
    if (ps.ok()) {
      LF_RETURN_IF_ERROR(ledger_->FinishLoad(plan, n, now));
      ++stats->partitions_loaded;
      spdlog::debug("loaded {} {} ({} rows, {} parts, job {})", cfg.name, FormatHour(plan.partition_us), n,
                    plan.parts.size(), job_id);
    } else {
      spdlog::warn("load of {} {} failed: {}", cfg.name, FormatHour(plan.partition_us), ps.ToString());
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
  LF_ASSIGN_OR_RETURN(auto known, ledger_->PartKeys(t.config->name));
  LF_ASSIGN_OR_RETURN(auto files, t.staging->ListAll(prefix));
  for (const ObjectInfo& f : files) {
    if (known.count(f.key)) continue;
    spdlog::info("removing stray staged file {} (left by an interrupted run)", t.staging->UriOf(f.key));
    LF_RETURN_IF_ERROR(t.staging->Delete(f.key));
  }
  return Status::Ok();
}

StatusOr<PassStats> Pipeline::RunOnce(const std::atomic<bool>& stop) {
  PassStats stats;
  Status first_error;
  for (TableRuntime& t : tables_) {
    if (stop.load()) break;
    auto step = [&](const char* what, Status s) {
      if (!s.ok()) {
        spdlog::error("{}: {} failed: {}", t.config->name, what, s.ToString());
        if (first_error.ok()) first_error = s.WithContext(t.config->name + ": " + what);
      }
      return s.ok();
    };
    auto discovered = Discover(t, &stats);
    if (discovered.ok()) stats.discovered += *discovered;
    step("discover", discovered.status());
    if (stop.load()) break;
    {
      // Held notifications stay invisible for as long as staging takes.
      std::mutex mu;
      std::condition_variable cv;
      bool staging = true;
      std::thread heartbeat;
      if (t.queue) {
        int64_t every_us = std::max<int64_t>(t.config->sqs_visibility_us / 3, kMicrosPerSecond);
        // every_us by value: it ends with this block, the thread does not.
        heartbeat = std::thread([&, every_us] {
          std::unique_lock lock(mu);
          while (!cv.wait_for(lock, std::chrono::microseconds(every_us), [&] { return !staging; })) {
            lock.unlock();
            ExtendHeldNotifications(t);
            lock.lock();
          }
        });
      }
      step("stage", Stage(t, stop, &stats));
      {
        std::lock_guard lock(mu);
        staging = false;
      }
      cv.notify_all();
      if (heartbeat.joinable()) heartbeat.join();
    }
    step("notifications", SettleNotifications(t, &stats));
    if (stop.load()) break;
    step("requests", ProcessRequests(t));
    step("load", Load(t, stop, &stats));
    step("requests", FinishRequests(t));
    step("gc", CollectGarbage(t));
    // Strays appear only when a run dies mid-stage: sweep on a process's
    // first pass and hourly after that, not every pass (it lists all parts).
    if (!stop.load() && NowMicros() - t.last_sweep_us >= kMicrosPerHour) {
      if (step("sweep", SweepStaging(t))) t.last_sweep_us = NowMicros();
    }
  }
  if (!first_error.ok()) return first_error;
  return stats;
}

}  // namespace logferry
