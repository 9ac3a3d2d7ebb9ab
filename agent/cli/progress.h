#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "cli/format.h"
#include "qabox/v1/qabox.pb.h"

namespace qabox::cli {

// Deploy phases as they finish, on stderr so stdout stays for the result.
class DeployProgress {
 public:
  virtual ~DeployProgress() = default;
  virtual void phase(const v1::DeployEvent& event) = 0;
  // Clears any live line; safe to call twice.
  virtual void finish() = 0;
};

// On a terminal: a live line with the elapsed time, redrawn until finish();
// elsewhere: one plain line per phase ("clone 0.02s").
std::unique_ptr<DeployProgress> makeDeployProgress(std::ostream& err, bool terminal,
                                                   const Style& style, const std::string& ticket);

}  // namespace qabox::cli
