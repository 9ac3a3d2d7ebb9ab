#include "runtime/netlink.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <memory>

namespace qabox::netlink {
namespace {

// Sequence numbers of this process's requests; each socket's answers are
// checked against the one its request carried.
std::atomic<uint32_t> nextSeq{static_cast<uint32_t>(std::time(nullptr))};

using OnMessage = std::function<int(const nlmsghdr*)>;

// One request in a buffer of its own.
class Request {
 public:
  Request(uint16_t type, uint16_t flags) : buf_(MNL_SOCKET_BUFFER_SIZE) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = NLM_F_REQUEST | flags;
  }
  template <typename T>
  T* header() {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(T)));
  }
  nlmsghdr* nlh() { return nlh_; }

 private:
  std::vector<char> buf_;
  nlmsghdr* nlh_;
};

int dispatch(const nlmsghdr* nlh, void* data) {
  const auto* onMessage = static_cast<const OnMessage*>(data);
  return *onMessage ? (*onMessage)(nlh) : MNL_CB_OK;
}

// Sends the request on `nl` and reads until the kernel's ACK, NLMSG_DONE or
// error: 0, or the errno.
int exchange(mnl_socket* nl, Request& req, const OnMessage& onMessage) {
  const uint32_t portid = mnl_socket_get_portid(nl);
  nlmsghdr* nlh = req.nlh();
  nlh->nlmsg_seq = nextSeq++;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return errno;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  int ret = MNL_CB_OK;
  while (ret > MNL_CB_STOP) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;  // ENOSPC: an answer larger than the buffer
    if (n == 0) return ECONNRESET;
    ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), nlh->nlmsg_seq, portid, dispatch,
                     const_cast<OnMessage*>(&onMessage));
  }
  if (ret != MNL_CB_ERROR) return 0;
  return errno != 0 ? errno : EPROTO;
}

// One request on a socket of its own; the errors in `fine` count as
// success. A dump the kernel interrupted (the table changed meanwhile:
// EINTR) is asked for again on a fresh socket, after onMessage(nullptr)
// forgets what it got.
Status transact(Request& req, const std::string& what, const OnMessage& onMessage = {},
                std::initializer_list<int> fine = {}) {
  const bool dump = (req.nlh()->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<mnl_socket, decltype(&mnl_socket_close)> nl(
        mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC), mnl_socket_close);
    if (!nl) return internalError(what + ": netlink socket: " + std::strerror(errno));
    if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
      return internalError(what + ": netlink bind: " + std::strerror(errno));
    }
    const int err = exchange(nl.get(), req, onMessage);
    if (dump && err == EINTR && attempt < 4) {
      if (onMessage) onMessage(nullptr);
      continue;
    }
    if (err == 0) return Status::ok();
    for (int f : fine) {
      if (err == f) return Status::ok();
    }
    return internalError(what + ": " + std::strerror(err));
  }
}

// The interface's index, or kNotFound naming it.
Result<int> indexOf(const std::string& name, const std::string& what) {
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) return notFound(what + ": no interface " + name);
  return static_cast<int>(index);
}

Result<in_addr> parseIpv4(const std::string& ip, const std::string& what) {
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1)
    return invalidArgument(what + ": not an IPv4 address");
  return a;
}

}  // namespace

Status createBridge(const std::string& name) {
  Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  req.header<ifinfomsg>()->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(req.nlh(), IFLA_IFNAME, name.c_str());
  nlattr* info = mnl_attr_nest_start(req.nlh(), IFLA_LINKINFO);
  mnl_attr_put_strz(req.nlh(), IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(req.nlh(), info);
  return transact(req, "creating bridge " + name, {}, {EEXIST});
}

Status pinAddress(const std::string& name) {
  const std::string what = "pinning the MAC address of " + name;
  QABOX_ASSIGN_OR_RETURN(int index, indexOf(name, what));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return internalError(what + ": socket: " + std::strerror(errno));
  const int got = ::ioctl(fd, SIOCGIFHWADDR, &ifr);
  const int err = errno;
  ::close(fd);
  if (got != 0) return internalError(what + ": reading it: " + std::strerror(err));
  // The same address, set: the kernel keeps a set one (addr_assign_type 3)
  // instead of taking the lowest of its ports' whenever a port comes or goes.
  Request req(RTM_NEWLINK, NLM_F_ACK);
  auto* ifi = req.header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  mnl_attr_put(req.nlh(), IFLA_ADDRESS, ETH_ALEN, ifr.ifr_hwaddr.sa_data);
  return transact(req, what);
}

Status addAddress(const std::string& name, const std::string& cidr) {
  const std::string what = "adding address " + cidr + " to " + name;
  const size_t slash = cidr.find('/');
  const std::string len = slash == std::string::npos ? "" : cidr.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(len) > 32) {
    return invalidArgument(what + ": not an IPv4 address/prefix");
  }
  QABOX_ASSIGN_OR_RETURN(in_addr addr, parseIpv4(cidr.substr(0, slash), what));
  QABOX_ASSIGN_OR_RETURN(int index, indexOf(name, what));
  Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  auto* ifa = req.header<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<unsigned char>(std::stoi(len));
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(index);
  mnl_attr_put(req.nlh(), IFA_LOCAL, sizeof addr, &addr);
  mnl_attr_put(req.nlh(), IFA_ADDRESS, sizeof addr, &addr);
  return transact(req, what, {}, {EEXIST});
}

Status setUp(const std::string& name) {
  const std::string what = "bringing " + name + " up";
  QABOX_ASSIGN_OR_RETURN(int index, indexOf(name, what));
  Request req(RTM_NEWLINK, NLM_F_ACK);
  auto* ifi = req.header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return transact(req, what);
}

Status deleteLink(const std::string& name) {
  const std::string what = "deleting link " + name;
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) return Status::ok();
  Request req(RTM_DELLINK, NLM_F_ACK);
  auto* ifi = req.header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(index);
  return transact(req, what, {}, {ENODEV});
}

Status deleteNeighbor(const std::string& name, const std::string& ip) {
  const std::string what = "deleting the neighbour entry of " + ip + " on " + name;
  QABOX_ASSIGN_OR_RETURN(in_addr dst, parseIpv4(ip, what));
  QABOX_ASSIGN_OR_RETURN(int index, indexOf(name, what));
  Request req(RTM_DELNEIGH, NLM_F_ACK);
  auto* nd = req.header<ndmsg>();
  nd->ndm_family = AF_INET;
  nd->ndm_ifindex = index;
  mnl_attr_put(req.nlh(), NDA_DST, sizeof dst, &dst);
  return transact(req, what, {}, {ENOENT});
}

namespace {

std::string interfaceName(uint32_t index) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(index, name) == nullptr) return "if" + std::to_string(index);
  return name;
}

// The next hops of an RTA_MULTIPATH attribute.
void addNextHops(const nlattr* attr, Route4& route) {
  const auto* payload = static_cast<const char*>(mnl_attr_get_payload(attr));
  size_t left = mnl_attr_get_payload_len(attr);
  const auto* nh = reinterpret_cast<const rtnexthop*>(payload);
  while (left >= sizeof(rtnexthop) && nh->rtnh_len >= sizeof(rtnexthop) && nh->rtnh_len <= left) {
    route.devices.push_back(interfaceName(static_cast<uint32_t>(nh->rtnh_ifindex)));
    const auto* a = reinterpret_cast<const char*>(RTNH_DATA(nh));
    const auto* end = reinterpret_cast<const char*>(nh) + nh->rtnh_len;
    for (auto* na = reinterpret_cast<const nlattr*>(a);
         mnl_attr_ok(na, static_cast<int>(end - reinterpret_cast<const char*>(na)));
         na = mnl_attr_next(na)) {
      const uint16_t type = mnl_attr_get_type(na);
      if (type == RTA_GATEWAY || type == RTA_VIA) route.viaGateway = true;
    }
    left -= RTNH_ALIGN(nh->rtnh_len);
    nh = RTNH_NEXT(nh);
  }
}

struct RouteAttrs {
  Route4* route;
  uint32_t table;
};

int routeAttr(const nlattr* attr, void* data) {
  auto* out = static_cast<RouteAttrs*>(data);
  Route4& route = *out->route;
  switch (mnl_attr_get_type(attr)) {
    case RTA_TABLE:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) out->table = mnl_attr_get_u32(attr);
      break;
    case RTA_DST:
      if (mnl_attr_get_payload_len(attr) == sizeof(uint32_t)) {
        uint32_t dst = 0;
        std::memcpy(&dst, mnl_attr_get_payload(attr), sizeof dst);
        route.network = ntohl(dst);
      }
      break;
    case RTA_OIF:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
        route.devices.push_back(interfaceName(mnl_attr_get_u32(attr)));
      }
      break;
    case RTA_GATEWAY:
    case RTA_VIA: route.viaGateway = true; break;
    case RTA_MULTIPATH: addNextHops(attr, route); break;
    default: break;
  }
  return MNL_CB_OK;
}

}  // namespace

Result<std::vector<Route4>> mainRoutes4() {
  Request req(RTM_GETROUTE, NLM_F_DUMP);
  req.header<rtmsg>()->rtm_family = AF_INET;
  std::vector<Route4> routes;
  OnMessage each = [&routes](const nlmsghdr* nlh) {
    if (nlh == nullptr) {
      routes.clear();
      return MNL_CB_OK;
    }
    const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
    if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_family != AF_INET ||
        (rtm->rtm_flags & RTM_F_CLONED)) {
      return MNL_CB_OK;
    }
    Route4 route;
    route.prefix = rtm->rtm_dst_len;
    route.unicast = rtm->rtm_type == RTN_UNICAST;
    RouteAttrs attrs{&route, rtm->rtm_table};
    if (mnl_attr_parse(nlh, sizeof(rtmsg), routeAttr, &attrs) < 0) {
      errno = EPROTO;
      return MNL_CB_ERROR;
    }
    if (attrs.table == RT_TABLE_MAIN) routes.push_back(std::move(route));
    return MNL_CB_OK;
  };
  QABOX_RETURN_IF_ERROR(transact(req, "reading the IPv4 routes of table main", each));
  return routes;
}

}  // namespace qabox::netlink
