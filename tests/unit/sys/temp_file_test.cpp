#include "sys/temp_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "../store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

TEST(TempFile, IsNewPrivateAndGoneWithItsLastOwner) {
  test::TempDir dir;
  const std::string work = dir.path() + "/work";  // made on demand
  std::string path;
  {
    auto t = TempFile::create(work, "archive-");
    ASSERT_TRUE(t.isOk()) << t.status().toString();
    path = t->path();
    EXPECT_EQ(path.rfind(work + "/archive-", 0), 0u) << path;
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_size, 0);
    std::optional<TempFile> moved(std::move(*t));
    EXPECT_EQ(moved->path(), path);
    EXPECT_TRUE(fs::exists(path)) << "a move hands the file on";
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(TempFile, ADirectoryThatCannotBeMadeIsAnError) {
  test::TempDir dir;
  ASSERT_EQ(::close(::creat((dir.path() + "/file").c_str(), 0600)), 0);
  auto t = TempFile::create(dir.path() + "/file/work", "x-");
  ASSERT_FALSE(t.isOk());
  EXPECT_NE(t.status().message().find(dir.path() + "/file/work"), std::string::npos)
      << t.status().message();
}

}  // namespace
}  // namespace qabox
