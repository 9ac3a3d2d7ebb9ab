// qabox-lxc: runs one liblxc call in a short-lived process of its own.
//
// liblxc's clone, start and attach fork (and clone unshares the calling
// thread's mount namespace). Doing that inside the multithreaded agent could
// copy a lock held by another thread into the child, so the agent runs them
// here instead, as LXD does with its forkstart helper.
//
//   qabox-lxc clone   IMAGE_LXCPATH IMAGE LXCPATH NAME BRIDGE ADDRESS/PREFIX GATEWAY
//                     MEMORY|- CPUS PIDS       (0 or -: no limit)
//   qabox-lxc start   LXCPATH NAME TIMEOUT_SECONDS
//   qabox-lxc stop    LXCPATH NAME
//   qabox-lxc destroy LXCPATH NAME
//   qabox-lxc attach  LXCPATH NAME CWD -- PROGRAM [ARG ...]
//                     the command's variables in our environment, as
//                     QABOX_ATTACH_ENV_<n>=KEY=VALUE (runtime/helper_protocol.h)
//
// Exit 0 on success; on failure a message on stderr and exit 125. attach
// exits with the command's own exit code (128+N when killed by signal N).
#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/helper_protocol.h"

extern char** environ;

namespace {

constexpr int kHelperFailed = 125;

int fail(const std::string& message) {
  std::fprintf(stderr, "qabox-lxc: %s\n", message.c_str());
  return kHelperFailed;
}

struct Container {
  lxc_container* c = nullptr;
  Container(const char* name, const char* lxcpath) : c(lxc_container_new(name, lxcpath)) {}
  ~Container() {
    if (c) lxc_container_put(c);
  }
};

// The cgroup keys for the limits, in the host's hierarchy: cgroup2 when it
// is the unified one, else the v1 controllers (a hybrid host such as a
// Debian 12 VM booted with systemd.unified_cgroup_hierarchy=0).
std::vector<std::pair<std::string, std::string>> limitItems(const std::string& memory,
                                                            const std::string& cpus,
                                                            const std::string& pids) {
  const bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
  std::vector<std::pair<std::string, std::string>> items;
  if (memory != "-" && !memory.empty()) {
    items.emplace_back(v2 ? "lxc.cgroup2.memory.max" : "lxc.cgroup.memory.limit_in_bytes", memory);
  }
  long cpu = std::atol(cpus.c_str());
  if (cpu > 0) {
    std::string quota = std::to_string(cpu * 100000);
    if (v2) {
      items.emplace_back("lxc.cgroup2.cpu.max", quota + " 100000");
    } else {
      items.emplace_back("lxc.cgroup.cpu.cfs_period_us", "100000");
      items.emplace_back("lxc.cgroup.cpu.cfs_quota_us", quota);
    }
  }
  if (std::atol(pids.c_str()) > 0) {
    items.emplace_back(v2 ? "lxc.cgroup2.pids.max" : "lxc.cgroup.pids.max", pids);
  }
  return items;
}

int cloneCmd(char** a) {
  const char *imagePath = a[0], *image = a[1], *lxcpath = a[2], *name = a[3], *bridge = a[4],
             *address = a[5], *gateway = a[6];
  const auto limits = limitItems(a[7], a[8], a[9]);
  Container src(image, imagePath);
  if (!src.c || !src.c->is_defined(src.c)) {
    return fail(std::string("image container ") + image + " not found in " + imagePath);
  }
  Container existing(name, lxcpath);
  if (existing.c && existing.c->is_defined(existing.c)) {
    return fail(std::string("container ") + name + " already exists");
  }
  // KEEPNAME: the clone's hostname comes from lxc.uts.name below, so liblxc
  // need not mount the new rootfs to edit /etc/hostname.
  lxc_container* clone = src.c->clone(src.c, name, lxcpath, LXC_CLONE_SNAPSHOT | LXC_CLONE_KEEPNAME,
                                      "overlay", nullptr, 0, nullptr);
  if (!clone) return fail(std::string("cloning ") + image + " as " + name + " failed");
  bool ok = clone->set_config_item(clone, "lxc.uts.name", name) &&
            clone->set_config_item(clone, "lxc.net.0.link", bridge) &&
            clone->set_config_item(clone, "lxc.net.0.ipv4.address", address) &&
            clone->set_config_item(clone, "lxc.net.0.ipv4.gateway", gateway);
  for (const auto& [key, value] : limits) {
    ok = ok && clone->set_config_item(clone, key.c_str(), value.c_str());
  }
  ok = ok && clone->save_config(clone, nullptr);
  if (!ok) {
    clone->destroy(clone);
    lxc_container_put(clone);
    return fail(std::string("writing the network and cgroup config of ") + name + " failed");
  }
  lxc_container_put(clone);
  return 0;
}

// ": " and the last few lines liblxc logged, or "" when it logged nothing.
std::string lastErrors(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return "";
  std::vector<std::string> lines;
  char buf[1024];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    // "lxc NAME DATE ERROR    file - where - message": keep the message.
    size_t dash = line.rfind(" - ");
    if (dash != std::string::npos) line = line.substr(dash + 3);
    if (!line.empty()) lines.push_back(line);
    if (lines.size() > 3) lines.erase(lines.begin());
  }
  std::fclose(f);
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? ": " : "; ") + l;
  return out;
}

int startCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_defined(c.c)) return fail(std::string("container ") + a[1] + " not found");
  if (c.c->is_running(c.c)) return 0;
  c.c->want_daemonize(c.c, true);
  // The monitor must not keep the agent's pipes open.
  c.c->want_close_all_fds(c.c, true);
  // liblxc's errors go to a file beside the config, so a failure can say
  // what went wrong: the container may be gone (rolled back) by the time a
  // person could run lxc-start by hand.
  const std::string log = std::string(a[0]) + "/" + a[1] + "/start.log";
  ::unlink(log.c_str());
  c.c->set_config_item(c.c, "lxc.log.file", log.c_str());
  c.c->set_config_item(c.c, "lxc.log.level", "ERROR");
  if (!c.c->start(c.c, 0, nullptr)) {
    return fail(std::string("starting ") + a[1] + " failed" + lastErrors(log));
  }
  int timeout = std::atoi(a[2]);
  if (!c.c->wait(c.c, "RUNNING", timeout > 0 ? timeout : 30)) {
    return fail(std::string("container ") + a[1] + " did not reach RUNNING");
  }
  return 0;
}

int stopCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_defined(c.c) || !c.c->is_running(c.c)) return 0;
  if (!c.c->stop(c.c)) return fail(std::string("stopping ") + a[1] + " failed");
  return 0;
}

int destroyCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_defined(c.c)) return 0;
  if (c.c->is_running(c.c) && !c.c->stop(c.c))
    return fail(std::string("stopping ") + a[1] + " failed");
  if (!c.c->destroy(c.c)) return fail(std::string("destroying ") + a[1] + " failed");
  return 0;
}

int attachCmd(char** a) {
  Container c(a[1], a[0]);
  if (!c.c || !c.c->is_running(c.c))
    return fail(std::string("container ") + a[1] + " is not running");
  if (std::strcmp(a[3], "--") != 0) return fail("attach: give -- PROGRAM [ARG ...] after CWD");
  const std::string_view prefix = qabox::kAttachEnvPrefix;
  std::vector<char*> env;
  for (char** e = environ; e && *e; ++e) {
    if (std::string_view(*e).substr(0, prefix.size()) != prefix) continue;
    char* assignment = std::strchr(*e, '=');
    if (assignment) env.push_back(assignment + 1);
  }
  env.push_back(nullptr);
  lxc_attach_options_t options = LXC_ATTACH_OPTIONS_DEFAULT;
  options.env_policy = LXC_ATTACH_CLEAR_ENV;
  options.extra_env_vars = env.data();
  options.initial_cwd = a[2];
  char** program = a + 4;
  int status = c.c->attach_run_wait(c.c, &options, program[0], program);
  if (status < 0) return fail(std::string("attaching to ") + a[1] + " failed");
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kHelperFailed;
}

}  // namespace

int main(int argc, char** argv) {
  // Dies with the agent: after a crash, recovery must not race a helper
  // that is still creating what recovery is about to clean up.
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Whatever we inherited past stdio is not ours to pass on: a container
  // started or attached from here must never hold one of the agent's
  // descriptors (its listening sockets, its pipes).
  close_range(3, ~0U, 0);
  // The agent's umask is 077; what liblxc makes here (container dirs, the
  // overlay's upper dir) must be reachable by a container's mapped root, and
  // what runs in a container (init, hooks, exec) gets the usual one.
  umask(022);
  if (getppid() != parent) return fail("the agent exited before the helper started");
  if (argc < 2) return fail("usage: qabox-lxc clone|start|stop|destroy|attach ...");
  std::string cmd = argv[1];
  int n = argc - 2;
  char** a = argv + 2;
  if (cmd == "clone" && n == 10) return cloneCmd(a);
  if (cmd == "start" && n == 3) return startCmd(a);
  if (cmd == "stop" && n == 2) return stopCmd(a);
  if (cmd == "destroy" && n == 2) return destroyCmd(a);
  if (cmd == "attach" && n >= 5) return attachCmd(a);
  return fail("bad arguments for " + cmd);
}
