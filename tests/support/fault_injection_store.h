// An ObjectStore wrapper that injects faults into writes, after LevelDB's
// fault_injection_test. Writes are counted by Commit (one committed object is
// one write), from the moment a fault is armed:
//   kFail        the Nth write fails (kUnavailable) and persists nothing;
//   kTear        the Nth write persists only its first half, though the
//                writer is told (size, crc32c) that all of it did: a write cut
//                part-way, found only by whoever checks the checksum;
//   kCrash       the Nth write persists, then the store is dead: every later
//                write and delete fails and persists nothing (a crash point);
//   kCrashThrow  as kCrash, and the Nth Commit throws SimulatedCrash after
//                persisting, so the caller stops right there, as a process
//                killed just after the write returned would.
// Reads, listings and stats pass through. Test-only: production code has no
// test switches, so this lives under tests/.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/strings.h"
#include "store/object_store.h"

namespace logferry::testutil {

// Not a std::exception, so that only a catch (...) stops it, as nothing stops
// a real crash.
struct SimulatedCrash {};

class FaultInjectionStore final : public ObjectStore {
 public:
  enum class Fault { kNone, kFail, kTear, kCrash, kCrashThrow };

  explicit FaultInjectionStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}

  // Arms `fault` for the nth write from now (n = 1: the next one).
  void Inject(Fault fault, int nth) {
    std::lock_guard lock(mu_);
    fault_ = fault;
    countdown_ = nth;
  }
  bool crashed() const {
    std::lock_guard lock(mu_);
    return crashed_;
  }
  // Keys whose writes persisted (whole or torn), in order.
  std::vector<std::string> persisted() const {
    std::lock_guard lock(mu_);
    return persisted_;
  }

  const std::string& uri() const override { return inner_->uri(); }
  StatusOr<ListPage> List(std::string_view p, std::string_view t, size_t n) override { return inner_->List(p, t, n); }
  StatusOr<ObjectInfo> Stat(std::string_view key) override { return inner_->Stat(key); }
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& o) override {
    return inner_->OpenRead(key, o);
  }
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    return std::unique_ptr<WriteStream>(new Writer(this, std::string(key)));
  }
  Status Delete(std::string_view key) override {
    if (crashed()) return Status::Unavailable("injected crash: " + UriOf(key) + " not deleted");
    return inner_->Delete(key);
  }

 private:
  // The whole object is kept until Commit, which decides its fate.
  class Writer final : public WriteStream {
   public:
    Writer(FaultInjectionStore* store, std::string key) : store_(store), key_(std::move(key)) {}
    Status Write(std::string_view data) override {
      data_.append(data);
      return Status::Ok();
    }
    StatusOr<WrittenObject> Commit() override { return store_->CommitWrite(key_, data_); }

   private:
    FaultInjectionStore* store_;
    std::string key_, data_;
  };

  // What happens to the write about to commit; counts it.
  Fault Next() {
    std::lock_guard lock(mu_);
    if (crashed_) return Fault::kFail;
    if (fault_ == Fault::kNone || --countdown_ > 0) return Fault::kNone;
    Fault f = fault_;
    fault_ = Fault::kNone;
    if (f == Fault::kCrash || f == Fault::kCrashThrow) crashed_ = true;
    return f;
  }

  StatusOr<WrittenObject> CommitWrite(const std::string& key, const std::string& data) {
    Fault f = Next();
    if (f == Fault::kFail) return Status::Unavailable("injected fault: write of " + UriOf(key) + " failed");
    std::string_view kept = f == Fault::kTear ? std::string_view(data).substr(0, data.size() / 2) : data;
    auto written = inner_->WriteAll(key, kept);
    if (!written.ok()) return written;
    {
      std::lock_guard lock(mu_);
      persisted_.push_back(key);
    }
    if (f == Fault::kTear) {
      written->size = data.size();
      written->crc32c = Crc32cHex(Crc32c(0, data.data(), data.size()));
    }
    if (f == Fault::kCrashThrow) throw SimulatedCrash{};
    return written;
  }

  std::unique_ptr<ObjectStore> inner_;
  mutable std::mutex mu_;
  Fault fault_ = Fault::kNone;
  int countdown_ = 0;
  bool crashed_ = false;
  std::vector<std::string> persisted_;
};

}  // namespace logferry::testutil
