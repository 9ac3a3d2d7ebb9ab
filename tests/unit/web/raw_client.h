#pragma once

// A plain loopback socket for bytes no HTTP library would send; every wait
// is bounded by a receive timeout, so a stalled server fails a test.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>

namespace qabox::web::testing {

class Raw {
 public:
  explicit Raw(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  bool ok() const { return fd_ >= 0; }

  bool send(std::string_view b) {
    while (!b.empty()) {
      ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      b.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Until the peer closes or the timeout passes without a byte.
  std::string readAll() {
    std::string out;
    char buf[8192];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = n == 0;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // Until `marker` arrived (or the peer closed, or the timeout passed).
  std::string readUntil(std::string_view marker) {
    std::string out;
    char c;
    while (out.find(marker) == std::string::npos) {
      ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n <= 0) {
        closed_ = n == 0;
        break;
      }
      out.push_back(c);
    }
    return out;
  }
  bool closedByPeer() const { return closed_; }

 private:
  int fd_ = -1;
  bool closed_ = false;
};

// "HTTP/1.1 200 OK..." -> 200; 0 when there is no status line.
inline int statusOf(const std::string& reply) {
  if (reply.rfind("HTTP/1.1 ", 0) != 0 || reply.size() < 12) return 0;
  return std::stoi(reply.substr(9, 3));
}

}  // namespace qabox::web::testing
