#include "store/ipam.h"

namespace qabox {

namespace {

uint32_t maskOf(int prefix) { return prefix <= 0 ? 0 : ~uint32_t{0} << (32 - prefix); }

uint32_t sizeOf(const Subnet& subnet) {
  // Prefixes are 8..30 after parsing, so the size fits in 32 bits.
  return uint32_t{1} << (32 - subnet.prefix);
}

}  // namespace

std::optional<uint32_t> parseIpv4(std::string_view text) {
  uint32_t address = 0;
  int octets = 0;
  size_t i = 0;
  while (octets < 4) {
    size_t start = i;
    uint32_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 3) {
      value = value * 10 + static_cast<uint32_t>(text[i] - '0');
      ++i;
    }
    size_t digits = i - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return std::nullopt;
    address = (address << 8) | value;
    ++octets;
    if (octets < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return address;
}

std::string formatIpv4(uint32_t address) {
  return std::to_string((address >> 24) & 0xff) + "." + std::to_string((address >> 16) & 0xff) +
         "." + std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

Result<Subnet> parseSubnet(std::string_view cidr) {
  const std::string quoted = "network.subnet \"" + std::string(cidr) + "\"";
  size_t slash = cidr.find('/');
  std::optional<uint32_t> address;
  if (slash != std::string_view::npos) address = parseIpv4(cidr.substr(0, slash));
  if (!address) return invalidArgument(quoted + ": use an IPv4 CIDR such as 10.44.0.0/24");
  std::string_view len = cidr.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos) {
    return invalidArgument(quoted + ": prefix length must be a number");
  }
  int prefix = 0;
  for (char c : len) prefix = prefix * 10 + (c - '0');
  if (prefix < 8 || prefix > 30) {
    return invalidArgument(quoted + ": prefix length must be between 8 and 30");
  }
  if ((*address & ~maskOf(prefix)) != 0) {
    return invalidArgument(quoted + ": host bits must be zero (the network address)");
  }
  return Subnet{*address, prefix};
}

std::string subnetString(const Subnet& subnet) {
  return formatIpv4(subnet.network) + "/" + std::to_string(subnet.prefix);
}

std::string gatewayOf(const Subnet& subnet) { return formatIpv4(subnet.network + 1); }

std::string cidrOf(const Subnet& subnet, const std::string& ip) {
  return ip + "/" + std::to_string(subnet.prefix);
}

uint32_t hostCount(const Subnet& subnet) {
  if (subnet.prefix < 8 || subnet.prefix > 30) return 0;
  return sizeOf(subnet) - 3;
}

std::string addressAt(const Subnet& subnet, uint32_t offset) {
  return formatIpv4(subnet.network + offset);
}

std::optional<uint32_t> offsetOf(const Subnet& subnet, std::string_view ip) {
  auto address = parseIpv4(ip);
  if (!address || (*address & maskOf(subnet.prefix)) != subnet.network) return std::nullopt;
  return *address - subnet.network;
}

}  // namespace qabox
