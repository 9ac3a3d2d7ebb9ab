#pragma once

// A scratch file of the agent's own, removed when it goes out of scope: an
// archive on its way into a container, say.

#include <string>

#include "core/status.h"

namespace qabox {

class TempFile {
 public:
  // A new empty file in `dir` (made if missing) named `prefix` and six
  // random characters, by mkstemp: mode 0600, never a file or link that was
  // there before.
  static Result<TempFile> create(const std::string& dir, const std::string& prefix);

  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  const std::string& path() const { return path_; }

 private:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace qabox
