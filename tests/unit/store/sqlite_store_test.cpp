// What only the SQLite backend has: the file, its schema versions, WAL and
// other processes sharing it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_time.h"
#include "store/store.h"
#include "unit/store/old_rows.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

using ::testing::HasSubstr;

// Bumped with every migration added to the store.
constexpr int kSchemaVersion = 10;

// A plain connection, to look at the file the way an operator's sqlite3 shell would.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }

  // The first column of the first row, as text ("" when there is none).
  std::string query(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
    if (s && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string dbPath() const { return dir_.path() + "/qabox.db"; }

  std::unique_ptr<Store> open() {
    auto s = openSqliteStore(dbPath());
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s.isOk() ? std::move(s).value() : nullptr;
  }

  test::TempDir dir_;
};

std::string hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

std::string upperHex(const std::string& bytes) {
  std::string out = hex(bytes);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Environment sample(const std::string& slug) {
  Environment e;
  e.ticket = "T-" + slug;
  e.slug = slug;
  e.container = containerNameFor(slug);
  e.createdAt = fromUnixMillis(1'000);
  return e;
}

TEST_F(SqliteStoreTest, MigratesAnEmptyDatabase) {
  auto store = open();
  ASSERT_TRUE(store);
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(raw.query("PRAGMA journal_mode"), "wal");
  for (const char* table : {"environments", "leases", "operations", "events", "images", "tokens"}) {
    EXPECT_EQ(raw.query(std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                    "AND name = '") +
                        table + "'"),
              "1")
        << table;
  }
  EXPECT_EQ(raw.query("SELECT count(*) FROM sqlite_master WHERE name = 'events_ticket'"), "1");
  EXPECT_EQ(raw.query("SELECT count(*) FROM sqlite_master WHERE name = 'events_at'"), "1");
  EXPECT_EQ(raw.query("SELECT count(*) FROM pragma_table_info('environments') WHERE name IN "
                      "('source_commit', 'target_commit')"),
            "2");
}

TEST_F(SqliteStoreTest, ReopeningIsIdempotentAndKeepsData) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->putEnvironment(sample("a")).isOk());
    ASSERT_TRUE(store->leaseAddress("10.44.0.0/24", "qabox-a").isOk());
  }
  for (int i = 0; i < 2; ++i) {
    auto store = open();
    ASSERT_TRUE(store);
    auto e = store->getEnvironment("a");
    ASSERT_TRUE(e.isOk());
    EXPECT_TRUE(e->has_value());
    auto leases = store->listLeases();
    ASSERT_TRUE(leases.isOk());
    EXPECT_EQ(leases->size(), 1u);
  }
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(kSchemaVersion));
}

TEST_F(SqliteStoreTest, RefusesASchemaNewerThanItKnows) {
  {
    RawDb raw(dbPath());
    raw.exec("PRAGMA user_version = 99");
  }
  auto s = openSqliteStore(dbPath());
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("schema version 99 is newer"));
  EXPECT_THAT(s.status().message(), HasSubstr(dbPath()));
}

// qaboxd --check reads a stopped agent's store without changing a byte.
TEST_F(SqliteStoreTest, ReadOnlyReadsWritesNothingAndWantsItsSchema) {
  StoreOptions ro;
  ro.path = dbPath();
  ro.readOnly = true;
  EXPECT_FALSE(openSqliteStore(ro).isOk()) << "no database: nothing is created";
  EXPECT_FALSE(std::filesystem::exists(dbPath()));
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->putEnvironment(sample("a")).isOk());
    Operation op;
    op.slug = "a";
    op.container = "qabox-a";
    ASSERT_TRUE(store->beginOperation(op).isOk());
    op.container = "";
    ASSERT_TRUE(store->beginOperation(op).isOk());
  }
  auto store = openSqliteStore(ro);
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  auto rows = (*store)->listEnvironments();
  ASSERT_TRUE(rows.isOk());
  EXPECT_EQ(rows->size(), 1u);
  EXPECT_EQ((*store)->journalContainers().value(), std::vector<std::string>{"qabox-a"});
  EXPECT_FALSE((*store)->putEnvironment(sample("b")).isOk());
  store->reset();
  {
    RawDb raw(dbPath());
    raw.exec("PRAGMA user_version = 1");
  }
  auto old = openSqliteStore(ro);
  ASSERT_FALSE(old.isOk());
  EXPECT_THAT(old.status().message(), HasSubstr("schema version 1"));
}

TEST_F(SqliteStoreTest, OpenFailureIsInternalAndNamesThePath) {
  const std::string path = dir_.path() + "/missing-dir/qabox.db";
  auto s = openSqliteStore(path);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), Code::kInternal);
  EXPECT_THAT(s.status().message(), HasSubstr(path));
}

TEST_F(SqliteStoreTest, EnvMapIsStoredAsJson) {
  auto store = open();
  ASSERT_TRUE(store);
  Environment e = sample("j");
  e.spec.env = {{"A", "x=\"1\",\n2"}};
  e.spec.secretKeys = {"S1", "S2"};
  ASSERT_TRUE(store->putEnvironment(e).isOk());
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("SELECT json_extract(env_json, '$.A') FROM environments"), "x=\"1\",\n2");
  EXPECT_EQ(raw.query("SELECT json_array_length(secret_keys_json) FROM environments"), "2");
}

TEST_F(SqliteStoreTest, CorruptRowIsDataLossNotACrash) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putEnvironment(sample("bad")).isOk());
  ASSERT_TRUE(store->putEnvironment(sample("worse")).isOk());
  {
    RawDb raw(dbPath());
    raw.exec("UPDATE environments SET env_json = '{\"A\":' WHERE slug = 'bad'");
    raw.exec("UPDATE environments SET state = 'PUZZLED' WHERE slug = 'worse'");
  }
  auto bad = store->getEnvironment("bad");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), Code::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("environment bad: env_json"));
  auto worse = store->getEnvironment("worse");
  ASSERT_FALSE(worse.isOk());
  EXPECT_THAT(worse.status().message(), HasSubstr("unknown state \"PUZZLED\""));
  EXPECT_FALSE(store->listEnvironments().isOk());
}

// A row the store's earlier JSON writer left behind reads back the same, and
// writing it again stores the same bytes.
TEST_F(SqliteStoreTest, RowsInTheOldJsonFormatReadBackTheSame) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putEnvironment(sample("old")).isOk());
  {
    RawDb raw(dbPath());
    raw.exec("UPDATE environments SET env_json = x'" + hex(test::kOldEnvJson) +
             "', secret_keys_json = x'" + hex(test::kOldKeysJson) + "' WHERE slug = 'old'");
  }
  auto e = store->getEnvironment("old");
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->spec.env, test::kEnv);
  EXPECT_EQ((*e)->spec.secretKeys, test::kKeys);

  ASSERT_TRUE(store->putEnvironment(**e).isOk());
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("SELECT hex(env_json) FROM environments WHERE slug = 'old'"),
            upperHex(test::kOldEnvJson));
  EXPECT_EQ(raw.query("SELECT hex(secret_keys_json) FROM environments WHERE slug = 'old'"),
            upperHex(test::kOldKeysJson));
  EXPECT_EQ(raw.query("SELECT json_extract(env_json, '$.QUOTE') FROM environments"), "say \"hi\"");
}

TEST_F(SqliteStoreTest, BadSecretKeysJsonIsDataLossNamingTheRow) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putEnvironment(sample("keys")).isOk());
  {
    RawDb raw(dbPath());
    raw.exec("UPDATE environments SET secret_keys_json = '[\"a\", 1]' WHERE slug = 'keys'");
  }
  auto e = store->getEnvironment("keys");
  ASSERT_FALSE(e.isOk());
  EXPECT_EQ(e.status().code(), Code::kDataLoss);
  EXPECT_THAT(e.status().message(), HasSubstr("environment keys: secret_keys_json"));
}

TEST_F(SqliteStoreTest, EnvValueThatIsNotUtf8IsRefusedNotStored) {
  auto store = open();
  ASSERT_TRUE(store);
  Environment e = sample("utf");
  e.spec.env = {{"A", "\xff"}};
  Status put = store->putEnvironment(e);
  EXPECT_EQ(put.code(), Code::kInvalidArgument);
  EXPECT_THAT(put.message(), HasSubstr("environment utf"));
  auto back = store->getEnvironment("utf");
  ASSERT_TRUE(back.isOk());
  EXPECT_FALSE(back->has_value());
}

// The journal's columns hold the same strings as before the kinds and
// outcomes became enums: rows from an older agent recover, and the other way.
TEST_F(SqliteStoreTest, JournalStoresKindsAndOutcomesAsTheirNames) {
  auto store = open();
  ASSERT_TRUE(store);
  auto id =
      store->beginOperation({0, "img", JournalKind::kImageBuild, "qabox-image-1", "",
                             fromUnixMillis(1), std::nullopt, JournalOutcome::kUnfinished, ""});
  ASSERT_TRUE(id.isOk());
  ASSERT_TRUE(store->finishOperation(*id, JournalOutcome::kRolledBack, "why").isOk());
  {
    RawDb raw(dbPath());
    EXPECT_EQ(raw.query("SELECT kind || '/' || outcome FROM operations"),
              "image.build/rolled-back");
    raw.exec(
        "INSERT INTO operations (slug, kind, container, ip, started_at) "
        "VALUES ('old', 'redeploy', 'qabox-old_1', '10.44.0.9', 5)");
  }
  auto open = store->unfinishedOperations();
  ASSERT_TRUE(open.isOk()) << open.status().toString();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].kind, JournalKind::kRedeploy);
  EXPECT_EQ((*open)[0].outcome, JournalOutcome::kUnfinished);
  EXPECT_EQ((*open)[0].container, "qabox-old_1");
}

TEST_F(SqliteStoreTest, UnknownJournalKindOrOutcomeIsDataLossNamingTheRow) {
  auto store = open();
  ASSERT_TRUE(store);
  {
    RawDb raw(dbPath());
    raw.exec("INSERT INTO operations (id, slug, kind, started_at) VALUES (7, 'x', 'teleport', 5)");
  }
  auto kind = store->unfinishedOperations();
  ASSERT_FALSE(kind.isOk());
  EXPECT_EQ(kind.status().code(), Code::kDataLoss);
  EXPECT_THAT(kind.status().message(), HasSubstr("operation 7: unknown kind \"teleport\""));
  {
    RawDb raw(dbPath());
    raw.exec("UPDATE operations SET kind = 'delete', outcome = 'maybe' WHERE id = 7");
  }
  auto outcome = store->unfinishedOperations();
  ASSERT_FALSE(outcome.isOk());
  EXPECT_EQ(outcome.status().code(), Code::kDataLoss);
  EXPECT_THAT(outcome.status().message(), HasSubstr("operation 7: unknown outcome \"maybe\""));
}

// The rows the store dates itself take the time from its options.
TEST_F(SqliteStoreTest, DatesRowsWithTheTimeSourceItIsGiven) {
  FakeTime time(fromUnixMillis(1'700'000'000'000));
  StoreOptions options;
  options.path = dbPath();
  options.time = &time;
  auto opened = openSqliteStore(options);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  Store& store = **opened;
  ASSERT_TRUE(store.leaseAddress("10.44.0.0/24", "qabox-t").isOk());
  auto id = store.beginOperation({0, "t", JournalKind::kCreate, "qabox-t", "", fromUnixMillis(1),
                                  std::nullopt, JournalOutcome::kUnfinished, ""});
  ASSERT_TRUE(id.isOk());
  time.advance(std::chrono::milliseconds(5));
  ASSERT_TRUE(store.finishOperation(*id, JournalOutcome::kOk, "").isOk());
  auto leases = store.listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].createdAt, fromUnixMillis(1'700'000'000'000));
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("SELECT finished_at FROM operations"), "1700000000005");
}

// A writer gives up after the busy timeout of its options, not the default.
TEST_F(SqliteStoreTest, BusyTimeoutComesFromTheOptions) {
  StoreOptions options;
  options.path = dbPath();
  options.busyTimeout = std::chrono::milliseconds(100);
  auto opened = openSqliteStore(options);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  RawDb raw(dbPath());
  raw.exec("BEGIN IMMEDIATE");
  const auto start = std::chrono::steady_clock::now();
  Status put = (*opened)->putEnvironment(sample("late"));
  const auto waited = std::chrono::steady_clock::now() - start;
  raw.exec("COMMIT");
  EXPECT_EQ(put.code(), Code::kInternal);
  EXPECT_THAT(put.message(), HasSubstr("write environment late"));
  EXPECT_GE(waited, std::chrono::milliseconds(90));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));
}

TEST_F(SqliteStoreTest, WriterWaitsForAnotherConnectionsLock) {
  auto store = open();
  ASSERT_TRUE(store);
  RawDb raw(dbPath());
  raw.exec("BEGIN IMMEDIATE");
  Status put;
  std::thread writer([&] { put = store->putEnvironment(sample("late")); });
  // The writer is now in its busy handler; committing lets it through well
  // inside the five second timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  raw.exec("COMMIT");
  writer.join();
  EXPECT_TRUE(put.isOk()) << put.toString();
  EXPECT_EQ(raw.query("SELECT count(*) FROM environments"), "1");
}

TEST_F(SqliteStoreTest, SecondProcessSharesTheFile) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putEnvironment(sample("parent")).isOk());
  constexpr int kEach = 25;

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child never touches the parent's connection and leaves with
    // _exit, so no destructor closes what the parent still uses.
    auto child = openSqliteStore(dbPath());
    if (!child.isOk()) _exit(10);
    auto seen = (*child)->getEnvironment("parent");
    if (!seen.isOk() || !seen->has_value()) _exit(11);
    for (int i = 0; i < kEach; ++i) {
      if (!(*child)->leaseAddress("10.44.0.0/24", "child").isOk()) _exit(12);
    }
    if (!(*child)->putEnvironment(sample("child")).isOk()) _exit(13);
    _exit(0);
  }
  std::vector<std::string> mine;
  for (int i = 0; i < kEach; ++i) {
    auto ip = store->leaseAddress("10.44.0.0/24", "parent");
    ASSERT_TRUE(ip.isOk()) << ip.status().toString();
    mine.push_back(*ip);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);

  auto leases = store->listLeases();
  ASSERT_TRUE(leases.isOk());
  std::set<std::string> ips;
  int child = 0;
  for (const auto& l : *leases) {
    ips.insert(l.ip);
    child += l.owner == "child";
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(2 * kEach));
  EXPECT_EQ(child, kEach);
  auto e = store->getEnvironment("child");
  ASSERT_TRUE(e.isOk());
  EXPECT_TRUE(e->has_value());
}

// A version 1 file (tokens without revoked_at and last_used_at) keeps its
// tokens, and a revoked one gets a revocation time.
TEST_F(SqliteStoreTest, MigratesVersionOneTokens) {
  {
    RawDb raw(dbPath());
    raw.exec(
        "CREATE TABLE tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL "
        "UNIQUE, created_at INTEGER NOT NULL, expires_at INTEGER, revoked INTEGER NOT NULL "
        "DEFAULT 0);"
        "INSERT INTO tokens VALUES ('old', 'ops', 'h1', 1000, NULL, 1);"
        "INSERT INTO tokens VALUES ('live', 'ci', 'h2', 2000, 9000, 0);"
        // What later migrations alter of the rest of a version 1 file.
        "CREATE TABLE environments (slug TEXT PRIMARY KEY);"
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL);"
        "CREATE TABLE images (name TEXT NOT NULL, version INTEGER NOT NULL, built_at INTEGER "
        "NOT NULL, current INTEGER NOT NULL DEFAULT 0, description TEXT NOT NULL DEFAULT '', "
        "PRIMARY KEY (name, version));"
        "INSERT INTO images VALUES ('busybox', 3, 1000, 1, 'old');"
        "PRAGMA user_version = 1;");
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto old = store->getToken("old");
  ASSERT_TRUE(old.isOk() && old->has_value());
  EXPECT_TRUE((*old)->revoked);
  EXPECT_EQ((*old)->revokedAt, fromUnixMillis(1000));
  auto live = store->getToken("live");
  ASSERT_TRUE(live.isOk() && live->has_value());
  EXPECT_FALSE((*live)->revoked);
  EXPECT_FALSE((*live)->revokedAt.has_value());
  EXPECT_FALSE((*live)->lastUsedAt.has_value());
  EXPECT_EQ((*live)->expiresAt, fromUnixMillis(9000));
  // Images from before layers are base images with no recipe hash, so the
  // next build of them makes a new version.
  auto images = store->listImages();
  ASSERT_TRUE(images.isOk());
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].name, "busybox");
  EXPECT_EQ((*images)[0].version, 3u);
  EXPECT_EQ((*images)[0].parent, "");
  EXPECT_EQ((*images)[0].parentVersion, 0u);
  EXPECT_EQ((*images)[0].recipeHash, "");
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(kSchemaVersion));
}

// Version 7's environments are open to the agent's default and have no
// recorded phases.
TEST_F(SqliteStoreTest, EnvironmentsFromVersionSevenTakeTheDefaultAccess) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->putEnvironment(sample("old-1")).isOk());
  }
  {
    RawDb raw(dbPath());
    raw.exec(
        "ALTER TABLE environments DROP COLUMN access;"
        "ALTER TABLE environments DROP COLUMN phases_json;"
        "ALTER TABLE environments DROP COLUMN target_head;"
        "ALTER TABLE environments DROP COLUMN behind;"
        "DROP TABLE pool;"
        "PRAGMA user_version = 7;");
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto e = store->getEnvironment("old-1");
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->spec.access, "");
  EXPECT_TRUE((*e)->phases.empty());
}

TEST_F(SqliteStoreTest, EnvironmentsFromVersionEightAreLevelWithTheirTarget) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    Environment e = sample("old-8");
    e.targetCommit = std::string(40, 'b');
    ASSERT_TRUE(store->putEnvironment(e).isOk());
  }
  {
    RawDb raw(dbPath());
    raw.exec(
        "ALTER TABLE environments DROP COLUMN target_head;"
        "ALTER TABLE environments DROP COLUMN behind;"
        "DROP TABLE pool;"
        "PRAGMA user_version = 8;");
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto e = store->getEnvironment("old-8");
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->behind, 0u);
  EXPECT_EQ((*e)->targetHead, "");  // unknown until the next look at the mirror
  auto changed = store->setTargetState("old-8", std::string(40, 'b'), std::string(40, 'c'), 2);
  ASSERT_TRUE(changed.isOk()) << changed.status().toString();
  EXPECT_TRUE(*changed);
}

// Version 6's dependency layers are version 7's cached layers of kind deps.
TEST_F(SqliteStoreTest, DependencyLayersFromVersionSixAreLayersOfKindDeps) {
  ASSERT_TRUE(open());
  {
    RawDb raw(dbPath());
    raw.exec(
        "ALTER TABLE layers DROP COLUMN kind; ALTER TABLE layers DROP COLUMN lineage;"
        "ALTER TABLE layers RENAME TO deps_layers;"
        "ALTER TABLE environments DROP COLUMN data_layer;"
        "ALTER TABLE environments DROP COLUMN access;"
        "ALTER TABLE environments DROP COLUMN phases_json;"
        "ALTER TABLE environments DROP COLUMN target_head;"
        "ALTER TABLE environments DROP COLUMN behind;"
        "INSERT INTO deps_layers VALUES ('" +
        std::string(64, 'a') +
        "', 'python', 3, 42, 1000, 2000);"
        "DROP TABLE pool;"
        "PRAGMA user_version = 6;");
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto layers = store->listLayers();
  ASSERT_TRUE(layers.isOk()) << layers.status().toString();
  ASSERT_EQ(layers->size(), 1u);
  EXPECT_EQ((*layers)[0].kind, LayerKind::kDeps);
  EXPECT_EQ((*layers)[0].lineage, "");
  EXPECT_EQ((*layers)[0].image, "python");
  EXPECT_EQ((*layers)[0].sizeBytes, 42u);
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(kSchemaVersion));
}

TEST_F(SqliteStoreTest, TwoFreshOpensOfOneFileMigrateOnce) {
  std::vector<std::thread> threads;
  std::vector<Status> results(4);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      auto s = openSqliteStore(dbPath());
      results[i] = s.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_TRUE(r.isOk()) << r.toString();
  RawDb raw(dbPath());
  EXPECT_EQ(raw.query("PRAGMA user_version"), std::to_string(kSchemaVersion));
}

}  // namespace
}  // namespace qabox

namespace qabox {
namespace {

// A full disk is RESOURCE_EXHAUSTED naming the database, and reads still work.
// The disk is a 256 KiB tmpfs in a mount namespace of a child process.
TEST_F(SqliteStoreTest, AFullDiskIsResourceExhaustedNamingTheDatabase) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: mounts a small tmpfs in a mount namespace";
  std::string small = dir_.path() + "/small";
  ASSERT_EQ(::mkdir(small.c_str(), 0700), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", small.c_str(), "tmpfs", 0, "size=256k") != 0) {
      _exit(2);
    }
    auto store = openSqliteStore(small + "/qabox.db");
    if (!store) _exit(3);
    Status last;
    for (int i = 0; i < 1000 && last.isOk(); ++i) {
      last = (*store)->addEvent(
          {0, fromUnixMillis(i), "T-1", "exec", "test", "ok", std::string(4096, 'x')});
    }
    fprintf(stderr, "%s\n", last.toString().c_str());
    if (last.code() != Code::kResourceExhausted) _exit(4);
    if (last.message().find(small + "/qabox.db is full") == std::string::npos) _exit(5);
    if (!(*store)->listEnvironments().isOk()) _exit(6);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: no mount namespace; 4: not RESOURCE_EXHAUSTED; "
                                       "5: the message does not name the file; 6: reads fail";
}

}  // namespace
}  // namespace qabox
