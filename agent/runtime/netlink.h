#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

// The host's interfaces, addresses, neighbours and routes over rtnetlink
// (libmnl): what `ip link/addr/neigh/route` would do, without a process.
// Each call opens a socket of its own (its port id the kernel's), sends one
// request under a fresh sequence number and reads the answers, in buffers
// of MNL_SOCKET_BUFFER_SIZE, up to the kernel's ACK or NLMSG_DONE. An error
// names the operation and the interface.
namespace qabox::netlink {

// `ip link add NAME type bridge`; a link of that name already there is no
// error.
Status createBridge(const std::string& name);
// `ip addr add CIDR dev NAME` (IPv4); the address already there is no error.
Status addAddress(const std::string& name, const std::string& cidr);
// Sets the interface's MAC address to what it is. A bridge otherwise takes
// the lowest MAC of its ports and changes it as ports come and go: every
// container's neighbour entry for the gateway goes stale, and their
// answers to the host (the router) go to the old address until it is
// resolved again.
Status pinAddress(const std::string& name);
// `ip link set NAME up`.
Status setUp(const std::string& name);
// `ip link del NAME`; a missing link is no error.
Status deleteLink(const std::string& name);
// `ip neigh del IP dev NAME` (IPv4); no such entry is no error, no such
// interface is kNotFound.
Status deleteNeighbor(const std::string& name, const std::string& ip);

// One IPv4 route of a routing table.
struct Route4 {
  uint32_t network = 0;  // host byte order
  int prefix = 0;        // 0: the default route
  bool unicast = true;   // false: blackhole, unreachable, prohibit, ... lead nowhere
  bool viaGateway = false;
  std::vector<std::string> devices;  // the interfaces it leaves by (more than one: multipath)
};

// `ip -4 route show table main`.
Result<std::vector<Route4>> mainRoutes4();

}  // namespace qabox::netlink
