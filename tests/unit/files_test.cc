#include "common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace logferry {
namespace {

namespace fs = std::filesystem;

mode_t ModeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST(MakeDirectories, CreatesParentsAndGivesOnlyTheLastItsMode) {
  mode_t old_umask = umask(022);
  fs::path root = fs::temp_directory_path() / ("lf_files_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  ASSERT_TRUE(MakeDirectories((root / "a/b/state/").string(), 0700).ok());
  EXPECT_EQ(ModeOf(root / "a"), 0755u);
  EXPECT_EQ(ModeOf(root / "a/b"), 0755u);
  EXPECT_EQ(ModeOf(root / "a/b/state"), 0700u);
  // Existing directories are left as they are.
  EXPECT_TRUE(MakeDirectories((root / "a/b/state").string(), 0755).ok());
  EXPECT_EQ(ModeOf(root / "a/b/state"), 0700u);
  umask(old_umask);
  fs::remove_all(root);
}

TEST(MakeDirectories, AFileInTheWayIsAnError) {
  fs::path root = fs::temp_directory_path() / ("lf_files_test_file_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  {
    FILE* f = fopen((root / "file").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
  }
  Status s = MakeDirectories((root / "file/sub").string());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mkdir " + (root / "file/sub").string()), std::string::npos) << s.ToString();
  fs::remove_all(root);
}

}  // namespace
}  // namespace logferry
