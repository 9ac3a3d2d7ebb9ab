#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

// A ticket as Jenkins names it (EXMP-113) and its slug (exmp-113), the DNS
// label under the routing domain and the suffix of the container name.
struct Ticket {
  std::string name;
  std::string slug;
};

// `text` in double quotes for an error message: at most 80 characters,
// control characters shown as '?'.
std::string quoteForMessage(std::string_view text);

// The label under the routing domain that serves the dashboard
// (qabox.<domain>): no ticket's slug may be it.
inline constexpr std::string_view kReservedLabel = "qabox";

// Letters, digits and '-', starting with a letter, ending with a letter or
// digit, at most 63 characters (one DNS label), and not kReservedLabel.
Result<Ticket> parseTicket(std::string_view text);

// A host name as the cluster takes it: one DNS label, lower-case.
Status checkHostName(std::string_view name, std::string_view field);

// Image names: lower-case letters, digits and '-', starting with a letter.
Status checkImageName(std::string_view name);

// Branch names as `git check-ref-format --branch` accepts them, and never
// starting with '-', so they can not be read as an option.
Status checkBranchName(std::string_view field, std::string_view name);

// Environment variable names: [A-Za-z_][A-Za-z0-9_]*. `field` names them in
// messages: env, secret.
Status checkEnvName(std::string_view name, std::string_view field = "env");

}  // namespace qabox
