#pragma once

#include <string>

#include "core/status.h"

namespace qabox {

// A PEM file's text (a certificate, a chain or a key), at most 1 MiB, for
// TLS credentials. Errors name `key`, the config key that gave `path`:
//   cluster.ca "/etc/qabox/ca.crt": cannot be read
Result<std::string> readPem(const std::string& key, const std::string& path);

}  // namespace qabox
