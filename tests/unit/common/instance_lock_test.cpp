#include "common/instance_lock.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "temp_dir.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::read_text;
using test::TempDir;

TEST(CheckPrivateDirectory, RootsOwnDirectoryPasses) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  EXPECT_TRUE(check_private_directory(dir.path(), "daemon.state_dir").ok());
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  EXPECT_TRUE(check_private_directory(dir.path(), "daemon.state_dir").ok());
}

TEST(CheckPrivateDirectory, GroupOrWorldWritableIsRefusedWithModeAndFix) {
  TempDir dir;
  for (const mode_t mode : {mode_t{0770}, mode_t{0702}, mode_t{01777}}) {
    ASSERT_EQ(::chmod(dir.path().c_str(), mode), 0);
    const Status status = check_private_directory(dir.path(), "daemon.state_dir");
    ASSERT_FALSE(status.ok()) << std::oct << mode;
    EXPECT_TRUE(contains(status.error().message(), "daemon.state_dir " + dir.path()));
    EXPECT_TRUE(contains(status.error().message(), "writable by its group or by everyone"));
    EXPECT_TRUE(contains(status.error().message(), "chmod go-w " + dir.path()));
  }
  ASSERT_EQ(::chmod(dir.path().c_str(), 0770), 0);
  EXPECT_TRUE(contains(check_private_directory(dir.path(), "x").error().message(), "mode 0770"));
}

TEST(CheckPrivateDirectory, AnotherOwnerIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to chown";
  }
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
  const Status status = check_private_directory(dir.path(), "the directory of daemon.socket");
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(contains(status.error().message(), "owned by uid 65534"));
  EXPECT_TRUE(contains(status.error().message(), "chown root " + dir.path()));
}

TEST(CheckPrivateDirectory, NotADirectoryIsRefusedAndALinkToOneIsFollowed) {
  TempDir dir;
  const std::string file = dir.path() + "/file";
  std::ofstream(file) << "x";
  EXPECT_FALSE(check_private_directory(file, "daemon.state_dir").ok());
  EXPECT_FALSE(check_private_directory(dir.path() + "/missing", "daemon.state_dir").ok());
  const std::string real = dir.path() + "/real";
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  const std::string link = dir.path() + "/link";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  EXPECT_TRUE(check_private_directory(link, "daemon.state_dir").ok());
  ASSERT_EQ(::chmod(real.c_str(), 0777), 0);
  EXPECT_FALSE(check_private_directory(link, "daemon.state_dir").ok());
}

TEST(InstanceLock, ASecondHolderIsRefusedWithTheFileAndThePid) {
  TempDir state;
  TempDir bpffs;
  auto first = InstanceLock::acquire(state.path(), bpffs.path(), false);
  ASSERT_TRUE(first.ok()) << first.error().message();
  const std::string lock_file = state.path() + "/meshlaned.lock";
  EXPECT_EQ(first->path(), lock_file);
  EXPECT_EQ(read_text(lock_file), std::to_string(::getpid()) + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(lock_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  // flock belongs to the open file: a second open in this process conflicts like another one.
  auto second = InstanceLock::acquire(state.path(), bpffs.path(), false);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message().find("errno"), std::string::npos);
  EXPECT_TRUE(contains(second.error().message(), lock_file));
  EXPECT_TRUE(contains(second.error().message(), "pid " + std::to_string(::getpid())));
  EXPECT_TRUE(contains(second.error().message(), "Nothing was changed"));
}

TEST(InstanceLock, TheSameBpffsDirWithAnotherStateDirIsRefused) {
  TempDir state1;
  TempDir state2;
  TempDir bpffs;
  auto first = InstanceLock::acquire(state1.path(), bpffs.path(), false);
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = InstanceLock::acquire(state2.path(), bpffs.path(), false);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(contains(second.error().message(), bpffs.path()));
  EXPECT_TRUE(contains(second.error().message(), "daemon.bpffs_dir"));
  // --cleanup without a state_dir still meets the running daemon's bpffs lock.
  EXPECT_FALSE(InstanceLock::acquire("", bpffs.path(), false).ok());
}

TEST(InstanceLock, ReleasedWhenDestroyed) {
  TempDir state;
  TempDir bpffs;
  {
    auto first = InstanceLock::acquire(state.path(), bpffs.path(), false);
    ASSERT_TRUE(first.ok()) << first.error().message();
  }
  auto again = InstanceLock::acquire(state.path(), bpffs.path(), false);
  EXPECT_TRUE(again.ok()) << again.error().message();
}

TEST(InstanceLock, AMissingBpffsDirIsNotLocked) {
  TempDir state;
  auto lock = InstanceLock::acquire(state.path(), state.path() + "/no-bpffs-yet", false);
  EXPECT_TRUE(lock.ok()) << lock.error().message();
}

TEST(InstanceLock, ASymlinkedLockFileIsRefusedAndItsTargetUntouched) {
  TempDir state;
  TempDir bpffs;
  const std::string victim = state.path() + "/victim";
  std::ofstream(victim) << "precious\n";
  ASSERT_EQ(::symlink(victim.c_str(), (state.path() + "/meshlaned.lock").c_str()), 0);
  auto lock = InstanceLock::acquire(state.path(), bpffs.path(), false);
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.error().errnum, ELOOP);
  EXPECT_TRUE(contains(lock.error().message(), "symbolic link"));
  EXPECT_EQ(read_text(victim), "precious\n");
}

TEST(FlockHolder, FindsThisProcess) {
  TempDir dir;
  auto lock = InstanceLock::acquire(dir.path(), dir.path() + "/none", false);
  ASSERT_TRUE(lock.ok()) << lock.error().message();
  const int fd = ::open((dir.path() + "/meshlaned.lock").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(flock_holder(fd), std::optional<pid_t>(::getpid()));
  ::close(fd);
}

}  // namespace
}  // namespace meshlane
