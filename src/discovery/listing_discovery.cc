#include "discovery/listing_discovery.h"

#include <sys/stat.h>

#include <algorithm>

#include "common/logging.h"
#include "common/time.h"
#include "ledger/ledger.h"
#include "store/object_store.h"

namespace logferry {

std::optional<std::string> MissingLocalRoot(const ObjectStore& store) {
  // A store knows local paths of keys, not of its root: ask for a key's and cut it.
  std::optional<std::string> probe = store.LocalPath("x");
  if (!probe) return std::nullopt;
  std::string root = probe->substr(0, probe->size() - 1);
  if (root.size() > 1 && root.back() == '/') root.pop_back();
  struct stat st {};
  if (stat(root.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return std::nullopt;
  return root;
}

namespace {

void Newest(std::map<std::string, int64_t>* prefixes, std::string prefix, int64_t slice_us) {
  auto [it, added] = prefixes->emplace(std::move(prefix), slice_us);
  if (!added) it->second = std::max(it->second, slice_us);
}

}  // namespace

Status ListingDiscovery::Poll(const PollOptions& options, DiscoveryStats* stats) {
  int64_t now = context_.env->NowMicros();
  return WindowDue(now) ? PollWindow(now, stats) : PollFull(now, stats);
}

// A window pays one LIST per prefix at least: with many more prefixes than
// the whole source has pages of 1,000 keys (a %{hostname} per object), the
// full listing is the cheaper one. With none (an empty source at the last
// full listing), the first objects must not wait for the next one.
bool ListingDiscovery::WindowDue(int64_t now) const {
  constexpr size_t kFewPrefixes = 100;
  if (window_.lookback_us <= 0 || last_full_us_ == 0 || now - last_full_us_ >= window_.full_every_us) return false;
  return !prefixes_.empty() && prefixes_.size() <= std::max(full_pages_, kFewPrefixes);
}

Status ListingDiscovery::PollFull(int64_t now, DiscoveryStats* stats) {
  ObjectStore& source = *context_.source;
  auto listed = source.ListAll("");
  if (!listed.ok()) return listed.status().WithContext("listing " + source.uri());
  WarnIfEmpty(listed->size());
  std::vector<ObjectInfo> ours;
  std::vector<std::string> ignored;
  std::map<std::string, int64_t> prefixes;
  int64_t ignored_count = 0;
  for (ObjectInfo& o : *listed) {
    auto slice = window_.slice_of ? window_.slice_of(o.key) : std::nullopt;
    if (slice || context_.ours(o.key)) {
      if (slice) Newest(&prefixes, std::move(slice->first), slice->second);
      ours.push_back(std::move(o));
    } else if (++ignored_count <= static_cast<int64_t>(Ledger::kMaxIgnoredKeyExamples)) {
      ignored.push_back(o.key);
    }
  }
  LF_RETURN_IF_ERROR(context_.ledger->RecordIgnoredKeys(context_.table, ignored_count, ignored, now));
  WarnIfIgnored(ignored_count, ignored.empty() ? "" : ignored.front());
  LF_ASSIGN_OR_RETURN(int64_t found, context_.ledger->RecordDiscovered(context_.table, ours, "listing", now));
  stats->recorded += found;
  ++stats->full_listings;
  // Only a listing that got through teaches the window its prefixes.
  full_pages_ = listed->size() / 1000 + 1;
  prefixes_ = std::move(prefixes);
  last_full_us_ = now;
  return Status::Ok();
}

Status ListingDiscovery::PollWindow(int64_t now, DiscoveryStats* stats) {
  std::vector<ObjectInfo> ours;
  for (auto& [prefix, newest] : prefixes_) {
    size_t first = ours.size();
    LF_RETURN_IF_ERROR(ListWindow(prefix, std::min(now, newest) - window_.lookback_us, now, &ours));
    for (size_t i = first; i < ours.size(); ++i)
      if (auto slice = window_.slice_of(ours[i].key); slice && slice->first == prefix)
        newest = std::max(newest, slice->second);
  }
  LF_ASSIGN_OR_RETURN(int64_t found, context_.ledger->RecordDiscovered(context_.table, ours, "listing", now));
  log::Debug("{}: windowed listing of {} prefix(es) saw {} key(s), {} new", context_.table, prefixes_.size(),
             ours.size(), found);
  stats->recorded += found;
  ++stats->windowed_listings;
  return Status::Ok();
}

// Keys under prefix sort by slice from the window's start on, up to the
// slices of the present; what sorts after those (a longer path that starts
// with this one, or keys from a clock far ahead) is left to its own window or
// to the full listing.
Status ListingDiscovery::ListWindow(const std::string& prefix, int64_t from, int64_t now,
                                    std::vector<ObjectInfo>* ours) {
  constexpr int64_t kAhead = 2 * kMicrosPerDay;  // Fluentd hosts whose clocks run ahead
  ObjectStore& source = *context_.source;
  std::string token = window_.start_after(prefix, from, now);
  for (;;) {
    auto page = source.List(prefix, token, source.list_page_keys());
    if (!page.ok()) return page.status().WithContext("listing " + source.UriOf(prefix) + " from " + token);
    for (ObjectInfo& o : page->objects) {
      if (window_.past(prefix, o.key, now + kAhead)) return Status::Ok();
      if (context_.ours(o.key)) ours->push_back(std::move(o));
    }
    if (page->next_token.empty()) return Status::Ok();
    token = page->next_token;
  }
}

void ListingDiscovery::WarnIfEmpty(size_t listed) {
  if (listed > 0 || warned_empty_) {
    warned_empty_ = listed == 0;
    return;
  }
  warned_empty_ = true;
  if (auto missing = MissingLocalRoot(*context_.source))
    log::Warn("{}: the source directory {} does not exist: nothing to discover (is `source` right?)", context_.table,
              *missing);
  else
    log::Warn("{}: the source {} holds no objects at all (is `source` right?)", context_.table, context_.source->uri());
}

void ListingDiscovery::WarnIfIgnored(int64_t ignored, const std::string& example) {
  if (ignored > ignored_warned_)
    log::Warn("{}: {} key(s) under {} do not match key_format and are ignored, e.g. '{}' (see 'logferry status')",
              context_.table, ignored, context_.source->uri(), example);
  ignored_warned_ = ignored;
}

}  // namespace logferry
