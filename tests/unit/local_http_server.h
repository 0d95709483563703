// A tiny HTTP/1.1 server for unit tests: stand-ins for metadata endpoints,
// STS, S3 or GCS error responses, on 127.0.0.1 only.
//
//   LocalHttpServer server([](const LocalHttpRequest& r) {
//     if (r.method == "PUT" && r.path == "/latest/api/token") return LocalHttpResponse{200, {}, "token"};
//     return LocalHttpResponse{404, {}, ""};
//   });
//   client.Send({.url = server.Url() + "/latest/api/token", ...});
//   EXPECT_EQ(server.Requests().size(), 1u);
//
// Contract:
// - Listens on 127.0.0.1 at an ephemeral port (Port(), Url()) from
//   construction until destruction; the destructor stops it and joins.
// - One connection at a time, one request per connection, answered with
//   "Connection: close" and a Content-Length (no body for HEAD). Request
//   bodies are read by Content-Length; chunked request bodies are not
//   supported (curl sends Content-Length for in-memory bodies).
// - The handler runs on the server's thread, one call at a time; it gets the
//   parsed request and returns the response. Requests() is a copy of every
//   request received so far, in order, safe to call from any thread.
// - A response with close_without_reply set closes the connection without
//   writing anything (a reset, from the client's side).
// - A response with stall set writes nothing and holds the connection until
//   the client gives up and closes it (a stalled server, from the client's
//   side), then serves the next connection.
// - A client that stalls is dropped after 5 s so a broken test cannot hang.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace logferry::testutil {

struct LocalHttpRequest {
  std::string method;
  std::string target;                                        // as sent: path and query, still percent-encoded
  std::string path;                                          // target before '?'
  std::string query;                                         // target after '?', without it
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;

  // The last header with this lower-case name, or "" when absent.
  std::string Header(const std::string& lower_name) const {
    for (auto it = headers.rbegin(); it != headers.rend(); ++it)
      if (it->first == lower_name) return it->second;
    return {};
  }
  bool HasHeader(const std::string& lower_name) const {
    return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == lower_name; });
  }
};

struct LocalHttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close_without_reply = false;
  bool stall = false;
};

class LocalHttpServer {
 public:
  using Handler = std::function<LocalHttpResponse(const LocalHttpRequest&)>;

  explicit LocalHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("LocalHttpServer: socket failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("LocalHttpServer: bind/listen on 127.0.0.1 failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }

  ~LocalHttpServer() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }

  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  int Port() const { return port_; }
  // "http://127.0.0.1:PORT", no trailing slash.
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<LocalHttpRequest> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      // The timeout only bounds how long a stop waits if shutdown() does not
      // wake poll; it is not a test timing.
      int ready = ::poll(&pfd, 1, 200);
      if (ready <= 0 || stop_) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ServeConnection(fd);
      ::close(fd);
    }
  }

  void ServeConnection(int fd) {
    std::string data;
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome(fd, &data) || data.size() > (1 << 20)) return;
    }
    LocalHttpRequest request;
    std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) return;
    request.method = request_line.substr(0, sp1);
    request.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t q = request.target.find('?');
    request.path = request.target.substr(0, q);
    if (q != std::string::npos) request.query = request.target.substr(q + 1);
    size_t content_length = 0;
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string line = head.substr(pos, end - pos);
      pos = end + 2;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t") + 1);
      if (name == "content-length") content_length = std::strtoull(value.c_str(), nullptr, 10);
      request.headers.emplace_back(std::move(name), std::move(value));
    }
    request.body = data.substr(header_end + 4);
    while (request.body.size() < content_length) {
      if (!ReadSome(fd, &request.body)) return;
    }
    request.body.resize(content_length);

    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    LocalHttpResponse response = handler_(request);
    if (response.close_without_reply) return;
    if (response.stall) {
      // Bounded by the 5 s receive timeout, like any stalled exchange here.
      char byte;
      while (::recv(fd, &byte, 1, 0) > 0) {
      }
      return;
    }

    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) + "\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += "Content-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n";
    if (request.method != "HEAD") out += response.body;
    size_t sent = 0;
    while (sent < out.size()) {
      ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  static bool ReadSome(int fd, std::string* out) {
    char buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    out->append(buf, static_cast<size_t>(n));
    return true;
  }

  static const char* Reason(int status) {
    switch (status) {
      case 200:
        return "OK";
      case 204:
        return "No Content";
      case 206:
        return "Partial Content";
      case 400:
        return "Bad Request";
      case 401:
        return "Unauthorized";
      case 403:
        return "Forbidden";
      case 404:
        return "Not Found";
      case 405:
        return "Method Not Allowed";
      case 412:
        return "Precondition Failed";
      case 500:
        return "Internal Server Error";
      case 503:
        return "Service Unavailable";
      default:
        return "Status";
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<LocalHttpRequest> requests_;
};

}  // namespace logferry::testutil
