#include "deploy/health.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "core/duration.h"
#include "sys/fd.h"

namespace qabox {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

constexpr milliseconds kAttemptTimeout{500};
// An app usually answers a few milliseconds after its container starts:
// retry soon, then back off so a slow starter is not hammered.
constexpr milliseconds kFirstRetry{2};
constexpr milliseconds kMaxRetry{50};
constexpr milliseconds kCloseWatch{250};

// The app's answer is untrusted: its head, each chunk line or trailer block
// (which Beast keeps whole in the buffer) and its body are bounded, and the
// whole answer must arrive within the attempt's timeout.
constexpr uint32_t kHeadLimit = 16 * 1024;
constexpr size_t kBufferLimit = 64 * 1024;
constexpr uint64_t kBodyLimit = 1024 * 1024;

// A body that is counted against the parser's limit and dropped.
struct DiscardBody {
  struct value_type {};
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type&) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class Buffers>
    size_t put(const Buffers& b, beast::error_code& ec) {
      ec = {};
      return net::buffer_size(b);
    }
    void finish(beast::error_code& ec) { ec = {}; }
  };
};

std::string describe(const boost::system::error_code& ec) {
  if (ec == net::error::connection_refused) return "connection refused";
  if (ec == beast::error::timeout) return "timed out";
  if (ec == net::error::connection_reset) return "connection reset";
  if (ec == http::error::end_of_stream || ec == net::error::eof) {
    return "connection closed before an answer";
  }
  if (ec == net::error::host_unreachable) return "host unreachable";
  if (ec == net::error::network_unreachable) return "network unreachable";
  std::string m = ec.message();
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

std::string urlFor(const std::string& ip, uint16_t port, const std::string& path) {
  bool v6 = ip.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port) + path;
}

Status checkPath(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return invalidArgument("health path \"" + path.substr(0, 80) + "\": must start with '/'");
  }
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return invalidArgument("health path \"" + path.substr(0, 80) +
                             "\": must not contain spaces or control characters");
    }
  }
  return Status::ok();
}

// One probe's exchange: connect, send the request, read the head, then the
// whole answer within its bounds. The step that ends the probe says why in
// `probe`; Asio's own timers bound the whole exchange (a sync socket could
// block in connect or read for as long as the kernel likes).
class Exchange {
 public:
  Exchange(net::io_context& ioc, const net::ip::address& addr, const std::string& ip, uint16_t port,
           const std::string& path, milliseconds timeout, HealthProbe& probe)
      : addr_(addr), port_(port), probe_(probe), stream_(ioc), req_{http::verb::get, path, 11} {
    stream_.expires_after(timeout);
    std::string host = addr.is_v6() ? "[" + ip + "]" : ip;
    if (port != 80) host += ":" + std::to_string(port);
    req_.set(http::field::host, host);
    req_.set(http::field::user_agent, "qabox-health");
    req_.set(http::field::connection, "close");
    parser_.header_limit(kHeadLimit);
    parser_.body_limit(kBodyLimit);
  }

  void start() {
    // Opened here, not by async_connect, to be close-on-exec at once.
    boost::system::error_code ec;
    stream_.socket().open(addr_.is_v6() ? tcp::v6() : tcp::v4(), ec);
    if (!ec) setCloseOnExec(stream_.socket().native_handle());
    stream_.async_connect(tcp::endpoint(addr_, port_),
                          [this](beast::error_code ec) { connected(ec); });
  }

  void shutdown() {
    beast::error_code ignored;  // the app may have closed it first
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

 private:
  void connected(beast::error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    http::async_write(stream_, req_, [this](beast::error_code wec, size_t) { sent(wec); });
  }

  void sent(beast::error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    http::async_read_header(stream_, buffer_, parser_,
                            [this](beast::error_code rec, size_t) { headRead(rec); });
  }

  void headRead(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      probe_.detail =
          "the answer's head is larger than " + std::to_string(kHeadLimit / 1024) + " KiB";
      return;
    }
    if (ec) {
      fail(ec);
      return;
    }
    probe_.httpStatus = parser_.get().result_int();
    probe_.detail = "HTTP " + std::to_string(probe_.httpStatus);
    if (probe_.httpStatus < 200 || probe_.httpStatus >= 400) return;
    // Healthy once the whole answer is in, within its bounds.
    http::async_read(stream_, buffer_, parser_,
                     [this](beast::error_code bec, size_t) { bodyRead(bec); });
  }

  void bodyRead(beast::error_code ec) {
    std::string but = probe_.detail + ", but the answer";
    if (!ec) {
      probe_.healthy = true;
    } else if (ec == http::error::body_limit) {
      probe_.detail =
          but + "'s body is larger than " + std::to_string(kBodyLimit / (1024 * 1024)) + " MiB";
    } else if (ec == http::error::buffer_overflow) {
      probe_.detail = but + " has a chunk line or trailer larger than " +
                      std::to_string(kBufferLimit / 1024) + " KiB";
    } else if (ec == beast::error::timeout) {
      probe_.timedOut = true;
      probe_.detail = but + " did not end in time";
    } else {
      probe_.detail = but + "'s body is broken: " + describe(ec);
    }
  }

  void fail(beast::error_code ec) {
    probe_.timedOut = ec == beast::error::timeout;
    probe_.detail = describe(ec);
  }

  net::ip::address addr_;
  uint16_t port_;
  HealthProbe& probe_;
  beast::tcp_stream stream_;
  http::request<http::empty_body> req_;
  beast::flat_buffer buffer_{kBufferLimit};
  http::response_parser<DiscardBody> parser_;
};

}  // namespace

HealthProbe probeHealth(const std::string& ip, uint16_t port, const std::string& path,
                        milliseconds timeout) {
  HealthProbe probe;
  try {
    boost::system::error_code ec;
    net::ip::address addr = net::ip::make_address(ip, ec);
    if (ec) {
      probe.detail = "bad address \"" + ip + "\"";
      return probe;
    }
    net::io_context ioc;
    Exchange exchange(ioc, addr, ip, port, path, timeout, probe);
    exchange.start();
    ioc.run();
    exchange.shutdown();
  } catch (const std::exception& e) {
    probe.healthy = false;
    probe.detail = e.what();
  }
  if (probe.detail.empty()) probe.detail = "no answer";
  return probe;
}

Status waitHealthy(const std::string& ip, uint16_t port, const std::string& path,
                   milliseconds timeout, std::function<bool()> cancelled) {
  QABOX_RETURN_IF_ERROR(checkPath(path));
  {
    boost::system::error_code ec;
    net::ip::make_address(ip, ec);
    if (ec) return invalidArgument("health check: address \"" + ip + "\": not an IP address");
  }
  if (port == 0) return invalidArgument("health check: port 0: must be between 1 and 65535");
  const std::string what = "health check GET " + urlFor(ip, port, path);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no attempt made";
  milliseconds retry = kFirstRetry;
  while (true) {
    if (cancelled && cancelled()) return {Code::kCancelled, what + ": cancelled"};
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    milliseconds attempt = std::min(kAttemptTimeout, left);
    HealthProbe p = probeHealth(ip, port, path, attempt);
    if (p.healthy) return Status::ok();
    // An attempt cut short by the deadline says less than the one before
    // (a body that would have passed 1 MiB given its full 500 ms, say).
    bool cutShort = attempt < kAttemptTimeout && p.timedOut;
    if (!cutShort || last == "no attempt made") last = p.detail;
    left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::this_thread::sleep_for(std::min(retry, left));
    // Most apps answer within a few hundred milliseconds of their start:
    // polled closely until then (a refused connect costs next to nothing),
    // then less and less often.
    if (timeout - left >= kCloseWatch) retry = std::min(retry * 2, kMaxRetry);
  }
  return deadlineExceeded(what + ": no 2xx/3xx answer within " + formatDuration(timeout) +
                          " (last: " + last + ")");
}

}  // namespace qabox
