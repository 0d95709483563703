#include "discovery/sqs_discovery.h"

#include <algorithm>

#include "aws/s3_events.h"
#include "aws/sqs.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"
#include "ledger/ledger.h"
#include "store/object_store.h"

namespace logferry {

StatusOr<std::unique_ptr<SqsDiscovery>> SqsDiscovery::Open(DiscoveryContext context,
                                                           const SqsDiscoveryOptions& options) {
  LF_ASSIGN_OR_RETURN(auto queue,
                      aws::SqsQueue::Open(options.queue_url, options.region, options.credentials, options.retry));
  return std::unique_ptr<SqsDiscovery>(new SqsDiscovery(std::move(context), options, std::move(queue)));
}

SqsDiscovery::SqsDiscovery(DiscoveryContext context, const SqsDiscoveryOptions& options,
                           std::unique_ptr<aws::SqsQueue> queue)
    : context_(std::move(context)), options_(options), queue_(std::move(queue)) {
  Uri u;
  ParseUri(options.source_uri, &u);
  bucket_ = u.authority;
  prefix_ = u.path;  // "logs/" (ParseUri drops the leading '/')
}

SqsDiscovery::~SqsDiscovery() = default;

int64_t SqsDiscovery::extend_every_us() const {
  return std::max<int64_t>(options_.visibility_us / 3, kMicrosPerSecond);
}

Status SqsDiscovery::Poll(const PollOptions& options, DiscoveryStats* stats) {
  int wait_s = static_cast<int>(options_.wait_us / kMicrosPerSecond);
  if (options.single_pass) wait_s = std::min(wait_s, 1);
  int visibility_s = static_cast<int>(options_.visibility_us / kMicrosPerSecond);
  // Bounded per pass so staging and loading are never starved by a deep
  // queue; what is left waits for the next pass.
  for (int batch = 0; batch < 100; ++batch) {
    auto messages = queue_->Receive(10, batch == 0 ? wait_s : 0, visibility_s);
    if (!messages.ok()) return messages.status().WithContext("receiving notifications from " + queue_->url());
    if (messages->empty()) break;
    stats->received += static_cast<int64_t>(messages->size());
    for (const aws::SqsMessage& m : *messages) {
      auto added = Handle(m);
      if (!added.ok()) return added.status().WithContext("receiving notifications from " + queue_->url());
      stats->recorded += *added;
    }
  }
  return Status::Ok();
}

StatusOr<int64_t> SqsDiscovery::Handle(const aws::SqsMessage& m) {
  auto parsed = aws::ParseS3EventMessage(m.body);
  if (!parsed.ok()) {
    // Never deleted: the queue's redrive policy moves it to its dead-letter
    // queue after maxReceiveCount deliveries.
    log::Warn("{}: notification {} from {} is not usable and stays on the queue: {}", context_.table, m.message_id,
              queue_->url(), parsed.status().message());
    LF_RETURN_IF_ERROR(RecordFailing(m.message_id, m.receive_count, parsed.status().message(), Excerpt(m.body, 200)));
    return int64_t{0};
  }
  int64_t now = context_.env->NowMicros();
  std::vector<ObjectInfo> found;
  Status unchecked = CheckAnnounced(*parsed, &found);
  HeldMessage held{m.receipt_handle, m.receive_count, {}, now};
  for (const ObjectInfo& o : found) held.objects.emplace_back(o.key, o.etag);
  int64_t added = 0;
  if (!found.empty()) {
    LF_ASSIGN_OR_RETURN(added, context_.ledger->RecordDiscovered(context_.table, found, "event", now));
  }
  if (!unchecked.ok()) {
    // One message's object must not hold up the rest of the batch. Like an
    // unusable body, the message is recorded and left on the queue, not held
    // (never extended or deleted): a later delivery may succeed, and the
    // redrive policy moves it aside if none does.
    log::Warn("{}: notification {} from {} stays on the queue: {}", context_.table, m.message_id, queue_->url(),
              unchecked.ToString());
    LF_RETURN_IF_ERROR(RecordFailing(m.message_id, m.receive_count, unchecked.ToString(), Excerpt(m.body, 200)));
    {
      std::lock_guard lock(held_mu_);
      held_.erase(m.message_id);
    }
    // A transient failure that outlasted the retries means the source is
    // struggling: the rest of the batch would wait as long for the same
    // answer. Stopping here leaves it to come back, and the listing runs.
    if (unchecked.IsTransient()) return unchecked;
    return added;
  }
  Hold(m.message_id, std::move(held));
  return added;
}

Status SqsDiscovery::CheckAnnounced(const aws::S3EventMessage& event, std::vector<ObjectInfo>* found) {
  ObjectStore& source = *context_.source;
  Status unchecked;
  for (const aws::S3EventObject& e : event.created) {
    if (e.bucket != bucket_ || !StartsWith(e.key, prefix_)) continue;
    std::string key = e.key.substr(prefix_.size());
    if (!context_.ours(key)) continue;
    // The object as it is now: the event may be older than an overwrite,
    // and its etag is the version the ledger must name.
    auto info = source.Stat(key);
    if (info.status().code() == StatusCode::kPermissionDenied && GoneFromListing(key)) continue;
    if (info.status().IsNotFound()) continue;  // deleted since; nothing to stage
    if (!info.ok()) {
      if (unchecked.ok())
        unchecked = info.status().WithContext("checking " + source.UriOf(key) + " announced by an event");
      continue;
    }
    found->push_back(std::move(*info));
  }
  return unchecked;
}

void SqsDiscovery::Hold(const std::string& message_id, HeldMessage held) {
  std::lock_guard lock(held_mu_);
  auto it = held_.find(message_id);
  if (it != held_.end()) {
    // Redelivered while held: only the newest receipt handle can delete it.
    it->second.receipt_handle = held.receipt_handle;
    it->second.receive_count = held.receive_count;
  } else {
    held_.emplace(message_id, std::move(held));
  }
}

void SqsDiscovery::Forget(const std::string& message_id, const std::string& receipt_handle) {
  std::lock_guard lock(held_mu_);
  auto it = held_.find(message_id);
  if (it != held_.end() && it->second.receipt_handle == receipt_handle) held_.erase(it);
}

Status SqsDiscovery::RecordFailing(const std::string& message_id, int receive_count, const std::string& detail,
                                   const std::string& excerpt) {
  NotificationRow row{message_id,    context_.table, queue_->url(), "failing",
                      receive_count, detail,         excerpt,       context_.env->NowMicros()};
  return context_.ledger->RecordNotification(row);
}

bool SqsDiscovery::GoneFromListing(const std::string& key) {
  // Without s3:ListBucket, S3 answers HeadObject for a missing key with 403,
  // not 404, so as not to reveal whether it exists. A listing under the key
  // itself, which a policy granting ListBucket on the source prefix allows,
  // tells a deleted object from a real permission problem.
  auto page = context_.source->List(key, "", 1);
  return page.ok() && (page->objects.empty() || page->objects.front().key != key);
}

StatusOr<bool> SqsDiscovery::AllStaged(const HeldMessage& m, std::string* failing) {
  bool staged = true;
  for (const auto& [key, etag] : m.objects) {
    LF_ASSIGN_OR_RETURN(auto row, context_.ledger->FindObject(context_.table, key, etag));
    if (!row || row->state == ObjectState::kStaged || row->state == ObjectState::kSuperseded ||
        row->state == ObjectState::kSkipped)
      continue;
    staged = false;
    if (row->state == ObjectState::kFailed && row->attempts >= 3)
      *failing = context_.source->UriOf(key) + ": " + row->last_error;
  }
  return staged;
}

Status SqsDiscovery::Acknowledge(DiscoveryStats* stats) {
  std::vector<std::pair<std::string, HeldMessage>> held;
  {
    std::lock_guard lock(held_mu_);
    held.assign(held_.begin(), held_.end());
  }
  Status first_error;
  for (auto& [id, m] : held) {
    std::string failing;
    LF_ASSIGN_OR_RETURN(bool staged, AllStaged(m, &failing));
    if (!staged) {
      if (!failing.empty()) LF_RETURN_IF_ERROR(RecordFailing(id, m.receive_count, failing, ""));
      continue;
    }
    Status s = queue_->Delete(m.receipt_handle);
    if (!s.ok() && s.code() != StatusCode::kInvalidArgument) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    // An expired receipt (kInvalidArgument) means the message was or will
    // be redelivered; that delivery deletes it.
    if (s.ok()) ++stats->acknowledged;
    LF_RETURN_IF_ERROR(Settled(id, m));
  }
  return first_error;
}

int64_t SqsDiscovery::held() const {
  std::lock_guard lock(held_mu_);
  return static_cast<int64_t>(held_.size());
}

Status SqsDiscovery::Settled(const std::string& id, const HeldMessage& m) {
  Forget(id, m.receipt_handle);
  NotificationRow row{id, context_.table, queue_->url(), "done", m.receive_count, "", "", context_.env->NowMicros()};
  auto prior = context_.ledger->Notifications(context_.table, "failing");
  if (prior.ok())
    for (const NotificationRow& p : *prior)
      if (p.message_id == id) LF_RETURN_IF_ERROR(context_.ledger->RecordNotification(row));
  return Status::Ok();
}

void SqsDiscovery::BeginStaging(const std::vector<ObjectVersion>& objects) {
  std::lock_guard lock(held_mu_);
  staging_now_.insert(objects.begin(), objects.end());
}

void SqsDiscovery::FinishedStaging(const ObjectVersion& object) {
  std::lock_guard lock(held_mu_);
  staging_now_.erase(object);
}

void SqsDiscovery::EndStaging() {
  std::lock_guard lock(held_mu_);
  staging_now_.clear();
}

bool SqsDiscovery::WaitsElsewhere(const HeldMessage& m, const std::set<ObjectVersion>& staging_now) {
  for (const ObjectVersion& object : m.objects) {
    if (staging_now.count(object)) continue;
    auto row = context_.ledger->FindObject(context_.table, object.first, object.second);
    if (row.ok() && (!*row || (*row)->state == ObjectState::kStaged || (*row)->state == ObjectState::kSuperseded ||
                     (*row)->state == ObjectState::kSkipped))
      continue;
    return true;
  }
  return false;
}

void SqsDiscovery::Extend() {
  int visibility_s = static_cast<int>(options_.visibility_us / kMicrosPerSecond);
  std::vector<std::pair<std::string, HeldMessage>> held;
  std::set<ObjectVersion> staging_now;
  {
    std::lock_guard lock(held_mu_);
    held.assign(held_.begin(), held_.end());
    staging_now = staging_now_;
  }
  std::vector<std::pair<std::string, std::string>> receipts;
  for (const auto& [id, m] : held) {
    // Extending a message that waits on a failing object would keep it in
    // flight for as long as other objects stage, and it would never reach the
    // queue's maxReceiveCount. Messages whose objects are all staged are
    // kept: Acknowledge, after staging, deletes them.
    if (WaitsElsewhere(m, staging_now)) {
      log::Debug("{}: notification {} waits on an object that is not being staged; not extended", context_.table, id);
      continue;
    }
    receipts.emplace_back(id, m.receipt_handle);
  }
  for (const auto& [id, receipt] : receipts) {
    Status s = queue_->ExtendVisibility(receipt, visibility_s);
    if (s.ok()) continue;
    // The receipt expired: the message is back on the queue and will be
    // received again; forget this delivery.
    log::Debug("{}: cannot extend notification {}: {}", context_.table, id, s.ToString());
    if (s.code() == StatusCode::kInvalidArgument) Forget(id, receipt);
  }
}

}  // namespace logferry
