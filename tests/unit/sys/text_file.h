#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace qabox::test {

// A whole small file, written or read back, for setting up and checking a tree.
inline void writeText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

inline std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qabox::test
