#pragma once

namespace qabox {

// `qabox-lxc attach` takes the command's variables from its own environment,
// each as <prefix><n>=KEY=VALUE: never from its argument vector, which any
// user on the host can read in /proc/PID/cmdline, and renamed so that none
// of them (LD_PRELOAD, say) acts on the helper itself, which runs as root.
inline constexpr char kAttachEnvPrefix[] = "QABOX_ATTACH_ENV_";

}  // namespace qabox
