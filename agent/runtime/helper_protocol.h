#pragma once

// What the agent and qabox-lxc say to each other beyond argv.

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace qabox {

// `qabox-lxc attach` takes the command's variables from its own environment,
// each as <prefix><n>=KEY=VALUE: never from its argument vector, which any
// user on the host can read in /proc/PID/cmdline, and renamed so that none
// of them (LD_PRELOAD, say) acts on the helper itself, which runs as root.
inline constexpr char kAttachEnvPrefix[] = "QABOX_ATTACH_ENV_";

// `qabox-lxc place` reads its files on stdin, as frames:
//   W <mode, octal> <size> <path>\n<size bytes>   a file written
//   D <path>\n                                    a file removed
// Paths are absolute, without "." or ".." components, empty components,
// newlines or NULs: what is written is never the helper's choice of path.
inline constexpr size_t kPlaceMaxBytes = 64u << 20;  // all frames together
inline constexpr size_t kPlaceMaxPath = 1024;

// "" when `path` is one place may take, else why not.
inline std::string badPlacedPath(std::string_view path) {
  if (path.empty() || path.front() != '/') return "\"" + std::string(path) + "\": not absolute";
  if (path.size() > kPlaceMaxPath) return "a path longer than " + std::to_string(kPlaceMaxPath);
  if (path.back() == '/') return "\"" + std::string(path) + "\": names a directory";
  if (path.find('\0') != std::string_view::npos || path.find('\n') != std::string_view::npos) {
    return "a path with a NUL or a newline";
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return "\"" + std::string(path) + "\": an empty, . or .. component";
    }
    start = end + 1;
  }
  return "";
}

inline std::string placeWriteHeader(std::string_view path, uint32_t mode, size_t size) {
  char head[64];
  std::snprintf(head, sizeof(head), "W %o %zu ", mode & 07777u, size);
  return head + std::string(path) + "\n";
}

inline std::string placeRemoveHeader(std::string_view path) {
  return "D " + std::string(path) + "\n";
}

struct PlaceFrame {
  bool remove = false;
  std::string path;
  uint32_t mode = 0;
  std::string content;
};

// The frames of `in`, or none and `error` set: nothing is acted on unless all
// of them parse.
inline std::vector<PlaceFrame> parsePlaceFrames(std::string_view in, std::string& error) {
  std::vector<PlaceFrame> out;
  error.clear();
  if (in.size() > kPlaceMaxBytes) {
    error = "more than " + std::to_string(kPlaceMaxBytes) + " bytes of files";
    return {};
  }
  while (!in.empty()) {
    size_t nl = in.find('\n');
    if (nl == std::string_view::npos || nl < 2 || in[1] != ' ') {
      error = "a frame without a header line";
      return {};
    }
    const char kind = in[0];
    std::string_view head = in.substr(2, nl - 2);
    in.remove_prefix(nl + 1);
    PlaceFrame f;
    if (kind == 'D') {
      f.remove = true;
      f.path = std::string(head);
    } else if (kind == 'W') {
      // "<mode> <size> <path>": both numbers exact, no sign, no overflow.
      const char* p = head.data();
      const char* end = head.data() + head.size();
      uint32_t mode = 0;
      size_t size = 0;
      auto m = std::from_chars(p, end, mode, 8);
      bool ok = m.ec == std::errc() && m.ptr != p && m.ptr < end && *m.ptr == ' ' && mode <= 07777;
      std::from_chars_result z{};
      if (ok) {
        z = std::from_chars(m.ptr + 1, end, size, 10);
        ok = z.ec == std::errc() && z.ptr != m.ptr + 1 && z.ptr < end && *z.ptr == ' ' &&
             size <= in.size();
      }
      if (!ok) {
        error = "a malformed file frame";
        return {};
      }
      f.mode = mode;
      f.path = std::string(z.ptr + 1, end);
      f.content = std::string(in.substr(0, size));
      in.remove_prefix(size);
    } else {
      error = "a frame of an unknown kind";
      return {};
    }
    if (std::string bad = badPlacedPath(f.path); !bad.empty()) {
      error = bad;
      return {};
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace qabox
