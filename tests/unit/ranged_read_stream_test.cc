// The chunked reader S3 and GCS share: chunks of the configured size, a
// short object is an error, and the end-of-object check runs at the end.
#include "store/ranged_read_stream.h"

#include <gtest/gtest.h>

#include <vector>

namespace logferry {
namespace {

class FakeRanged final : public RangedReadStream {
 public:
  FakeRanged(std::string data, uint64_t claimed_size, uint64_t chunk)
      : RangedReadStream("fake object f://k", claimed_size, chunk), data_(std::move(data)) {}
  std::vector<std::pair<uint64_t, uint64_t>> requests;
  Status complete = Status::Ok();
  int complete_calls = 0;

 private:
  StatusOr<std::string> FetchRange(uint64_t offset, uint64_t n) override {
    requests.emplace_back(offset, n);
    return offset >= data_.size() ? std::string() : data_.substr(offset, n);
  }
  Status CheckComplete() override {
    ++complete_calls;
    return complete;
  }
  std::string data_;
};

std::string ReadToEnd(ReadStream& in, Status* end) {
  std::string out;
  char buf[3];
  for (;;) {
    auto n = in.Read(buf, sizeof buf);
    if (!n.ok() || *n == 0) {
      *end = n.status();
      return out;
    }
    out.append(buf, *n);
  }
}

TEST(RangedReadStream, ReadsInChunksOfTheConfiguredSize) {
  FakeRanged in("abcdefghij", 10, 4);
  Status end;
  EXPECT_EQ(ReadToEnd(in, &end), "abcdefghij");
  EXPECT_TRUE(end.ok());
  EXPECT_EQ(in.Offset(), 10u);
  std::vector<std::pair<uint64_t, uint64_t>> want = {{0, 4}, {4, 4}, {8, 2}};
  EXPECT_EQ(in.requests, want);
  EXPECT_EQ(in.complete_calls, 1);
}

TEST(RangedReadStream, AnObjectShorterThanItsSizeFails) {
  FakeRanged in("abcdef", 10, 4);
  Status end;
  EXPECT_EQ(ReadToEnd(in, &end), "abcdef");
  EXPECT_EQ(end.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(end.message().find("fake object f://k ended at byte 6 of 10"), std::string::npos) << end.ToString();
}

TEST(RangedReadStream, AFailedEndCheckFailsTheLastRead) {
  FakeRanged in("abc", 3, 4);
  in.complete = Status::Unavailable("checksum");
  Status end;
  EXPECT_EQ(ReadToEnd(in, &end), "abc");
  EXPECT_EQ(end.code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace logferry
