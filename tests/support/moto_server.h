// Starts a real moto_server (S3 and SQS) on 127.0.0.1 for one test process
// and stops it at exit. Tests that need it call MotoServer::Get(); when
// moto_server is not installed they are skipped, except under CI=true,
// where a missing server is a failure.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "http/http_client.h"

namespace logferry::testing {

class MotoServer {
 public:
  // nullptr when moto_server cannot be started.
  static MotoServer* Get() {
    static MotoServer* server = Start();
    return server;
  }

  const std::string& endpoint() const { return endpoint_; }
  int port() const { return port_; }

  ~MotoServer() { Stop(); }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

 private:
  static MotoServer* Start() {
    auto* s = new MotoServer();
    s->port_ = FreePort();
    s->endpoint_ = "http://127.0.0.1:" + std::to_string(s->port_);
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      std::string port = std::to_string(s->port_);
      execlp("moto_server", "moto_server", "-H", "127.0.0.1", "-p", port.c_str(), nullptr);
      _exit(127);
    }
    s->pid_ = pid;
    // Ready when it answers; bounded at 30 s.
    HttpClient http;
    for (int i = 0; i < 300; ++i) {
      HttpRequest req;
      req.url = s->endpoint_ + "/moto-api/";
      req.timeout_ms = 1000;
      auto r = http.Send(req);
      if (r.ok()) {
        std::atexit([] { delete Get(); });
        return s;
      }
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) break;  // exited: not installed
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    s->Stop();
    delete s;
    return nullptr;
  }

  std::string endpoint_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace logferry::testing

// Skips (or under CI=true fails) a test when moto_server is unavailable.
#define LF_REQUIRE_MOTO(server)                                                 \
  auto* server = ::logferry::testing::MotoServer::Get();                        \
  if (!server) {                                                                \
    const char* ci = std::getenv("CI");                                         \
    if (ci && std::string(ci) == "true") FAIL() << "moto_server did not start"; \
    GTEST_SKIP() << "moto_server is not installed";                             \
  }
