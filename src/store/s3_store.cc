#include "store/s3_store.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <pugixml.hpp>

#include "aws/client.h"
#include "aws/credentials.h"
#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "http/http_client.h"
#include "store/ranged_read_stream.h"

namespace logferry {
namespace {

// The endpoint the AWS SDKs take from the environment, as (variable, URL).
std::optional<std::pair<std::string, std::string>> EnvironmentEndpoint() {
  for (const char* name : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    std::string v = Env::Default()->GetEnvOr(name);
    if (!v.empty()) return std::pair<std::string, std::string>{name, v};
  }
  return std::nullopt;
}

std::string StripQuotes(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

int64_t HttpDateToMicros(std::string_view date) {
  time_t t = curl_getdate(std::string(date).c_str(), nullptr);
  return t < 0 ? 0 : static_cast<int64_t>(t) * 1'000'000;
}

bool XmlTrue(const char* s) {
  return std::string_view(s) == "true";
}

class S3Store;

class S3ReadStream final : public RangedReadStream {
 public:
  S3ReadStream(const S3Store* store, std::string key, std::string etag, uint64_t size);

 private:
  StatusOr<std::string> FetchRange(uint64_t offset, uint64_t n) override;

  const S3Store* store_;
  std::string key_;
  std::string etag_;
};

class S3WriteStream final : public WriteStream {
 public:
  S3WriteStream(const S3Store* store, std::string key) : store_(store), key_(std::move(key)) {}
  ~S3WriteStream() override;
  Status Write(std::string_view data) override;
  StatusOr<WrittenObject> Commit() override;

 private:
  Status FlushPart(bool last = false);
  void Abort();

  const S3Store* store_;
  std::string key_;
  std::string buffer_;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
  std::string upload_id_;
  std::vector<std::string> part_etags_;
  bool done_ = false;
};

class S3Store final : public ObjectStore {
 public:
  S3Store(std::string uri, std::string prefix, S3Addressing addressing, StoreOptions options)
      : uri_(std::move(uri)),
        prefix_(std::move(prefix)),
        addressing_(std::move(addressing)),
        options_(std::move(options)),
        http_(addressing_.custom_endpoint && !options_.ca_file.empty()
                  ? std::make_unique<HttpClient>(HttpClientOptions{.ca_file = options_.ca_file})
                  : nullptr),
        client_(aws::ClientOptions{.service = "s3",
                                   .region = addressing_.region,
                                   .credentials = options_.aws_credentials,
                                   .retry = options_.retry,
                                   .http = http_.get(),
                                   .s3_signing = true}) {}

  const std::string& uri() const override { return uri_; }

  StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token, size_t max_keys) override {
    std::string full_prefix = prefix_ + std::string(prefix);
    // Query parameters in sorted order, as the signature wants them.
    std::string query =
        "encoding-type=url&list-type=2&max-keys=" + std::to_string(std::clamp<size_t>(max_keys, 1, 1000)) +
        "&prefix=" + UriEncode(full_prefix);
    if (!page_token.empty()) query += "&start-after=" + UriEncode(prefix_ + std::string(page_token));
    HttpRequest req;
    req.url = addressing_.origin + (addressing_.bucket_path.empty() ? "/" : addressing_.bucket_path) + "?" + query;
    CountListRequest();
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("S3 ListObjectsV2 " + uri_ + std::string(prefix), req));
    pugi::xml_document doc;
    if (!doc.load_buffer(resp.body.data(), resp.body.size()))
      return Status::Unavailable("S3 ListObjectsV2 " + uri_ + ": unparseable response (" +
                                 std::to_string(resp.body.size()) + " bytes)");
    pugi::xml_node result = doc.child("ListBucketResult");
    bool url_encoded = std::string_view(result.child_value("EncodingType")) == "url";
    ListPage page;
    for (pugi::xml_node c : result.children("Contents")) {
      std::string key = c.child_value("Key");
      if (url_encoded) key = UriDecode(key, /*plus_is_space=*/true);
      if (!StartsWith(key, prefix_)) continue;
      ObjectInfo info;
      info.key = key.substr(prefix_.size());
      info.size = std::strtoull(c.child_value("Size"), nullptr, 10);
      info.mtime_us = ParseIso8601(c.child_value("LastModified")).value_or(0);
      info.etag = StripQuotes(c.child_value("ETag"));
      page.objects.push_back(std::move(info));
    }
    std::sort(page.objects.begin(), page.objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    if (XmlTrue(result.child_value("IsTruncated")) && !page.objects.empty()) page.next_token = page.objects.back().key;
    return page;
  }

  StatusOr<ObjectInfo> Stat(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    HttpRequest req;
    req.method = "HEAD";
    req.url = ObjectUrl(key);
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("S3 HeadObject " + UriOf(key), req));
    ObjectInfo info;
    info.key = std::string(key);
    info.size = std::strtoull(std::string(resp.Header("content-length")).c_str(), nullptr, 10);
    info.mtime_us = HttpDateToMicros(resp.Header("last-modified"));
    info.etag = StripQuotes(resp.Header("etag"));
    return info;
  }

  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view key, const ReadOptions& options) override {
    LF_ASSIGN_OR_RETURN(ObjectInfo info, Stat(key));
    if (!options.if_etag.empty() && info.etag != options.if_etag)
      return Status::FailedPrecondition("S3 object " + UriOf(key) + " changed: etag is " + info.etag + ", expected " +
                                        options.if_etag);
    return std::unique_ptr<ReadStream>(new S3ReadStream(this, std::string(key), info.etag, info.size));
  }

  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    return std::unique_ptr<WriteStream>(new S3WriteStream(this, std::string(key)));
  }

  Status Delete(std::string_view key) override {
    LF_RETURN_IF_ERROR(ValidateKey(key));
    HttpRequest req;
    req.method = "DELETE";
    req.url = ObjectUrl(key);
    auto check = [&](const HttpResponse& r) {
      return (r.status >= 200 && r.status < 300) || r.status == 404
                 ? Status::Ok()
                 : aws::ErrorStatus("S3 DeleteObject " + UriOf(key), r);
    };
    return client_.Send("S3 DeleteObject " + UriOf(key), req, check).status();
  }

  Status RemoveStaleTemporaries(std::string_view prefix, int64_t min_age_us) override {
    // Unfinished multipart uploads are the only temporaries S3 keeps (and
    // bills for); one page of them per call is enough to make progress.
    const int64_t cutoff_us = Env::Default()->NowMicros() - min_age_us;
    std::string query = "prefix=" + UriEncode(prefix_ + std::string(prefix)) + "&uploads=";
    HttpRequest req;
    req.url = addressing_.origin + (addressing_.bucket_path.empty() ? "/" : addressing_.bucket_path) + "?" + query;
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("S3 ListMultipartUploads " + uri_, req));
    pugi::xml_document doc;
    if (!doc.load_buffer(resp.body.data(), resp.body.size())) return Status::Ok();
    for (pugi::xml_node u : doc.child("ListMultipartUploadsResult").children("Upload")) {
      std::string key = u.child_value("Key");
      auto initiated = ParseIso8601(u.child_value("Initiated"));
      if (!initiated || *initiated > cutoff_us || !StartsWith(key, prefix_)) continue;
      LF_RETURN_IF_ERROR(AbortUpload(key.substr(prefix_.size()), u.child_value("UploadId")));
    }
    return Status::Ok();
  }

  // ---- used by the streams ----

  std::string ObjectUrl(std::string_view key, std::string_view query = {}) const {
    std::string url = addressing_.origin + addressing_.bucket_path + "/" + UriEncode(prefix_ + std::string(key), true);
    if (!query.empty()) url += "?" + std::string(query);
    return url;
  }

  // Reads [offset, offset+n) of the object version etag.
  StatusOr<std::string> ReadRange(const std::string& key, const std::string& etag, uint64_t offset, uint64_t n) const {
    HttpRequest req;
    req.url = ObjectUrl(key);
    req.headers = {{"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + n - 1)},
                   {"If-Match", "\"" + etag + "\""}};
    std::string what = "S3 GetObject " + UriOf(key) + " bytes " + std::to_string(offset) + "+" + std::to_string(n);
    auto check = [&](const HttpResponse& r) -> Status {
      if (r.status == 412)
        return Status::FailedPrecondition("S3 object " + UriOf(key) + " was replaced while it was read (etag " + etag +
                                          " no longer matches)");
      if (r.status != 206 && r.status != 200) return aws::ErrorStatus(what, r);
      // A short body on a kept-alive connection would otherwise pass for
      // the end of the range.
      uint64_t want = r.status == 206 ? n : std::min<uint64_t>(n, r.body.size());
      if (r.body.size() != want) return Status::Unavailable(what + ": got " + std::to_string(r.body.size()) + " bytes");
      return Status::Ok();
    };
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send(what, req, check));
    if (resp.status == 200) {
      // A server that ignores Range sends the whole object.
      if (offset >= resp.body.size()) return std::string();
      return resp.body.substr(offset, n);
    }
    return std::move(resp.body);
  }

  StatusOr<std::string> CreateUpload(const std::string& key) const {
    HttpRequest req;
    req.method = "POST";
    req.url = ObjectUrl(key, "uploads=");
    req.headers = {{"Content-Type", "application/octet-stream"}};
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send("S3 CreateMultipartUpload " + UriOf(key), req));
    pugi::xml_document doc;
    doc.load_buffer(resp.body.data(), resp.body.size());
    std::string id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
    if (id.empty()) return Status::Unavailable("S3 CreateMultipartUpload " + UriOf(key) + ": no UploadId in response");
    return id;
  }

  StatusOr<std::string> PutBody(const std::string& key, std::string_view query, std::string_view body,
                                const std::string& what) const {
    HttpRequest req;
    req.method = "PUT";
    req.url = ObjectUrl(key, query);
    req.body = body;
    req.headers = {{"Content-Type", "application/octet-stream"}, {"Content-MD5", Base64Encode(Md5Raw(body))}};
    // Large bodies get time in proportion to their size.
    req.timeout_ms = 60'000 + static_cast<int64_t>(body.size() / 1000);
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send(what, req));
    std::string etag = StripQuotes(resp.Header("etag"));
    // Without Content-MD5 enforcement (some S3-compatible servers), a
    // single-part ETag is still the MD5 and catches a damaged body.
    std::string md5 = HexEncode(Md5Raw(body).data(), 16);
    if (!etag.empty() && etag.find('-') == std::string::npos && etag.size() == 32 && ToLower(etag) != md5)
      return Status::Unavailable(what + ": ETag " + etag + " does not match the MD5 of the bytes sent (" + md5 + ")");
    return etag;
  }

  StatusOr<std::string> CompleteUpload(const std::string& key, const std::string& upload_id,
                                       const std::vector<std::string>& etags) const {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags.size(); ++i)
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>\"" + etags[i] + "\"</ETag></Part>";
    xml += "</CompleteMultipartUpload>";
    HttpRequest req;
    req.method = "POST";
    req.url = ObjectUrl(key, "uploadId=" + UriEncode(upload_id));
    req.body = xml;
    req.headers = {{"Content-Type", "application/xml"}};
    req.timeout_ms = 300'000;
    std::string what = "S3 CompleteMultipartUpload " + UriOf(key);
    // S3 may answer 200 and still fail: the error is then in the body.
    auto check = [&](const HttpResponse& r) -> Status {
      if (r.status < 200 || r.status >= 300) return aws::ErrorStatus(what, r);
      if (r.body.find("<Error>") != std::string::npos) {
        HttpResponse as_error = r;
        as_error.status = 500;
        return aws::ErrorStatus(what, as_error);
      }
      return Status::Ok();
    };
    LF_ASSIGN_OR_RETURN(HttpResponse resp, client_.Send(what, req, check));
    pugi::xml_document doc;
    doc.load_buffer(resp.body.data(), resp.body.size());
    // The root is CompleteMultipartUploadResult on AWS; some compatible
    // servers name it differently, so take whichever element is there.
    std::string etag = StripQuotes(doc.document_element().child_value("ETag"));
    if (etag.empty()) {
      LF_ASSIGN_OR_RETURN(ObjectInfo info, const_cast<S3Store*>(this)->Stat(key));
      etag = info.etag;
    }
    return etag;
  }

  Status AbortUpload(const std::string& key, const std::string& upload_id) const {
    HttpRequest req;
    req.method = "DELETE";
    req.url = ObjectUrl(key, "uploadId=" + UriEncode(upload_id));
    std::string what = "S3 AbortMultipartUpload " + UriOf(key);
    auto check = [&](const HttpResponse& r) {
      return (r.status >= 200 && r.status < 300) || r.status == 404 ? Status::Ok() : aws::ErrorStatus(what, r);
    };
    return client_.Send(what, req, check).status();
  }

  const StoreOptions& options() const { return options_; }

 private:
  std::string uri_;
  std::string prefix_;
  S3Addressing addressing_;  // names the bucket
  StoreOptions options_;
  std::unique_ptr<HttpClient> http_;  // null: the process-wide client
  aws::Client client_;
};

S3ReadStream::S3ReadStream(const S3Store* store, std::string key, std::string etag, uint64_t size)
    : RangedReadStream("S3 object " + store->UriOf(key), size, store->options().read_chunk_bytes),
      store_(store),
      key_(std::move(key)),
      etag_(std::move(etag)) {}

StatusOr<std::string> S3ReadStream::FetchRange(uint64_t offset, uint64_t n) {
  return store_->ReadRange(key_, etag_, offset, n);
}

S3WriteStream::~S3WriteStream() {
  if (!done_) Abort();
}

void S3WriteStream::Abort() {
  done_ = true;
  if (!upload_id_.empty()) (void)store_->AbortUpload(key_, upload_id_);
}

Status S3WriteStream::Write(std::string_view data) {
  if (done_) return Status::FailedPrecondition("write after commit or failure: " + store_->UriOf(key_));
  crc_ = Crc32c(crc_, data.data(), data.size());
  size_ += data.size();
  buffer_.append(data);
  while (buffer_.size() >= store_->options().part_bytes + store_->options().part_bytes / 2) {
    Status s = FlushPart();
    if (!s.ok()) {
      Abort();
      return s;
    }
  }
  return Status::Ok();
}

Status S3WriteStream::FlushPart(bool last) {
  if (upload_id_.empty()) {
    LF_ASSIGN_OR_RETURN(upload_id_, store_->CreateUpload(key_));
  }
  // Every part but the last must be at least 5 MiB, so the last one takes
  // whatever is left (up to 1.5 part sizes).
  size_t n = last ? buffer_.size() : std::min(buffer_.size(), store_->options().part_bytes);
  int part = static_cast<int>(part_etags_.size()) + 1;
  std::string query = "partNumber=" + std::to_string(part) + "&uploadId=" + UriEncode(upload_id_);
  LF_ASSIGN_OR_RETURN(std::string etag,
                      store_->PutBody(key_, query, std::string_view(buffer_).substr(0, n),
                                      "S3 UploadPart " + store_->UriOf(key_) + " part " + std::to_string(part)));
  part_etags_.push_back(std::move(etag));
  buffer_.erase(0, n);
  return Status::Ok();
}

StatusOr<WrittenObject> S3WriteStream::Commit() {
  if (done_) return Status::FailedPrecondition("commit after commit or failure: " + store_->UriOf(key_));
  WrittenObject out;
  out.key = key_;
  out.size = size_;
  out.crc32c = Crc32cHex(crc_);
  if (upload_id_.empty()) {
    auto etag = store_->PutBody(key_, {}, buffer_, "S3 PutObject " + store_->UriOf(key_));
    if (!etag.ok()) {
      Abort();
      return etag.status();
    }
    out.etag = *etag;
  } else {
    Status s = buffer_.empty() ? Status::Ok() : FlushPart(/*last=*/true);
    if (s.ok()) {
      auto etag = store_->CompleteUpload(key_, upload_id_, part_etags_);
      if (etag.ok()) {
        out.etag = *etag;
      } else {
        s = etag.status();
      }
    }
    if (!s.ok()) {
      Abort();
      return s;
    }
  }
  done_ = true;
  buffer_.clear();
  buffer_.shrink_to_fit();
  return out;
}

}  // namespace

SchemeInfo S3Scheme() {
  SchemeInfo s;
  s.name = "s3";
  s.example = "s3://bucket/prefix/";
  s.service = "S3";
  s.roles = kRoleSource | kRoleStaging;
  s.remote = true;
  s.credentials = CredentialKind::kAws;
  s.shares_endpoint = true;
  s.announces_events = true;
  s.validate = [](const Uri& u) {
    return u.authority.empty() ? std::string("names no bucket (s3://bucket/prefix/)") : "";
  };
  s.environment_endpoint = EnvironmentEndpoint;
  s.open_store = OpenS3Store;
  return s;
}

StatusOr<S3Addressing> ResolveS3Addressing(std::string_view bucket, const StoreOptions& options) {
  S3Addressing a;
  a.region = !options.region.empty() ? options.region : aws::RegionFromEnvironment();
  std::string endpoint = options.endpoint;
  if (auto from_env = EnvironmentEndpoint(); endpoint.empty() && from_env) endpoint = from_env->second;
  std::string mode = options.addressing.empty() ? "auto" : options.addressing;
  if (mode != "auto" && mode != "virtual" && mode != "path")
    return Status::InvalidArgument("s3 addressing must be auto, virtual or path, not '" + mode + "'");
  // Bucket names with dots break TLS names in virtual-hosted style.
  bool dotted = bucket.find('.') != std::string_view::npos;
  if (endpoint.empty()) {
    bool virtual_hosted = mode == "virtual" || (mode == "auto" && !dotted);
    if (virtual_hosted) {
      a.origin = "https://" + std::string(bucket) + ".s3." + a.region + ".amazonaws.com";
    } else {
      a.origin = "https://s3." + a.region + ".amazonaws.com";
      a.bucket_path = "/" + std::string(bucket);
    }
    return a;
  }
  Url url;
  if (!ParseUrl(endpoint, &url) || (url.scheme != "http" && url.scheme != "https") || url.path != "/")
    return Status::InvalidArgument("s3 endpoint must be http(s)://host[:port], not '" + endpoint + "'");
  a.custom_endpoint = true;
  if (mode == "virtual") {
    a.origin = url.scheme + "://" + std::string(bucket) + "." + url.Authority();
  } else {
    a.origin = url.Origin();
    a.bucket_path = "/" + std::string(bucket);
  }
  return a;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(std::string_view uri, const StoreOptions& options) {
  Uri u;
  if (!ParseUri(uri, &u) || u.scheme != "s3" || u.authority.empty())
    return Status::InvalidArgument("not an s3 URI: '" + std::string(uri) + "' (expected s3://bucket/prefix/)");
  std::string prefix = u.path;
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  if (!prefix.empty()) LF_RETURN_IF_ERROR(ValidateKey(prefix.substr(0, prefix.size() - 1)));
  LF_ASSIGN_OR_RETURN(S3Addressing addressing, ResolveS3Addressing(u.authority, options));
  if (addressing.custom_endpoint && !options.ca_file.empty()) {
    // Checked here, where the message can name the setting; curl would only
    // say that it cannot use its CA bundle.
    std::ifstream ca(options.ca_file);
    if (!ca) return Status::InvalidArgument("ca_file '" + options.ca_file + "' cannot be read");
  }
  StoreOptions opts = options;
  if (!opts.aws_credentials) opts.aws_credentials = aws::MakeDefaultChain({.region = addressing.region});
  std::string root = "s3://" + u.authority + "/" + prefix;
  return std::unique_ptr<ObjectStore>(
      new S3Store(std::move(root), std::move(prefix), std::move(addressing), std::move(opts)));
}

}  // namespace logferry
