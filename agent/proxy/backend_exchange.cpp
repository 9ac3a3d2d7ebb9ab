#include "proxy/backend_exchange.h"

#include <boost/asio/error.hpp>

namespace qabox::proxy_internal {

std::string backendFailureText(BackendStage stage, const boost::system::error_code& ec,
                               bool timedOut, int64_t timeoutMs, std::string_view why) {
  namespace http = boost::beast::http;
  namespace error = boost::asio::error;
  if (timedOut) {
    return (stage == BackendStage::kConnect ? " did not accept a connection within "
                                            : " did not answer within ") +
           formatMs(timeoutMs) + ".";
  }
  if (stage == BackendStage::kConnect) {
    return ec == error::connection_refused
               ? " refused the connection: nothing listens on that port yet."
               : " could not be reached: " + ec.message() + ".";
  }
  if (stage == BackendStage::kBadResponse) {
    if (!why.empty()) return " " + std::string(why) + ".";
    if (ec == http::error::header_limit) {
      return " sent a response head larger than " + std::to_string(kBackendHeaderLimit / 1024) +
             " KiB.";
    }
    return " sent a response that is not valid HTTP/1.1.";
  }
  if (ec == error::eof || ec == error::connection_reset) {
    return " closed the connection without answering.";
  }
  return " failed: " + ec.message() + ".";
}

}  // namespace qabox::proxy_internal
