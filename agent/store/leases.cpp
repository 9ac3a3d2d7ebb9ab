// The leases table: static IPAM, one row per address a container holds.

#include <algorithm>
#include <set>

#include "store/ipam.h"
#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace qabox::store {

namespace {

// The lowest free offset of `subnet` at or above `first`, given the offsets in use.
uint32_t lowestFree(const std::set<uint32_t>& used, uint32_t first) {
  uint32_t pick = first;
  for (uint32_t off : used) {
    if (off < pick) continue;
    if (off > pick) break;
    ++pick;
  }
  return pick;
}

Lease readLease(const Stmt& s) { return {s.text(0), s.text(1), s.time(2)}; }

}  // namespace

Result<std::string> SqliteStore::leaseAddress(const std::string& subnetText,
                                              const std::string& owner) {
  QABOX_ASSIGN_OR_RETURN(Subnet subnet, parseSubnet(subnetText));
  std::string ip;
  QABOX_RETURN_IF_ERROR(write("lease an address for " + owner, [&]() -> Status {
    std::set<uint32_t> used;
    {
      Stmt s(db_, "SELECT ip FROM leases", "read leases");
      while (true) {
        QABOX_ASSIGN_OR_RETURN(bool row, s.step());
        if (!row) break;
        // Leases from another subnet (the config changed) do not block this one.
        if (auto off = offsetOf(subnet, s.text(0))) used.insert(*off);
      }
    }
    const uint32_t first = 2;
    const uint32_t last = first + hostCount(subnet) - 1;
    const uint32_t pick = lowestFree(used, first);
    if (pick > last) {
      auto inUse = std::count_if(used.begin(), used.end(),
                                 [&](uint32_t off) { return off >= first && off <= last; });
      return resourceExhausted("network.subnet " + subnetText + ": no free address left (" +
                               std::to_string(inUse) +
                               " in use); delete environments or configure a larger subnet");
    }
    ip = addressAt(subnet, pick);
    Stmt s(db_, "INSERT INTO leases (ip, owner, created_at) VALUES (?, ?, ?)",
           "lease " + ip + " for " + owner);
    s.bind(1, ip).bind(2, owner).bind(3, now());
    return s.run();
  }));
  return ip;
}

Status SqliteStore::releaseAddress(const std::string& ip) {
  return writeOne("release " + ip, "DELETE FROM leases WHERE ip = ?", ip);
}

Status SqliteStore::restoreLease(const std::string& ip, const std::string& owner) {
  return write("restore the lease of " + ip + " for " + owner, [&]() -> Status {
    Stmt s(db_, "INSERT INTO leases (ip, owner, created_at) VALUES (?, ?, ?)",
           "restore the lease of " + ip + " for " + owner);
    s.bind(1, ip).bind(2, owner).bind(3, now());
    Status st = s.run();
    if (!st.isOk() && (s.errorCode() & 0xff) == SQLITE_CONSTRAINT) {
      return alreadyExists("address " + ip + " is already leased; not restored for " + owner);
    }
    return st;
  });
}

Status SqliteStore::releaseAddressesOf(const std::string& owner) {
  return writeOne("release the addresses of " + owner, "DELETE FROM leases WHERE owner = ?", owner);
}

Result<std::vector<Lease>> SqliteStore::listLeases() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT ip, owner, created_at FROM leases", "list leases");
  QABOX_ASSIGN_OR_RETURN(auto out, readRows<Lease>(s, readLease));
  // Numeric order, so 10.44.0.10 comes after 10.44.0.9 as a reader expects.
  std::sort(out.begin(), out.end(), [](const Lease& a, const Lease& b) {
    auto x = parseIpv4(a.ip), y = parseIpv4(b.ip);
    if (x && y) return *x < *y;
    if (x || y) return x.has_value();
    return a.ip < b.ip;
  });
  return out;
}

}  // namespace qabox::store
