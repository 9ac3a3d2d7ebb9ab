#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace qabox::init {

// Who a supervised process runs as, read from the container's own
// /etc/passwd and /etc/group (a static binary has no NSS).
struct UserIds {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary: the primary group, then every group listing it
  std::string home = "/";
};

// `name` empty or "root": root (home from passwd, else /root). A name passwd
// lacks is NOT_FOUND; a line that cannot be read is skipped.
Result<UserIds> lookupUser(std::string_view passwd, std::string_view group, std::string_view name);

}  // namespace qabox::init
