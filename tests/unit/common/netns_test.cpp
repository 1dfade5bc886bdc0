// open_network_namespace and the host check against real files: whatever a workload's netns
// names, it is refused with an error that says what it is, and a FIFO never blocks the caller.
#include "common/netns.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "temp_dir.hpp"
#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;

std::string refusal(const std::string& path) {
  auto opened = open_network_namespace(path);
  EXPECT_FALSE(opened.ok()) << path << " was accepted as a network namespace";
  return opened.ok() ? "" : opened.error().message();
}

// A child process in a network namespace of its own, alive until destroyed (root only).
class ChildNetns {
 public:
  ChildNetns() {
    int ready[2];
    if (::pipe(ready) != 0) {
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      const char outcome = ::unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
      (void)!::write(ready[1], &outcome, 1);
      ::pause();
      ::_exit(0);
    }
    ::close(ready[1]);
    char outcome = 'n';
    unshared_ = pid_ > 0 && ::read(ready[0], &outcome, 1) == 1 && outcome == 'y';
    ::close(ready[0]);
  }
  ~ChildNetns() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildNetns(const ChildNetns&) = delete;
  ChildNetns& operator=(const ChildNetns&) = delete;

  [[nodiscard]] bool ok() const { return unshared_; }
  [[nodiscard]] std::string path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }

 private:
  pid_t pid_ = -1;
  bool unshared_ = false;
};

TEST(OpenNetworkNamespace, FifoIsRefusedWithoutBlocking) {
  test::TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Nobody ever writes to it: a plain O_RDONLY open would wait here forever.
  EXPECT_TRUE(contains(refusal(fifo), fifo + " is a FIFO, not a network namespace"));
}

TEST(OpenNetworkNamespace, OtherFilesAreRefusedSayingWhatTheyAre) {
  test::TempDir dir;
  const std::string file = dir.path() + "/file";
  std::ofstream(file) << "not a namespace\n";
  EXPECT_TRUE(contains(refusal(file), file + " is a regular file, not a network namespace"));
  EXPECT_TRUE(contains(refusal(dir.path()), " is a directory, not a network namespace"));
  EXPECT_TRUE(contains(refusal("/dev/null"), "/dev/null is a character device"));
  EXPECT_TRUE(contains(refusal(file), "e.g. /var/run/netns/NAME or /proc/PID/ns/net"));
}

TEST(OpenNetworkNamespace, MissingAndRelativePaths) {
  auto missing = open_network_namespace("/nonexistent/meshlane/netns");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().errnum, ENOENT);  // how callers tell a vanished pod
  EXPECT_TRUE(contains(missing.error().message(), "does the pod still exist?"));
  EXPECT_TRUE(contains(refusal("var/run/netns/a"), "is not an absolute path"));
  EXPECT_TRUE(contains(refusal(""), "is not an absolute path"));
}

TEST(OpenNetworkNamespace, OtherKindsOfNamespaceAreRefused) {
  EXPECT_TRUE(contains(refusal("/proc/self/ns/uts"),
                       "/proc/self/ns/uts is a uts namespace, not a network namespace"));
  EXPECT_TRUE(contains(refusal("/proc/self/ns/ipc"), "is an ipc namespace"));
}

TEST(OpenNetworkNamespace, OwnNamespaceOpensButIsRefusedAsTheHost) {
  auto own = open_network_namespace("/proc/self/ns/net");
  ASSERT_TRUE(own.ok()) << own.error().message();
  auto id = netns_id_of(own->get(), "/proc/self/ns/net");
  ASSERT_TRUE(id.ok());
  auto refused = check_not_host_netns(id.value(), "/proc/self/ns/net");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message(),
                       "/proc/self/ns/net is meshlaned's own network namespace"));
  EXPECT_TRUE(contains(refused.error().message(), "daemon.allow_host_netns = true"));

  auto inspected = inspect_workload_netns("/proc/self/ns/net", HostNetns::kRefuse);
  ASSERT_FALSE(inspected.ok());
  EXPECT_TRUE(contains(inspected.error().message(), "own network namespace"));
  if (::geteuid() == 0) {  // setns needs CAP_SYS_ADMIN
    auto allowed = inspect_workload_netns("/proc/self/ns/net", HostNetns::kAllow);
    ASSERT_TRUE(allowed.ok()) << allowed.error().message();
    EXPECT_NE(allowed->cookie, 0u);
  }
}

TEST(OpenNetworkNamespace, WithIdGivesTheFileAndTheIdOfThatFile) {
  auto opened = open_network_namespace_with_id("/proc/self/ns/net");
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  struct stat st {};
  ASSERT_EQ(::fstat(opened->fd.get(), &st), 0);
  EXPECT_EQ(opened->id, (NetnsId{st.st_dev, st.st_ino}));
  struct stat own {};
  ASSERT_EQ(::stat("/proc/self/ns/net", &own), 0);
  EXPECT_EQ(opened->id.inode, own.st_ino);

  // The refusals are open_network_namespace()'s.
  auto refused = open_network_namespace_with_id("/proc/self/ns/uts");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message(), "is a uts namespace"));
}

TEST(OpenNetworkNamespace, SymlinkToAPodNamespaceIsFine) {
  ChildNetns pod;
  if (!pod.ok()) {
    GTEST_SKIP() << "cannot create a network namespace (needs root)";
  }
  test::TempDir dir;
  const std::string link = dir.path() + "/pod-netns";
  ASSERT_EQ(::symlink(pod.path().c_str(), link.c_str()), 0);
  auto pod_info = inspect_workload_netns(link, HostNetns::kRefuse);
  ASSERT_TRUE(pod_info.ok()) << pod_info.error().message();
  auto own = inspect_workload_netns("/proc/self/ns/net", HostNetns::kAllow);
  ASSERT_TRUE(own.ok()) << own.error().message();
  EXPECT_NE(pod_info->cookie, own->cookie);
  EXPECT_FALSE(pod_info->id == own->id);
  // The same namespace through its /proc path has the same id.
  auto direct = inspect_workload_netns(pod.path(), HostNetns::kRefuse);
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(direct->id == pod_info->id);
  EXPECT_EQ(direct->cookie, pod_info->cookie);

  // A symlink is followed to what it names, and that is checked: a FIFO behind one is refused.
  const std::string fifo = dir.path() + "/fifo";
  const std::string fifo_link = dir.path() + "/fifo-link";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(fifo.c_str(), fifo_link.c_str()), 0);
  EXPECT_TRUE(contains(refusal(fifo_link), "is a FIFO"));
}

}  // namespace
}  // namespace meshlane
