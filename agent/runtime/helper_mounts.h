#pragma once

// The mounts qabox-lxc makes on the host: idmapped layers, overlays of
// them, and their unmounting. Every mount point is opened without following
// a symlink, and every path given to overlayfs is checked for its option
// syntax first. Each call returns "" or what failed.

#include <string>
#include <vector>

namespace qabox {

// `path` is the root of a mount (symlinks not followed).
bool isMountRoot(const std::string& path);
// `path` exists (a symlink counts, not followed).
bool pathExists(const std::string& path);

// A path that goes into overlayfs' options, where ':' separates layers, ','
// options and a newline ends nothing well: "" or why it is refused.
std::string badLayerPath(const std::string& path);

// Each of `sources` mounted read-only and idmapped at the mount point beside
// it in `targets` (those already mounted are left): files of host ids
// `from`.. show as `to`.. A target that is a symlink is refused.
std::string idmapLayers(const std::vector<std::string>& sources,
                        const std::vector<std::string>& targets, unsigned long from,
                        unsigned long to);

// An overlay of `lowers` (topmost first) and `upper` at `merged`. With
// `userxattr` its opaque directories and whiteouts are user.overlay.*, as in
// an overlay mounted in a user namespace (a clone's); else trusted.overlay.*.
std::string mountOverlay(const std::string& merged, const std::vector<std::string>& lowers,
                         const std::string& upper, const std::string& work, bool userxattr);

// Every one of `paths` unmounted (detached, as a stop leaves it), in order;
// the first that stayed mounted is the error. A symlink is never followed.
std::string unmountAll(const std::vector<std::string>& paths);

}  // namespace qabox
