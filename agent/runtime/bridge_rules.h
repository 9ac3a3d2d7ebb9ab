#pragma once

#include <set>
#include <string>
#include <vector>

#include "runtime/netlink.h"
#include "runtime/runtime.h"

// What the agent's bridge is given, as text and lists, without the OS: its
// nftables rules and the interfaces egress needs forwarding on.
namespace qabox {

// The nftables ruleset a bridge gets, both tables declared, deleted and
// declared again in one transaction, so applying it replaces the old rules
// (and the bindings set, filled from guard.bindings):
//  - bridge qabox_<bridge>: a frame from a container's port passes only as
//    IPv4 or ARP whose source MAC and address are its binding's (before the
//    bridge learns the MAC: prerouting); with isolate, no frame goes from one
//    container's port to another's.
//  - inet qabox_<bridge>: from the containers, the host accepts only the
//    router's ports, ping of the gateway and replies; forwarding (egress)
//    follows guard.egress, never to link-local addresses or over IPv6, with
//    NAT; nothing from outside is forwarded to a container but replies.
std::string bridgeRuleset(const std::string& bridge, const BridgeGuard& guard);
// Lists the bridge's bindings set (what parseBindings reads).
std::string bindingsListing(const std::string& bridge);

// Deletes both tables; not an error when they do not exist.
std::string bridgeRulesetRemoval(const std::string& bridge);
// Adds one port binding to the bridge's set, or removes it (also when it
// is not there).
std::string bindingUpdate(const std::string& bridge, const PortBinding& binding, bool add);

// The interfaces whose IPv4 forwarding egress needs besides the bridge: those
// of the routes (the host's main table) that lead to what the policy allows,
// but other bridges (other containers' and VMs' networks) reached directly,
// and lo. Empty for "none".
std::vector<std::string> forwardingInterfaces(const std::vector<netlink::Route4>& routes,
                                              const EgressPolicy& egress, const std::string& bridge,
                                              const std::set<std::string>& bridges);

}  // namespace qabox
