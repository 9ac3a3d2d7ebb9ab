#pragma once

// Loopback servers and clients for the router tests: 127.0.0.1 and port 0
// only. Everything blocks with a receive timeout, so a broken router fails a
// test instead of hanging it.

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/beast.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace qabox::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

inline std::string str(beast::string_view s) { return {s.data(), s.size()}; }

inline void setReceiveTimeout(tcp::socket& s, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A one-shot flag another thread can wait for, with a timeout.
class Latch {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds t = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, t, [&] { return open_; });
  }
  bool isOpen() {
    std::lock_guard lock(mu_);
    return open_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A backend on 127.0.0.1:<ephemeral>: one thread per connection, each
// running the handler on the connected socket. The backend owns the sockets;
// stopping shuts them down, which unblocks the handlers.
class TestBackend {
 public:
  using Handler = std::function<void(tcp::socket&)>;

  explicit TestBackend(Handler handler) : handler_(std::move(handler)), acceptor_(ioc_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~TestBackend() { stop(); }

  uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }

  void stop() {
    if (stopping_.exchange(true)) return;
    {
      // Wake the blocking accept.
      boost::system::error_code ec;
      tcp::socket s(ioc_);
      s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
    }
    thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) ::shutdown(s->native_handle(), SHUT_RDWR);
      threads = std::move(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  void acceptLoop() {
    for (;;) {
      auto s = std::make_shared<tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(*s, ec);
      if (stopping_.load()) return;
      if (ec) continue;
      accepts_.fetch_add(1);
      setReceiveTimeout(*s, std::chrono::seconds(30));
      std::lock_guard lock(mu_);
      sockets_.push_back(s);
      threads_.emplace_back([this, s] {
        try {
          handler_(*s);
        } catch (const std::exception&) {
        }
      });
    }
  }

  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepts_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
};

// What the echo backend saw, shared with the test.
struct Seen {
  std::atomic<int> requests{0};
  std::atomic<int> closed{0};  // connections the peer closed
  std::mutex mu;
  std::vector<http::request<http::string_body>> last;

  void add(const http::request<http::string_body>& r) {
    std::lock_guard lock(mu);
    last.push_back(r);
    requests.fetch_add(1);
  }
  http::request<http::string_body> back() {
    std::lock_guard lock(mu);
    return last.back();
  }
};

// Answers every request with 200 and "<name> <method> <target> <body size>",
// keeping the connection while the request allows it.
inline TestBackend::Handler echoHandler(std::string name, std::shared_ptr<Seen> seen) {
  return [name, seen](tcp::socket& s) {
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> p;
      p.body_limit(UINT64_MAX);
      boost::system::error_code ec;
      http::read(s, buf, p, ec);
      if (ec) {
        if (ec == http::error::end_of_stream) seen->closed.fetch_add(1);
        return;
      }
      auto req = p.release();
      seen->add(req);
      http::response<http::string_body> res{http::status::ok, 11};
      res.set("X-Backend", name);
      res.body() = name + " " + str(req.method_string()) + " " + str(req.target()) + " " +
                   std::to_string(req.body().size());
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  };
}

// One client connection to the router.
class Client {
 public:
  explicit Client(uint16_t port) : sock_(ioc_) {
    sock_.connect({asio::ip::make_address("127.0.0.1"), port});
    setReceiveTimeout(sock_, std::chrono::seconds(15));
  }

  tcp::socket& socket() { return sock_; }
  beast::flat_buffer& buffer() { return buf_; }

  void send(std::string_view raw) { asio::write(sock_, asio::buffer(raw.data(), raw.size())); }

  // Reads one response; `bytes` gets its size on the wire.
  http::response<http::string_body> read(bool head = false, size_t* bytes = nullptr) {
    http::response_parser<http::string_body> p;
    p.body_limit(UINT64_MAX);
    if (head) p.skip(true);
    size_t n = http::read(sock_, buf_, p);
    if (bytes) *bytes = n;
    return p.release();
  }

  http::response<http::string_body> get(const std::string& host, const std::string& target = "/") {
    send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
    return read();
  }

  // True when the router closed the connection (no bytes, then EOF or reset).
  bool closedByPeer() {
    if (buf_.size() > 0) return false;
    char c;
    boost::system::error_code ec;
    size_t n = sock_.read_some(asio::buffer(&c, 1), ec);
    return n == 0 && (ec == asio::error::eof || ec == asio::error::connection_reset);
  }

  // Everything until the router closes.
  std::string readAll() {
    std::string out(static_cast<const char*>(buf_.data().data()), buf_.size());
    buf_.consume(buf_.size());
    char chunk[4096];
    for (;;) {
      boost::system::error_code ec;
      size_t n = sock_.read_some(asio::buffer(chunk), ec);
      out.append(chunk, n);
      if (ec) return out;
    }
  }

 private:
  asio::io_context ioc_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
};

}  // namespace qabox::testing
