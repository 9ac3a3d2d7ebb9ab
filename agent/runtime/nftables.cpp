#include "runtime/nftables.h"

#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

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

}  // namespace

Nftables::Nftables() {
  if (!netfilterSocketOpens()) return;
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx_ && (nft_ctx_buffer_output(ctx_) != 0 || nft_ctx_buffer_error(ctx_) != 0)) {
    spdlog::warn("nft: cannot buffer libnftables' output");
    nft_ctx_free(ctx_);
    ctx_ = nullptr;
  }
}

Nftables::~Nftables() {
  if (ctx_) nft_ctx_free(ctx_);
}

Status Nftables::apply(const std::string& rules) { return run(rules).status(); }

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
