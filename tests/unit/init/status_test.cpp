#include "init/status_table.h"

#include <gtest/gtest.h>

namespace qabox::init {
namespace {

TEST(StatusTable, OneLineAProcessNoControlBytes) {
  supervise::InitStatus s;
  s.bootMs = 1000;
  supervise::ProcessStatus p;
  p.name = "postgres";
  p.state = supervise::ProcState::kReady;
  p.pid = 42;
  p.restarts = 2;
  p.sinceMs = 1000;
  p.message = "ok\x1b[2J";
  s.processes.push_back(p);
  std::string t = statusTable(s, 66000);
  EXPECT_NE(t.find("NAME"), std::string::npos);
  EXPECT_NE(t.find("postgres  ready  42"), std::string::npos) << t;
  EXPECT_NE(t.find("1m5s"), std::string::npos) << t;
  EXPECT_EQ(t.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace qabox::init
