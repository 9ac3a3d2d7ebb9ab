#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

// An IPv4 subnet the agent owns. Offset 0 is the network address, 1 the
// bridge (gateway), the last the broadcast; containers get 2 upward.
struct Subnet {
  uint32_t network = 0;  // host byte order, host bits zero
  int prefix = 24;
};

// "10.44.0.0/24". The prefix is 8..30 (a /31 or /32 leaves no room for a
// container), and the host bits must be zero. Errors name network.subnet.
Result<Subnet> parseSubnet(std::string_view cidr);

// Dotted quad <-> host byte order. parseIpv4 is strict: four decimal octets
// without leading zeros, nothing else.
std::optional<uint32_t> parseIpv4(std::string_view text);
std::string formatIpv4(uint32_t address);

std::string subnetString(const Subnet& subnet);  // "10.44.0.0/24"
std::string gatewayOf(const Subnet& subnet);     // network + 1
// "10.44.0.7/24": the form a container's ipv4.address takes.
std::string cidrOf(const Subnet& subnet, const std::string& ip);
// How many addresses containers can get: all but network, gateway and broadcast.
uint32_t hostCount(const Subnet& subnet);
std::string addressAt(const Subnet& subnet, uint32_t offset);
// The offset of `ip` inside `subnet`, or nothing when it is not in it.
std::optional<uint32_t> offsetOf(const Subnet& subnet, std::string_view ip);

}  // namespace qabox
