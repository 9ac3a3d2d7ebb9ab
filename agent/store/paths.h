#pragma once

#include <string>

// The state dir, drawn once. Every path the agent writes is made here.
//
//   <state_dir>/
//     qabox.db               SQLite (WAL): environments, journal, events, leases, images, tokens
//     lxc/                   the agent's own lxcpath: environment containers only
//       qabox-<slug>/        config, overlay/delta (the clone's writes), rootfs mount point;
//                            qabox.json: what the row holds (qaboxd --rebuild-state reads it);
//                            with isolated ids, lower/ (the image's rootfs mounted idmapped
//                            to the clone's ids) under rootfs/ (the overlay), while it runs
//     images/                a second lxcpath: immutable base image versions
//       <name>-v<N>/         config, rootfs/ (the lower layer of every clone of it)
//     git/<repo>.git         one bare mirror per configured repo
//     work/                  scratch for exports and builds, emptied on start
//     logs/<slug>/deploy.log the last deploy's hook output
//     run/                   pid file, helper sockets
//     containers.seccomp     the containers' seccomp profile, written at every start
//
// Modes (umask 077; daemon/main.cpp prepareDirs): state_dir, lxc/ and
// images/ are 0711 with unprivileged containers (their mapped root must
// pass through to reach its rootfs and overlay; 0700 when privileged).
// Readable by others there, and nothing secret: images/<name>-v<N>/ (0755)
// and its lxc_snapshots, and lxc/<name>/lxc_rdepends (liblxc's, 0644).
// Everything else is the agent's alone: lxc/<name>/ 0770 with config and
// start.log 0640, git/, logs/, work/, run/ 0700, files 0600, qabox.db 0600.
namespace qabox::paths {

inline std::string database(const std::string& stateDir) { return stateDir + "/qabox.db"; }
inline std::string lxcPath(const std::string& stateDir) { return stateDir + "/lxc"; }
inline std::string imagesLxcPath(const std::string& stateDir) { return stateDir + "/images"; }
inline std::string imageContainer(const std::string& name, unsigned version) {
  return name + "-v" + std::to_string(version);
}
inline std::string imageRootfs(const std::string& stateDir, const std::string& name,
                               unsigned version) {
  return imagesLxcPath(stateDir) + "/" + imageContainer(name, version) + "/rootfs";
}
inline std::string containerDir(const std::string& stateDir, const std::string& container) {
  return lxcPath(stateDir) + "/" + container;
}
// What the container carries about itself (lifecycle/env_record.h).
inline std::string containerRecord(const std::string& stateDir, const std::string& container) {
  return containerDir(stateDir, container) + "/qabox.json";
}
inline std::string gitMirror(const std::string& stateDir, const std::string& repo) {
  return stateDir + "/git/" + repo + ".git";
}
inline std::string workDir(const std::string& stateDir) { return stateDir + "/work"; }
inline std::string logDir(const std::string& stateDir, const std::string& slug) {
  return stateDir + "/logs/" + slug;
}
inline std::string deployLog(const std::string& stateDir, const std::string& slug) {
  return logDir(stateDir, slug) + "/deploy.log";
}
inline std::string runDir(const std::string& stateDir) { return stateDir + "/run"; }
// Held (shared) by every running agent; --rebuild-state takes it exclusively.
inline std::string agentLock(const std::string& stateDir) {
  return runDir(stateDir) + "/qaboxd.lock";
}
// The key that signs dashboard sessions and preview cookies (0600).
inline std::string sessionKey(const std::string& stateDir) { return stateDir + "/session.key"; }
inline std::string seccompProfile(const std::string& stateDir) {
  return stateDir + "/containers.seccomp";
}

// Inside every container.
inline constexpr const char* kAppDir = "/srv/app";
inline constexpr const char* kAppLog = "/var/log/qabox/app.log";
inline constexpr const char* kAppEnvFile = "/etc/qabox/app.env";

}  // namespace qabox::paths
