// MsgpackStream decodes Fluentd's msgpack stream straight into JSON text
// through msgpack-cxx's visitor parser. Its output must be exactly what
// MsgpackToJson writes from msgpack-cxx's own object tree, for every value
// and however the stream is cut into reads; offsets, truncation and invalid
// bytes must be reported where they are.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <msgpack.hpp>
#include <random>

#include "format/msgpack_json.h"
#include "format/msgpack_object.h"

namespace logferry {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Random values of every msgpack type, keys included (Fluentd writes string
// keys, but a stream may hold anything).
class RandomValues {
 public:
  explicit RandomValues(uint64_t seed) : rng_(seed) {}

  void Value(Packer& pk, int depth) {
    int pick = static_cast<int>(rng_() % (depth > 4 ? 11 : 13));
    switch (pick) {
      case 0:
        pk.pack_nil();
        break;
      case 1:
        pk.pack(rng_() % 2 == 0);
        break;
      case 2:
        pk.pack(static_cast<uint64_t>(rng_()));
        break;
      case 3:
        pk.pack(-static_cast<int64_t>(rng_() % 1000000) - 1);
        break;
      case 4: {
        const double specials[] = {1.5, -0.25, 1e300, 3.0, NAN, INFINITY, -INFINITY, 0.1};
        pk.pack_double(specials[rng_() % 8]);
        break;
      }
      case 5:
        pk.pack_float(static_cast<float>(rng_() % 1000) / 7.0f);
        break;
      case 6:
      case 7:
        Str(pk);
        break;
      case 8: {
        std::string b = Bytes(rng_() % 20);
        pk.pack_bin(static_cast<uint32_t>(b.size()));
        pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
        break;
      }
      case 9: {
        // Fluentd's EventTime (ext 0, 8 bytes) or another ext.
        bool event_time = rng_() % 2 == 0;
        std::string b = Bytes(event_time ? 8 : rng_() % 10);
        pk.pack_ext(b.size(), event_time ? 0 : static_cast<int8_t>(rng_() % 100));
        pk.pack_ext_body(b.data(), static_cast<uint32_t>(b.size()));
        break;
      }
      case 10:
        pk.pack(int64_t{42});
        break;
      case 11: {
        uint32_t n = rng_() % 4;
        pk.pack_array(n);
        for (uint32_t i = 0; i < n; ++i) Value(pk, depth + 1);
        break;
      }
      default:
        Map(pk, depth + 1);
        break;
    }
  }

  void Map(Packer& pk, int depth) {
    uint32_t n = rng_() % 6;
    pk.pack_map(n);
    for (uint32_t i = 0; i < n; ++i) {
      if (rng_() % 4 == 0)
        Value(pk, depth + 1);  // any key: int, nil, float, bin, even a map
      else
        Str(pk);
      Value(pk, depth + 1);
    }
  }

 private:
  void Str(Packer& pk) {
    std::string s = Bytes(rng_() % 40);
    if (rng_() % 3) {  // mostly printable, some with quotes and escapes
      for (char& c : s) c = static_cast<char>(0x20 + static_cast<uint8_t>(c) % 95);
    }
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }
  std::mt19937_64 rng_;
};

struct Expected {
  std::string json;
  std::string type;
  uint64_t offset, size;
  int repairs;
  std::string repair;
};

// What msgpack-cxx's object unpacker and MsgpackToJson make of the stream.
std::vector<Expected> Reference(const std::string& stream) {
  std::vector<Expected> out;
  size_t off = 0;
  while (off < stream.size()) {
    size_t start = off;
    msgpack::object_handle oh = msgpack::unpack(stream.data(), stream.size(), off);
    Expected e;
    e.repairs = MsgpackToJson(oh.get(), &e.json, &e.repair);
    e.type = MsgpackTypeName(oh.get());
    e.offset = start;
    e.size = off - start;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Expected> Decode(const std::string& stream, size_t chunk, std::string* pending = nullptr,
                             bool* invalid = nullptr, uint64_t* invalid_at = nullptr) {
  MsgpackStream s;
  MsgpackStream::Record rec;
  std::vector<Expected> out;
  size_t pos = 0;
  for (bool at_end = false; !at_end;) {
    size_t n = std::min(chunk, stream.size() - pos);
    char* room = s.Reserve(chunk);
    std::memcpy(room, stream.data() + pos, n);
    s.Commit(n);
    pos += n;
    at_end = n == 0;
    for (;;) {
      auto r = s.Next(&rec, at_end);
      if (r == MsgpackStream::Result::kRecord) {
        out.push_back({rec.json, rec.type, rec.offset, rec.size, rec.repairs, rec.repair});
        continue;
      }
      if (r == MsgpackStream::Result::kInvalid) {
        if (invalid) *invalid = true;
        if (invalid_at) *invalid_at = s.invalid_at();
        if (pending) *pending = std::string(s.Pending());
        return out;
      }
      break;
    }
  }
  if (pending) *pending = std::string(s.Pending());
  return out;
}

void ExpectSameRecords(const std::vector<Expected>& got, const std::vector<Expected>& want, size_t chunk) {
  ASSERT_EQ(got.size(), want.size()) << "chunk " << chunk;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].json, want[i].json) << "record " << i << ", chunk " << chunk;
    EXPECT_EQ(got[i].type, want[i].type) << "record " << i;
    EXPECT_EQ(got[i].offset, want[i].offset) << "record " << i;
    EXPECT_EQ(got[i].size, want[i].size) << "record " << i;
    EXPECT_EQ(got[i].repairs, want[i].repairs) << "record " << i << ": " << want[i].json;
    EXPECT_EQ(got[i].repair, want[i].repair) << "record " << i;
  }
}

TEST(MsgpackStream, MatchesTheObjectTreeForRandomValuesAndAnyReadSize) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  RandomValues values(2024);
  for (int i = 0; i < 400; ++i) {
    if (i % 10 == 9)
      values.Value(pk, 0);  // now and then a record that is not a map
    else
      values.Map(pk, 0);
  }
  std::string stream(buf.data(), buf.size());
  std::vector<Expected> want = Reference(stream);
  ASSERT_EQ(want.size(), 400u);
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}, size_t{1000}, stream.size()}) {
    std::string pending;
    ExpectSameRecords(Decode(stream, chunk, &pending), want, chunk);
    EXPECT_TRUE(pending.empty());
  }
}

TEST(MsgpackStream, KeysThatAreNotStringsAndRepairsAreNamedAsByMsgpackToJson) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(6);
  pk.pack(int64_t{1});
  pk.pack(std::string("int key"));
  pk.pack_nil();
  pk.pack(std::string("nil key"));
  pk.pack_map(1);  // a map as a key: named by its type, its content skipped
  pk.pack(std::string("inner"));
  pk.pack_array(1);
  pk.pack(std::string("deep"));
  pk.pack(std::string("bad\xff"));
  pk.pack(std::string("nan"));
  pk.pack_double(NAN);
  pk.pack(std::string("when"));
  const char event_time[8] = {0x57, static_cast<char>(0x9e), static_cast<char>(0x9f), 0x10, 0, 0, 0, 1};
  pk.pack_ext(8, 0);
  pk.pack_ext_body(event_time, 8);
  pk.pack(2.5);
  pk.pack(true);
  std::string stream(buf.data(), buf.size());
  auto got = Decode(stream, 5);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].json,
            "{\"1\":\"int key\",\"null\":\"nil key\",\"(map)\":\"bad\xEF\xBF\xBD\",\"nan\":\"NaN\","
            "\"when\":\"2016-08-01T01:00:00Z\",\"2.5\":true}");
  ExpectSameRecords(got, Reference(stream), 5);
  EXPECT_EQ(got[0].repairs, 3);  // the map key, the UTF-8 repair, NaN
  EXPECT_EQ(got[0].repair, "field 'nan': NaN kept as text");
}

TEST(MsgpackStream, ValuesNestedPastTheLimitAreCutToNull) {
  std::string stream;
  for (int i = 0; i < kMsgpackMaxDepth + 5; ++i) stream += "\x91";  // arrays of one
  stream += "\x01";
  auto got = Decode(stream, 4096);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, "array");
  EXPECT_EQ(got[0].json, std::string(kMsgpackMaxDepth + 1, '[') + "null" + std::string(kMsgpackMaxDepth + 1, ']'));
  EXPECT_EQ(got[0].repairs, 1);
  EXPECT_NE(got[0].repair.find("nested deeper"), std::string::npos);
}

TEST(MsgpackStream, InvalidBytesAreReportedWhereTheyAre) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(1);
  pk.pack(std::string("a"));
  pk.pack(1);
  std::string good(buf.data(), buf.size());
  // Two records, then a map whose value is 0xC1 (never used by msgpack).
  std::string stream = good + good + "\x81\xa1k\xc1" + good;
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{100}}) {
    bool invalid = false;
    uint64_t at = 0;
    std::string pending;
    auto got = Decode(stream, chunk, &pending, &invalid, &at);
    EXPECT_EQ(got.size(), 2u) << chunk;
    EXPECT_TRUE(invalid) << chunk;
    EXPECT_EQ(at, 2 * good.size() + 3) << "the offset of the 0xC1 byte";
    EXPECT_EQ(pending.substr(0, 4), "\x81\xa1k\xc1");
  }
}

TEST(MsgpackStream, ATruncatedRecordAndAnAbsurdHeaderWaitForBytesAndAllocateNothing) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(1);
  pk.pack(std::string("message"));
  pk.pack(std::string(100, 'm'));
  std::string good(buf.data(), buf.size());
  std::string pending;
  auto got = Decode(good + good.substr(0, 50), 7, &pending);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(pending, good.substr(0, 50));
  // An array header claiming 2^32-1 elements, and a str claiming 4 GiB.
  for (std::string absurd : {std::string("\xdd\xff\xff\xff\xff\xc0", 6), std::string("\xdb\xff\xff\xff\xff"
                                                                                     "ab",
                                                                                     7)}) {
    got = Decode(good + absurd, 1 << 20, &pending);
    EXPECT_EQ(got.size(), 1u);
    EXPECT_EQ(pending, absurd);
  }
}

TEST(MsgpackStream, NestingPastWhatTheParserMayHoldIsInvalidNotMemory) {
  std::string stream(kMsgpackMaxParseDepth + 10, '\x91');  // arrays of one, never closed
  MsgpackStream s;
  MsgpackStream::Record rec;
  char* room = s.Reserve(stream.size());
  std::memcpy(room, stream.data(), stream.size());
  s.Commit(stream.size());
  EXPECT_EQ(s.Next(&rec, /*force=*/true), MsgpackStream::Result::kInvalid);
  EXPECT_EQ(s.invalid_at(), 0u);
  EXPECT_NE(s.invalid_reason().find("nested deeper than"), std::string::npos) << s.invalid_reason();
}

// A record over max_record is measured, not written out: its JSON stops
// near the cap. One within max_record is never cut, even in the worst case
// for expansion (false keys with false values: 2 bytes become 14).
TEST(MsgpackStream, RecordsOverMaxRecordAreMeasuredWithoutTheirWholeJson) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(2);
  pk.pack(std::string("msg"));
  pk.pack(std::string(100000, '\x01'));  // six bytes of JSON each
  pk.pack(std::string("n"));
  pk.pack(1);
  pk.pack_map(1);
  pk.pack(std::string("after"));
  pk.pack(2);
  std::string stream(buf.data(), buf.size());
  MsgpackStream s;
  MsgpackStream::Record rec;
  char* room = s.Reserve(stream.size());
  std::memcpy(room, stream.data(), stream.size());
  s.Commit(stream.size());
  ASSERT_EQ(s.Next(&rec, false, 1000), MsgpackStream::Result::kRecord);
  EXPECT_TRUE(rec.json_cut);
  EXPECT_GT(rec.size, 100000u);
  EXPECT_LT(rec.json.size(), 16 * 1000 + 4096 + 1000);
  ASSERT_EQ(s.Next(&rec, false, 1000), MsgpackStream::Result::kRecord) << "the stream goes on after it";
  EXPECT_FALSE(rec.json_cut);
  EXPECT_EQ(rec.json, "{\"after\":2}");

  msgpack::sbuffer worst;
  Packer wpk(&worst);
  wpk.pack_map(15);  // fixmap: one header byte
  for (int i = 0; i < 15; ++i) {
    wpk.pack(false);
    wpk.pack(false);
  }
  std::string w(worst.data(), worst.size());
  MsgpackStream t;
  room = t.Reserve(w.size());
  std::memcpy(room, w.data(), w.size());
  t.Commit(w.size());
  ASSERT_EQ(t.Next(&rec, true, w.size()), MsgpackStream::Result::kRecord);
  EXPECT_FALSE(rec.json_cut);
  EXPECT_EQ(rec.size, w.size());
  EXPECT_GT(rec.json.size(), 6 * w.size());
}

}  // namespace
}  // namespace logferry
