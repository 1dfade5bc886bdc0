#include "common/mounts.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "temp_dir.hpp"
#include "test_files.hpp"
#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::read_text;
using test::TempDir;

std::string fixture(const std::string& name) {
  return read_text(std::string(MESHLANE_FIXTURE_DIR) + "/mountinfo/" + name);
}

// ---- find_cgroup2_mount / find_bpffs_mount on fixtures --------------------------------------

TEST(FindCgroup2Mount, HybridHierarchyFindsUnifiedMount) {
  Result<std::string> mount = find_cgroup2_mount(fixture("hybrid.txt"));
  ASSERT_TRUE(mount.ok()) << mount.error().message();
  EXPECT_EQ(*mount, "/sys/fs/cgroup/unified");
}

TEST(FindCgroup2Mount, UnifiedHierarchyWithOptionalFields) {
  Result<std::string> mount = find_cgroup2_mount(fixture("unified.txt"));
  ASSERT_TRUE(mount.ok()) << mount.error().message();
  EXPECT_EQ(*mount, "/sys/fs/cgroup");
}

TEST(FindCgroup2Mount, NoCgroup2IsAnError) {
  Result<std::string> mount = find_cgroup2_mount(fixture("none.txt"));
  ASSERT_FALSE(mount.ok());
  EXPECT_TRUE(contains(mount.error().message(), "no cgroup2 filesystem is mounted"));
}

TEST(FindCgroup2Mount, EmptyTextIsAnError) { EXPECT_FALSE(find_cgroup2_mount("").ok()); }

TEST(FindCgroup2Mount, OctalEscapesInMountPointAreDecoded) {
  Result<std::string> mount = find_cgroup2_mount(fixture("escaped.txt"));
  ASSERT_TRUE(mount.ok()) << mount.error().message();
  EXPECT_EQ(*mount, "/mnt/my cgroups");
}

TEST(FindCgroup2Mount, FirstOfSeveralWinsAndMalformedLinesAreSkipped) {
  Result<std::string> mount = find_cgroup2_mount(fixture("multiple.txt"));
  ASSERT_TRUE(mount.ok()) << mount.error().message();
  EXPECT_EQ(*mount, "/sys/fs/cgroup");
}

TEST(FindCgroup2Mount, FstypeIsTakenAfterTheSeparatorNotFromOptionalFields) {
  // "cgroup2" appears before the " - " separator only as an optional field; it is not the type.
  EXPECT_FALSE(find_cgroup2_mount("30 1 0:26 / /x rw cgroup2 - tmpfs tmpfs rw\n").ok());
}

TEST(FindCgroup2Mount, LineWithoutTrailingNewlineIsParsed) {
  Result<std::string> mount = find_cgroup2_mount("30 1 0:26 / /cg rw - cgroup2 cgroup2 rw");
  ASSERT_TRUE(mount.ok());
  EXPECT_EQ(*mount, "/cg");
}

TEST(FindBpffsMount, UnifiedFixtureHasBpffs) {
  EXPECT_EQ(find_bpffs_mount(fixture("unified.txt")), "/sys/fs/bpf");
}

TEST(FindBpffsMount, AbsentBpffsGivesEmptyString) {
  EXPECT_EQ(find_bpffs_mount(fixture("hybrid.txt")), "");
  EXPECT_EQ(find_bpffs_mount(fixture("none.txt")), "");
}

TEST(FindBpffsMount, EscapedTabAndBackslashAreDecoded) {
  EXPECT_EQ(find_bpffs_mount(fixture("escaped.txt")), "/mnt/pins\tand\\more");
}

TEST(FindBpffsMount, FirstOfSeveralWins) {
  EXPECT_EQ(find_bpffs_mount(fixture("multiple.txt")), "/sys/fs/bpf");
}

TEST(FindCgroup2Mount, ThisMachineHasOne) {
  Result<std::string> mount = find_cgroup2_mount();
  if (!mount.ok()) {
    GTEST_SKIP() << "no cgroup2 mounted here: " << mount.error().message();
  }
  EXPECT_EQ(mount->front(), '/');
}

// ---- resolve_cgroup_path --------------------------------------------------------------------

TEST(ResolveCgroupPath, MissingCgroupNamesPathAndFix) {
  TempDir mount;
  Result<std::string> path = resolve_cgroup_path(mount.path(), "/meshlane-test/child");
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().errnum, ENOENT);
  EXPECT_TRUE(contains(path.error().message(), mount.path() + "/meshlane-test/child"));
  EXPECT_TRUE(contains(path.error().message(), "create the cgroup or fix daemon.cgroup"));
}

TEST(ResolveCgroupPath, RelativePathIsJoinedBelowTheMount) {
  TempDir mount;
  Result<std::string> path = resolve_cgroup_path(mount.path(), "mesh/a");
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(contains(path.error().message(), mount.path() + "/mesh/a "));
}

TEST(ResolveCgroupPath, AbsolutePathBelowTheMountIsUsedAsIs) {
  TempDir mount;
  Result<std::string> path = resolve_cgroup_path(mount.path(), mount.path() + "/mesh");
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(contains(path.error().message(), " " + mount.path() + "/mesh "));
}

TEST(ResolveCgroupPath, FileIsNotADirectory) {
  TempDir mount;
  std::ofstream(mount.path() + "/cgroup.procs") << "";
  Result<std::string> path = resolve_cgroup_path(mount.path(), "cgroup.procs");
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().errnum, ENOTDIR);
}

TEST(ResolveCgroupPath, DirectoryNotOnCgroup2IsRejected) {
  TempDir mount;
  Result<std::string> path = resolve_cgroup_path(mount.path(), "");
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(contains(path.error().message(), "is not on a cgroup2 filesystem"));
}

TEST(ResolveCgroupPath, DotDotIsRejected) {
  Result<std::string> path = resolve_cgroup_path("/sys/fs/cgroup", "mesh/../../..");
  ASSERT_FALSE(path.ok());
  EXPECT_TRUE(contains(path.error().message(), "must not contain \"..\""));
}

TEST(ResolveCgroupPath, RootSpellingsResolveToTheRealMount) {
  Result<std::string> mount = find_cgroup2_mount();
  if (!mount.ok()) {
    GTEST_SKIP() << "no cgroup2 mounted here: " << mount.error().message();
  }
  for (const std::string& configured : {std::string(), std::string("/"), *mount, *mount + "/"}) {
    Result<std::string> path = resolve_cgroup_path(*mount, configured);
    ASSERT_TRUE(path.ok()) << "\"" << configured << "\": " << path.error().message();
    EXPECT_EQ(*path, *mount) << "\"" << configured << "\"";
  }
}

// ---- ensure_bpffs_dir -----------------------------------------------------------------------

TEST(EnsureBpffsDir, RelativeOrEmptyDirIsRejectedBeforeAnyMount) {
  EXPECT_TRUE(contains(ensure_bpffs_dir("sys/fs/bpf/x").error().message(), "absolute path"));
  EXPECT_FALSE(ensure_bpffs_dir("").ok());
}

// A bpffs for the cases below: the machine's when one is mounted; otherwise (a fresh machine
// mounts none until meshlaned runs) one mounted for this test process alone, in a mount
// namespace of its own: the machine never sees it and it goes with the process. Empty without
// root, or when the process cannot have a mount namespace of its own (it has threads).
class TestBpffs {
 public:
  TestBpffs() {
    if (::geteuid() != 0) {
      why_not_ = "needs root";
      return;
    }
    std::ifstream file("/proc/self/mountinfo");
    const std::string mountinfo{std::istreambuf_iterator<char>(file),
                                std::istreambuf_iterator<char>()};
    path_ = find_bpffs_mount(mountinfo);
    if (!path_.empty()) {
      return;
    }
    if (::unshare(CLONE_NEWNS) != 0) {
      why_not_ = std::string("no bpffs mounted, and no mount namespace of its own: unshare: ") +
                 std::strerror(errno);
      return;
    }
    // Nothing mounted here may propagate back to the machine's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      ADD_FAILURE() << "cannot make the test's mount namespace private: " << std::strerror(errno);
      return;
    }
    mount_point_ = scratch_.path() + "/bpffs";
    if (::mkdir(mount_point_.c_str(), 0700) != 0 ||
        ::mount("bpf", mount_point_.c_str(), "bpf", 0, nullptr) != 0) {
      ADD_FAILURE() << "cannot mount a bpffs at " << mount_point_ << ": " << std::strerror(errno);
      mount_point_.clear();
      return;
    }
    path_ = mount_point_;
  }
  ~TestBpffs() {
    if (!mount_point_.empty()) {
      ::umount2(mount_point_.c_str(), MNT_DETACH);
    }
  }
  TestBpffs(const TestBpffs&) = delete;
  TestBpffs& operator=(const TestBpffs&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& why_not() const { return why_not_; }

 private:
  TempDir scratch_{"meshlane-bpffs"};
  std::string mount_point_;  // set when this object mounted it
  std::string path_;
  std::string why_not_;
};

TEST(EnsureBpffsDir, DirOutsideBpffsIsRejectedAndNotCreated) {
  const TestBpffs bpffs;
  if (bpffs.path().empty()) {
    GTEST_SKIP() << bpffs.why_not();
  }
  TempDir temp;
  const std::string dir = temp.path() + "/pins";
  Status status = ensure_bpffs_dir(dir);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(contains(status.error().message(), "is not on a bpf filesystem"));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(EnsureBpffsDir, CreatesDirOnMountedBpffs) {
  const TestBpffs bpffs;
  if (bpffs.path().empty()) {
    GTEST_SKIP() << bpffs.why_not();
  }
  const std::string dir = bpffs.path() + "/meshlane-unit-test-" + std::to_string(::getpid());
  Status status = ensure_bpffs_dir(dir);
  ASSERT_TRUE(status.ok()) << status.error().message();
  struct stat info {};
  ASSERT_EQ(::stat(dir.c_str(), &info), 0);
  EXPECT_TRUE(S_ISDIR(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0700u);
  EXPECT_TRUE(ensure_bpffs_dir(dir + "/").ok()) << "an existing dir is accepted";
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace meshlane
