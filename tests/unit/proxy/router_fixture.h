#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "proxy/router.h"
#include "unit/proxy/loopback.h"

namespace qabox::testing {

// A router on 127.0.0.1:0 serving *.qa.test from its own route table.
class RouterTest : public ::testing::Test {
 protected:
  void TearDown() override { router_.reset(); }

  void start(RouterOptions o = {}) {
    if (o.domain.empty()) o.domain = "qa.test";
    o.listen = "127.0.0.1:0";
    router_ = std::make_unique<Router>(std::move(o), table_);
    Status s = router_->start();
    ASSERT_TRUE(s.isOk()) << s.toString();
    ASSERT_NE(router_->port(), 0);
  }

  void route(const std::string& slug, EnvState state, uint16_t port, uint64_t generation = 1,
             const std::string& message = "") {
    Route r;
    r.slug = slug;
    r.state = state;
    r.ip = "127.0.0.1";
    r.port = port;
    r.generation = generation;
    r.message = message;
    table_->set(r);
  }

  uint16_t port() const { return router_->port(); }

  // Polls `cond` for up to 10 s: for effects the router applies on its own
  // threads after the client already has its answer.
  static bool eventually(const std::function<bool()>& cond) {
    for (int i = 0; i < 1000; ++i) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  }

  // A port nothing listens on.
  static uint16_t closedPort() {
    asio::io_context ioc;
    tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
  }

  std::shared_ptr<RouteTable> table_ = std::make_shared<RouteTable>();
  std::unique_ptr<Router> router_;
};

}  // namespace qabox::testing
