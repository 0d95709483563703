#include "aws/s3_events.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "common/time.h"
#include "http/http_client.h"

namespace logferry::aws {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

uint64_t Size(const json& j) {
  auto it = j.find("size");
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() > 0) return static_cast<uint64_t>(it->get<int64_t>());
  return 0;
}

Status FromRecords(const json& records, S3EventMessage* out) {
  if (!records.is_array()) return Status::InvalidArgument("'Records' is not an array");
  for (const json& r : records) {
    if (!r.is_object()) return Status::InvalidArgument("a record is not an object");
    std::string name = Str(r, "eventName");
    if (!StartsWith(name, "ObjectCreated:")) {
      ++out->ignored;
      continue;
    }
    auto s3 = r.find("s3");
    if (s3 == r.end() || !s3->is_object()) return Status::InvalidArgument("record " + name + " has no 's3' object");
    const json& bucket = s3->value("bucket", json::object());
    const json& object = s3->value("object", json::object());
    S3EventObject o;
    o.bucket = Str(bucket, "name");
    std::string raw_key = Str(object, "key");
    if (o.bucket.empty() || raw_key.empty())
      return Status::InvalidArgument("record " + name + " lacks s3.bucket.name or s3.object.key");
    o.key = UriDecode(raw_key, /*plus_is_space=*/true);
    o.size = Size(object);
    o.etag = Str(object, "eTag");
    o.event_time_us = ParseIso8601(Str(r, "eventTime")).value_or(0);
    o.event_name = name;
    out->created.push_back(std::move(o));
  }
  return Status::Ok();
}

Status FromJson(const json& j, S3EventMessage* out, int depth) {
  if (!j.is_object()) return Status::InvalidArgument("not a JSON object");
  if (Str(j, "Event") == "s3:TestEvent") {
    out->test_event = true;
    return Status::Ok();
  }
  if (j.contains("Records")) return FromRecords(j["Records"], out);
  // SNS fan-out: the S3 notification is a JSON string inside.
  if (Str(j, "Type") == "Notification" && j.contains("Message") && depth == 0) {
    json inner = json::parse(Str(j, "Message"), nullptr, false);
    if (inner.is_discarded()) return Status::InvalidArgument("SNS notification whose Message is not JSON");
    return FromJson(inner, out, depth + 1);
  }
  // EventBridge: keys are not encoded here.
  if (Str(j, "source") == "aws.s3" && j.contains("detail")) {
    std::string type = Str(j, "detail-type");
    if (type != "Object Created") {
      ++out->ignored;
      return Status::Ok();
    }
    const json& d = j["detail"];
    if (!d.is_object()) return Status::InvalidArgument("EventBridge event whose 'detail' is not an object");
    S3EventObject o;
    o.bucket = Str(d.value("bucket", json::object()), "name");
    const json& object = d.value("object", json::object());
    o.key = Str(object, "key");
    if (o.bucket.empty() || o.key.empty())
      return Status::InvalidArgument("EventBridge event lacks detail.bucket.name or detail.object.key");
    o.size = Size(object);
    o.etag = Str(object, "etag");
    o.event_time_us = ParseIso8601(Str(j, "time")).value_or(0);
    o.event_name = type;
    out->created.push_back(std::move(o));
    return Status::Ok();
  }
  return Status::InvalidArgument(
      "not an S3 event notification (expected 'Records', an SNS 'Notification', an EventBridge aws.s3 event or "
      "s3:TestEvent)");
}

}  // namespace

StatusOr<S3EventMessage> ParseS3EventMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::InvalidArgument("message body is not JSON: " + Excerpt(body, 120));
  S3EventMessage out;
  Status s = FromJson(j, &out, 0);
  if (!s.ok()) return Status::InvalidArgument(s.message() + ": " + Excerpt(body, 120));
  for (S3EventObject& o : out.created)
    if (o.etag.size() >= 2 && o.etag.front() == '"') o.etag = o.etag.substr(1, o.etag.size() - 2);
  return out;
}

}  // namespace logferry::aws
