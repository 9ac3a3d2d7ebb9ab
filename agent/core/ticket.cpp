#include "core/ticket.h"
#include "core/ascii.h"

#include <cctype>

namespace qabox {
namespace {

bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string quoteForMessage(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

Result<Ticket> parseTicket(std::string_view text) {
  auto bad = [&](const std::string& rule) {
    return invalidArgument("ticket " + quoteForMessage(text) + ": " + rule);
  };
  if (text.empty()) return invalidArgument("ticket: must not be empty (for example EXMP-113)");
  if (text.size() > 63) return bad("at most 63 characters are allowed");
  for (char c : text) {
    if (!isAlpha(c) && !isDigit(c) && c != '-') {
      return bad("only letters, digits and '-' are allowed");
    }
  }
  if (!isAlpha(text.front())) return bad("must start with a letter");
  if (text.back() == '-') return bad("must end with a letter or digit");
  Ticket t;
  t.name = std::string(text);
  t.slug = asciiLowered(text);
  if (t.slug == kReservedLabel) {
    return bad("qabox.<domain> is the dashboard's; choose another ticket");
  }
  return t;
}

Status checkHostName(std::string_view name, std::string_view field) {
  bool ok = !name.empty() && name.size() <= 63 &&
            std::isalnum(static_cast<unsigned char>(name[0])) && name.back() != '-';
  for (unsigned char c : name) {
    if (!(std::islower(c) || std::isdigit(c) || c == '-')) ok = false;
  }
  if (!ok) {
    return invalidArgument(std::string(field) + " " + quoteForMessage(name) +
                           ": use lower-case letters, digits and '-' (one DNS label)");
  }
  return Status::ok();
}

Status checkImageName(std::string_view name) {
  if (name.empty()) return invalidArgument("image: must not be empty (for example busybox)");
  if (name.size() > 40) {
    return invalidArgument("image " + quoteForMessage(name) +
                           ": at most 40 characters are allowed");
  }
  for (char c : name) {
    if (!(c >= 'a' && c <= 'z') && !isDigit(c) && c != '-') {
      return invalidArgument("image " + quoteForMessage(name) +
                             ": only lower-case letters, digits and '-' are allowed");
    }
  }
  if (!(name.front() >= 'a' && name.front() <= 'z')) {
    return invalidArgument("image " + quoteForMessage(name) + ": must start with a letter");
  }
  return Status::ok();
}

Status checkBranchName(std::string_view field, std::string_view name) {
  auto bad = [&](const std::string& rule) {
    return invalidArgument(std::string(field) + " " + quoteForMessage(name) + ": " + rule);
  };
  if (name.empty()) return invalidArgument(std::string(field) + ": must not be empty");
  if (name.size() > 255) return bad("at most 255 characters are allowed");
  if (name.front() == '-') return bad("must not start with '-'");
  if (name.front() == '/' || name.back() == '/') return bad("must not start or end with '/'");
  if (name.back() == '.') return bad("must not end with '.'");
  if (name == "@") return bad("must not be '@'");
  if (name.find("..") != std::string_view::npos) return bad("must not contain '..'");
  if (name.find("//") != std::string_view::npos) return bad("must not contain '//'");
  if (name.find("@{") != std::string_view::npos) return bad("must not contain '@{'");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\') {
      return bad("must not contain spaces, control characters or any of ~ ^ : ? * [ \\");
    }
  }
  // Each '/'-separated component: no leading '.', no ".lock" suffix.
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (!part.empty() && part.front() == '.') return bad("no path component may start with '.'");
    if (part.size() >= 5 && part.substr(part.size() - 5) == ".lock") {
      return bad("no path component may end with '.lock'");
    }
    start = end + 1;
  }
  return Status::ok();
}

Status checkEnvName(std::string_view name, std::string_view field) {
  if (name.empty())
    return invalidArgument(std::string(field) + ": variable name must not be empty");
  bool ok = isAlpha(name.front()) || name.front() == '_';
  for (char c : name) ok = ok && (isAlpha(c) || isDigit(c) || c == '_');
  if (!ok || name.size() > 128) {
    return invalidArgument(std::string(field) + " " + quoteForMessage(name) +
                           ": names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)");
  }
  return Status::ok();
}

}  // namespace qabox
