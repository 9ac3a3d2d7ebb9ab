#include "deploy/manifest.h"

#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>

#include "core/environment.h"
#include "core/ticket.h"
#include "init/contract.h"

namespace qabox {
namespace {

std::string inQuotes(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

// Reads typed keys from one table and remembers which it saw, so a typo is an
// error naming it rather than a setting silently ignored.
class Reader {
 public:
  // `file` prefixes every message ("qabox.toml: "), `table` every key ("app.").
  Reader(const toml::table& table, std::string file, std::string tableName)
      : table_(table), file_(std::move(file)), tableName_(std::move(tableName)) {}

  Status string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (!n) return Status::ok();
    const auto* v = n->as_string();
    if (!v) return bad(key, "must be a string");
    if (v->get().find('\0') != std::string::npos) return bad(key, "must not contain NUL");
    out = v->get();
    return Status::ok();
  }

  Status integer(std::string_view key, int64_t min, int64_t max, std::optional<int64_t>& out) {
    const toml::node* n = get(key);
    if (!n) return Status::ok();
    const auto* v = n->as_integer();
    if (!v) return bad(key, "must be a whole number");
    if (v->get() < min || v->get() > max) {
      return bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = v->get();
    return Status::ok();
  }

  Status strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (!n) return Status::ok();
    const auto* a = n->as_array();
    if (!a) return bad(key, "must be a list of strings");
    out.clear();
    for (const auto& e : *a) {
      const auto* v = e.as_string();
      if (!v) return bad(key, "must be a list of strings");
      if (v->get().find('\0') != std::string::npos) return bad(key, "must not contain NUL");
      out.push_back(v->get());
    }
    return Status::ok();
  }

  // Each key of sub-table `key` (a table of named entries, in name order):
  // a valid process name (its log is NAME.log), handed to `body` with the
  // sub-table's reader, which then reads it.
  Status named(std::string_view key,
               const std::function<Status(Reader& sub, const std::string& entry)>& body) {
    return table(key, [&](Reader& sub) -> Status {
      for (const auto& [k, v] : sub.table_) {
        std::string entry(k.str());
        if (!supervise::validName(entry)) {
          return invalidArgument(file_ + name(key) + " " + inQuotes(entry) +
                                 ": a name must match [a-z][a-z0-9_-]{0,31}");
        }
        QABOX_RETURN_IF_ERROR(body(sub, entry));
      }
      return Status::ok();
    });
  }

  // Every key of this table as a string value, into `out`.
  Status allStrings(std::map<std::string, std::string>& out) {
    for (const auto& [k, v] : table_) {
      std::string key(k.str());
      std::string value;
      QABOX_RETURN_IF_ERROR(string(key, value));
      out[key] = value;
    }
    return Status::ok();
  }

  // Runs `body` on sub-table `key` if present.
  Status table(std::string_view key, const std::function<Status(Reader&)>& body) {
    const toml::node* n = get(key);
    if (!n) return Status::ok();
    const toml::table* t = n->as_table();
    if (!t) return bad(key, "must be a table ([" + name(key) + "])");
    Reader sub(*t, file_, name(key));
    QABOX_RETURN_IF_ERROR(body(sub));
    return sub.noUnknownKeys();
  }

  Status noUnknownKeys() const {
    for (const auto& [k, v] : table_) {
      std::string key(k.str());
      if (!seen_.count(key)) return bad(key, "unknown key");
    }
    return Status::ok();
  }

  Status bad(std::string_view key, const std::string& rule) const {
    return invalidArgument(file_ + name(key) + ": " + rule);
  }
  Status badValue(std::string_view key, std::string_view value, const std::string& rule) const {
    return invalidArgument(file_ + name(key) + " " + inQuotes(value) + ": " + rule);
  }

 private:
  const toml::node* get(std::string_view key) {
    seen_.insert(std::string(key));
    return table_.get(key);
  }
  std::string name(std::string_view key) const {
    return tableName_.empty() ? std::string(key) : tableName_ + "." + std::string(key);
  }

  const toml::table& table_;
  std::string file_;
  std::string tableName_;
  std::set<std::string> seen_;
};

// Debian policy 5.6.1: at least two characters, lowercase letters, digits,
// '+', '-' and '.', starting with a letter or digit.
bool isDebianPackageName(std::string_view p) {
  if (p.size() < 2 || p.size() > 128) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(p.front())) return false;
  for (char c : p) {
    if (!alnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

Result<toml::table> parseToml(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << file << "line " << e.source().begin.line << ", column " << e.source().begin.column
        << ": " << e.description();
    return invalidArgument(msg.str());
  } catch (const std::exception& e) {
    return invalidArgument(file + e.what());
  }
}

constexpr std::string_view kPassword = "${password}";

// A user name as useradd takes it.
bool isUserName(std::string_view u) {
  if (u.empty() || u.size() > 32) return false;
  if (!((u[0] >= 'a' && u[0] <= 'z') || u[0] == '_')) return false;
  for (char c : u) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

// "${password}" is the one thing expanded, and only in env values: a
// command sees the password through those variables.
Status checkPasswordUse(Reader& r, std::string_view key, const std::string& value, bool env) {
  for (size_t at = value.find("${"); at != std::string::npos; at = value.find("${", at + 2)) {
    if (!env) {
      return r.badValue(key, value,
                        "${...} is not expanded here; ${password} is expanded only in the "
                        "service's env values, which the command sees as variables");
    }
    if (value.compare(at, kPassword.size(), kPassword) != 0) {
      return r.badValue(key, value, "only ${password} is expanded");
    }
  }
  return Status::ok();
}

// A plain relative path (a [deps] files or [data] depends entry, a
// service's data dir without its leading '/').
Status checkRepoStylePath(Reader& r, const char* key, const std::string& f) {
  if (f.empty()) return r.badValue(key, f, "must not be empty");
  if (f.size() > 256) return r.badValue(key, f, "at most 256 characters are allowed");
  if (f[0] == '/') return r.badValue(key, f, "must be a path in the repo, not absolute");
  for (char c : f) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') {
      return r.badValue(key, f, "must not hold control characters or backslashes");
    }
  }
  size_t start = 0;
  while (start <= f.size()) {
    size_t end = f.find('/', start);
    if (end == std::string::npos) end = f.size();
    std::string_view part(f.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return r.badValue(key, f, "must not hold empty, '.' or '..' parts");
    }
    if (part == ".git") return r.badValue(key, f, "must not name .git");
    start = end + 1;
  }
  return Status::ok();
}

Status readService(Reader& r, ServiceDef& s) {
  QABOX_RETURN_IF_ERROR(r.string("run", s.run));
  if (s.run.empty()) return r.bad("run", "must be set: the service's command, in the foreground");
  QABOX_RETURN_IF_ERROR(r.string("ready", s.ready));
  QABOX_RETURN_IF_ERROR(r.string("setup", s.setup));
  QABOX_RETURN_IF_ERROR(r.string("user", s.user));
  if (!s.user.empty() && !isUserName(s.user)) {
    return r.badValue("user", s.user, "must be a user name ([a-z_][a-z0-9_.-]{0,31})");
  }
  QABOX_RETURN_IF_ERROR(r.string("data", s.data));
  if (!s.data.empty()) {
    if (s.data.front() != '/' || s.data == "/") {
      return r.badValue("data", s.data, "must be an absolute directory such as /var/lib/NAME");
    }
    QABOX_RETURN_IF_ERROR(checkRepoStylePath(r, "data", s.data.substr(1)));
  }
  for (const auto& [key, value] :
       {std::pair{"run", &s.run}, {"ready", &s.ready}, {"setup", &s.setup}}) {
    QABOX_RETURN_IF_ERROR(checkPasswordUse(r, key, *value, false));
  }
  return r.table("env", [&](Reader& e) -> Status {
    QABOX_RETURN_IF_ERROR(e.allStrings(s.env));
    for (const auto& [k, v] : s.env) {
      if (Status st = checkEnvName(k); !st.isOk()) {
        return e.bad(k, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)");
      }
      QABOX_RETURN_IF_ERROR(checkPasswordUse(e, k, v, true));
    }
    return Status::ok();
  });
}

Status readApp(Reader& r, AppManifest& m, bool isApp) {
  QABOX_RETURN_IF_ERROR(r.string("start", m.start));
  if (isApp) QABOX_RETURN_IF_ERROR(r.string("process", m.process));
  std::optional<int64_t> port;
  QABOX_RETURN_IF_ERROR(r.integer("port", 1, 65535, port));
  if (port) m.port = static_cast<uint32_t>(*port);
  QABOX_RETURN_IF_ERROR(r.string("health", m.health));
  if (!m.health.empty()) {
    if (m.health.front() != '/') return r.badValue("health", m.health, "must start with '/'");
    if (m.health.size() > 1024) return r.bad("health", "at most 1024 characters are allowed");
    for (char c : m.health) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f) {
        return r.badValue("health", m.health, "must not contain spaces or control characters");
      }
    }
  }
  return Status::ok();
}

Status readHooks(Reader& r, AppManifest& m) {
  QABOX_RETURN_IF_ERROR(r.string("build", m.build));
  QABOX_RETURN_IF_ERROR(r.string("migrate", m.migrate));
  return r.string("seed", m.seed);
}

// The names a supervised environment's processes go by are its logs'
// names: one name, one process.
Status checkProcessNames(const AppManifest& m, const std::string& file) {
  for (const auto& [name, command] : m.processes) {
    if (std::binary_search(m.services.begin(), m.services.end(), name)) {
      return invalidArgument(file + "processes." + name + ": named twice: the service " + name +
                             " runs under that name");
    }
    if (name == kDefaultProcess && m.process.empty()) {
      return invalidArgument(file + "processes." + name +
                             ": named twice: without app.process, [app] start runs as process "
                             "\"" +
                             kDefaultProcess + "\"");
    }
  }
  if (!m.process.empty() && !m.processes.count(m.process)) {
    std::string names;
    for (const auto& [name, command] : m.processes) names += (names.empty() ? "" : ", ") + name;
    return invalidArgument(
        file + "app.process " + inQuotes(m.process) + ": names no [processes] entry (" +
        (names.empty() ? std::string("there are none") : "there are: " + names) + ")");
  }
  return Status::ok();
}

Status readDeps(Reader& r, DepsDef& d) {
  QABOX_RETURN_IF_ERROR(r.strings("files", d.files));
  QABOX_RETURN_IF_ERROR(r.string("install", d.install));
  if (d.install.empty()) return r.bad("install", "must be a command");
  if (d.install.size() > 4096) return r.bad("install", "at most 4096 characters are allowed");
  if (d.files.empty()) return r.bad("files", "must name at least one file");
  if (d.files.size() > 32) return r.bad("files", "at most 32 files are allowed");
  std::set<std::string> seen;
  for (const auto& f : d.files) {
    QABOX_RETURN_IF_ERROR(checkRepoStylePath(r, "files", f));
    if (!seen.insert(f).second) return r.badValue("files", f, "named twice");
  }
  return Status::ok();
}

Status readData(Reader& r, DataDef& d) {
  QABOX_RETURN_IF_ERROR(r.string("seed", d.seed));
  QABOX_RETURN_IF_ERROR(r.strings("depends", d.depends));
  if (d.seed.empty()) return r.bad("seed", "must be a command");
  if (d.seed.size() > 4096) return r.bad("seed", "at most 4096 characters are allowed");
  if (d.depends.empty()) {
    return r.bad("depends",
                 "must name what the dataset is built from (its migrations, its seed files): it "
                 "is rebuilt when they change on the target branch");
  }
  if (d.depends.size() > 32) return r.bad("depends", "at most 32 paths are allowed");
  std::set<std::string> seen;
  for (const auto& f : d.depends) {
    QABOX_RETURN_IF_ERROR(checkRepoStylePath(r, "depends", f));
    if (!seen.insert(f).second) return r.badValue("depends", f, "named twice");
  }
  return Status::ok();
}

}  // namespace

Result<AppManifest> parseAppManifest(std::string_view text) {
  const std::string file = std::string(kAppManifestFile) + ": ";
  QABOX_ASSIGN_OR_RETURN(toml::table root, parseToml(text, file));
  AppManifest m;
  Reader top(root, file, "");
  QABOX_RETURN_IF_ERROR(top.table("app", [&](Reader& r) { return readApp(r, m, true); }));
  QABOX_RETURN_IF_ERROR(top.table("hooks", [&](Reader& r) { return readHooks(r, m); }));
  QABOX_RETURN_IF_ERROR(top.named("services", [&](Reader& r, const std::string& name) {
    m.services.push_back(name);
    // An empty table: the image says how the service runs.
    return r.table(name, [](Reader&) { return Status::ok(); });
  }));
  QABOX_RETURN_IF_ERROR(top.named("processes", [&](Reader& r, const std::string& name) -> Status {
    std::string& command = m.processes[name];
    QABOX_RETURN_IF_ERROR(r.string(name, command));
    if (command.empty()) return r.bad(name, "must be a command");
    return Status::ok();
  }));
  QABOX_RETURN_IF_ERROR(top.table("deps", [&](Reader& r) { return readDeps(r, m.deps); }));
  QABOX_RETURN_IF_ERROR(top.table("data", [&](Reader& r) { return readData(r, m.data); }));
  QABOX_RETURN_IF_ERROR(top.noUnknownKeys());
  QABOX_RETURN_IF_ERROR(checkProcessNames(m, file));
  return m;
}

Result<ImageManifest> parseImageManifest(std::string_view text, std::string_view name) {
  QABOX_RETURN_IF_ERROR(checkImageName(name));
  QABOX_ASSIGN_OR_RETURN(toml::table root, parseToml(text, ""));
  ImageManifest m;
  m.name = std::string(name);
  Reader top(root, "", "");
  QABOX_RETURN_IF_ERROR(top.string("description", m.description));
  QABOX_RETURN_IF_ERROR(top.string("provision", m.provision));
  // Run from the image's folder: a plain file name keeps it there.
  if (m.provision.empty() || m.provision.find('/') != std::string::npos ||
      m.provision.front() == '.') {
    return top.badValue("provision", m.provision,
                        "must be the name of a script in the image's folder, such as provision.sh");
  }
  QABOX_RETURN_IF_ERROR(top.string("from", m.from));
  if (!m.from.empty()) {
    if (Status s = checkImageName(m.from); !s.isOk())
      return top.badValue("from", m.from, s.message());
    if (m.from == m.name) return top.badValue("from", m.from, "an image cannot be built on itself");
  }
  QABOX_RETURN_IF_ERROR(top.strings("packages", m.packages));
  for (const std::string& p : m.packages) {
    if (!isDebianPackageName(p)) {
      return top.badValue(
          "packages", p, "is not a Debian package name (lowercase letters, digits, '+', '-', '.')");
    }
  }
  QABOX_RETURN_IF_ERROR(top.string("init", m.init));
  if (!m.init.empty() && m.init != kSupervisorInit) {
    return top.badValue("init", m.init,
                        std::string("must be \"") + kSupervisorInit +
                            "\" (or unset: the image's own init, which runs only app.run)");
  }
  QABOX_RETURN_IF_ERROR(top.named("services", [&](Reader& r, const std::string& name) {
    ServiceDef& s = m.services[name];
    s.name = name;
    return r.table(name, [&](Reader& sr) { return readService(sr, s); });
  }));
  QABOX_RETURN_IF_ERROR(top.table("app", [&](Reader& r) { return readApp(r, m.defaults, false); }));
  QABOX_RETURN_IF_ERROR(top.table("hooks", [&](Reader& r) { return readHooks(r, m.defaults); }));
  QABOX_RETURN_IF_ERROR(top.table("limits", [&](Reader& r) -> Status {
    QABOX_RETURN_IF_ERROR(r.string("memory", m.memory));
    if (!m.memory.empty() && !parseMemorySize(m.memory)) {
      return r.badValue("memory", m.memory, "must be a size such as 256M, 1G or 524288K");
    }
    std::optional<int64_t> v;
    QABOX_RETURN_IF_ERROR(r.integer("cpus", 1, 1024, v));
    if (v) m.cpus = static_cast<uint32_t>(*v);
    v.reset();
    QABOX_RETURN_IF_ERROR(r.integer("pids", 1, 4194304, v));
    if (v) m.pids = static_cast<uint32_t>(*v);
    return Status::ok();
  }));
  QABOX_RETURN_IF_ERROR(top.noUnknownKeys());
  return m;
}

AppManifest mergeManifests(const ImageManifest& image, const AppManifest& app) {
  const AppManifest& d = image.defaults;
  auto pick = [](const std::string& mine, const std::string& fallback) {
    return mine.empty() ? fallback : mine;
  };
  AppManifest m;
  m.start = pick(app.start, d.start);
  m.port = app.port ? app.port : d.port;
  m.health = pick(app.health, d.health);
  m.build = pick(app.build, d.build);
  m.migrate = pick(app.migrate, d.migrate);
  m.seed = pick(app.seed, d.seed);
  // Only the app turns services on and names processes.
  m.services = app.services;
  m.processes = app.processes;
  m.process = app.process;
  m.deps = app.deps;
  m.data = app.data;
  return m;
}

std::string routedProcess(const AppManifest& m) {
  return m.process.empty() ? kDefaultProcess : m.process;
}

std::string routedCommand(const AppManifest& m) {
  auto it = m.processes.find(m.process);
  return m.process.empty() || it == m.processes.end() ? m.start : it->second;
}

Status checkImageFits(const ImageManifest& image, const AppManifest& app) {
  const std::string file = std::string(kAppManifestFile) + ": ";
  std::string has;
  for (const auto& [name, def] : image.services) has += (has.empty() ? "" : ", ") + name;
  for (const std::string& name : app.services) {
    if (!image.services.count(name)) {
      return failedPrecondition(
          file + "services." + name + ": image " + image.name + " has no service " + name + " (" +
          (has.empty() ? std::string("it has none") : "it has: " + has) + ")");
    }
  }
  if (image.init != kSupervisorInit && (!app.services.empty() || !app.processes.empty())) {
    return failedPrecondition(file + (app.services.empty() ? "processes" : "services") +
                              ": image " + image.name + " has no init = \"" + kSupervisorInit +
                              "\" to supervise them: it runs only [app] start");
  }
  if (!app.data.seed.empty()) {
    bool keeps = false;
    for (const std::string& name : app.services)
      keeps = keeps || !image.services.at(name).data.empty();
    if (!keeps) {
      return failedPrecondition(file + "data: none of the app's services keeps data on image " +
                                image.name +
                                " (turn on one whose image.toml sets data, such as "
                                "[services.postgres])");
    }
  }
  return Status::ok();
}

Status checkRunnable(const AppManifest& m) {
  if (routedCommand(m).empty()) {
    return failedPrecondition(std::string(kAppManifestFile) +
                              ": app.start: not set by the app nor by its image");
  }
  if (!m.health.empty() && !m.port) {
    return failedPrecondition(std::string(kAppManifestFile) +
                              ": app.port: needed to check app.health, set by neither the app "
                              "nor its image");
  }
  return Status::ok();
}

}  // namespace qabox
