// SQLite I/O errors at every read, write, sync and truncate of each store
// call (store/fault_vfs.h, as SQLite's own tests inject them): the call
// answers a clean error naming the store, the file stays whole, and what is
// read afterwards is the old value or the new one, never a part.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include "store/fault_vfs.h"
#include "store/store.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

using store::FaultOp;
using store::FaultPlan;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

constexpr const char* kVfs = "qabox-test-fault";
// More calls of one kind than any single store call makes: the loop ends
// at the first N the call never reaches.
constexpr int kMaxNth = 80;

FaultPlan& plan() {
  static FaultPlan p;
  return p;
}

Environment row(const std::string& message) {
  Environment e;
  e.ticket = "IO-1";
  e.slug = "io-1";
  e.state = EnvState::kReady;
  e.ip = "10.44.0.9";
  e.container = containerNameFor("io-1");
  e.spec.image = "busybox";
  e.message = message;
  e.createdAt = fromUnixMillis(1'700'000'000'000);
  e.updatedAt = fromUnixMillis(1'700'000'000'500);
  return e;
}

enum class Seen { kOld, kNew, kNeither };

struct Case {
  std::string name;
  std::function<Status(Store&)> seed;
  std::function<Status(Store&)> call;
  std::function<Result<Seen>(Store&)> seen;
};

Result<Seen> countIs(Result<size_t> n, size_t before) {
  if (!n) return n.status();
  return *n == before ? Seen::kOld : *n == before + 1 ? Seen::kNew : Seen::kNeither;
}

std::vector<Case> writes() {
  auto none = [](Store&) { return Status::ok(); };
  return {
      {"putEnvironment", [](Store& s) { return s.putEnvironment(row("old")); },
       [](Store& s) { return s.putEnvironment(row("new")); },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto e, s.getEnvironment("io-1"));
         if (!e) return Seen::kNeither;
         return e->message == "old"   ? Seen::kOld
                : e->message == "new" ? Seen::kNew
                                      : Seen::kNeither;
       }},
      {"leaseAddress", none,
       [](Store& s) { return s.leaseAddress("10.44.0.0/24", "qabox-io-1").status(); },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto l, s.listLeases());
         return countIs(l.size(), 0);
       }},
      {"beginOperation", none,
       [](Store& s) {
         return s
             .beginOperation({0, "io-1", JournalKind::kCreate, "qabox-io-1", "10.44.0.2",
                              fromUnixMillis(1), std::nullopt, JournalOutcome::kUnfinished, ""})
             .status();
       },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto ops, s.unfinishedOperations());
         return countIs(ops.size(), 0);
       }},
      {"finishOperation",
       [](Store& s) {
         return s
             .beginOperation({0, "io-1", JournalKind::kCreate, "qabox-io-1", "10.44.0.2",
                              fromUnixMillis(1), std::nullopt, JournalOutcome::kUnfinished, ""})
             .status();
       },
       [](Store& s) { return s.finishOperation(1, JournalOutcome::kOk, "done"); },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto ops, s.unfinishedOperations());
         return ops.size() == 1 ? Seen::kOld : ops.empty() ? Seen::kNew : Seen::kNeither;
       }},
      {"addEvent", none,
       [](Store& s) {
         return s.addEvent({0, fromUnixMillis(5), "IO-1", "deploy", "ci", "ok", "x"});
       },
       [](Store& s) -> Result<Seen> { return countIs(s.countEvents(), 0); }},
      {"putImage", none,
       [](Store& s) {
         return s.putImage({"busybox", 1, fromUnixMillis(7), true, "small"});
       },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto images, s.listImages());
         return countIs(images.size(), 0);
       }},
      {"putToken", none,
       [](Store& s) {
         TokenRecord t;
         t.name = "jenkins";
         t.role = "deployer";
         t.hash = "aa11";
         t.createdAt = fromUnixMillis(1);
         return s.putToken(t);
       },
       [](Store& s) -> Result<Seen> {
         QABOX_ASSIGN_OR_RETURN(auto t, s.getToken("jenkins"));
         if (!t) return Seen::kOld;
         return t->hash == "aa11" && t->role == "deployer" ? Seen::kNew : Seen::kNeither;
       }},
  };
}

std::string integrity(const std::string& path) {
  sqlite3* db = nullptr;
  std::string verdict = "cannot open";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      verdict = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
  }
  sqlite3_close_v2(db);
  return verdict;
}

class StoreIoErrors : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store::registerFaultVfs(kVfs, plan()).isOk()); }

  // A fresh copy of the seeded database for one injection.
  std::string freshCopy(const std::string& seeded, int n) {
    std::string path = dir_.path() + "/run-" + std::to_string(n) + ".db";
    for (const char* part : {"", "-wal", "-shm"}) fs::remove(path + part);
    fs::copy_file(seeded, path);
    return path;
  }

  Result<std::unique_ptr<Store>> openFaulty(const std::string& path) {
    StoreOptions o;
    o.path = path;
    o.vfs = kVfs;
    o.busyTimeout = std::chrono::milliseconds(50);
    return openSqliteStore(o);
  }

  // Runs `c` with the n-th call of `op` failing; false once it made fewer.
  bool inject(const Case& c, const std::string& seeded, FaultOp op, int n) {
    const std::string where =
        c.name + " with " + store::faultOpName(op) + " #" + std::to_string(n) + " failing";
    const std::string path = freshCopy(seeded, n);
    Status st;
    bool fired = false;
    {
      auto s = openFaulty(path);
      EXPECT_TRUE(s.isOk()) << where << ": " << s.status().message();
      if (!s) return false;
      plan().arm(op, n);
      st = c.call(**s);
      fired = plan().fired();
      plan().disarm();
      if (!st.isOk()) {
        EXPECT_TRUE(fired) << where << ": failed without a fault: " << st.message();
        EXPECT_THAT(st.message(), HasSubstr(path)) << where << ": names the store";
        EXPECT_THAT(st.message(), Not(HasSubstr("SQLITE"))) << where;
      }
      // The same connection after the error sees a whole value.
      auto seen = c.seen(**s);
      EXPECT_TRUE(seen.isOk() && *seen != Seen::kNeither) << where << ": same connection";
    }
    EXPECT_EQ(integrity(path), "ok") << where;
    auto again = openSqliteStore(path);
    EXPECT_TRUE(again.isOk()) << where << ": " << again.status().message();
    if (again) {
      auto seen = c.seen(**again);
      EXPECT_TRUE(seen.isOk()) << where << ": " << seen.status().message();
      if (seen) {
        EXPECT_NE(*seen, Seen::kNeither) << where << ": half a write";
        if (st.isOk()) {
          EXPECT_EQ(*seen, Seen::kNew) << where << ": answered ok but lost";
        }
      }
    }
    return fired;
  }

  test::TempDir dir_;
};

TEST_F(StoreIoErrors, EveryWriteFailsCleanlyAndLeavesTheOldValueOrTheNew) {
  int injected = 0;
  for (const Case& c : writes()) {
    const std::string seeded = dir_.path() + "/" + c.name + ".db";
    {
      auto s = openSqliteStore(seeded);
      ASSERT_TRUE(s.isOk()) << s.status().message();
      ASSERT_TRUE(c.seed(**s).isOk()) << c.name;
    }
    for (FaultOp op : {FaultOp::kRead, FaultOp::kWrite, FaultOp::kSync, FaultOp::kTruncate}) {
      for (int n = 1; n <= kMaxNth && inject(c, seeded, op, n); ++n) ++injected;
      if (HasFailure()) return;
    }
  }
  // Every call writes and syncs at least once.
  EXPECT_GE(injected, 14);
  std::cout << "[ figures  ] " << injected << " I/O errors injected into store writes\n";
}

TEST_F(StoreIoErrors, ReadsFailCleanlyOrAnswerWhatIsStored) {
  const std::string seeded = dir_.path() + "/reads.db";
  {
    auto s = openSqliteStore(seeded);
    ASSERT_TRUE(s.isOk());
    ASSERT_TRUE((*s)->putEnvironment(row("kept")).isOk());
  }
  int injected = 0;
  for (int n = 1; n <= kMaxNth; ++n) {
    const std::string path = dir_.path() + "/read-" + std::to_string(n) + ".db";
    fs::copy_file(seeded, path);
    // A connection reads the file at open (its check, the schema) and
    // caches it: the faults start with the open.
    plan().arm(FaultOp::kRead, n);
    auto s = openFaulty(path);
    Result<std::vector<Environment>> list = s.status();
    Result<std::optional<Environment>> one = s.status();
    if (s) {
      list = (*s)->listEnvironments();
      one = (*s)->getEnvironment("io-1");
    }
    bool fired = plan().fired();
    plan().disarm();
    for (const Status& st : {list.status(), one.status()}) {
      if (!st.isOk()) {
        EXPECT_THAT(st.message(), HasSubstr(path)) << "read #" << n;
        EXPECT_NE(st.code(), Code::kDataLoss) << "read #" << n << ": " << st.message();
      }
    }
    if (list) {
      ASSERT_EQ(list->size(), 1u);
      EXPECT_EQ((*list)[0].message, "kept");
    }
    if (one) {
      ASSERT_TRUE(one->has_value());
      EXPECT_EQ((**one).message, "kept");
    }
    if (!fired) break;
    ++injected;
  }
  EXPECT_EQ(integrity(seeded), "ok");
  std::cout << "[ figures  ] " << injected << " read errors injected\n";
}

TEST_F(StoreIoErrors, ACorruptFileIsDataLossSayingHowToRebuild) {
  const std::string path = dir_.path() + "/garbage.db";
  {
    std::ofstream out(path);
    for (int i = 0; i < 4096; ++i) out << static_cast<char>('a' + i % 26);
  }
  auto s = openSqliteStore(path);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), Code::kDataLoss);
  EXPECT_THAT(s.status().message(), HasSubstr(path));
  EXPECT_THAT(s.status().message(), HasSubstr("qaboxd --rebuild-state"));
}

}  // namespace
}  // namespace qabox
