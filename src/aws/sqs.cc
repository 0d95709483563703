#include "aws/sqs.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "http/http_client.h"

namespace logferry::aws {

std::string RegionFromSqsHost(const std::string& host) {
  // sqs.us-east-1.amazonaws.com, sqs.cn-north-1.amazonaws.com.cn, us-east-1.queue.amazonaws.com
  std::vector<std::string> parts = Split(host, '.');
  if (parts.size() >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws") return parts[1];
  if (parts.size() >= 4 && parts[1] == "queue" && parts[2] == "amazonaws") return parts[0];
  return "";
}

StatusOr<std::unique_ptr<SqsQueue>> SqsQueue::Open(const std::string& queue_url, const std::string& region,
                                                   std::shared_ptr<CredentialsProvider> credentials,
                                                   RetryPolicy retry) {
  Url url;
  if (!ParseUrl(queue_url, &url) || (url.scheme != "http" && url.scheme != "https"))
    return Status::InvalidArgument("not an SQS queue URL: '" + queue_url + "'");
  ClientOptions options;
  options.service = "sqs";
  options.region = region;
  if (options.region.empty()) options.region = RegionFromSqsHost(url.host);
  if (options.region.empty()) options.region = RegionFromEnvironment();
  options.credentials = std::move(credentials);
  options.retry = retry;
  return std::unique_ptr<SqsQueue>(new SqsQueue(queue_url, Client(std::move(options))));
}

StatusOr<HttpResponse> SqsQueue::Call(const std::string& action, const std::string& body) const {
  Url url;
  ParseUrl(url_, &url);
  HttpRequest req;
  req.method = "POST";
  req.url = url.Origin() + "/";
  req.body = body;
  req.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "AmazonSQS." + action}};
  // A long poll holds the request open for up to 20 s.
  req.timeout_ms = 40'000;
  return client_.Send("SQS " + action + " " + url_, req);
}

StatusOr<std::vector<SqsMessage>> SqsQueue::Receive(int max_messages, int wait_seconds, int visibility_seconds) const {
  nlohmann::json request = {{"QueueUrl", url_},
                            {"MaxNumberOfMessages", std::clamp(max_messages, 1, 10)},
                            {"WaitTimeSeconds", std::clamp(wait_seconds, 0, 20)},
                            {"VisibilityTimeout", visibility_seconds},
                            {"MessageSystemAttributeNames", {"ApproximateReceiveCount"}},
                            {"AttributeNames", {"ApproximateReceiveCount"}}};
  LF_ASSIGN_OR_RETURN(HttpResponse resp, Call("ReceiveMessage", request.dump()));
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Unavailable("SQS ReceiveMessage " + url_ + ": unparseable response (" +
                               std::to_string(resp.body.size()) + " bytes)");
  std::vector<SqsMessage> out;
  if (!j.contains("Messages") || !j["Messages"].is_array()) return out;
  for (const auto& m : j["Messages"]) {
    if (!m.is_object()) continue;
    SqsMessage msg;
    msg.message_id = m.value("MessageId", "");
    msg.receipt_handle = m.value("ReceiptHandle", "");
    msg.body = m.value("Body", "");
    if (m.contains("Attributes") && m["Attributes"].is_object())
      msg.receive_count = std::atoi(m["Attributes"].value("ApproximateReceiveCount", "0").c_str());
    if (!msg.message_id.empty() && !msg.receipt_handle.empty()) out.push_back(std::move(msg));
  }
  return out;
}

Status SqsQueue::Delete(const std::string& receipt_handle) const {
  nlohmann::json request = {{"QueueUrl", url_}, {"ReceiptHandle", receipt_handle}};
  return Call("DeleteMessage", request.dump()).status();
}

Status SqsQueue::ExtendVisibility(const std::string& receipt_handle, int visibility_seconds) const {
  nlohmann::json request = {
      {"QueueUrl", url_}, {"ReceiptHandle", receipt_handle}, {"VisibilityTimeout", visibility_seconds}};
  return Call("ChangeMessageVisibility", request.dump()).status();
}

StatusOr<std::pair<int64_t, int64_t>> SqsQueue::Depth() const {
  nlohmann::json request = {
      {"QueueUrl", url_}, {"AttributeNames", {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}}};
  LF_ASSIGN_OR_RETURN(HttpResponse resp, Call("GetQueueAttributes", request.dump()));
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  if (j.is_discarded() || !j.contains("Attributes") || !j["Attributes"].is_object())
    return Status::Unavailable("SQS GetQueueAttributes " + url_ + ": unparseable response");
  auto& a = j["Attributes"];
  return std::make_pair<int64_t, int64_t>(std::atoll(a.value("ApproximateNumberOfMessages", "0").c_str()),
                                          std::atoll(a.value("ApproximateNumberOfMessagesNotVisible", "0").c_str()));
}

}  // namespace logferry::aws
