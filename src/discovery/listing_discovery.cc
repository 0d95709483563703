#include "discovery/listing_discovery.h"

#include <sys/stat.h>

#include "common/logging.h"
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

Status ListingDiscovery::Poll(const PollOptions& options, DiscoveryStats* stats) {
  ObjectStore& source = *context_.source;
  int64_t now = context_.env->NowMicros();
  auto listed = source.ListAll("");
  if (!listed.ok()) return listed.status().WithContext("listing " + source.uri());
  WarnIfEmpty(listed->size());
  std::vector<ObjectInfo> ours;
  std::vector<std::string> ignored;
  int64_t ignored_count = 0;
  for (ObjectInfo& o : *listed) {
    if (context_.ours(o.key)) {
      ours.push_back(std::move(o));
    } else if (++ignored_count <= static_cast<int64_t>(Ledger::kMaxIgnoredKeyExamples)) {
      ignored.push_back(o.key);
    }
  }
  LF_RETURN_IF_ERROR(context_.ledger->RecordIgnoredKeys(context_.table, ignored_count, ignored, now));
  WarnIfIgnored(ignored_count, ignored.empty() ? "" : ignored.front());
  LF_ASSIGN_OR_RETURN(int64_t found, context_.ledger->RecordDiscovered(context_.table, ours, "listing", now));
  stats->recorded += found;
  return Status::Ok();
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
