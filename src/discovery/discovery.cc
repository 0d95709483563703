#include "discovery/discovery.h"

#include "common/logging.h"

namespace logferry {

namespace {

class ReconciledDiscovery : public Discovery {
 public:
  ReconciledDiscovery(std::unique_ptr<Discovery> events, std::unique_ptr<Discovery> listing, int64_t every_us,
                      const DiscoveryContext& context)
      : events_(std::move(events)),
        listing_(std::move(listing)),
        every_us_(every_us),
        table_(context.table),
        env_(context.env) {}

  Status Poll(const PollOptions& options, DiscoveryStats* stats) override {
    // Lost or late events are what the listing is for: a failure to receive
    // them is reported once the listing has run.
    Status event_error = events_->Poll(options, stats);
    int64_t now = env_->NowMicros();
    if (last_listing_us_ != 0 && now - last_listing_us_ < every_us_ && event_error.ok()) return event_error;
    DiscoveryStats listed;
    LF_RETURN_IF_ERROR(listing_->Poll(options, &listed));
    if (listed.recorded > 0)
      log::Warn("{}: the listing found {} object(s) no notification announced", table_, listed.recorded);
    stats->recorded += listed.recorded;
    last_listing_us_ = now;
    return event_error;
  }
  Status Acknowledge(DiscoveryStats* stats) override { return events_->Acknowledge(stats); }
  void BeginStaging(const std::vector<ObjectVersion>& objects) override { events_->BeginStaging(objects); }
  void FinishedStaging(const ObjectVersion& object) override { events_->FinishedStaging(object); }
  void EndStaging() override { events_->EndStaging(); }
  void Extend() override { events_->Extend(); }
  int64_t extend_every_us() const override { return events_->extend_every_us(); }
  int64_t held() const override { return events_->held(); }

 private:
  std::unique_ptr<Discovery> events_, listing_;
  int64_t every_us_;
  std::string table_;
  Env* env_;
  int64_t last_listing_us_ = 0;
};

}  // namespace

std::unique_ptr<Discovery> WithReconcileListing(std::unique_ptr<Discovery> events, std::unique_ptr<Discovery> listing,
                                                int64_t every_us, const DiscoveryContext& context) {
  return std::make_unique<ReconciledDiscovery>(std::move(events), std::move(listing), every_us, context);
}

}  // namespace logferry
