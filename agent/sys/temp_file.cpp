#include "sys/temp_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace qabox {

Result<TempFile> TempFile::create(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return internalError("creating " + dir + ": " + ec.message());
  std::string path = dir + "/" + prefix + "XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) return internalError("creating a file in " + dir + ": " + std::strerror(errno));
  ::close(fd);
  return TempFile(std::move(path));
}

TempFile::TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace qabox
