#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

namespace qabox::cli {

// Scripts (Jenkins among them) branch on these: never renumber them.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitConflict = 4,
  kExitDenied = 5,
  kExitUnavailable = 6,
  kExitDeployFailed = 7,
  kExitViolations = 8,  // qabox check found some
};

int exitCodeFor(grpc::StatusCode code);

// The canonical gRPC name, "NOT_FOUND", for messages.
std::string_view statusCodeName(grpc::StatusCode code);

// The table printed at the end of `qabox --help`.
extern const char* const kExitCodeHelp;

}  // namespace qabox::cli
