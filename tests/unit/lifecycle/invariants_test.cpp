// The invariant checker's rules as a table: a clean host, then each kind of
// leftover made on it, and the one line findViolations names it with.
// tests/torture/invariants_test.cpp makes the same leftovers on a real host.
#include "lifecycle/invariants.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "runtime/lxc_cgroups.h"

namespace qabox {
namespace {

constexpr const char* kState = "/var/lib/qabox";
constexpr const char* kBridge = "qabox0";
const std::string kLxc = std::string(kState) + "/lxc";
const std::string kHash(64, 'a');

Environment row(const std::string& slug, const std::string& ip, EnvState state = EnvState::kReady) {
  Environment e;
  e.ticket = slug;
  e.slug = slug;
  e.container = containerNameFor(slug);
  e.ip = ip;
  e.state = state;
  return e;
}

// Two environments, running, leased, bound, routed; an image and a layer.
InvariantFacts cleanHost() {
  InvariantFacts f;
  f.stateDir = kState;
  f.lxcPath = kLxc;
  f.bridge = kBridge;
  for (const auto& [slug, ip] : {std::pair{"a", "10.44.0.2"}, std::pair{"b", "10.44.0.3"}}) {
    Environment e = row(slug, ip);
    f.rows.push_back(e);
    f.leases.push_back({ip, e.container, TimePoint{}});
    f.containers[e.container] = {true, ContainerState::kRunning};
    f.journalContainers.insert(e.container);
    f.logDirs.push_back(slug);
    f.nftBindings.push_back({vethName(kBridge, kLxc, e.container), macForAddress(ip), ip});
    f.cgroupDirs.push_back("/sys/fs/cgroup/memory/lxc.payload." + e.container);
  }
  f.bridgePorts = std::vector<std::string>{vethName(kBridge, kLxc, "qabox-a"),
                                           vethName(kBridge, kLxc, "qabox-b")};
  ImageVersion image;
  image.name = "debian";
  image.version = 1;
  image.current = true;
  f.images.push_back(image);
  f.imageDirs.push_back("debian-v1");
  CachedLayer layer;
  layer.hash = kHash;
  f.layers.push_back(layer);
  f.layerDirs.push_back("deps-" + kHash);
  return f;
}

Operation open(int64_t id, const std::string& slug, JournalKind kind, const std::string& container,
               TimePoint at = TimePoint{}) {
  return {id, slug, kind, container, "", at, std::nullopt, JournalOutcome::kUnfinished, ""};
}

struct Case {
  std::string name;
  std::function<void(InvariantFacts&)> make;
  std::vector<std::string> expected;  // the lines, in order
};

std::vector<std::string> lines(const InvariantFacts& f) {
  std::vector<std::string> out;
  for (const auto& v : findViolations(f)) out.push_back(v.line());
  return out;
}

TEST(Invariants, ACleanHostHasNone) { EXPECT_EQ(lines(cleanHost()), std::vector<std::string>{}); }

TEST(Invariants, EachLeftoverIsNamed) {
  const std::string veth = vethName(kBridge, kLxc, "qabox-x");
  const std::vector<Case> cases = {
      {"container without row",
       [](InvariantFacts& f) {
         f.containers["qabox-exmp-1"] = {true, ContainerState::kStopped};
       },
       {"container qabox-exmp-1: no row owns it"}},
      {"half-made lxc dir",
       [](InvariantFacts& f) {
         f.containers["qabox-y"] = {false, {}};
       },
       {"overlay lxc/qabox-y: a directory without a container config, no row owns it"}},
      {"row without container",
       [](InvariantFacts& f) {
         f.containers.erase("qabox-b");
         f.bridgePorts->pop_back();
         f.cgroupDirs.pop_back();
       },
       {"row b: container qabox-b is missing (state READY)"}},
      {"busy row offline",
       [](InvariantFacts& f) { f.rows[0].state = EnvState::kDeploying; },
       {"row a: state DEPLOYING, but no operation is in flight"}},
      {"row without lease",
       [](InvariantFacts& f) { f.leases.pop_back(); },
       {"row b: address 10.44.0.3 is not leased to qabox-b"}},
      {"lease of nobody",
       [](InvariantFacts& f) {
         f.leases.push_back({"10.44.0.7", "qabox-x", TimePoint{}});
       },
       {"lease 10.44.0.7: owner qabox-x has no row"}},
      {"two rows share an address",
       [](InvariantFacts& f) {
         f.rows[1].ip = "10.44.0.2";
         f.leases[1].ip = "10.44.0.2";
       },
       {"lease 10.44.0.2: rows a, b share it", "nft 10.44.0.3: the bridge's binding of " +
                                                   vethName(kBridge, kLxc, "qabox-b") +
                                                   " (02:71:0a:2c:00:03) matches no row"}},
      {"unfinished journal offline",
       [](InvariantFacts& f) {
         f.unfinished.push_back(open(9, "a", JournalKind::kRedeploy, "qabox-a_1"));
       },
       {"journal 9: unfinished redeploy of qabox-a_1 (ticket a), not recovered"}},
      {"stray mount",
       [](InvariantFacts& f) { f.mounts = {std::string(kState) + "/lxc/qabox-gone/rootfs"}; },
       {"mount /var/lib/qabox/lxc/qabox-gone/rootfs: nothing of this host's owns it"}},
      {"mount of a row's container is its",
       [](InvariantFacts& f) { f.mounts = {std::string(kState) + "/lxc/qabox-a/rootfs/lower"}; },
       {}},
      {"mount in git/",
       [](InvariantFacts& f) { f.mounts = {std::string(kState) + "/git/x.git"}; },
       {"mount /var/lib/qabox/git/x.git: nothing of this host's owns it"}},
      {"veth of nobody",
       [](InvariantFacts& f) { f.bridgePorts->push_back("vethXYZ"); },
       {"veth vethXYZ: on bridge qabox0, no container of this host's"}},
      {"veth of a stopped container",
       [](InvariantFacts& f) { f.containers["qabox-b"].state = ContainerState::kStopped; },
       {"veth " + vethName(kBridge, kLxc, "qabox-b") + ": container qabox-b is not running",
        "cgroup /sys/fs/cgroup/memory/lxc.payload.qabox-b: container qabox-b is not running"}},
      {"nft element of nobody",
       [veth](InvariantFacts& f) {
         f.nftBindings.push_back({veth, "02:71:0a:2c:00:09", "10.44.0.9"});
       },
       {"nft 10.44.0.9: the bridge's binding of " + veth + " (02:71:0a:2c:00:09) matches no row"}},
      {"logs of nobody",
       [](InvariantFacts& f) { f.logDirs.push_back("gone"); },
       {"logs logs/gone: no row for gone"}},
      {"layer dir of nobody",
       [](InvariantFacts& f) { f.layerDirs.push_back("data-" + std::string(64, 'b')); },
       {"layer layers/data-" + std::string(64, 'b') + ": not in the layers table"}},
      {"half-made layer",
       [](InvariantFacts& f) { f.layerDirs.push_back("deps-" + kHash + ".part"); },
       {"layer layers/deps-" + kHash + ".part: a half-made layer, no build in flight"}},
      {"layer row without dir",
       [](InvariantFacts& f) { f.layerDirs.clear(); },
       {"layer layers/deps-" + kHash + ": in the layers table, its directory is missing"}},
      {"image dir of nobody",
       [](InvariantFacts& f) { f.imageDirs.push_back("debian-v2"); },
       {"image images/debian-v2: no version in the images table"}},
      {"image row without dir",
       [](InvariantFacts& f) { f.imageDirs.clear(); },
       {"image images/debian-v1: in the images table, its directory is missing"}},
      {"work leftover",
       [](InvariantFacts& f) { f.workEntries.push_back("export-1"); },
       {"work work/export-1: left over: no operation is in flight"}},
      {"cgroup of a failed start",
       [](InvariantFacts& f) {
         f.journalContainers.insert("qabox-f");
         f.cgroupDirs.push_back("/sys/fs/cgroup/pids/lxc.monitor.qabox-f");
         f.cgroupDirs.push_back("/sys/fs/cgroup/pids/lxc.payload.qabox-f-3");
       },
       {"cgroup /sys/fs/cgroup/pids/lxc.monitor.qabox-f: container qabox-f is not running",
        "cgroup /sys/fs/cgroup/pids/lxc.payload.qabox-f-3: container qabox-f is not running"}},
      {"another host's cgroup is not judged",
       [](InvariantFacts& f) { f.cgroupDirs.push_back("/sys/fs/cgroup/pids/lxc.payload.other"); },
       {}},
      {"a gone container explained by FAILED",
       [](InvariantFacts& f) {
         f.containers.erase("qabox-b");
         f.rows[1].state = EnvState::kFailed;
         f.rows[1].message = "container qabox-b is gone (found missing at agent start)";
         f.bridgePorts->pop_back();
         f.cgroupDirs.pop_back();
       },
       {}},
      {"routes inside the agent",
       [](InvariantFacts& f) {
         f.inAgent = true;
         f.routes = std::vector<std::string>{"a", "b", "qabox", "gone"};
       },
       {"route gone: no row"}},
  };
  for (const auto& c : cases) {
    InvariantFacts f = cleanHost();
    c.make(f);
    EXPECT_EQ(lines(f), c.expected) << c.name;
  }
}

TEST(Invariants, InsideTheAgentWhatACallInFlightMakesIsItsOwn) {
  InvariantFacts f = cleanHost();
  f.inAgent = true;
  const TimePoint t0 = fromUnixMillis(1'000'000);
  f.inFlight["c"] = t0;
  f.unfinished.push_back(open(3, "c", JournalKind::kCreate, "qabox-c", t0));
  f.containers["qabox-c"] = {true, ContainerState::kStopped};
  f.leases.push_back({"10.44.0.4", "qabox-c", TimePoint{}});
  f.rows.push_back(row("c", "10.44.0.4", EnvState::kCreating));
  f.containers["qabox-a_1"] = {true, ContainerState::kRunning};  // a's redeploy, in flight
  f.inFlight["a"] = t0;
  f.workEntries.push_back("export-c");
  EXPECT_EQ(lines(f), std::vector<std::string>{});
  // An entry opened before the oldest call in flight began is no call's.
  f.unfinished.push_back(open(2, "z", JournalKind::kDelete, "qabox-z", t0 - std::chrono::hours(1)));
  EXPECT_EQ(lines(f), std::vector<std::string>{
                          "journal 2: unfinished delete of qabox-z (ticket z), older than every "
                          "call in flight"});
}

TEST(Invariants, ParsesTheBindingsSet) {
  const std::string listed =
      "table bridge qabox_qabox0 {\n\tset bindings {\n\t\ttype ifname . ether_addr . ipv4_addr\n"
      "\t\telements = { \"q12345abcdef012\" . 02:71:0a:2c:00:02 . 10.44.0.2,\n"
      "\t\t\t     \"q12345fedcba987\" . 02:71:0a:2c:00:03 . 10.44.0.3 }\n\t}\n}\n";
  auto b = parseBindings(listed);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].port, "q12345abcdef012");
  EXPECT_EQ(b[0].mac, "02:71:0a:2c:00:02");
  EXPECT_EQ(b[1].ip, "10.44.0.3");
  EXPECT_TRUE(parseBindings("table bridge x {\n}\n").empty());
}

TEST(Invariants, ReadsMountPointsBeneathTheStateDir) {
  const std::string info =
      "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "40 22 0:50 / /var/lib/qabox rw - ext4 /dev/loop0 rw\n"
      "41 40 0:51 / /var/lib/qabox/lxc/qabox-a/rootfs rw - overlay overlay rw\n"
      "42 40 0:52 / /var/lib/qabox/work/with\\040space rw - tmpfs tmpfs rw\n"
      "43 22 0:53 / /var/lib/qaboxother/x rw - tmpfs tmpfs rw\n";
  EXPECT_EQ(mountsBeneath(info, "/var/lib/qabox"),
            (std::vector<std::string>{"/var/lib/qabox/lxc/qabox-a/rootfs",
                                      "/var/lib/qabox/work/with space"}));
}

TEST(Invariants, NamesTheContainerOfACgroupDirectory) {
  EXPECT_EQ(cgroupContainerName("lxc.payload.qabox-x"), "qabox-x");
  EXPECT_EQ(cgroupContainerName("lxc.monitor.qabox-x-1"), "qabox-x-1");
  EXPECT_EQ(cgroupContainerName("lxc.pivot"), "");
  EXPECT_EQ(cgroupContainerName("system.slice"), "");
  EXPECT_TRUE(isCgroupOf("lxc.payload.qabox-x", "qabox-x"));
  EXPECT_TRUE(isCgroupOf("lxc.payload.qabox-x-12", "qabox-x"));
  EXPECT_FALSE(isCgroupOf("lxc.payload.qabox-x-y", "qabox-x"));
  EXPECT_FALSE(isCgroupOf("lxc.payload.qabox-x-", "qabox-x"));
  EXPECT_FALSE(isCgroupOf("lxc.payload.qabox-xy", "qabox-x"));
}

// Review of issue 17: a host with thousands of leftovers gave an answer
// past gRPC's 4 MiB and checks that scanned every lease per row. The list
// is capped, the totals count every one, and it stays fast.
TEST(Invariants, ThousandsOfLeftoversAreCappedCountedByKindAndQuick) {
  InvariantFacts f = cleanHost();
  constexpr int kLeft = 5000;
  for (int i = 0; i < kLeft; ++i) {
    const std::string c = "qabox-left-" + std::to_string(i);
    f.containers[c] = {true, ContainerState::kStopped};  // no row: container
    const std::string ip = "10.45." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2);
    f.leases.push_back({ip, c, TimePoint{}});                                 // no row: lease
    f.cgroupDirs.push_back("/sys/fs/cgroup/memory/lxc.payload." + c + "-1");  // cgroup
    Environment e = row("gone-" + std::to_string(i),
                        "10.46." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2));
    f.rows.push_back(e);  // its container missing, its address not leased: two rows
    f.nftBindings.push_back({vethName(kBridge, kLxc, e.container), macForAddress(e.ip), e.ip});
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ViolationReport r = findViolations(f, kMaxViolationsListed);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.listed.size(), kMaxViolationsListed);
  EXPECT_TRUE(r.truncated());
  EXPECT_EQ(r.total, 5U * kLeft);
  EXPECT_EQ(r.totals.at("container"), size_t{kLeft});
  EXPECT_EQ(r.totals.at("lease"), size_t{kLeft});
  EXPECT_EQ(r.totals.at("cgroup"), size_t{kLeft});
  EXPECT_EQ(r.totals.at("row"), size_t{2 * kLeft});
  EXPECT_EQ(r.totals.count("nft"), 0U);  // each binding is its row's
  EXPECT_LT(took, std::chrono::seconds(2));
  // Uncapped, the same violations in the same order.
  const auto all = findViolations(f);
  ASSERT_EQ(all.size(), r.total);
  EXPECT_TRUE(std::equal(r.listed.begin(), r.listed.end(), all.begin()));
  const ViolationReport clean = findViolations(cleanHost(), kMaxViolationsListed);
  EXPECT_EQ(clean.total, 0U);
  EXPECT_FALSE(clean.truncated());
}

// Review of issue 17: slugs end in digits too. qabox-foo-2's cgroups are
// environment foo-2's while a container of that name exists, never qabox-foo's.
TEST(Invariants, ASuffixedCgroupIsTheExactlyNamedContainersFirst) {
  auto none = [](const std::string&) { return false; };
  auto foo2 = [](const std::string& c) { return c == "qabox-foo-2"; };
  EXPECT_TRUE(cgroupBelongsTo("lxc.payload.qabox-foo", "qabox-foo", foo2));
  EXPECT_TRUE(cgroupBelongsTo("lxc.payload.qabox-foo-2", "qabox-foo", none));
  EXPECT_FALSE(cgroupBelongsTo("lxc.payload.qabox-foo-2", "qabox-foo", foo2));
  EXPECT_TRUE(cgroupBelongsTo("lxc.payload.qabox-foo-2", "qabox-foo-2", foo2));
  EXPECT_TRUE(cgroupBelongsTo("lxc.monitor.qabox-foo-2-1", "qabox-foo-2", foo2));
  EXPECT_FALSE(cgroupBelongsTo("lxc.payload.qabox-foo-x", "qabox-foo", none));
  EXPECT_FALSE(cgroupBelongsTo("lxc.payload.qabox-foo-", "qabox-foo", none));
  EXPECT_FALSE(cgroupBelongsTo("system.slice", "qabox-foo", none));

  const std::string h = "/sys/fs/cgroup/memory/";
  const std::vector<std::string> dirs = {h + "lxc.payload.qabox-foo",
                                         h + "lxc.payload.qabox-foo-2",
                                         h + "lxc.monitor.qabox-foo-3",
                                         h + "lxc.payload.qabox-bar-1",
                                         h + "lxc.pivot",
                                         h + "system.slice"};
  const std::set<std::string> ours = {"qabox-foo", "qabox-foo-2"};
  const auto byOwner =
      cgroupDirsByOwner(dirs, ours, [&](const std::string& c) { return ours.count(c) > 0; });
  ASSERT_EQ(byOwner.size(), 2U);
  EXPECT_EQ(byOwner.at("qabox-foo"),
            (std::vector<std::string>{h + "lxc.payload.qabox-foo", h + "lxc.monitor.qabox-foo-3"}));
  EXPECT_EQ(byOwner.at("qabox-foo-2"), (std::vector<std::string>{h + "lxc.payload.qabox-foo-2"}));

  // The checker: foo-2 runs (mid-start of its own), foo is stopped; only
  // foo's suffixed directory is foo's leftover.
  InvariantFacts f = cleanHost();
  f.containers["qabox-foo"] = {true, ContainerState::kStopped};
  f.containers["qabox-foo-2"] = {true, ContainerState::kRunning};
  f.rows.push_back(row("foo", ""));
  f.rows.push_back(row("foo-2", ""));
  f.cgroupDirs.push_back(h + "lxc.payload.qabox-foo-2");
  f.cgroupDirs.push_back(h + "lxc.payload.qabox-foo-3");
  const auto found = findViolations(f);
  ASSERT_EQ(found.size(), 1U) << (found.empty() ? "" : found[0].line());
  EXPECT_EQ(found[0].line(),
            "cgroup " + h + "lxc.payload.qabox-foo-3: container qabox-foo is not running");
}

// Review of issue 17: the walk of a tree a container built is bounded, and
// one that could not look is never "empty".
TEST(Invariants, TheCgroupWalkIsBoundedAndAFailedWalkIsNotEmpty) {
  char tmpl[] = "/tmp/qabox-cgwalk-XXXXXX";
  const std::filesystem::path root = mkdtemp(tmpl);
  auto cgroup = [](const std::filesystem::path& d) {
    std::filesystem::create_directories(d);
    std::ofstream(d / "cgroup.procs").flush();
  };
  cgroup(root / "shallow" / "a" / "b");
  cgroup(root / "shallow" / "a");
  cgroup(root / "shallow");
  EXPECT_TRUE(cgroupTreeEmpty(root / "shallow"));
  std::ofstream(root / "shallow" / "a" / "b" / "cgroup.procs") << "4242\n";
  EXPECT_FALSE(cgroupTreeEmpty(root / "shallow"));
  // Deeper than the bound: not walked to its end, so not empty.
  std::filesystem::path deep = root / "deep";
  for (int i = 0; i <= kCgroupWalkMaxDepth + 1; ++i) {
    cgroup(deep);
    deep /= "d";
  }
  EXPECT_FALSE(cgroupTreeEmpty(root / "deep"));
  // A directory that cannot be read as a cgroup (no cgroup.procs): not empty.
  std::filesystem::create_directories(root / "odd" / "x");
  EXPECT_FALSE(cgroupTreeEmpty(root / "odd"));
  EXPECT_FALSE(cgroupTreeEmpty(root / "missing"));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace qabox
