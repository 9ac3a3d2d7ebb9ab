#include "proxy/router.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "core/endpoint.h"
#include "proxy/host.h"
#include "proxy/router_impl.h"
#include "sys/fd.h"

namespace qabox {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using proxy_internal::Worker;

namespace {

Result<tcp::endpoint> listenEndpoint(std::string_view field, std::string_view text) {
  QABOX_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(text, field));
  error_code ec;
  auto address = asio::ip::make_address(hp.host.empty() ? "0.0.0.0" : hp.host, ec);
  if (ec) {
    return invalidArgument(std::string(field) + " \"" + std::string(text) +
                           "\": the host must be an IP address");
  }
  return tcp::endpoint(address, hp.port);
}

}  // namespace

Result<proxy_internal::Limits> proxy_internal::makeLimits(const RouterOptions& o) {
  Limits l;
  l.domain = normalizeDomain(o.domain);
  if (l.domain.empty()) return invalidArgument("routing.domain: must not be empty");
  auto ms = [](std::chrono::milliseconds d, int64_t fallback) {
    return d.count() > 0 ? static_cast<int64_t>(d.count()) : fallback;
  };
  l.headerMs = ms(o.headerTimeout, 10000);
  l.idleMs = ms(o.idleTimeout, 60000);
  l.backendMs = ms(o.backendTimeout, 30000);
  l.backendIdleMs = ms(o.backendIdleTimeout, 4000);
  l.wakeMs = ms(o.wakeTimeout, 60000);
  l.tickMs = std::clamp<int64_t>(std::min({l.headerMs, l.idleMs, l.backendMs, l.backendIdleMs}) / 4,
                                 5, 250);
  l.maxHeaderBytes = std::clamp<size_t>(o.maxHeaderBytes, 1024, 1024 * 1024);
  l.maxHeaderCount = std::max<size_t>(o.maxHeaderCount, 8);
  l.headerLimit = static_cast<uint32_t>(l.maxHeaderBytes);
  l.threads = std::clamp(o.threads, 1, 64);
  return l;
}

// ---- Router::Impl ----

Router::Impl::~Impl() {
  stop();
  plain.reset();
  secure.reset();
  // In order: worker 0 runs the acceptors, and a pending accept owns a
  // socket of another worker's io_context.
  for (auto& w : workers) w.reset();
}

Status Router::Impl::start() {
  std::lock_guard lock(lifeMu);
  if (started) return failedPrecondition("router: start() may be called once");
  started = true;
  QABOX_ASSIGN_OR_RETURN(limits, proxy_internal::makeLimits(opts));
  QABOX_ASSIGN_OR_RETURN(tcp::endpoint plainEp, listenEndpoint("routing.listen", opts.listen));
  std::optional<tcp::endpoint> tlsEp;
  if (!opts.tlsListen.empty()) {
    QABOX_ASSIGN_OR_RETURN(tlsEp, listenEndpoint("routing.tls_listen", opts.tlsListen));
    QABOX_RETURN_IF_ERROR(setUpTls());
  }
  for (int i = 0; i < limits.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(*this, static_cast<unsigned>(i)));
  }
  QABOX_RETURN_IF_ERROR(open(plain, plainEp, "routing.listen", opts.listen));
  port = plain->local_endpoint().port();
  if (tlsEp) {
    QABOX_RETURN_IF_ERROR(open(secure, *tlsEp, "routing.tls_listen", opts.tlsListen));
    tlsPort = secure->local_endpoint().port();
  }
  runWorkers();
  asio::post(workers[0]->ioc, [this] {
    accept(*plain, false);
    if (secure) accept(*secure, true);
  });
  return Status::ok();
}

Status Router::Impl::setUpTls() {
  if (opts.tlsCert.empty() || opts.tlsKey.empty()) {
    return invalidArgument("routing.tls_listen: needs routing.tls_cert and routing.tls_key");
  }
  tls.emplace(ssl::context::tls_server);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  error_code ec;
  tls->use_certificate_chain_file(opts.tlsCert, ec);
  if (ec) return invalidArgument("routing.tls_cert \"" + opts.tlsCert + "\": " + ec.message());
  tls->use_private_key_file(opts.tlsKey, ssl::context::pem, ec);
  if (ec) return invalidArgument("routing.tls_key \"" + opts.tlsKey + "\": " + ec.message());
  return Status::ok();
}

Status Router::Impl::open(std::optional<tcp::acceptor>& acceptor, const tcp::endpoint& ep,
                          std::string_view field, const std::string& text) {
  error_code ec;
  acceptor.emplace(workers[0]->ioc);
  acceptor->open(ep.protocol(), ec);
  if (!ec && !setCloseOnExec(acceptor->native_handle())) {
    ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor.reset();
    return unavailable(std::string(field) + " " + text + ": " + ec.message());
  }
  return Status::ok();
}

void Router::Impl::runWorkers() {
  for (auto& w : workers) {
    scheduleSweep(*w);
    Worker* wp = w.get();
    w->thread = std::thread([wp] {
      proxy_internal::setCounterSlot(wp->index);
      // The last barrier, for a handler outside any session (accept, the
      // sweep): the thread goes on serving its other connections.
      for (;;) {
        try {
          wp->ioc.run();
          return;
        } catch (const std::exception& e) {
          proxy_internal::noteCaught("router thread", e.what());
        } catch (...) {
          proxy_internal::noteCaught("router thread", "unknown exception");
        }
      }
    });
  }
}

void Router::Impl::stop() {
  std::lock_guard lock(lifeMu);
  if (stopped) return;
  stopped = true;
  stopping = true;
  for (size_t i = 0; i < workers.size(); ++i) {
    Worker* w = workers[i].get();
    if (!w->thread.joinable()) continue;
    asio::post(w->ioc, [this, w, first = i == 0] {
      error_code ig;  // closing and cancelling only release; nothing to do if they fail
      if (first) {
        if (plain) plain->close(ig);
        if (secure) secure->close(ig);
      }
      w->shutdownAll();
      w->sweeper.cancel(ig);
      w->ioc.stop();
    });
  }
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Router::Impl::accept(tcp::acceptor& acceptor, bool isTls) {
  Worker& w = *workers[nextWorker.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  acceptor.async_accept(w.ioc, [this, &acceptor, isTls, &w](error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || stopping.load()) return;
    if (ec) {
      // Out of descriptors and the like: back off instead of spinning, and
      // say so (the first times, then every 1000th: it may last).
      if (uint64_t n = ++acceptFailures; n <= 5 || n % 1000 == 0) {
        spdlog::warn("router: accepting a connection failed ({} so far), retrying in 50 ms: {}", n,
                     ec.message());
      }
      auto timer =
          std::make_shared<asio::steady_timer>(workers[0]->ioc, std::chrono::milliseconds(50));
      timer->async_wait([this, timer, &acceptor, isTls](error_code e) {
        if (!e && !stopping.load()) accept(acceptor, isTls);
      });
      return;
    }
    // Accepting again first: nothing that fails below stops the listener.
    accept(acceptor, isTls);
    asio::post(w.ioc, [this, &w, s = std::move(s), isTls]() mutable {
      if (stopping.load()) return;
      try {
        proxy_internal::startClientSession(w, std::move(s), isTls);
      } catch (const std::exception& e) {
        proxy_internal::noteCaught("starting a connection", e.what());
      }
    });
  });
}

void Router::Impl::scheduleSweep(Worker& w) {
  w.sweeper.expires_after(std::chrono::milliseconds(limits.tickMs));
  w.sweeper.async_wait([this, &w](error_code ec) {
    if (ec) return;
    scheduleSweep(w);
    w.sweep(proxy_internal::steadyNowMs(), limits.backendIdleMs);
  });
}

void Router::Impl::requestWake(const std::string& slug, std::function<void(Status)> waiter) {
  {
    std::lock_guard lock(wakeMu);
    auto& waiters = waking[slug];
    waiters.push_back(std::move(waiter));
    if (waiters.size() > 1) return;
  }
  std::weak_ptr<Impl> weak = shared_from_this();
  auto done = [weak, slug](Status s) {
    if (auto self = weak.lock()) self->wakeDone(slug, s);
  };
  try {
    opts.wake(slug, done);
  } catch (const std::exception& e) {
    wakeDone(slug, internalError(std::string("wake: ") + e.what()));
  } catch (...) {
    wakeDone(slug, internalError("wake: unknown exception"));
  }
}

void Router::Impl::wakeDone(const std::string& slug, const Status& s) {
  std::vector<std::function<void(Status)>> waiters;
  {
    std::lock_guard lock(wakeMu);
    auto it = waking.find(slug);
    if (it == waking.end()) return;
    waiters = std::move(it->second);
    waking.erase(it);
  }
  for (auto& w : waiters) w(s);
}

// ---- Router ----

Router::Router(RouterOptions options, std::shared_ptr<RouteTable> routes)
    : impl_(std::make_shared<Impl>(std::move(options),
                                   routes ? std::move(routes) : std::make_shared<RouteTable>())) {}

Router::~Router() {
  if (impl_) impl_->stop();
}

Status Router::start() { return impl_->start(); }
void Router::stop() { impl_->stop(); }
uint16_t Router::port() const { return impl_->port; }
uint16_t Router::tlsPort() const { return impl_->tlsPort; }
std::vector<AccessStats> Router::takeStats() { return impl_->table->takeStats(); }

int64_t Router::openConnections() const {
  int64_t n = 0;
  for (const auto& g : impl_->connections) n += g.value.load(std::memory_order_relaxed);
  return n;
}

}  // namespace qabox
