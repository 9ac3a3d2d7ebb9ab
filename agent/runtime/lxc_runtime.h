#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/nftables.h"
#include "runtime/runtime.h"
#include "sys/process.h"

namespace qabox {

struct LxcRuntimeOptions {
  std::string lxcPath;     // the containers' lxcpath, the agent's own
  std::string helperPath;  // qabox-lxc (defaultLxcHelperPath())
  std::chrono::milliseconds startTimeout{std::chrono::seconds(30)};
  // The seccomp profile file (seccompProfile()) clones run under; "" for none.
  std::string seccompProfile;
  // Unprivileged clones get host ids of their own: the lowest free slot k in
  // 1..idSlots, ids idBase + k * 65536 on (slot 0 is the images'). A slot is
  // held by the container's config, so it is free again when the container
  // is destroyed and kept across agent restarts. 0 slots: off.
  uint32_t idBase = 0;
  uint32_t idSlots = 0;
  // storage.data_pool, prepared (preparePool); "": attachData refuses.
  std::string dataPool;
};

// Containers of one lxcpath through liblxc. Calls that fork (clone, start,
// attach) and the ones that change state run in the qabox-lxc helper
// process; reads (list, state) run here. A clone's port binding goes into
// the bridge's firewall (bridge_rules.h) through `firewall`. Layer mounts
// on the host (for building an image on another) go through the helper too.
class LxcRuntime : public ContainerRuntime, public LayerMounter {
 public:
  LxcRuntime(LxcRuntimeOptions options, ProcessRunner& runner, Firewall& firewall);

  Status clone(const std::string& imageLxcPath, const std::string& image, const std::string& name,
               const std::vector<std::string>& lowers, const NetSpec& net,
               const ResourceLimits& limits) override;
  Status start(const std::string& name) override;
  Status stop(const std::string& name) override;
  Status destroy(const std::string& name) override;
  Result<std::vector<std::string>> list() override;
  Result<ContainerState> state(const std::string& name) override;
  Result<ProcessResult> exec(const std::string& name, const ExecSpec& spec) override;
  Status place(const std::string& name, const std::vector<PlacedFile>& files,
               const std::vector<std::string>& remove) override;
  Status attachData(const std::string& name, const std::vector<DataSnapshot>& snaps,
                    uint64_t maxBytes) override;
  std::string upperDir(const std::string& name) const override;
  std::optional<uint32_t> mappedRoot(const std::string& name) const override;

  Status mountLayers(const LayerMount& mount) override;
  Status unmountLayers(const std::string& merged) override;

  const std::string& lxcPath() const { return o_.lxcPath; }

 private:
  Status runHelper(const std::vector<std::string>& args, const std::string& what);
  Status bindPort(const std::string& bridge, const PortBinding& binding, bool add);
  // The host id base of a free slot, held in cloning_ until released; 0
  // when all are taken.
  uint64_t takeIdSlot();
  void releaseIdSlot(uint64_t base);
  // The empty cgroups liblxc left for `name` (runtime/lxc_cgroups.h), but
  // those of another container of this lxcpath; how many went.
  size_t dropCgroups(const std::string& name);
  std::function<bool(const std::string&)> isContainerHere() const;

  LxcRuntimeOptions o_;
  ProcessRunner& runner_;
  Firewall& firewall_;
  std::mutex idMu_;             // a slot is chosen under it
  std::set<uint64_t> cloning_;  // slots chosen whose clone's config is not written yet
};

// The seccomp deny list every container runs under, in LXC's format
// (lxc.seccomp.profile): LXC's own default list, what container engines add
// to it (kernel keyrings, bpf, userfaultfd, perf events, io_uring), and new
// user namespaces unless `allowNestedUserns`.
std::string seccompProfile(bool allowNestedUserns);

// The lxc.mount.entry line that mounts the data snapshot `source` at
// `target` (both absolute and normalized, of letters, digits and
// / . _ - + @ =), idmapped to the container's ids when `idmapped`.
Result<std::string> dataMountEntry(const std::string& source, const std::string& target,
                                   bool idmapped);

// A path given to overlayfs (a layer, an upper, work or merged dir): it must
// be absolute and hold none of ':' ',' '\n', which its options syntax takes.
Status checkLayerPath(const std::string& path);

// Where qabox-lxc lives: beside the running executable, in the build tree,
// in QABOX_LIBEXEC_DIR (installed), else on PATH.
std::string defaultLxcHelperPath();

}  // namespace qabox
