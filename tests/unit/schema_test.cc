#include "schema/schema.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "common/strings.h"

namespace logferry {
namespace {

std::vector<std::pair<std::string, ColumnType>> Fixed() {
  return {{"_time", ColumnType::kTimestamp}, {"_tag", ColumnType::kString}};
}

TEST(SanitizeName, ReplacesIllegalBytes) {
  EXPECT_EQ(SanitizeName("response-time"), "response_time");
  EXPECT_EQ(SanitizeName("a.b"), "a_b");
  EXPECT_EQ(SanitizeName("a b"), "a_b");
  EXPECT_EQ(SanitizeName("user@host:port"), "user_host_port");
  EXPECT_EQ(SanitizeName("already_Legal_09"), "already_Legal_09");
}

TEST(SanitizeName, OneUnderscorePerUnicodeCharacter) {
  EXPECT_EQ(SanitizeName("caf\xC3\xA9"), "caf_");             // café: 2-byte é
  EXPECT_EQ(SanitizeName("\xE6\x97\xA5\xE6\x9C\xAC"), "__");  // 日本: two 3-byte chars
  EXPECT_EQ(SanitizeName("a\xF0\x9F\x98\x80"
                         "b"),
            "a_b");  // a😀b: one 4-byte char
  EXPECT_EQ(SanitizeName("\xC3\xA9t\xC3\xA9"), "_t_");
}

TEST(SanitizeName, LeadingDigitAndEmpty) {
  EXPECT_EQ(SanitizeName("1abc"), "_1abc");
  EXPECT_EQ(SanitizeName("404"), "_404");
  EXPECT_EQ(SanitizeName(""), "field");
  EXPECT_EQ(SanitizeName("_1"), "_1");
}

TEST(SanitizeName, ReservedPrefixesCaseInsensitive) {
  EXPECT_EQ(SanitizeName("_PARTITIONTIME"), "f_PARTITIONTIME");
  EXPECT_EQ(SanitizeName("_partitiondate"), "f_partitiondate");
  EXPECT_EQ(SanitizeName("_table_x"), "f_table_x");
  EXPECT_EQ(SanitizeName("_Table_Suffix"), "f_Table_Suffix");
  EXPECT_EQ(SanitizeName("_FILE_NAME"), "f_FILE_NAME");
  EXPECT_EQ(SanitizeName("_row_timestamp"), "f_row_timestamp");
  EXPECT_EQ(SanitizeName("__ROOT__"), "f__ROOT__");
  EXPECT_EQ(SanitizeName("_colon_x"), "f_colon_x");
  // Reserved only once sanitized.
  EXPECT_EQ(SanitizeName("-table-x"), "f_table_x");
  EXPECT_EQ(SanitizeName(".partition"), "f_partition");
  // Near misses stay as they are.
  EXPECT_EQ(SanitizeName("_tablex"), "_tablex");
  EXPECT_EQ(SanitizeName("table_"), "table_");
  EXPECT_EQ(SanitizeName("_time"), "_time");
}

TEST(SanitizeName, CappedAt300Bytes) {
  EXPECT_EQ(SanitizeName(std::string(400, 'a')), std::string(300, 'a'));
  EXPECT_EQ(SanitizeName(std::string(300, 'a')), std::string(300, 'a'));
  std::string digits = SanitizeName(std::string(300, '7'));
  EXPECT_EQ(digits.size(), 300u);
  EXPECT_EQ(digits[0], '_');
  std::string unicode;
  for (int i = 0; i < 200; ++i) unicode += "\xC3\xA9";
  EXPECT_EQ(SanitizeName(unicode), std::string(200, '_'));
}

TEST(SchemaRegistry, ATableMayHaveALowerColumnLimit) {
  SchemaRegistry r(Fixed());
  r.set_column_limit(20);
  EXPECT_EQ(r.column_limit(), 20u);
  int made = 0;
  for (int i = 0; i < 100; ++i)
    if (r.Child(r.root(), "f" + std::to_string(i))) ++made;
  EXPECT_EQ(made + 2 + 8, 20) << "the limit less the fixed columns and the slots kept for internal ones";
  EXPECT_NE(r.Child(r.root(), "f0"), nullptr) << "existing columns stay";
  r.set_column_limit(1'000'000);
  EXPECT_EQ(r.column_limit(), kMaxColumns) << "never above the warehouse's";
}

TEST(SchemaRegistry, CollisionsGetSuffixesCaseInsensitively) {
  SchemaRegistry reg(Fixed());
  Column* root = reg.root();
  Column* a = reg.Child(root, "a-b");
  Column* b = reg.Child(root, "a.b");
  Column* c = reg.Child(root, "A_B");
  Column* d = reg.Child(root, "a b");
  EXPECT_EQ(a->name(), "a_b");
  EXPECT_EQ(b->name(), "a_b_2");
  EXPECT_EQ(c->name(), "A_B_3");
  EXPECT_EQ(d->name(), "a_b_4");
  EXPECT_EQ(reg.Child(root, "a-b"), a) << "the same raw key must map to the same column";
  EXPECT_EQ(reg.Child(root, "a.b"), b);
  // A raw name that happens to equal a generated suffix name.
  Column* e = reg.Child(root, "a_b_2");
  EXPECT_EQ(e->name(), "a_b_2_2");
  // Siblings under another parent are independent.
  Column* obj = reg.Child(root, "obj");
  EXPECT_EQ(reg.Child(obj, "a-b")->name(), "a_b");
  EXPECT_EQ(reg.Child(obj, "a-b")->path(), "obj.a_b");
  EXPECT_EQ(reg.Child(obj, "a-b")->depth(), 2);
}

// Found by fuzz_sanitizer: "_FILE" is legal, but a collision's suffix made
// "_FILE_2", which has BigQuery's reserved prefix _FILE_ and fails a load.
TEST(SchemaRegistry, ASuffixNeverCompletesAReservedPrefix) {
  SchemaRegistry reg(Fixed());
  Column* root = reg.root();
  EXPECT_EQ(reg.Child(root, "_FILE")->name(), "_FILE");
  EXPECT_EQ(reg.Child(root, "?FILE")->name(), "f_FILE_2");
  EXPECT_EQ(reg.Child(root, "_table")->name(), "_table");
  EXPECT_EQ(reg.Child(root, "-table")->name(), "f_table_2");
  EXPECT_EQ(reg.Child(root, "_colon")->name(), "_colon");
  EXPECT_EQ(reg.Child(root, "_COLON")->name(), "f_COLON_2");
  EXPECT_EQ(reg.Child(root, "__root_")->name(), "__root_");
  EXPECT_EQ(reg.Child(root, "__ROOT_")->name(), "f__ROOT__2");
}

TEST(SchemaRegistry, FixedColumnsCannotBeTaken) {
  SchemaRegistry reg(Fixed());
  EXPECT_FALSE(reg.HasUnpersisted()) << "fixed columns are never written to the ledger";
  EXPECT_TRUE(reg.TakeUnpersisted().empty());
  EXPECT_EQ(reg.Child(reg.root(), "_time")->name(), "_time_2");
  EXPECT_EQ(reg.Child(reg.root(), "_TAG")->name(), "_TAG_2");
  EXPECT_EQ(reg.Child(reg.root(), "_Time")->name(), "_Time_3");
  auto cols = reg.DuckDbColumns();
  ASSERT_GE(cols.size(), 2u);
  EXPECT_EQ(cols[0], (std::pair<std::string, std::string>{"_time", "TIMESTAMPTZ"}));
  EXPECT_EQ(cols[1], (std::pair<std::string, std::string>{"_tag", "VARCHAR"}));
}

TEST(SchemaRegistry, SuffixedLongNamesStayWithinTheCap) {
  SchemaRegistry reg(Fixed());
  Column* a = reg.Child(reg.root(), std::string(300, 'x'));
  Column* b = reg.Child(reg.root(), std::string(300, 'x') + "y");
  EXPECT_EQ(a->name().size(), 300u);
  EXPECT_LE(b->name().size(), kMaxColumnName);
  EXPECT_NE(ToLower(a->name()), ToLower(b->name()));
}

TEST(SchemaRegistry, OfferFirstTypeWins) {
  SchemaRegistry reg(Fixed());
  Column* b = reg.Child(reg.root(), "flag");
  EXPECT_EQ(reg.Offer(b, ColumnType::kBool, false), Fit::kOk);
  EXPECT_EQ(b->type(), ColumnType::kBool);
  EXPECT_EQ(reg.Offer(b, ColumnType::kBool, false), Fit::kOk);
  EXPECT_EQ(reg.Offer(b, ColumnType::kInt64, false), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(b, ColumnType::kString, false), Fit::kCompanion);
  EXPECT_EQ(b->type(), ColumnType::kBool) << "a misfit must not change the type";
}

TEST(SchemaRegistry, OfferNumericWidening) {
  SchemaRegistry reg(Fixed());
  Column* f = reg.Child(reg.root(), "f");
  EXPECT_EQ(reg.Offer(f, ColumnType::kFloat64, false), Fit::kOk);
  EXPECT_EQ(reg.Offer(f, ColumnType::kInt64, false), Fit::kOk);
  EXPECT_EQ(f->type(), ColumnType::kFloat64);

  Column* i = reg.Child(reg.root(), "i");
  EXPECT_EQ(reg.Offer(i, ColumnType::kInt64, false), Fit::kOk);
  (void)reg.TakeUnpersisted();
  EXPECT_EQ(reg.Offer(i, ColumnType::kFloat64, false), Fit::kOk);
  EXPECT_EQ(i->type(), ColumnType::kFloat64) << "a float into INT64 widens the column";
  EXPECT_TRUE(reg.HasUnpersisted()) << "widening is a schema change to persist";
  auto recs = reg.TakeUnpersisted();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].name, "i");
  EXPECT_EQ(recs[0].type, ColumnType::kFloat64);
  EXPECT_EQ(reg.Offer(i, ColumnType::kInt64, false), Fit::kOk);
  EXPECT_EQ(i->type(), ColumnType::kFloat64);
  EXPECT_FALSE(reg.HasUnpersisted());
}

TEST(SchemaRegistry, OfferScalarsIntoString) {
  SchemaRegistry reg(Fixed());
  Column* s = reg.Child(reg.root(), "s");
  EXPECT_EQ(reg.Offer(s, ColumnType::kString, false), Fit::kOk);
  EXPECT_EQ(reg.Offer(s, ColumnType::kInt64, false), Fit::kAsString);
  EXPECT_EQ(reg.Offer(s, ColumnType::kFloat64, false), Fit::kAsString);
  EXPECT_EQ(reg.Offer(s, ColumnType::kBool, false), Fit::kAsString);
  EXPECT_EQ(reg.Offer(s, ColumnType::kRecord, false), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(s, ColumnType::kString, true), Fit::kCompanion);
  EXPECT_EQ(s->type(), ColumnType::kString);
}

TEST(SchemaRegistry, OfferMisfitsGoToCompanion) {
  SchemaRegistry reg(Fixed());
  Column* n = reg.Child(reg.root(), "n");
  EXPECT_EQ(reg.Offer(n, ColumnType::kInt64, false), Fit::kOk);
  EXPECT_EQ(reg.Offer(n, ColumnType::kRecord, false), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(n, ColumnType::kString, false), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(n, ColumnType::kInt64, true), Fit::kCompanion) << "array into a scalar column";

  Column* r = reg.Child(reg.root(), "r");
  EXPECT_EQ(reg.Offer(r, ColumnType::kInt64, true), Fit::kOk);
  EXPECT_TRUE(r->repeated());
  EXPECT_EQ(reg.Offer(r, ColumnType::kInt64, false), Fit::kCompanion) << "scalar into a repeated column";
  EXPECT_EQ(reg.Offer(r, ColumnType::kFloat64, true), Fit::kOk);
  EXPECT_EQ(r->type(), ColumnType::kFloat64);
  EXPECT_TRUE(r->repeated());
  EXPECT_EQ(reg.Offer(r, ColumnType::kString, true), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(r, ColumnType::kRecord, true), Fit::kCompanion);

  Column* o = reg.Child(reg.root(), "o");
  EXPECT_EQ(reg.Offer(o, ColumnType::kRecord, false), Fit::kOk);
  EXPECT_EQ(reg.Offer(o, ColumnType::kInt64, false), Fit::kCompanion);
  EXPECT_EQ(reg.Offer(o, ColumnType::kRecord, true), Fit::kCompanion);
}

TEST(SchemaRegistry, CompanionNaming) {
  SchemaRegistry reg(Fixed());
  Column* n = reg.Child(reg.root(), "status");
  ASSERT_EQ(reg.Offer(n, ColumnType::kInt64, false), Fit::kOk);
  Column* comp = reg.CompanionOf(n);
  EXPECT_EQ(comp->name(), "status_str");
  EXPECT_EQ(comp->type(), ColumnType::kString);
  EXPECT_EQ(comp->parent(), n->parent());
  EXPECT_EQ(reg.CompanionOf(n), comp) << "one companion per column";

  Column* dashed = reg.Child(reg.root(), "resp-code");
  EXPECT_EQ(reg.CompanionOf(dashed)->name(), "resp_code_str");

  // A real field that already has the companion's name keeps it.
  Column* real = reg.Child(reg.root(), "x_str");
  Column* x = reg.Child(reg.root(), "x");
  Column* xc = reg.CompanionOf(x);
  EXPECT_EQ(real->name(), "x_str");
  EXPECT_NE(xc, real);
  EXPECT_EQ(xc->name(), "x_str_2");

  // Nested columns get nested companions.
  Column* obj = reg.Child(reg.root(), "req");
  Column* inner = reg.Child(obj, "size");
  EXPECT_EQ(reg.CompanionOf(inner)->path(), "req.size_str");
}

TEST(SchemaRegistry, CompanionOfSuffixedColumnIsNamedAfterIt) {
  // "<column>_str": the companion of column "a_b_2" is "a_b_2_str". Deriving
  // it from the raw key instead gives "a_b_str", which reads as the companion
  // of the different column "a_b".
  SchemaRegistry reg(Fixed());
  Column* first = reg.Child(reg.root(), "a-b");
  Column* second = reg.Child(reg.root(), "a.b");
  ASSERT_EQ(second->name(), "a_b_2");
  EXPECT_EQ(reg.CompanionOf(second)->name(), "a_b_2_str");
  EXPECT_EQ(reg.CompanionOf(first)->name(), "a_b_str");
}

TEST(SchemaRegistry, TakeRequeueRestoreRoundTrip) {
  SchemaRegistry reg(Fixed());
  Column* root = reg.root();
  Column* user = reg.Child(root, "user");
  ASSERT_EQ(reg.Offer(user, ColumnType::kRecord, false), Fit::kOk);
  Column* first = reg.Child(user, "first-name");
  ASSERT_EQ(reg.Offer(first, ColumnType::kString, false), Fit::kOk);
  Column* n = reg.Child(root, "n");
  ASSERT_EQ(reg.Offer(n, ColumnType::kInt64, false), Fit::kOk);
  Column* tags = reg.Child(root, "tags");
  ASSERT_EQ(reg.Offer(tags, ColumnType::kString, true), Fit::kOk);
  Column* ab = reg.Child(root, "a-b");
  ASSERT_EQ(reg.Offer(ab, ColumnType::kBool, false), Fit::kOk);
  Column* ab2 = reg.Child(root, "a.b");
  ASSERT_EQ(reg.Offer(ab2, ColumnType::kFloat64, false), Fit::kOk);
  Column* nc = reg.CompanionOf(n);

  EXPECT_TRUE(reg.HasUnpersisted());
  std::vector<Column*> taken;
  std::vector<ColumnRecord> recs = reg.TakeUnpersisted(&taken);
  EXPECT_EQ(recs.size(), 7u);
  EXPECT_EQ(taken.size(), recs.size());
  EXPECT_FALSE(reg.HasUnpersisted());
  EXPECT_TRUE(reg.TakeUnpersisted().empty()) << "a second take has nothing new";

  // Parents come before children so the ledger can restore in order.
  std::set<std::string> seen_paths = {""};
  for (const ColumnRecord& r : recs) {
    EXPECT_TRUE(seen_paths.count(r.parent_path)) << r.name << " before its parent " << r.parent_path;
    seen_paths.insert(r.parent_path.empty() ? r.name : r.parent_path + "." + r.name);
  }

  // The transaction that was to persist them failed: put them back.
  reg.Requeue(taken);
  EXPECT_TRUE(reg.HasUnpersisted());
  std::vector<ColumnRecord> again = reg.TakeUnpersisted();
  ASSERT_EQ(again.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(again[i].raw_key, recs[i].raw_key);
    EXPECT_EQ(again[i].name, recs[i].name);
    EXPECT_EQ(again[i].type, recs[i].type);
  }

  // A later widening is a second batch.
  ASSERT_EQ(reg.Offer(n, ColumnType::kFloat64, false), Fit::kOk);
  std::vector<ColumnRecord> widen = reg.TakeUnpersisted();
  ASSERT_EQ(widen.size(), 1u);
  EXPECT_EQ(widen[0].type, ColumnType::kFloat64);
  recs.insert(recs.end(), widen.begin(), widen.end());

  SchemaRegistry back(Fixed());
  back.Restore(recs);
  EXPECT_FALSE(back.HasUnpersisted());
  EXPECT_EQ(back.column_count(), reg.column_count());
  EXPECT_EQ(back.Columns(), reg.Columns());
  EXPECT_EQ(back.DuckDbColumns(), reg.DuckDbColumns());
  EXPECT_EQ(back.NameMapping(), reg.NameMapping());

  Column* bn = back.Child(back.root(), "n");
  EXPECT_EQ(bn->name(), "n");
  EXPECT_EQ(bn->type(), ColumnType::kFloat64);
  Column* bnc = back.CompanionOf(bn);
  EXPECT_EQ(bnc->name(), nc->name());
  EXPECT_EQ(back.column_count(), reg.column_count()) << "the restored companion must be reused";
  Column* bfirst = back.Child(back.Child(back.root(), "user"), "first-name");
  EXPECT_EQ(bfirst->path(), "user.first_name");
  EXPECT_EQ(bfirst->type(), ColumnType::kString);
  EXPECT_TRUE(back.Child(back.root(), "tags")->repeated());
  EXPECT_FALSE(back.HasUnpersisted()) << "looking up restored columns changes nothing";
  // Collision numbering continues where the ledger left off.
  EXPECT_EQ(back.Child(back.root(), "A B")->name(), "A_B_3");
  EXPECT_TRUE(back.HasUnpersisted());
}

TEST(SchemaRegistry, RestoreSkipsOrphans) {
  SchemaRegistry back(Fixed());
  ColumnRecord orphan;
  orphan.parent_path = "missing";
  orphan.raw_key = "x";
  orphan.name = "x";
  orphan.type = ColumnType::kInt64;
  size_t before = back.column_count();
  back.Restore({orphan});
  EXPECT_EQ(back.column_count(), before);
}

TEST(SchemaRegistry, DuckDbColumnTypes) {
  SchemaRegistry reg(Fixed());
  Column* root = reg.root();
  ASSERT_EQ(reg.Offer(reg.Child(root, "i"), ColumnType::kInt64, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "f"), ColumnType::kFloat64, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "b"), ColumnType::kBool, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "s"), ColumnType::kString, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "o"), ColumnType::kRecord, false), Fit::kOk);
  ASSERT_EQ(reg.Offer(reg.Child(root, "ri"), ColumnType::kInt64, true), Fit::kOk);
  (void)reg.Child(root, "none");
  (void)reg.CompanionOf(reg.Child(root, "i"));
  std::vector<std::pair<std::string, std::string>> expected = {
      {"_time", "TIMESTAMPTZ"}, {"_tag", "VARCHAR"}, {"i", "BIGINT"}, {"f", "DOUBLE"},     {"b", "BOOLEAN"},
      {"s", "VARCHAR"},         {"o", "JSON"},       {"ri", "JSON"},  {"i_str", "VARCHAR"}};
  EXPECT_EQ(reg.DuckDbColumns(), expected);
}

TEST(SchemaRegistry, NameMappingShowsRawPaths) {
  SchemaRegistry reg(Fixed());
  Column* req = reg.Child(reg.root(), "http-req");
  Column* ua = reg.Child(req, "user.agent");
  (void)reg.CompanionOf(ua);
  auto mapping = reg.NameMapping();
  std::map<std::string, std::string> m(mapping.begin(), mapping.end());
  EXPECT_EQ(m["(_time)"], "_time");
  EXPECT_EQ(m["http-req"], "http_req");
  EXPECT_EQ(m["http-req.user.agent"], "http_req.user_agent");
  EXPECT_EQ(m["http-req.user.agent (values that do not fit)"], "http_req.user_agent_str");
}

TEST(SchemaRegistry, ConcurrentChildAndOfferAgree) {
  SchemaRegistry reg(Fixed());
  constexpr int kThreads = 4, kKeys = 200;
  std::vector<std::vector<Column*>> got(kThreads, std::vector<Column*>(kKeys));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kKeys; ++k) {
        Column* c = reg.Child(reg.root(), "k-" + std::to_string(k));
        (void)reg.Offer(c, (k + t) % 2 ? ColumnType::kInt64 : ColumnType::kFloat64, false);
        got[t][k] = c;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kKeys; ++k)
    for (int t = 1; t < kThreads; ++t) {
      EXPECT_EQ(got[t][k], got[0][k]);
    }
  EXPECT_EQ(reg.column_count(), 2u + kKeys);
  std::set<std::string> names;
  for (int k = 0; k < kKeys; ++k) {
    names.insert(got[0][k]->name());
    // Both kinds were offered, whatever the order: the column ends up FLOAT64.
    EXPECT_EQ(got[0][k]->type(), ColumnType::kFloat64) << got[0][k]->name();
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kKeys));
}

TEST(SchemaRegistry, KeysLongerThanTheBoundNeverBecomeColumns) {
  SchemaRegistry reg(Fixed());
  bool created = true;
  EXPECT_EQ(reg.Child(reg.root(), std::string(kMaxFieldNameBytes + 1, 'k'), &created), nullptr);
  EXPECT_FALSE(created);
  Column* c = reg.Child(reg.root(), std::string(kMaxFieldNameBytes, 'k'), &created);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(created);
  EXPECT_EQ(reg.Child(reg.root(), std::string(kMaxFieldNameBytes, 'k'), &created), c);
  EXPECT_FALSE(created) << "a lookup creates nothing";
  for (const ColumnRecord& r : reg.TakeUnpersisted()) {
    EXPECT_LE(r.raw_key.size(), kMaxFieldNameBytes);
  }
}

}  // namespace
}  // namespace logferry

namespace logferry {
namespace {

// Another worker's columns are read into a live registry between passes:
// the ledger's records win for the columns they name, and columns made here
// that the ledger does not hold yet stay to be recorded.
TEST(SchemaRegistry, RestoreIntoALiveRegistryKeepsWhatTheLedgerLacks) {
  SchemaRegistry reg(Fixed());
  Column* mine = reg.Child(reg.root(), "mine");
  ASSERT_EQ(reg.Offer(mine, ColumnType::kString, false), Fit::kOk);
  Column* shared = reg.Child(reg.root(), "shared");
  ASSERT_EQ(reg.Offer(shared, ColumnType::kInt64, false), Fit::kOk);

  SchemaRegistry other(Fixed());
  Column* o = other.Child(other.root(), "shared");
  ASSERT_EQ(other.Offer(o, ColumnType::kInt64, false), Fit::kOk);
  ASSERT_EQ(other.Offer(o, ColumnType::kFloat64, false), Fit::kOk);
  Column* theirs = other.Child(other.root(), "theirs");
  ASSERT_EQ(other.Offer(theirs, ColumnType::kBool, false), Fit::kOk);

  reg.Restore(other.TakeUnpersisted());
  EXPECT_EQ(shared->type(), ColumnType::kFloat64);
  ASSERT_NE(reg.Find(reg.root(), "theirs"), nullptr);
  EXPECT_TRUE(reg.HasUnpersisted());
  std::vector<ColumnRecord> left = reg.TakeUnpersisted();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "mine");
}

}  // namespace
}  // namespace logferry
