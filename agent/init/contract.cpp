#include "init/contract.h"

#include <nlohmann/json.hpp>

#include <array>
#include <limits>
#include <utility>

namespace qabox::supervise {
namespace {

using json = nlohmann::json;

constexpr std::array<std::pair<ProcState, std::string_view>, 6> kStates{{
    {ProcState::kWaiting, "waiting"},
    {ProcState::kStarting, "starting"},
    {ProcState::kReady, "ready"},
    {ProcState::kBackoff, "backoff"},
    {ProcState::kStopping, "stopping"},
    {ProcState::kStopped, "stopped"},
}};

// Reads the fields of one JSON object by name, with the path of each in
// its errors ("supervise.json: processes[1].command: must be a string").
class Fields {
 public:
  Fields(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  qabox::Status string(const char* key, std::string& out, bool required = false) const {
    auto it = j_.find(key);
    if (it == j_.end()) return required ? bad(key, "is missing") : qabox::Status::ok();
    if (!it->is_string()) return bad(key, "must be a string");
    out = it->get<std::string>();
    if (out.find('\0') != std::string::npos) return bad(key, "must not contain NUL");
    return qabox::Status::ok();
  }

  template <typename Int>
  qabox::Status integer(const char* key, Int& out) const {
    auto it = j_.find(key);
    if (it == j_.end()) return qabox::Status::ok();
    if (!it->is_number_integer()) return bad(key, "must be a whole number");
    auto v = it->get<int64_t>();
    if (v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        (v > 0 &&
         static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<Int>::max()))) {
      return bad(key, "is out of range");
    }
    out = static_cast<Int>(v);
    return qabox::Status::ok();
  }

  qabox::Status bad(const char* key, const std::string& rule) const {
    return invalidArgument(path_ + "." + key + ": " + rule);
  }

 private:
  const json& j_;
  std::string path_;
};

Result<json> parse(std::string_view text, const char* file) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalidArgument(std::string(file) + ": not valid JSON");
  if (!j.is_object()) return invalidArgument(std::string(file) + ": must be a JSON object");
  return j;
}

Result<ProcessDef> readProcess(const json& j, const std::string& path) {
  if (!j.is_object()) return invalidArgument(path + ": must be an object");
  Fields f(j, path);
  ProcessDef p;
  QABOX_RETURN_IF_ERROR(f.string("name", p.name, true));
  if (!validName(p.name)) return f.bad("name", "must match [a-z][a-z0-9_-]{0,31}");
  std::string stage = "app";
  QABOX_RETURN_IF_ERROR(f.string("stage", stage));
  if (stage != "service" && stage != "app") return f.bad("stage", "must be service or app");
  p.stage = stage == "service" ? Stage::kService : Stage::kApp;
  QABOX_RETURN_IF_ERROR(f.string("command", p.command, true));
  if (p.command.empty()) return f.bad("command", "must not be empty");
  QABOX_RETURN_IF_ERROR(f.string("ready", p.ready));
  QABOX_RETURN_IF_ERROR(f.string("setup", p.setup));
  QABOX_RETURN_IF_ERROR(f.string("user", p.user));
  QABOX_RETURN_IF_ERROR(f.string("cwd", p.cwd));
  if (!p.cwd.empty() && p.cwd.front() != '/') return f.bad("cwd", "must be an absolute path");
  QABOX_RETURN_IF_ERROR(f.integer("stop_timeout_ms", p.stopTimeoutMs));
  return p;
}

}  // namespace

std::string_view stateName(ProcState s) {
  for (const auto& [state, name] : kStates) {
    if (state == s) return name;
  }
  return "unknown";
}

bool validName(std::string_view name) {
  if (name.empty() || name.size() > 32 || name.front() < 'a' || name.front() > 'z') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string toJson(const SuperviseFile& f) {
  json procs = json::array();
  for (const ProcessDef& p : f.processes) {
    procs.push_back({{"name", p.name},
                     {"stage", p.stage == Stage::kService ? "service" : "app"},
                     {"command", p.command},
                     {"ready", p.ready},
                     {"setup", p.setup},
                     {"user", p.user},
                     {"cwd", p.cwd},
                     {"stop_timeout_ms", p.stopTimeoutMs}});
  }
  return json{{"log_max", f.logMax}, {"processes", procs}}.dump(2) + "\n";
}

Result<SuperviseFile> parseSuperviseFile(std::string_view text) {
  QABOX_ASSIGN_OR_RETURN(json j, parse(text, "supervise.json"));
  SuperviseFile f;
  QABOX_RETURN_IF_ERROR(Fields(j, "supervise.json").integer("log_max", f.logMax));
  auto it = j.find("processes");
  if (it == j.end() || !it->is_array()) {
    return invalidArgument("supervise.json: processes: must be a list");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    std::string path = "supervise.json: processes[" + std::to_string(i) + "]";
    QABOX_ASSIGN_OR_RETURN(ProcessDef p, readProcess((*it)[i], path));
    for (const ProcessDef& seen : f.processes) {
      if (seen.name == p.name) return invalidArgument(path + ".name: " + p.name + " twice");
    }
    f.processes.push_back(std::move(p));
  }
  return f;
}

std::string toJson(const InitStatus& s) {
  json procs = json::array();
  for (const ProcessStatus& p : s.processes) {
    procs.push_back({{"name", p.name},
                     {"state", stateName(p.state)},
                     {"pid", p.pid},
                     {"restarts", p.restarts},
                     {"last_exit", p.lastExit},
                     {"since_ms", p.sinceMs},
                     {"message", p.message}});
  }
  return json{{"boot_ms", s.bootMs}, {"processes", procs}}.dump() + "\n";
}

Result<InitStatus> parseStatus(std::string_view text) {
  if (text.size() > kMaxStatusBytes) return invalidArgument("status.json: too long");
  QABOX_ASSIGN_OR_RETURN(json j, parse(text, "status.json"));
  InitStatus s;
  QABOX_RETURN_IF_ERROR(Fields(j, "status.json").integer("boot_ms", s.bootMs));
  auto it = j.find("processes");
  if (it == j.end() || !it->is_array())
    return invalidArgument("status.json: processes: must be a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    std::string path = "status.json: processes[" + std::to_string(i) + "]";
    if (!e.is_object()) return invalidArgument(path + ": must be an object");
    Fields f(e, path);
    ProcessStatus p;
    std::string state;
    QABOX_RETURN_IF_ERROR(f.string("name", p.name, true));
    if (!validName(p.name)) return f.bad("name", "must match [a-z][a-z0-9_-]{0,31}");
    QABOX_RETURN_IF_ERROR(f.string("state", state, true));
    bool known = false;
    for (const auto& [st, name] : kStates) {
      if (name == state) {
        p.state = st;
        known = true;
      }
    }
    if (!known) return f.bad("state", "is not a state");
    QABOX_RETURN_IF_ERROR(f.integer("pid", p.pid));
    QABOX_RETURN_IF_ERROR(f.integer("restarts", p.restarts));
    QABOX_RETURN_IF_ERROR(f.integer("last_exit", p.lastExit));
    QABOX_RETURN_IF_ERROR(f.integer("since_ms", p.sinceMs));
    QABOX_RETURN_IF_ERROR(f.string("message", p.message));
    if (p.message.size() > 1024) p.message.resize(1024);
    s.processes.push_back(std::move(p));
  }
  return s;
}

}  // namespace qabox::supervise
