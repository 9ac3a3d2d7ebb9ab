#include "deploy/git.h"
#include "core/short_sha.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "core/duration.h"
#include "core/ticket.h"
#include "store/paths.h"
#include "sys/temp_file.h"

namespace qabox {
namespace fs = std::filesystem;

namespace {

// Local git work (no network) is fast; this only stops a wedged git from
// holding a deploy forever.
constexpr std::chrono::milliseconds kLocalTimeout{10 * 60 * 1000};
constexpr size_t kMaxFileBytes = 4 << 20;
constexpr size_t kMaxConflictsNamed = 20;
constexpr size_t kMaxRememberedMerges = 1000;
constexpr const char* kRemotePrefix = "refs/remotes/origin/";

// Variables passed through from the agent's environment: what finding git and
// ssh and reaching the remote through a proxy need, nothing that changes
// git's behaviour (GIT_DIR, GIT_CONFIG_*...).
constexpr const char* kPassThrough[] = {"PATH",     "SSH_AUTH_SOCK", "http_proxy",  "https_proxy",
                                        "no_proxy", "HTTP_PROXY",    "HTTPS_PROXY", "NO_PROXY"};

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// What git said that matters: its fatal:/error: lines when it printed any
// (the advice after them is the same for every failure), else the last lines.
std::string gitSaid(std::string_view text) {
  std::vector<std::string> all, errors;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line = trimmed(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty()) continue;
    for (const char* prefix : {"fatal: ", "error: "}) {
      if (line.rfind(prefix, 0) == 0) {
        errors.push_back(line.substr(std::strlen(prefix)));
        break;
      }
    }
    all.push_back(std::move(line));
  }
  const auto& pick = errors.empty() ? all : errors;
  std::string out;
  for (size_t i = pick.size() > 3 ? pick.size() - 3 : 0; i < pick.size(); ++i) {
    out += (out.empty() ? "" : "; ") + pick[i];
  }
  return out;
}

std::string gitFailure(const ProcessResult& r) {
  if (r.timedOut) return "timed out";
  std::string detail = gitSaid(r.err.empty() ? r.out : r.err);
  std::string how = r.signal ? "killed by signal " + std::to_string(r.signal)
                             : "exit " + std::to_string(r.exitCode);
  return detail.empty() ? how : how + ": " + detail;
}

Status checkRepoPath(std::string_view path) {
  auto bad = [&](const std::string& rule) {
    return invalidArgument("path \"" + std::string(path.substr(0, 200)) + "\": " + rule);
  };
  if (path.empty()) return invalidArgument("path: must not be empty");
  if (path.front() == '/') return bad("must be relative to the repository root");
  for (char c : path) {
    if (c == '\0' || c == '\n' || c == '\r') return bad("must not contain control characters");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return bad("must not contain empty, '.' or '..' components");
    }
    start = end + 1;
  }
  return Status::ok();
}

// The config validates repos; checked again because the name becomes a path
// under the state dir and the URL an argument.
Status checkRepo(const RepoConfig& repo) {
  const std::string& n = repo.name;
  bool ok = !n.empty() && n.size() <= 64 && n.front() >= 'a' && n.front() <= 'z';
  for (char c : n) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return invalidArgument("repo \"" + n.substr(0, 80) +
                           "\": names are lower-case letters, digits and '-', starting with a "
                           "letter");
  }
  if (repo.url.empty() || repo.url.front() == '-') {
    return invalidArgument("repo " + n + ": url must be set and must not start with '-'");
  }
  return Status::ok();
}

}  // namespace

bool isCommitId(std::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string redactUrl(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  size_t hostStart = scheme + 3;
  size_t hostEnd = url.find('/', hostStart);
  size_t at = url.rfind('@', hostEnd == std::string_view::npos ? url.size() : hostEnd);
  if (at == std::string_view::npos || at < hostStart) return std::string(url);
  return std::string(url.substr(0, hostStart)) + "***@" + std::string(url.substr(at + 1));
}

GitRepos::GitRepos(ProcessRunner& runner, std::string stateDir,
                   std::chrono::milliseconds fetchTimeout)
    : runner_(runner), stateDir_(std::move(stateDir)), fetchTimeout_(fetchTimeout) {
  for (const char* name : kPassThrough) {
    if (const char* v = getenv(name)) env_[name] = v;
  }
  if (!env_.count("PATH")) env_["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  // No terminal, no prompts, no configuration but the repository's own: the
  // agent's behaviour must not depend on whoever set up the host's ~/.gitconfig.
  env_["GIT_TERMINAL_PROMPT"] = "0";
  env_["GIT_ASKPASS"] = "/bin/false";
  env_["SSH_ASKPASS"] = "/bin/false";
  env_["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=30";
  env_["GIT_CONFIG_NOSYSTEM"] = "1";
  env_["GIT_CONFIG_GLOBAL"] = "/dev/null";
  // An explicit transport list: ext:: and other exotic helpers stay off.
  // file is on because repos may be local paths (quickstart, tests).
  const char* kProtocols[] = {"https", "http", "ssh", "git", "file"};
  int n = 0;
  auto config = [&](const std::string& key, const std::string& value) {
    env_["GIT_CONFIG_KEY_" + std::to_string(n)] = key;
    env_["GIT_CONFIG_VALUE_" + std::to_string(n)] = value;
    ++n;
  };
  config("protocol.allow", "never");
  for (const char* p : kProtocols) config(std::string("protocol.") + p + ".allow", "always");
  env_["GIT_CONFIG_COUNT"] = std::to_string(n);
  env_["HOME"] = stateDir_ + "/git";
  env_["LC_ALL"] = "C";
}

GitRepos::RepoState& GitRepos::stateFor(const std::string& repo) {
  std::lock_guard lock(reposMu_);
  auto& slot = repos_[repo];
  if (!slot) slot = std::make_unique<RepoState>();
  return *slot;
}

std::string GitRepos::mirror(const RepoConfig& repo) const {
  return paths::gitMirror(stateDir_, repo.name);
}

Result<ProcessResult> GitRepos::git(const RepoConfig& repo, std::vector<std::string> args,
                                    std::chrono::milliseconds timeout, std::string stdinData,
                                    const std::map<std::string, std::string>& extraEnv) {
  ProcessSpec spec;
  spec.argv.reserve(args.size() + 2);
  spec.argv.push_back("git");
  if (!repo.name.empty()) spec.argv.push_back("--git-dir=" + mirror(repo));
  for (auto& a : args) spec.argv.push_back(std::move(a));
  spec.env = env_;
  for (const auto& [k, v] : extraEnv) (*spec.env)[k] = v;
  spec.stdinData = std::move(stdinData);
  spec.timeout = timeout;
  spec.maxCapture = kMaxFileBytes + 4096;
  auto r = runner_.run(spec);
  if (!r) return r.status().withContext("repo " + repo.name);
  return r;
}

Status GitRepos::ensureMirror(const RepoConfig& repo, RepoState& state) {
  std::string dir = mirror(repo);
  std::error_code ec;
  if (fs::exists(dir + "/HEAD", ec)) return Status::ok();
  // Made aside and renamed into place, so a crash never leaves a mirror that
  // looks ready but is not.
  std::string tmp = dir + ".tmp";
  fs::remove_all(tmp, ec);
  fs::create_directories(fs::path(dir).parent_path(), ec);
  if (ec) return internalError("repo " + repo.name + ": creating " + dir + ": " + ec.message());
  QABOX_ASSIGN_OR_RETURN(
      auto r,
      git(RepoConfig{}, {"init", "--quiet", "--bare", "--template=", "--", tmp}, kLocalTimeout));
  if (!r.ok()) {
    return internalError("repo " + repo.name + ": git init " + tmp + ": " + gitFailure(r));
  }
  fs::rename(tmp, dir, ec);
  if (ec) return internalError("repo " + repo.name + ": renaming " + tmp + ": " + ec.message());
  // A new mirror has fetched nothing and holds none of the old merges.
  state.lastOkFetch = 0;
  state.merges.clear();
  return Status::ok();
}

Status GitRepos::fetchLocked(const RepoConfig& repo, RepoState& state, uint64_t asked) {
  QABOX_RETURN_IF_ERROR(ensureMirror(repo, state));
  if (state.lastOkFetch > asked) return Status::ok();
  uint64_t number = ++state.fetchesStarted;
  // Branches land in refs/remotes/origin/* and --prune drops the ones deleted
  // on the remote, which is how branchState() sees a deleted branch. Garbage
  // collection runs in maintain(), not detached behind a fetch.
  QABOX_ASSIGN_OR_RETURN(auto r,
                         git(repo,
                             {"fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head",
                              "--no-recurse-submodules", "--no-auto-maintenance", "--", repo.url,
                              std::string("+refs/heads/*:") + kRemotePrefix + "*"},
                             fetchTimeout_));
  if (!r.ok()) {
    std::string why =
        r.timedOut ? "no answer within " + formatDuration(fetchTimeout_) : gitSaid(r.err);
    if (why.empty()) why = gitFailure(r);
    return unavailable("repo " + repo.name + ": cannot fetch " + redactUrl(repo.url) + ": " + why);
  }
  state.lastOkFetch = number;
  return Status::ok();
}

Status GitRepos::fetch(const RepoConfig& repo) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  RepoState& state = stateFor(repo.name);
  // Read before waiting: any fetch numbered above this starts after we asked,
  // so its answer is as fresh as one of our own.
  uint64_t asked = state.fetchesStarted.load();
  std::lock_guard lock(state.mu);
  return fetchLocked(repo, state, asked);
}

Result<std::map<std::string, GitRepos::Head>> GitRepos::heads(
    const RepoConfig& repo, const std::vector<std::string>& branches,
    const std::string& mergedInto) {
  // Branch names reach git only here, behind a fixed prefix and after "--":
  // nothing a user types can be read as an option or a revision expression.
  std::vector<std::string> args = {"for-each-ref",
                                   "--format=%(objectname) %(committerdate:unix) %(refname)"};
  if (!mergedInto.empty()) args.push_back("--merged=" + mergedInto);
  args.push_back("--");
  if (branches.empty()) args.push_back(kRemotePrefix);
  for (const auto& b : branches) args.push_back(kRemotePrefix + b);
  QABOX_ASSIGN_OR_RETURN(auto r, git(repo, std::move(args), kLocalTimeout));
  if (!r.ok()) {
    return internalError("repo " + repo.name + ": git for-each-ref: " + gitFailure(r));
  }
  // for-each-ref matches by prefix ("feature" also lists "feature/x"), so
  // keep exact names only.
  std::map<std::string, Head> out;
  size_t pos = 0;
  while (pos < r.out.size()) {
    size_t nl = r.out.find('\n', pos);
    if (nl == std::string::npos) nl = r.out.size();
    std::string_view line(r.out.data() + pos, nl - pos);
    pos = nl + 1;
    size_t s1 = line.find(' ');
    size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
    if (s2 == std::string_view::npos) continue;
    std::string_view ref = line.substr(s2 + 1);
    if (ref.size() <= std::strlen(kRemotePrefix) ||
        ref.substr(0, std::strlen(kRemotePrefix)) != kRemotePrefix) {
      continue;
    }
    std::string branch(ref.substr(std::strlen(kRemotePrefix)));
    if (!branches.empty() &&
        std::find(branches.begin(), branches.end(), branch) == branches.end()) {
      continue;
    }
    Head h;
    h.sha = std::string(line.substr(0, s1));
    try {
      h.committerTime = std::stoll(std::string(line.substr(s1 + 1, s2 - s1 - 1)));
    } catch (const std::exception&) {
      h.committerTime = 0;
    }
    out[branch] = h;
  }
  return out;
}

Result<Merge> GitRepos::computeMerge(const RepoConfig& repo, const std::string& src,
                                     const std::string& tgt, const Head& s, const Head& t) {
  Merge m;
  m.sourceHead = s.sha;
  m.targetHead = t.sha;

  // One merge-base answers both shortcuts: the base is the target when the
  // target is an ancestor of the source, the source when it is already merged.
  QABOX_ASSIGN_OR_RETURN(auto mb, git(repo, {"merge-base", t.sha, s.sha}, kLocalTimeout));
  std::string base = trimmed(mb.out);
  if (mb.exitCode == 1 && base.empty()) {
    return failedPrecondition("merging " + src + " into " + tgt +
                              ": the branches have no common history");
  }
  if (!mb.ok()) return internalError("repo " + repo.name + ": git merge-base: " + gitFailure(mb));

  if (base == t.sha) {
    m.commit = s.sha;
    m.fastForward = true;
  } else if (base == s.sha) {
    m.commit = t.sha;
    m.alreadyMerged = true;
  } else {
    QABOX_ASSIGN_OR_RETURN(auto mt, git(repo,
                                        {"merge-tree", "--write-tree", "--name-only",
                                         "--no-messages", "-z", t.sha, s.sha},
                                        kLocalTimeout));
    if (mt.exitCode != 0 && mt.exitCode != 1) {
      return internalError("repo " + repo.name + ": git merge-tree: " + gitFailure(mt));
    }
    // -z output: the tree, then one conflicted path per entry.
    std::vector<std::string> fields;
    size_t pos = 0;
    while (pos < mt.out.size()) {
      size_t end = mt.out.find('\0', pos);
      if (end == std::string::npos) end = mt.out.size();
      fields.emplace_back(mt.out, pos, end - pos);
      pos = end + 1;
    }
    if (fields.empty() || !isCommitId(fields[0])) {
      return internalError("repo " + repo.name + ": git merge-tree printed no tree");
    }
    if (mt.exitCode == 1) {
      std::vector<std::string> paths;
      for (size_t i = 1; i < fields.size(); ++i) {
        if (!fields[i].empty() && (paths.empty() || paths.back() != fields[i])) {
          paths.push_back(fields[i]);
        }
      }
      std::string list;
      for (size_t i = 0; i < paths.size() && i < kMaxConflictsNamed; ++i) {
        list += (i ? ", " : "") + paths[i];
      }
      if (paths.size() > kMaxConflictsNamed) {
        list += " and " + std::to_string(paths.size() - kMaxConflictsNamed) + " more";
      }
      if (list.empty()) list = "(git named no paths)";
      return failedPrecondition("merging " + src + " into " + tgt + " conflicts in: " + list);
    }
    // Identity and dates come from the inputs only, so the same heads always
    // give the same commit id.
    std::string date = std::to_string(std::max(s.committerTime, t.committerTime)) + " +0000";
    std::map<std::string, std::string> ident = {{"GIT_AUTHOR_NAME", kMergeName},
                                                {"GIT_AUTHOR_EMAIL", kMergeEmail},
                                                {"GIT_AUTHOR_DATE", date},
                                                {"GIT_COMMITTER_NAME", kMergeName},
                                                {"GIT_COMMITTER_EMAIL", kMergeEmail},
                                                {"GIT_COMMITTER_DATE", date}};
    QABOX_ASSIGN_OR_RETURN(auto ct, git(repo,
                                        {"commit-tree", "-p", t.sha, "-p", s.sha, "-m",
                                         "Merge branch '" + src + "' into " + tgt, fields[0]},
                                        kLocalTimeout, {}, ident));
    std::string commit = trimmed(ct.out);
    if (!ct.ok() || !isCommitId(commit)) {
      return internalError("repo " + repo.name + ": git commit-tree: " + gitFailure(ct));
    }
    m.commit = commit;
  }
  return m;
}

Result<Merge> GitRepos::merge(const RepoConfig& repo, std::string_view source,
                              std::string_view target) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  QABOX_RETURN_IF_ERROR(checkBranchName("source_branch", source));
  QABOX_RETURN_IF_ERROR(checkBranchName("target_branch", target));
  std::string src(source), tgt(target);

  RepoState& state = stateFor(repo.name);
  uint64_t asked = state.fetchesStarted.load();
  std::lock_guard lock(state.mu);
  QABOX_RETURN_IF_ERROR(fetchLocked(repo, state, asked));

  QABOX_ASSIGN_OR_RETURN(auto found, heads(repo, {src, tgt}));
  if (!found.count(src)) {
    return notFound("source_branch \"" + src + "\": no such branch on repo " + repo.name);
  }
  if (!found.count(tgt)) {
    return notFound("target_branch \"" + tgt + "\": no such branch on repo " + repo.name);
  }
  const Head& s = found[src];
  const Head& t = found[tgt];
  // The same heads give the same answer: remembered, an unchanged redeploy
  // costs a fetch and a ref update instead of a merge.
  const std::string key = src + '\n' + tgt + '\n' + s.sha + '\n' + t.sha;
  Merge m;
  if (auto it = state.merges.find(key); it != state.merges.end()) {
    m = it->second;
  } else {
    QABOX_ASSIGN_OR_RETURN(m, computeMerge(repo, src, tgt, s, t));
    if (state.merges.size() >= kMaxRememberedMerges) state.merges.clear();
    state.merges[key] = m;
  }

  QABOX_ASSIGN_OR_RETURN(auto ur,
                         git(repo, {"update-ref", kPinPrefix + m.commit, m.commit}, kLocalTimeout));
  if (!ur.ok()) return internalError("repo " + repo.name + ": git update-ref: " + gitFailure(ur));
  return m;
}

Status GitRepos::archive(const RepoConfig& repo, const std::string& treeish,
                         const std::string& commit, const std::string& tarPath) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  if (!isCommitId(commit)) {
    return invalidArgument("commit \"" + commit.substr(0, 80) + "\": must be a full commit id");
  }
  // An archive on disk: no index to write, .gitattributes export-ignore is
  // honoured.
  QABOX_ASSIGN_OR_RETURN(
      auto ar, git(repo, {"archive", "--format=tar", "-o", tarPath, treeish}, kLocalTimeout));
  if (!ar.ok()) {
    return internalError("repo " + repo.name + ": git archive " + shortSha(commit) + ": " +
                         gitFailure(ar));
  }
  return Status::ok();
}

Status GitRepos::exportTree(const RepoConfig& repo, const std::string& commit,
                            const std::string& destDir) {
  std::error_code ec;
  fs::create_directories(destDir, ec);
  if (ec) return internalError("export: creating " + destDir + ": " + ec.message());
  auto tar = TempFile::create(paths::workDir(stateDir_), "export-");
  if (!tar) return tar.status().withContext("export");
  QABOX_RETURN_IF_ERROR(archive(repo, commit, commit, tar->path()));
  // GNU tar defers unsafe symlinks until every file is out, so a symlink in
  // the tree can not redirect a later file.
  ProcessSpec spec;
  spec.argv = {"tar", "-x", "--no-same-owner", "-C", destDir, "-f", tar->path()};
  spec.env = env_;
  spec.timeout = kLocalTimeout;
  auto tr = runner_.run(spec);
  if (!tr) return tr.status().withContext("export");
  if (!tr->ok()) return internalError("export into " + destDir + ": tar: " + gitFailure(*tr));
  return Status::ok();
}

Status GitRepos::archiveTree(const RepoConfig& repo, const std::string& commit,
                             const std::string& tarPath) {
  return archive(repo, commit + "^{tree}", commit, tarPath);
}

Result<ProcessResult> GitRepos::catFile(const RepoConfig& repo, const std::string& commit,
                                        const std::string& path, const char* mode,
                                        const char* what) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  if (!isCommitId(commit)) {
    return invalidArgument("commit \"" + commit.substr(0, 80) + "\": must be a full commit id");
  }
  QABOX_RETURN_IF_ERROR(checkRepoPath(path));
  // A batch mode tells "missing" apart from every other failure, in one process.
  QABOX_ASSIGN_OR_RETURN(auto r,
                         git(repo, {"cat-file", mode}, kLocalTimeout, commit + ":" + path + "\n"));
  if (!r.ok()) return internalError("repo " + repo.name + ": git cat-file: " + gitFailure(r));
  std::string header = r.out.substr(0, r.out.find('\n'));
  if (header.size() >= 8 && header.compare(header.size() - 8, 8, " missing") == 0) {
    return notFound("repo " + repo.name + ": no " + what + path + " at commit " + shortSha(commit));
  }
  return r;
}

Result<std::string> GitRepos::objectId(const RepoConfig& repo, const std::string& commit,
                                       const std::string& path) {
  QABOX_ASSIGN_OR_RETURN(auto r, catFile(repo, commit, path, "--batch-check", ""));
  // "<oid> <type> <size>"
  std::string header = r.out.substr(0, r.out.find('\n'));
  std::string oid = header.substr(0, header.find(' '));
  if (oid.size() < 40 || oid.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return internalError("repo " + repo.name + ": git cat-file: unexpected answer \"" +
                         header.substr(0, 100) + "\"");
  }
  return oid;
}

Result<std::string> GitRepos::readFile(const RepoConfig& repo, const std::string& commit,
                                       const std::string& path) {
  QABOX_ASSIGN_OR_RETURN(auto r, catFile(repo, commit, path, "--batch", "file "));
  size_t nl = r.out.find('\n');
  std::string header = r.out.substr(0, nl);
  // "<oid> <type> <size>"
  size_t s1 = header.find(' ');
  size_t s2 = s1 == std::string::npos ? s1 : header.find(' ', s1 + 1);
  if (s2 == std::string::npos || nl == std::string::npos) {
    return internalError("repo " + repo.name + ": git cat-file: unexpected answer \"" +
                         header.substr(0, 100) + "\"");
  }
  std::string type = header.substr(s1 + 1, s2 - s1 - 1);
  if (type != "blob") {
    return failedPrecondition("repo " + repo.name + ": " + path + " at commit " + shortSha(commit) +
                              " is a " + type + ", not a file");
  }
  size_t size = 0;
  try {
    size = std::stoull(header.substr(s2 + 1));
  } catch (const std::exception&) {
    return internalError("repo " + repo.name + ": git cat-file: bad size in \"" + header + "\"");
  }
  if (size > kMaxFileBytes) {
    return failedPrecondition("repo " + repo.name + ": " + path + " is " + std::to_string(size) +
                              " bytes; at most " + std::to_string(kMaxFileBytes) + " are read");
  }
  if (r.out.size() < nl + 1 + size) {
    return internalError("repo " + repo.name + ": git cat-file: short answer for " + path);
  }
  return r.out.substr(nl + 1, size);
}

Result<BranchState> GitRepos::branchState(const RepoConfig& repo, std::string_view source,
                                          std::string_view target, FetchFirst fetchFirst,
                                          std::string_view lastSourceHead) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  QABOX_RETURN_IF_ERROR(checkBranchName("source_branch", source));
  QABOX_RETURN_IF_ERROR(checkBranchName("target_branch", target));
  if (!lastSourceHead.empty() && !isCommitId(lastSourceHead)) {
    return invalidArgument("last source head \"" + std::string(lastSourceHead.substr(0, 80)) +
                           "\": must be a full commit id");
  }
  std::string src(source), tgt(target);
  {
    RepoState& state = stateFor(repo.name);
    uint64_t asked = state.fetchesStarted.load();
    std::lock_guard lock(state.mu);
    std::error_code ec;
    // A mirror that does not exist yet has nothing to answer from.
    if (fetchFirst == FetchFirst::kYes || !fs::exists(mirror(repo) + "/HEAD", ec)) {
      QABOX_RETURN_IF_ERROR(fetchLocked(repo, state, asked));
    }
  }
  QABOX_ASSIGN_OR_RETURN(auto found, heads(repo, {src, tgt}));
  if (!found.count(tgt)) {
    return notFound("target_branch \"" + tgt + "\": no such branch on repo " + repo.name);
  }
  BranchState st;
  st.targetHead = found[tgt].sha;
  st.sourceExists = found.count(src) > 0;
  st.sourceHead = st.sourceExists ? found[src].sha : std::string(lastSourceHead);
  if (st.sourceHead.empty()) return st;
  QABOX_ASSIGN_OR_RETURN(
      auto r,
      git(repo, {"merge-base", "--is-ancestor", st.sourceHead, st.targetHead}, kLocalTimeout));
  if (r.exitCode == 0) {
    st.merged = true;
    st.containedIn = st.targetHead;
  } else if (r.exitCode != 1 && st.sourceExists) {
    return internalError("repo " + repo.name + ": git merge-base --is-ancestor: " + gitFailure(r));
  }
  // Otherwise a last known head the mirror never had: not known to be merged.
  return st;
}

std::vector<Result<TargetState>> GitRepos::targetStates(const RepoConfig& repo,
                                                        const std::vector<TargetQuery>& queries) {
  std::vector<Result<TargetState>> out;
  if (queries.empty()) return out;
  if (Status s = checkRepo(repo); !s.isOk()) {
    out.assign(queries.size(), Result<TargetState>(s));
    return out;
  }
  RepoState& state = stateFor(repo.name);
  // Held so that no fetch moves a head between its listing and its count.
  std::lock_guard lock(state.mu);
  auto all = heads(repo, {});
  if (!all) {
    out.assign(queries.size(), Result<TargetState>(all.status()));
    return out;
  }
  std::map<std::pair<std::string, std::string>, Result<uint32_t>> counted;
  out.reserve(queries.size());
  for (const TargetQuery& q : queries) {
    Status s = checkBranchName("target_branch", q.target);
    if (s.isOk() && !isCommitId(q.since)) {
      s = invalidArgument("target commit \"" + q.since.substr(0, 80) +
                          "\": must be a full commit id");
    }
    auto head = all->find(q.target);
    if (s.isOk() && head == all->end()) {
      s = notFound("target_branch \"" + q.target + "\": no such branch on repo " + repo.name);
    }
    if (!s.isOk()) {
      out.emplace_back(std::move(s));
      continue;
    }
    TargetState st;
    st.head = head->second.sha;
    if (st.head != q.since) {
      auto key = std::make_pair(q.since, st.head);
      auto known = counted.find(key);
      if (known == counted.end()) {
        known = counted.emplace(key, countAhead(repo, q.since, st.head)).first;
      }
      if (!known->second) {
        out.emplace_back(known->second.status());
        continue;
      }
      st.behind = *known->second;
    }
    out.emplace_back(std::move(st));
  }
  return out;
}

Result<uint32_t> GitRepos::countAhead(const RepoConfig& repo, const std::string& since,
                                      const std::string& head) {
  // Both are full commit ids (checked above), so neither is read as an option.
  QABOX_ASSIGN_OR_RETURN(
      auto r, git(repo, {"rev-list", "--count", since + ".." + head, "--"}, kLocalTimeout));
  if (!r.ok()) {
    return notFound("repo " + repo.name + ": commit " + since.substr(0, 12) +
                    " is not in the mirror: " + gitFailure(r));
  }
  try {
    return static_cast<uint32_t>(std::stoul(r.out));
  } catch (const std::exception&) {
    return internalError("repo " + repo.name + ": git rev-list --count printed \"" +
                         r.out.substr(0, 40) + "\"");
  }
}

namespace {

// A query wrong on its face, before any git runs for it.
Status checkQuery(const BranchQuery& q) {
  QABOX_RETURN_IF_ERROR(checkBranchName("source_branch", q.source));
  QABOX_RETURN_IF_ERROR(checkBranchName("target_branch", q.target));
  if (!q.lastSourceHead.empty() && !isCommitId(q.lastSourceHead)) {
    return invalidArgument("last source head \"" + q.lastSourceHead.substr(0, 80) +
                           "\": must be a full commit id");
  }
  return Status::ok();
}

}  // namespace

std::vector<Result<BranchState>> GitRepos::branchStates(const RepoConfig& repo,
                                                        const std::vector<BranchQuery>& queries) {
  std::vector<Result<BranchState>> out;
  out.reserve(queries.size());
  auto failAll = [&](const Status& s) {
    out.assign(queries.size(), Result<BranchState>(s));
    return out;
  };
  if (queries.empty()) return out;
  if (Status s = checkRepo(repo); !s.isOk()) return failAll(s);

  RepoState& state = stateFor(repo.name);
  uint64_t asked = state.fetchesStarted.load();
  // Held throughout so that no fetch moves the refs between the listing of
  // the heads and the containment queries that name them.
  std::lock_guard lock(state.mu);
  std::error_code ec;
  if (!fs::exists(mirror(repo) + "/HEAD", ec)) {
    if (Status s = fetchLocked(repo, state, asked); !s.isOk()) return failAll(s);
  }
  auto all = heads(repo, {});
  if (!all) return failAll(all.status());

  // Per distinct target: which branches its head contains, asked once.
  std::map<std::string, std::optional<Result<std::map<std::string, Head>>>> mergedInto;
  std::vector<BranchState> states(queries.size());
  std::vector<bool> answered(queries.size(), false);
  for (size_t i = 0; i < queries.size(); ++i) {
    const BranchQuery& q = queries[i];
    Status s = checkQuery(q);
    auto target = all->find(q.target);
    if (s.isOk() && target == all->end()) {
      s = notFound("target_branch \"" + q.target + "\": no such branch on repo " + repo.name);
    }
    if (!s.isOk()) {
      out.emplace_back(std::move(s));
      continue;
    }
    BranchState& st = states[i];
    st.targetHead = target->second.sha;
    auto source = all->find(q.source);
    st.sourceExists = source != all->end();
    st.sourceHead = st.sourceExists ? source->second.sha : q.lastSourceHead;
    if (st.sourceExists) mergedInto.try_emplace(st.targetHead);
    out.emplace_back(internalError("not answered"));  // replaced below
    answered[i] = true;
  }

  for (auto& [targetHead, merged] : mergedInto) merged.emplace(heads(repo, {}, targetHead));
  // Deleted sources are few (the reaper reclaims them) and no longer have a
  // ref for --merged to list: one ancestry check per distinct pair.
  std::map<std::pair<std::string, std::string>, bool> ancestry;
  for (size_t i = 0; i < queries.size(); ++i) {
    if (!answered[i]) continue;
    BranchState& st = states[i];
    if (st.sourceExists) {
      const auto& merged = *mergedInto[st.targetHead];
      if (!merged) {
        out[i] = merged.status();
        continue;
      }
      // Compared by head too: a branch whose tip differs from the listed one
      // is not the one asked about.
      auto it = merged->find(queries[i].source);
      st.merged = it != merged->end() && it->second.sha == st.sourceHead;
    } else if (!st.sourceHead.empty()) {
      auto key = std::make_pair(st.sourceHead, st.targetHead);
      auto known = ancestry.find(key);
      if (known == ancestry.end()) {
        // Exit 1 (not an ancestor) and failures alike (a head the mirror never
        // had) mean "not known to be merged", as in branchState().
        auto r =
            git(repo, {"merge-base", "--is-ancestor", st.sourceHead, st.targetHead}, kLocalTimeout);
        known = ancestry.emplace(key, r.isOk() && r->exitCode == 0).first;
      }
      st.merged = known->second;
    }
    if (st.merged) st.containedIn = st.targetHead;
    out[i] = std::move(st);
  }
  return out;
}

Status GitRepos::maintain(const RepoConfig& repo, const std::set<std::string>& keep) {
  QABOX_RETURN_IF_ERROR(checkRepo(repo));
  RepoState& state = stateFor(repo.name);
  std::lock_guard lock(state.mu);
  std::error_code ec;
  if (!fs::exists(mirror(repo) + "/HEAD", ec)) return Status::ok();
  // Unpinned merges may be pruned: never hand one out again from memory.
  state.merges.clear();
  QABOX_ASSIGN_OR_RETURN(
      auto refs,
      git(repo, {"for-each-ref", "--format=%(refname)", "--", kPinPrefix}, kLocalTimeout));
  if (!refs.ok())
    return internalError("repo " + repo.name + ": git for-each-ref: " + gitFailure(refs));
  std::string commands;
  size_t pos = 0;
  const size_t prefixLen = std::strlen(kPinPrefix);
  while (pos < refs.out.size()) {
    size_t nl = refs.out.find('\n', pos);
    if (nl == std::string::npos) nl = refs.out.size();
    std::string ref = refs.out.substr(pos, nl - pos);
    pos = nl + 1;
    if (ref.size() <= prefixLen || keep.count(ref.substr(prefixLen))) continue;
    commands += "delete " + ref + "\n";
  }
  if (!commands.empty()) {
    QABOX_ASSIGN_OR_RETURN(
        auto ur, git(repo, {"update-ref", "--stdin"}, kLocalTimeout, std::move(commands)));
    if (!ur.ok()) return internalError("repo " + repo.name + ": git update-ref: " + gitFailure(ur));
  }
  QABOX_ASSIGN_OR_RETURN(
      auto gc, git(repo, {"-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"}, kLocalTimeout));
  if (!gc.ok()) return internalError("repo " + repo.name + ": git gc: " + gitFailure(gc));
  return Status::ok();
}

}  // namespace qabox
