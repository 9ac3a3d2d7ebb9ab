#include "cli/completion.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <set>
#include <sstream>
#include <vector>

namespace qabox::cli {
namespace {

struct Command {
  std::string path;                    // "image build"
  std::vector<std::string> spellings;  // "list" and "ls"
  std::vector<std::string> children;   // names and aliases of subcommands
  std::vector<std::string> options;    // "--tail", "-f", ...
  std::string dynamic;                 // "ticket", "image", "token" or empty
};

std::vector<std::string> optionNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
  }
  return names;
}

void collect(const CLI::App& app, const std::string& path, const std::vector<std::string>& prefixes,
             std::vector<Command>& out, std::set<std::string>& valueOptions) {
  Command cmd;
  cmd.path = path;
  for (const auto& p : prefixes) cmd.spellings.push_back(p);
  cmd.options = optionNames(app);
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_positional()) {
      std::string name = opt->get_name(true);
      if (cmd.dynamic.empty() && (name == "ticket" || name == "image" || name == "token")) {
        cmd.dynamic = name;
      }
    } else if (opt->get_type_size() > 0) {
      for (const auto& s : opt->get_snames()) valueOptions.insert("-" + s);
      for (const auto& l : opt->get_lnames()) valueOptions.insert("--" + l);
    }
  }
  auto subs = app.get_subcommands([](const CLI::App*) { return true; });
  for (const CLI::App* sub : subs) {
    cmd.children.push_back(sub->get_name());
    for (const auto& a : sub->get_aliases()) cmd.children.push_back(a);
  }
  out.push_back(cmd);
  for (const CLI::App* sub : subs) {
    std::vector<std::string> spellings;
    std::vector<std::string> names = {sub->get_name()};
    for (const auto& a : sub->get_aliases()) names.push_back(a);
    for (const auto& prefix : prefixes) {
      for (const auto& n : names) spellings.push_back(prefix.empty() ? n : prefix + " " + n);
    }
    collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), spellings, out,
            valueOptions);
  }
}

std::string join(const std::vector<std::string>& words, const char* sep = " ") {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

std::string quotedAlternatives(const std::vector<std::string>& spellings) {
  std::vector<std::string> quoted;
  for (const auto& s : spellings) quoted.push_back("\"" + s + "\"");
  return join(quoted, "|");
}

// The script's start: the helper that asks the agent, and the function up
// to the loop over the words before the cursor.
void writePrologue(std::ostream& s, const std::string& program, const std::string& fn) {
  s << "# bash completion for " << program << "\n"
    << "#   source <(" << program << " completion bash)\n"
    << "# or save it as /etc/bash_completion.d/" << program << "\n"
    << fn << "_ask() {\n"
    << "  \"${" << fn << "_cmd}\" \"${" << fn << "_globals[@]}\" \"$@\" -o name 2>/dev/null\n"
    << "}\n"
    << fn << "() {\n"
    << "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
    << "  local path=\"\" npos=0 skip=\"\" i w\n"
    << "  " << fn << "_cmd=\"${COMP_WORDS[0]}\"\n"
    << "  " << fn << "_globals=()\n"
    << "  local joining=\"\"\n"
    << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
    << "    w=\"${COMP_WORDS[i]}\"\n"
    // COMP_WORDBREAKS splits unix:///path and host:port at ':'.
    << "    if [[ -n $joining ]]; then\n"
    << "      if [[ $w == : || ${" << fn << "_globals[-1]} == *: ]]; then\n"
    << "        " << fn << "_globals[-1]+=\"$w\"\n"
    << "        continue\n"
    << "      fi\n"
    << "      joining=\"\"\n"
    << "    fi\n"
    << "    if [[ -n $skip ]]; then\n"
    << "      if [[ $skip == global ]]; then " << fn << "_globals+=(\"$w\"); joining=1; fi\n"
    << "      skip=\"\"\n"
    << "      continue\n"
    << "    fi\n"
    << "    case \"$w\" in\n"
    // After "--" the words belong to the command run by exec.
    << "      --) compopt -o default 2>/dev/null; COMPREPLY=(); return 0 ;;\n";
}

// The loop: which command the words so far name, and the global options
// they carry (passed on when asking the agent).
void writeWordLoop(std::ostream& s, const std::vector<Command>& commands,
                   const std::set<std::string>& valueOptions, const std::string& fn) {
  s << "      --endpoint|--token|--ca-cert) " << fn << "_globals+=(\"$w\"); skip=global ;;\n"
    << "      --endpoint=*|--token=*|--ca-cert=*) " << fn << "_globals+=(\"$w\"); joining=1 ;;\n";
  std::vector<std::string> otherValueOptions;
  for (const auto& o : valueOptions) {
    if (o != "--endpoint" && o != "--token" && o != "--ca-cert") otherValueOptions.push_back(o);
  }
  if (!otherValueOptions.empty()) s << "      " << join(otherValueOptions, "|") << ") skip=1 ;;\n";
  s << "      -*) ;;\n"
    << "      *)\n"
    << "        case \"${path:+$path }$w\" in\n";
  for (const auto& c : commands) {
    if (c.path.empty()) continue;
    s << "          " << quotedAlternatives(c.spellings) << ") path=\"" << c.path
      << "\"; npos=0 ;;\n";
  }
  s << "          *) npos=$((npos + 1)) ;;\n"
    << "        esac ;;\n"
    << "    esac\n"
    << "  done\n";
}

// The word after an option that takes a value.
void writeValueCompletion(std::ostream& s, const std::map<std::string, std::string>& valueWords,
                          const std::set<std::string>& valueOptions) {
  s << "  case \"$prev\" in\n";
  std::set<std::string> handled;
  for (const auto& [option, words] : valueWords) {
    std::vector<std::string> names = {option};
    if (option == "--output") names.push_back("-o");
    for (const auto& n : names) handled.insert(n);
    if (words == "@file") {
      s << "    " << join(names, "|") << ") COMPREPLY=($(compgen -f -- \"$cur\")); return 0 ;;\n";
    } else {
      s << "    " << join(names, "|") << ") COMPREPLY=($(compgen -W \"" << words
        << "\" -- \"$cur\")); return 0 ;;\n";
    }
  }
  std::vector<std::string> freeValues;
  for (const auto& o : valueOptions) {
    if (handled.count(o) == 0) freeValues.push_back(o);
  }
  if (!freeValues.empty()) s << "    " << join(freeValues, "|") << ") return 0 ;;\n";
  s << "  esac\n";
}

// An option of the command named so far, else its subcommands or what the
// agent lists (tickets, images).
void writeOptionsAndCommands(std::ostream& s, const std::vector<Command>& commands,
                             const std::string& program, const std::string& fn) {
  const std::vector<std::string> globals = {"--endpoint", "--token", "--ca-cert", "--output", "-o"};
  s << "  if [[ $cur == -* ]]; then\n"
    << "    local opts=\"\"\n"
    << "    case \"$path\" in\n";
  for (const auto& c : commands) {
    std::vector<std::string> opts = c.options;
    if (!c.path.empty()) opts.insert(opts.end(), globals.begin(), globals.end());
    s << "      \"" << c.path << "\") opts=\"" << join(opts) << "\" ;;\n";
  }
  s << "    esac\n"
    << "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
    << "    return 0\n"
    << "  fi\n"
    << "  case \"$path\" in\n";
  for (const auto& c : commands) {
    if (!c.children.empty()) {
      s << "    \"" << c.path << "\") COMPREPLY=($(compgen -W \"" << join(c.children)
        << "\" -- \"$cur\")) ;;\n";
    } else if (!c.dynamic.empty()) {
      std::string ask = c.dynamic == "ticket" ? "list" : c.dynamic + " ls";
      s << "    \"" << c.path << "\") [[ $npos == 0 ]] && COMPREPLY=($(compgen -W \"$(" << fn
        << "_ask " << ask << ")\" -- \"$cur\")) ;;\n";
    }
  }
  s << "  esac\n"
    << "  return 0\n"
    << "}\n"
    << "complete -F " << fn << " " << program << "\n";
}

}  // namespace

std::string bashCompletion(const CLI::App& root, const std::string& program,
                           const std::map<std::string, std::string>& valueWords) {
  std::vector<Command> commands;
  std::set<std::string> valueOptions;
  collect(root, "", {""}, commands, valueOptions);
  std::string fn = "_" + program;
  for (auto& c : fn) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  std::ostringstream s;
  writePrologue(s, program, fn);
  writeWordLoop(s, commands, valueOptions, fn);
  writeValueCompletion(s, valueWords, valueOptions);
  writeOptionsAndCommands(s, commands, program, fn);
  return s.str();
}

}  // namespace qabox::cli
