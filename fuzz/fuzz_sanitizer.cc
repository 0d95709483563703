// Column names: SanitizeName and the registry's unique-name assignment.
//
// Input: '\n'-separated lines; each is a path of raw field names separated by
// '\x1f' (unit separator), created in order with SchemaRegistry::Child from
// the root. A line starting with '!' also asks for the leaf's STRING
// companion (CompanionOf).
//
// Checked, for every raw name: SanitizeName's result is BigQuery-legal
// ([A-Za-z_][A-Za-z0-9_]*, at most 300 bytes, no reserved prefix in any
// case), and sanitizing it again changes nothing. For the registry: Child is
// a lookup for a raw key it has seen (same column); every column's name is
// legal; names are unique among siblings ignoring case; and the columns
// restored from what TakeUnpersisted hands the ledger have the same names
// and paths.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/strings.h"
#include "format/normalizer.h"
#include "fuzz_common.h"
#include "schema/schema.h"

namespace {

using namespace logferry;
using logferry::fuzz::Require;

std::string Legal(const std::string& name) {
  if (name.empty()) return "empty";
  if (name.size() > kMaxColumnName) return "longer than 300 bytes";
  if (name[0] >= '0' && name[0] <= '9') return "starts with a digit";
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return "has a byte outside [A-Za-z0-9_]";
  std::string lower = ToLower(name);
  for (const char* p : {"_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colon_"})
    if (StartsWith(lower, p)) return std::string("has the reserved prefix ") + p;
  return "";
}

void CheckNames(const SchemaRegistry& schema, const std::string& ctx) {
  // Column paths are mapped names joined by '.', which no legal name has.
  std::map<std::string, std::set<std::string>> siblings;  // parent path -> lowercased names
  for (const auto& [raw, path] : schema.NameMapping()) {
    size_t dot = path.rfind('.');
    std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
    std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    std::string why = Legal(name);
    Require(why.empty(), "a column name is not legal", ctx + "\nname: " + name + " (" + why + ")\nraw: " + raw);
    Require(siblings[parent].insert(ToLower(name)).second, "two sibling columns have the same name ignoring case",
            ctx + "\nparent: " + parent + "\nname: " + name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  SchemaRegistry schema(FixedColumns(LogFormat::kOutFile));
  std::string ctx = "input: " + std::string(in.substr(0, 500));
  for (std::string_view line : logferry::fuzz::SplitLines(in)) {
    bool companion = !line.empty() && line[0] == '!';
    if (companion) line.remove_prefix(1);
    Column* c = schema.root();
    for (const std::string& raw : Split(line, '\x1f')) {
      std::string name = SanitizeName(raw);
      std::string why = Legal(name);
      Require(why.empty(), "SanitizeName gave an illegal name", "raw: " + raw + "\nname: " + name + " (" + why + ")");
      Require(SanitizeName(name) == name, "SanitizeName is not idempotent", "raw: " + raw + "\nname: " + name);

      // Keys from sources are valid UTF-8 (the normalizer repairs them), so
      // never start with the internal-column marker 0xFF.
      if (!raw.empty() && raw[0] == kInternalKeyMarker) break;
      Column* child = schema.Child(c, raw);
      if (raw.size() > kMaxFieldNameBytes) {
        Require(child == nullptr, "a key longer than kMaxFieldNameBytes became a column", raw.substr(0, 100));
        break;
      }
      Require(child != nullptr, "Child returned null below the column limit", raw);
      Require(schema.Child(c, raw) == child && schema.Find(c, raw) == child, "Child is not a lookup for a known key",
              raw);
      Require(child->raw_key() == raw, "a column does not keep its raw key", raw);
      c = child;
    }
    if (companion && c != schema.root()) {
      Column* comp = schema.CompanionOf(c);
      Require(comp != nullptr && schema.CompanionOf(c) == comp, "CompanionOf is not stable", ctx);
    }
  }
  CheckNames(schema, ctx);

  // What the ledger stores restores to the same names, in a fresh registry.
  auto records = schema.TakeUnpersisted();
  SchemaRegistry restored(FixedColumns(LogFormat::kOutFile));
  restored.Restore(records);
  Require(restored.NameMapping() == schema.NameMapping(), "restored columns differ from the originals", ctx);
  CheckNames(restored, ctx);
  return 0;
}
