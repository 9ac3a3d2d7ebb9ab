#pragma once

// The supervised test image (busybox with qabox-init as PID 1), shared by the
// supervisor and services tests: the recipes copied into a test's own state
// dir, and its qaboxd.toml pointed at them.

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "harness.h"

namespace qabox::testing {

// Copies images/busybox and tests/integration/images/supervised (with the
// qabox-init just built) into <stateDir>/recipes; returns that folder.
inline std::string copySupervisedRecipes(const std::string& stateDir) {
  namespace fs = std::filesystem;
  const std::string recipes = stateDir + "/recipes";
  fs::create_directories(recipes);
  fs::copy(sourceDir() + "/images/busybox", recipes + "/busybox", fs::copy_options::recursive);
  fs::copy(sourceDir() + "/tests/integration/images/supervised", recipes + "/supervised",
           fs::copy_options::recursive);
  fs::copy_file(binDir() + "/agent/init/qabox-init", recipes + "/supervised/qabox-init");
  return recipes;
}

// Points the images_dir of <stateDir>/qaboxd.toml (written by the harness)
// at `recipes`.
inline void pointImagesDirAt(const std::string& stateDir, const std::string& recipes) {
  const std::string cfg = stateDir + "/qaboxd.toml";
  const std::string text = std::regex_replace(readFile(cfg), std::regex("images_dir = \"[^\"]*\""),
                                              "images_dir = \"" + recipes + "\"");
  std::ofstream(cfg, std::ios::trunc) << text;
}

}  // namespace qabox::testing
