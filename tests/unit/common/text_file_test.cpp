#include "common/text_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::read_text;
using test::TempDir;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Restores the process's umask when the test ends.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : previous_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(previous_); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

 private:
  mode_t previous_;
};

TEST(WriteFileAtomically, ModeIsExactlyTheOneAskedForWhateverTheUmask) {
  TempDir dir;
  for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0777}}) {
    UmaskGuard guard(mask);
    const std::string state = dir.path() + "/state";
    ASSERT_TRUE(write_file_atomically(state, "x\n").ok());
    EXPECT_EQ(mode_of(state), 0600u) << "umask " << std::oct << mask;
    const std::string plugin = dir.path() + "/plugin";
    ASSERT_TRUE(write_file_atomically(plugin, "y\n", 0755).ok());
    EXPECT_EQ(mode_of(plugin), 0755u) << "umask " << std::oct << mask;
  }
}

TEST(WriteFileAtomically, ReplacesTheFileAndLeavesNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.path() + "/workloads.json";
  write_text(path, "old\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(write_file_atomically(path, "new\n").ok());
  EXPECT_EQ(read_text(path), "new\n");
  EXPECT_EQ(mode_of(path), 0600u);  // the old file's mode does not carry over
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"workloads.json"});
}

TEST(WriteFileAtomically, ASymlinkAtThePathIsReplacedNotFollowed) {
  TempDir dir;
  const std::string victim = dir.path() + "/victim";
  write_text(victim, "precious\n");
  const std::string path = dir.path() + "/tc-filters";
  ASSERT_EQ(::symlink(victim.c_str(), path.c_str()), 0);
  ASSERT_TRUE(write_file_atomically(path, "record\n").ok());
  EXPECT_EQ(read_text(victim), "precious\n");
  EXPECT_TRUE(std::filesystem::is_regular_file(std::filesystem::symlink_status(path)));
  EXPECT_EQ(read_text(path), "record\n");
}

TEST(WriteFileAtomically, APlantedLinkAtTheOldTemporaryNameIsNeverWritten) {
  // The old helper wrote path + ".tmp" with O_TRUNC: a link there made root truncate its target.
  TempDir dir;
  const std::string victim = dir.path() + "/victim";
  write_text(victim, "precious\n");
  const std::string path = dir.path() + "/tc-filters";
  ASSERT_EQ(::symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  ASSERT_TRUE(write_file_atomically(path, "record\n").ok());
  EXPECT_EQ(read_text(victim), "precious\n");
  EXPECT_EQ(read_text(path), "record\n");
  EXPECT_EQ(entries(dir.path()),
            (std::vector<std::string>{"tc-filters", "tc-filters.tmp", "victim"}));
}

TEST(WriteFileAtomically, AMissingDirectoryIsReportedWithItsErrno) {
  TempDir dir;
  const std::string path = dir.path() + "/missing/workloads.json";
  const Status status = write_file_atomically(path, "x\n");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().errnum, ENOENT);
  EXPECT_TRUE(contains(status.error().message(), dir.path() + "/missing"));
  EXPECT_TRUE(contains(status.error().message(), path));
}

TEST(WriteFileAtomically, AFailedRenameRemovesTheTemporaryFile) {
  TempDir dir;
  // A non-empty directory at the path: rename() refuses.
  const std::string path = dir.path() + "/state";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  write_text(path + "/inside", "x");
  const Status status = write_file_atomically(path, "x\n");
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(contains(status.error().message(), "cannot rename"));
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"state"});
}

TEST(ReadStateFile, AbsentIsNotAnError) {
  TempDir dir;
  auto text = read_state_file(dir.path() + "/workloads.json");
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_FALSE(text->has_value());
}

TEST(ReadStateFile, ReadsARegularFile) {
  TempDir dir;
  write_text(dir.path() + "/workloads.json", "{}\n");
  auto text = read_state_file(dir.path() + "/workloads.json");
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(text->value(), "{}\n");
}

TEST(ReadStateFile, ASymlinkIsRefusedWithItsPathAndTheFix) {
  TempDir dir;
  write_text(dir.path() + "/elsewhere", "{}\n");
  const std::string path = dir.path() + "/workloads.json";
  ASSERT_EQ(::symlink((dir.path() + "/elsewhere").c_str(), path.c_str()), 0);
  auto text = read_state_file(path);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().errnum, ELOOP);
  EXPECT_TRUE(contains(text.error().message(), path));
  EXPECT_TRUE(contains(text.error().message(), "symbolic link"));
  EXPECT_TRUE(contains(text.error().message(), "remove it"));
}

TEST(ReadStateFile, AFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  const std::string path = dir.path() + "/policies.json";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto text = read_state_file(path);
  ASSERT_FALSE(text.ok());
  EXPECT_TRUE(contains(text.error().message(), "not a regular file"));
}

}  // namespace
}  // namespace meshlane
