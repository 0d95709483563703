// Discovery by listing: every object of the source whose key is ours, handed
// to the ledger, which records the versions it does not know (found_by =
// "listing"). Nothing to acknowledge. A whole listing per poll: the
// always-correct baseline and the reconcile behind events.
//
// Windowed: Fluentd names each object after its time slice, so objects it
// writes now land in the newest slices. With a ListingWindow, a poll lists,
// under each prefix that keys have before their time slice (learnt from the
// last full listing: a %{path}), only the keys from the slice of
// now - lookback on, or of (newest slice seen there) - lookback when that is
// earlier: a source replaying old days (a backfill, a test fixture) is
// windowed from its own newest slice, not from today. The whole source is
// listed at the first poll and every full_every_us, and that full listing
// is the safety net: an object that lands in an older slice, or under a
// prefix not seen before, is found by it, only later. So a window that is
// too short costs latency, never an object.
//
// A listing also sees what is not ours: keys that do not match key_format
// are counted in the ledger, with a few examples (status shows them), and a
// source with nothing in it at all is warned about, since both usually mean
// a wrong `source` or `key_format` rather than a quiet bucket. Only full
// listings count them: a window sees a part of the source.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "discovery/discovery.h"
#include "store/object_store.h"

namespace logferry {

// How a listing may skip keys too old to be new: the key layout's time
// slice (format/key_format.h: KeyFormat::WindowStart and its siblings).
struct ListingWindow {
  int64_t lookback_us = 0;    // 0: every poll lists the whole source
  int64_t full_every_us = 0;  // the whole source at the first poll and this often
  // The part of one of our keys before its time slice, and the slice's
  // start; nullopt for a key that is not ours.
  std::function<std::optional<std::pair<std::string, int64_t>>(std::string_view key)> slice_of;
  // The start-after key under prefix from which keys of slices at or after
  // from_us lie (now_us: the present).
  std::function<std::string(std::string_view prefix, int64_t from_us, int64_t now_us)> start_after;
  // Whether key, under prefix, sorts after every slice up to until_us.
  std::function<bool(std::string_view prefix, std::string_view key, int64_t until_us)> past;
};

class ListingDiscovery : public Discovery {
 public:
  explicit ListingDiscovery(DiscoveryContext context, ListingWindow window = {})
      : context_(std::move(context)), window_(std::move(window)) {}

  Status Poll(const PollOptions& options, DiscoveryStats* stats) override;

 private:
  bool WindowDue(int64_t now) const;
  Status PollFull(int64_t now, DiscoveryStats* stats);
  Status PollWindow(int64_t now, DiscoveryStats* stats);
  // Lists the keys of prefix from the slice of `from` on, adding ours to *ours.
  Status ListWindow(const std::string& prefix, int64_t from, int64_t now, std::vector<ObjectInfo>* ours);
  void WarnIfEmpty(size_t listed);
  void WarnIfIgnored(int64_t ignored, const std::string& example);

  DiscoveryContext context_;
  ListingWindow window_;
  bool warned_empty_ = false;   // once per stretch of empty listings
  int64_t ignored_warned_ = 0;  // warned again only when more keys are ignored
  int64_t last_full_us_ = 0;    // 0: no full listing yet
  size_t full_pages_ = 0;       // of 1,000 keys, in the last full listing
  // Before the time slice, per the last full listing: the newest slice seen.
  std::map<std::string, int64_t> prefixes_;
};

// The directory of a local store (file://) when it does not exist; nullopt
// when it exists or the store is remote (an empty remote prefix is not an
// error: nothing may have been written yet).
std::optional<std::string> MissingLocalRoot(const ObjectStore& store);

}  // namespace logferry
