#include "sys/pem.h"

#include <fstream>

namespace qabox {

constexpr size_t kMaxPemBytes = 1 << 20;

Result<std::string> readPem(const std::string& key, const std::string& path) {
  const std::string named = key + " \"" + path + "\": ";
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument(named + "cannot be read");
  std::string out(kMaxPemBytes + 1, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  if (out.size() > kMaxPemBytes) return invalidArgument(named + "over 1 MiB");
  if (out.find("-----BEGIN ") == std::string::npos)
    return invalidArgument(named + "not a PEM file");
  return out;
}

}  // namespace qabox
