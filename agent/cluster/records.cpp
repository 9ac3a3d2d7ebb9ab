#include "cluster/records.h"

#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/endpoint.h"
#include "core/ticket.h"

namespace qabox::cluster {
namespace {

using nlohmann::json;

constexpr size_t kMaxText = 256;

Status bad(const std::string& what, const std::string& why) {
  return invalidArgument(what + ": " + why);
}

Result<json> parseObject(const std::string& text, const std::string& what) {
  if (text.size() > kMaxRecordBytes) return bad(what, "over 64 KiB");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad(what, "not a JSON object");
  return j;
}

Result<std::string> text(const json& j, const char* key, const std::string& what, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return bad(what, std::string("\"") + key + "\" is missing");
    return std::string();
  }
  if (!it->is_string()) return bad(what, std::string("\"") + key + "\" is not a string");
  std::string s = it->get<std::string>();
  if (s.size() > kMaxText) return bad(what, std::string("\"") + key + "\" is over 256 bytes");
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return bad(what, std::string("\"") + key + "\" has control characters");
    }
  }
  return s;
}

template <typename T>
Result<T> number(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end()) return T{0};
  const std::string name = std::string("\"") + key + "\"";
  if (it->is_number_unsigned()) {
    auto v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max()))
      return bad(what, name + " is too large");
    return static_cast<T>(v);
  }
  if (it->is_number_integer()) {
    auto v = it->get<int64_t>();
    if (v < 0 && std::is_unsigned_v<T>) return bad(what, name + " is negative");
    return static_cast<T>(v);
  }
  return bad(what, name + " is not a whole number");
}

Status checkAddress(const std::string& value, const std::string& what) {
  auto hp = parseHostPort(value, what);
  if (!hp) return hp.status();
  if (hp->host.empty() || hp->port == 0) return bad(what, "needs a host and a port");
  return Status::ok();
}

}  // namespace

std::string encodeHost(const HostFacts& h) {
  json j = {{"name", h.name},
            {"api", h.api},
            {"router", h.router},
            {"version", h.version},
            {"capacity", h.capacity},
            {"environments", h.environments},
            {"free_memory_bytes", h.freeMemoryBytes},
            {"free_disk_bytes", h.freeDiskBytes},
            {"images", h.images},
            {"started_at", h.startedAtUnix}};
  return j.dump();
}

Result<HostFacts> decodeHost(const std::string& jsonText) {
  const std::string what = "host record";
  QABOX_ASSIGN_OR_RETURN(json j, parseObject(jsonText, what));
  HostFacts h;
  QABOX_ASSIGN_OR_RETURN(h.name, text(j, "name", what, true));
  QABOX_RETURN_IF_ERROR(checkHostName(h.name, what + " name"));
  QABOX_ASSIGN_OR_RETURN(h.api, text(j, "api", what, true));
  QABOX_RETURN_IF_ERROR(checkAddress(h.api, what + " api"));
  QABOX_ASSIGN_OR_RETURN(h.router, text(j, "router", what, true));
  QABOX_RETURN_IF_ERROR(checkAddress(h.router, what + " router"));
  QABOX_ASSIGN_OR_RETURN(h.version, text(j, "version", what, false));
  QABOX_ASSIGN_OR_RETURN(h.capacity, number<uint32_t>(j, "capacity", what));
  QABOX_ASSIGN_OR_RETURN(h.environments, number<uint32_t>(j, "environments", what));
  QABOX_ASSIGN_OR_RETURN(h.freeMemoryBytes, number<uint64_t>(j, "free_memory_bytes", what));
  QABOX_ASSIGN_OR_RETURN(h.freeDiskBytes, number<uint64_t>(j, "free_disk_bytes", what));
  QABOX_ASSIGN_OR_RETURN(h.startedAtUnix, number<int64_t>(j, "started_at", what));
  if (auto it = j.find("images"); it != j.end()) {
    if (!it->is_array()) return bad(what, "\"images\" is not a list");
    if (it->size() > kMaxImages) return bad(what, "\"images\" has over 256 entries");
    for (const auto& img : *it) {
      if (!img.is_string() || !checkImageName(img.get<std::string>()).isOk()) {
        return bad(what, "\"images\" holds a name that is not an image name");
      }
      h.images.push_back(img.get<std::string>());
    }
  }
  return h;
}

std::string encodeTicket(const TicketEntry& t) {
  return json{{"ticket", t.ticket}, {"host", t.host}, {"placed_at", t.placedAtUnix}}.dump();
}

Result<TicketEntry> decodeTicket(const std::string& jsonText) {
  const std::string what = "ticket record";
  QABOX_ASSIGN_OR_RETURN(json j, parseObject(jsonText, what));
  TicketEntry t;
  QABOX_ASSIGN_OR_RETURN(t.ticket, text(j, "ticket", what, true));
  if (auto parsed = parseTicket(t.ticket); !parsed) return bad(what, parsed.status().message());
  QABOX_ASSIGN_OR_RETURN(t.host, text(j, "host", what, true));
  QABOX_RETURN_IF_ERROR(checkHostName(t.host, what + " host"));
  QABOX_ASSIGN_OR_RETURN(t.placedAtUnix, number<int64_t>(j, "placed_at", what));
  return t;
}

}  // namespace qabox::cluster
