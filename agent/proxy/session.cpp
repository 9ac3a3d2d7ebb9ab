// The two kinds of client session (plain and TLS) are instantiated here only.

#include <boost/asio/ssl.hpp>

#include "proxy/client_session.h"
#include "sys/fd.h"

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace qabox::proxy_internal {

void startClientSession(Worker& w, boost::asio::ip::tcp::socket s, bool tls) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  // Asio accepts without SOCK_CLOEXEC.
  if (!setCloseOnExec(s.native_handle())) {
    spdlog::warn("router: marking a client socket close-on-exec failed: {}", std::strerror(errno));
  }
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);  // only latency: it works without
  auto remote = s.remote_endpoint(ec);
  // The client left before it could be served: nothing to answer.
  if (ec) return;
  auto address = remote.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  uint32_t v4 = address.is_v4() ? address.to_v4().to_uint() : 0;
  if (tls) {
    std::make_shared<ClientSession<asio::ssl::stream<tcp::socket>>>(w, std::move(s),
                                                                    address.to_string(), v4)
        ->start();
  } else {
    std::make_shared<ClientSession<tcp::socket>>(w, std::move(s), address.to_string(), v4)->start();
  }
}

}  // namespace qabox::proxy_internal
