#include "runtime/nftables.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/failpoint.h"
#include "sys/process.h"

namespace qabox {
namespace {

// libnftables opens its netfilter socket in nft_ctx_new and exits the
// process when it cannot: the same socket, tried first.
bool netfilterSocketOpens() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) {
    spdlog::warn("nft: cannot open a netfilter netlink socket: {}", std::strerror(errno));
    return false;
  }
  close(fd);
  return true;
}

// libnftables opens its socket without close-on-exec: the agent's
// descriptors must never reach a hook, an app or a helper. Ours all have
// it, so a netfilter netlink socket without it is libnftables'.
void closeOnExecNetfilterSockets() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    const int flags = fcntl(fd, F_GETFD);
    if (fd <= 2 || flags < 0 || (flags & FD_CLOEXEC)) continue;
    int domain = 0, protocol = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK) {
      continue;
    }
    len = sizeof protocol;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 ||
        protocol != NETLINK_NETFILTER) {
      continue;
    }
    if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
      spdlog::warn("nft: cannot make libnftables' socket (fd {}) close-on-exec: {}", fd,
                   std::strerror(errno));
    }
  }
  if (ec) spdlog::warn("nft: cannot list /proc/self/fd: {}", ec.message());
}

}  // namespace

Nftables::Nftables() {
  if (!netfilterSocketOpens()) return;
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  closeOnExecNetfilterSockets();
  if (ctx_ && (nft_ctx_buffer_output(ctx_) != 0 || nft_ctx_buffer_error(ctx_) != 0)) {
    spdlog::warn("nft: cannot buffer libnftables' output");
    nft_ctx_free(ctx_);
    ctx_ = nullptr;
  }
}

Nftables::~Nftables() {
  if (ctx_) nft_ctx_free(ctx_);
}

Status Nftables::apply(const std::string& rules) {
  QABOX_FAILPOINT("nft.apply.before");
  QABOX_RETURN_IF_ERROR(run(rules).status());
  QABOX_FAILPOINT("nft.apply.after");
  return Status::ok();
}

Result<std::string> Nftables::run(const std::string& commands) {
  std::lock_guard lock(mu_);
  if (!ctx_) return internalError("nft: cannot set up a libnftables context");
  const int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  // Reading a buffer also empties it for the next command.
  const char* out = nft_ctx_get_output_buffer(ctx_);
  const char* err = nft_ctx_get_error_buffer(ctx_);
  std::string output = out ? out : "";
  std::string error = err ? err : "";
  if (rc != 0) {
    if (error.empty()) error = "failed (exit code " + std::to_string(rc) + ")";
    return internalError("nft: " + lastLines(error, 3));
  }
  return output;
}

}  // namespace qabox
