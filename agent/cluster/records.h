#pragma once

// What the cluster keeps in etcd, as JSON: a host's facts and a ticket's
// owner. Everything read back is untrusted (any client of etcd can write
// it): bounded, every field checked, a bad entry an error naming it.

#include <string>

#include "cluster/cluster.h"
#include "core/status.h"

namespace qabox::cluster {

inline constexpr size_t kMaxRecordBytes = 64 * 1024;
inline constexpr size_t kMaxImages = 256;

std::string encodeHost(const HostFacts& h);
Result<HostFacts> decodeHost(const std::string& json);

struct TicketEntry {
  std::string ticket;
  std::string host;
  int64_t placedAtUnix = 0;
};
std::string encodeTicket(const TicketEntry& t);
Result<TicketEntry> decodeTicket(const std::string& json);

}  // namespace qabox::cluster
