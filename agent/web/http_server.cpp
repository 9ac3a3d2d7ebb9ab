#include "web/http_server.h"

#include "sys/fd.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace qabox::web {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using beast::error_code;

void securityHeaders(http::response<http::string_body>& res) {
  res.set("Content-Security-Policy",
          "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "same-origin");
  res.set(http::field::cache_control, "no-store");
}

Reply makeReply(http::status status, std::string body, std::string_view contentType) {
  Reply r;
  r.res.result(status);
  r.res.version(11);
  r.res.set(http::field::content_type,
            boost::beast::string_view(contentType.data(), contentType.size()));
  securityHeaders(r.res);
  r.res.body() = std::move(body);
  return r;
}

struct HttpServer::Impl {
  Impl(HttpServerOptions o, Handler h) : opt(std::move(o)), handler(std::move(h)) {}
  void accept();

  HttpServerOptions opt;
  Handler handler;
  // Before the io_context: sessions its handlers still hold count down here
  // as it is destroyed.
  std::atomic<size_t> conns{0};
  std::atomic<size_t> streams{0};
  std::atomic<bool> stopped{false};
  uint16_t port = 0;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
};

namespace {

// One client connection, on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& srv, tcp::socket socket)
      : srv_(srv), stream_(std::move(socket)), timer_(stream_.get_executor()) {
    ++srv_.conns;
  }
  ~Session() {
    if (streaming_) --srv_.streams;
    --srv_.conns;
  }
  void start() { waitForRequest(); }

 private:
  const HttpServerOptions& opt() const { return srv_.opt; }

  // An idle connection waits idleTimeout for a first byte; from it, the
  // whole request must come within readTimeout (slow loris).
  void waitForRequest() {
    if (buf_.size() > 0) return readRequest();
    stream_.expires_after(opt().idleTimeout);
    stream_.async_read_some(buf_.prepare(4096),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              if (ec) return self->close();
                              self->buf_.commit(n);
                              self->readRequest();
                            });
  }

  // The head first: its target decides how big a body may be (a webhook's
  // JSON or a form), then the body within that limit and the same deadline.
  void readRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(opt().maxHeaderBytes));
    parser_->body_limit(opt().maxBodyBytes);
    stream_.expires_after(opt().readTimeout);
    http::async_read_header(stream_, buf_, *parser_,
                            [self = shared_from_this()](error_code ec, size_t) {
                              if (ec) return self->onRead(ec);
                              self->readBody();
                            });
  }

  void readBody() {
    if (opt().bodyLimitFor) {
      const auto& target = parser_->get().target();
      const auto method = parser_->get().method_string();
      size_t limit = opt().bodyLimitFor(std::string_view(method.data(), method.size()),
                                        std::string_view(target.data(), target.size()));
      if (limit > 0) parser_->body_limit(limit);
    }
    if (parser_->is_done()) return onRead({});
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(error_code ec) {
    if (ec == http::error::header_limit)
      return refuse(http::status::request_header_fields_too_large);
    if (ec == http::error::body_limit) return refuse(http::status::payload_too_large);
    bool malformed = ec &&
                     ec.category() == http::make_error_code(http::error::bad_target).category() &&
                     ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (malformed) return refuse(http::status::bad_request);
    if (ec) return close();  // gone, timed out, reset
    const Request& req = parser_->get();
    if (req.target().size() > opt().maxTargetBytes) return refuse(http::status::uri_too_long);
    if (static_cast<size_t>(std::distance(req.begin(), req.end())) > opt().maxHeaderCount) {
      return refuse(http::status::request_header_fields_too_large);
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head &&
        req.method() != http::verb::post) {
      return refuse(http::status::method_not_allowed);
    }
    serve(req);
  }

  void serve(const Request& req) {
    Reply r;
    try {
      r = srv_.handler(req);
    } catch (const std::exception& e) {
      spdlog::warn("dashboard: {} {}: {}", std::string(req.method_string()),
                   std::string(req.target().substr(0, 200)), e.what());
      r = makeReply(http::status::internal_server_error, "internal error\n", "text/plain");
    }
    if (r.stream) return startStream(std::move(r));
    r.res.keep_alive(req.keep_alive());
    if (req.method() == http::verb::head) {
      r.res.content_length(r.res.body().size());
      r.res.body().clear();
      r.res.keep_alive(false);
    } else {
      r.res.prepare_payload();
    }
    send(std::move(r.res));
  }

  void refuse(http::status status) {
    Reply r = makeReply(status, std::string(http::obsolete_reason(status)) + "\n", "text/plain");
    r.res.keep_alive(false);
    r.res.prepare_payload();
    linger_ = true;
    send(std::move(r.res));
  }

  void send(http::response<http::string_body> res) {
    res_ = std::make_shared<http::response<http::string_body>>(std::move(res));
    stream_.expires_after(opt().writeTimeout);
    http::async_write(stream_, *res_, [self = shared_from_this()](error_code ec, size_t) {
      bool again = !ec && self->res_->keep_alive() && !self->srv_.stopped;
      self->res_.reset();
      if (again) return self->waitForRequest();
      if (self->linger_ && !ec) return self->lingeringClose();
      self->close();
    });
  }

  // A refusal sent before the request's body was read: closing now, with
  // that body unread, would reset the connection and the router would lose
  // the answer (a 502 instead of a 413). So stop sending, read and drop
  // what the client still sends, for at most a second or 4 MiB, then close.
  void lingeringClose() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(1));
    drain(0);
  }

  void drain(size_t dropped) {
    stream_.async_read_some(net::buffer(sink_),
                            [self = shared_from_this(), dropped](error_code ec, size_t n) {
                              if (ec || dropped + n > (4u << 20)) return self->close();
                              self->drain(dropped + n);
                            });
  }

  // An event stream: the head, then what the handler's StreamFn gives,
  // polled every pollEvery, a comment line when nothing went for heartbeat.
  void startStream(Reply r) {
    if (srv_.streams.fetch_add(1) >= opt().maxStreams) {
      --srv_.streams;
      return refuse(http::status::service_unavailable);
    }
    streaming_ = true;
    streamFn_ = std::move(r.stream);
    head_ = std::make_shared<http::response<http::empty_body>>();
    head_->result(r.res.result());
    head_->version(11);
    for (const auto& f : r.res) head_->set(f.name_string(), f.value());
    head_->chunked(true);
    head_->keep_alive(false);
    serializer_ = std::make_shared<http::response_serializer<http::empty_body>>(*head_);
    stream_.expires_after(opt().writeTimeout);
    http::async_write_header(stream_, *serializer_,
                             [self = shared_from_this()](error_code ec, size_t) {
                               if (ec) return self->close();
                               self->lastWrite_ = std::chrono::steady_clock::now();
                               self->watchClose();
                               self->pollStream(std::chrono::milliseconds(0));
                             });
  }

  // Whatever the client sends on a stream is dropped; its end ends the stream.
  void watchClose() {
    stream_.socket().async_read_some(net::buffer(sink_),
                                     [self = shared_from_this()](error_code ec, size_t) {
                                       if (ec) return self->close();
                                       self->watchClose();
                                     });
  }

  void pollStream(std::chrono::milliseconds after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      self->nextChunk();
    });
  }

  void nextChunk() {
    std::optional<std::string> data;
    try {
      data = streamFn_();
    } catch (const std::exception& e) {
      spdlog::warn("dashboard: event stream: {}", e.what());
    }
    if (!data) return writeChunk("", true);
    if (data->empty() && std::chrono::steady_clock::now() - lastWrite_ >= opt().heartbeat) {
      *data = ": heartbeat\n\n";
    }
    if (data->empty()) return pollStream(opt().pollEvery);
    writeChunk(std::move(*data), false);
  }

  void writeChunk(std::string data, bool last) {
    chunk_ = std::move(data);
    stream_.expires_after(opt().writeTimeout);
    auto done = [self = shared_from_this(), last](error_code ec, size_t) {
      if (ec || last) return self->close();
      self->lastWrite_ = std::chrono::steady_clock::now();
      self->pollStream(self->opt().pollEvery);
    };
    if (last) {
      net::async_write(stream_, http::make_chunk_last(), done);
    } else {
      net::async_write(stream_, http::make_chunk(net::buffer(chunk_)), done);
    }
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  HttpServer::Impl& srv_;
  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buf_{opt().maxHeaderBytes + opt().maxBodyBytes + 4096};
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> res_;
  std::shared_ptr<http::response<http::empty_body>> head_;
  std::shared_ptr<http::response_serializer<http::empty_body>> serializer_;
  StreamFn streamFn_;
  std::string chunk_;
  std::array<char, 512> sink_{};
  std::chrono::steady_clock::time_point lastWrite_{};
  bool streaming_ = false;
  bool linger_ = false;  // refused: drain what the client sends before closing
  bool closed_ = false;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (stopped) return;
    // Asio accepts without SOCK_CLOEXEC: no child the agent starts may
    // inherit a browser's connection.
    if (!ec && !setCloseOnExec(socket.native_handle())) {
      spdlog::warn("dashboard: marking a connection close-on-exec failed: {}",
                   std::strerror(errno));
      error_code ignored;
      socket.close(ignored);
    } else if (!ec) {
      if (conns.load() >= opt.maxConnections) {
        error_code ignored;
        socket.close(ignored);  // over the cap: the client may retry
      } else {
        std::make_shared<Session>(*this, std::move(socket))->start();
      }
    }
    accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  Impl& i = *impl_;
  error_code ec;
  auto addr = net::ip::make_address(i.opt.host, ec);
  if (ec) return invalidArgument("dashboard: address " + i.opt.host + ": " + ec.message());
  tcp::endpoint ep(addr, i.opt.port);
  i.acceptor.open(ep.protocol(), ec);
  if (!ec && !setCloseOnExec(i.acceptor.native_handle())) {
    ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) i.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("dashboard: listen on " + i.opt.host + ": " + ec.message());
  i.port = i.acceptor.local_endpoint().port();
  i.accept();
  for (int t = 0; t < std::max(1, i.opt.threads); ++t) {
    i.threads.emplace_back([&i] {
      for (;;) {
        try {
          i.ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("dashboard: {}", e.what());
        }
      }
    });
  }
  return Status::ok();
}

void HttpServer::stop() {
  Impl& i = *impl_;
  if (i.stopped.exchange(true)) return;
  net::post(i.ioc, [&i] {
    error_code ignored;
    i.acceptor.close(ignored);
  });
  i.ioc.stop();
  for (auto& t : i.threads) {
    if (t.joinable()) t.join();
  }
}

uint16_t HttpServer::port() const { return impl_->port; }
size_t HttpServer::connections() const { return impl_->conns.load(); }
size_t HttpServer::streams() const { return impl_->streams.load(); }

}  // namespace qabox::web
