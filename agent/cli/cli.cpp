#include "cli/cli.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdlib>

#include "cli/app.h"
#include "cli/exit_code.h"
#include "core/duration.h"

namespace qabox::cli {
namespace {

std::string commandPath(const CLI::App* app) {
  std::string path;
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    std::string name = a->get_parent() == nullptr ? std::string(kProgram) : a->get_name();
    path = path.empty() ? name : name + " " + path;
  }
  return path;
}

}  // namespace

std::chrono::milliseconds durationOrUsage(const std::string& flag, const std::string& text) {
  auto d = parseDuration(text);
  if (!d) throw UsageError(flag + ": " + d.status().message());
  return *d;
}

google::protobuf::Duration toProtoDuration(std::chrono::milliseconds d) {
  return google::protobuf::util::TimeUtil::MillisecondsToDuration(d.count());
}

std::map<std::string, std::string> assignments(const std::string& flag,
                                               const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    if (key.empty()) throw UsageError(flag + " \"" + item + "\": give KEY=VALUE");
    if (eq != std::string::npos) {
      out[key] = item.substr(eq + 1);
      continue;
    }
    const char* value = std::getenv(key.c_str());
    if (value == nullptr) {
      throw UsageError(flag + " " + key + ": give KEY=VALUE, or set " + key +
                       " in the environment");
    }
    out[key] = value;
  }
  return out;
}

Cli::Cli(std::ostream& out, std::ostream& err, const RunOptions& options)
    : out_(out), err_(err), options_(options) {
  const char* noColor = std::getenv("NO_COLOR");
  bool colorAllowed = noColor == nullptr || noColor[0] == '\0';
  outStyle_.color = colorAllowed && options.stdoutIsTerminal;
  errStyle_.color = colorAllowed && options.stderrIsTerminal;
  define();
}

int Cli::run(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app_.exit(e, out_, err_);
    return usageError(e.what());
  }
  for (const auto& [app, action] : actions_) {
    if (!app->parsed()) continue;
    try {
      return action();
    } catch (const UsageError& e) {
      return usageError(e.what());
    } catch (const std::exception& e) {
      err_ << "qabox: " << e.what() << "\n";
      return kExitError;
    }
  }
  return usageError("a command is required");
}

int Cli::usageError(std::string message) {
  CLI::App* leaf = &app_;
  while (!leaf->get_subcommands().empty()) leaf = leaf->get_subcommands().front();
  std::string path = commandPath(leaf);
  if (leaf->get_require_subcommand_min() > 0 && leaf->get_subcommands().empty()) {
    // Unknown words fall through to the top, so look there too.
    auto remaining = app_.remaining(true);
    auto word = std::find_if(remaining.begin(), remaining.end(),
                             [](const std::string& w) { return !w.empty() && w[0] != '-'; });
    message =
        word == remaining.end() ? "a command is required" : "unknown command \"" + *word + "\"";
  }
  if (leaf->get_name() == "exec" && message.find("not expected") != std::string::npos) {
    message += " (put -- before the command)";
  }
  err_ << "qabox: " << message << "\n"
       << CLI::Formatter().make_usage(leaf, path) << "Run '" << path << " --help' for more.\n";
  return kExitUsage;
}

Output Cli::output() const {
  if (output_ == "json") return Output::kJson;
  if (output_ == "name") return Output::kName;
  return Output::kTable;
}

// Connects lazily so --help and usage errors never need an agent or a
// config file. Returns the exit code when there is no client.
std::optional<int> Cli::connect() {
  if (client_) return std::nullopt;
  ConnectionFlags flags;
  if (!endpoint_.empty()) flags.endpoint = endpoint_;
  if (!token_.empty()) flags.token = token_;
  if (!caCert_.empty()) flags.caCert = caCert_;
  if (!cert_.empty()) flags.cert = cert_;
  if (!key_.empty()) flags.key = key_;
  auto conn = resolveConnectionFromProcess(flags);
  if (!conn) {
    err_ << "qabox: " << conn.status().message() << "\n";
    return kExitError;
  }
  auto client = Client::create(std::move(conn).value());
  if (!client) {
    err_ << "qabox: " << client.status().message() << "\n";
    return kExitError;
  }
  client_ = std::move(client).value();
  return std::nullopt;
}

// The message on stdout in the chosen format; `table` is only rendered
// when asked for.
int Cli::emit(const google::protobuf::Message& message, const std::function<std::string()>& table,
              const std::vector<std::string>& names) {
  switch (output()) {
    case Output::kJson: out_ << toJson(message) << "\n"; break;
    case Output::kName:
      for (const auto& n : names) out_ << n << "\n";
      break;
    case Output::kTable: out_ << table(); break;
  }
  out_.flush();
  return kExitOk;
}

int runCli(int argc, char** argv, std::ostream& out, std::ostream& err, const RunOptions& options) {
  try {
    Cli cli(out, err, options);
    return cli.run(argc, argv);
  } catch (const std::exception& e) {
    err << "qabox: " << e.what() << "\n";
    return kExitError;
  }
}

int runCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  return runCli(argc, argv, out, err, RunOptions{});
}

}  // namespace qabox::cli
