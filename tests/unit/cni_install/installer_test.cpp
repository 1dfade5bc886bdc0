// install-cni / uninstall-cni on temporary CNI bin and conf dirs: atomic binary copy, nothing
// written before the primary's config exists, entry first / binary last on uninstall, and the
// watcher that puts the entry back.
#include "cni_install/installer.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/text_file.hpp"
#include "common/unique_fd.hpp"
#include "file_size_limit.hpp"
#include "golden_files.hpp"
#include "temp_dir.hpp"

namespace meshlane::cni_install {
namespace {

namespace fs = std::filesystem;
using test::read_golden;
using namespace std::chrono_literals;

std::string read(const std::string& path) {
  auto text = read_text_file(path);
  EXPECT_TRUE(text) << text.error().message();
  return text ? text.value() : std::string();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A node's directories: bin and conf dir, and a stand-in plugin binary.
class Node : public ::testing::Test {
 protected:
  void SetUp() override {
    options.cni_bin_dir = dir.path() + "/opt/cni/bin";
    options.cni_conf_dir = dir.path() + "/etc/cni/net.d";
    options.plugin_path = dir.path() + "/build/meshlane-cni";
    fs::create_directories(options.cni_bin_dir);
    fs::create_directories(options.cni_conf_dir);
    fs::create_directories(dir.path() + "/build");
    write(options.plugin_path, "#!/bin/sh\necho plugin v1\n");
  }
  [[nodiscard]] std::string conf(const std::string& name) const {
    return options.cni_conf_dir + "/" + name;
  }
  [[nodiscard]] std::string binary() const { return options.cni_bin_dir + "/meshlane-cni"; }
  void put_golden(const std::string& name) const { write(conf(name), read_golden(name)); }

  meshlane::test::TempDir dir{"cni-install"};
  InstallOptions options;
};

TEST_F(Node, EmptyConfDirIsNotYetAndWritesNothing) {
  write(conf("README"), "not a CNI file\n");
  auto result = install_once(options);
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().no_primary_yet);
  EXPECT_NE(result.error().error.message().find("no primary CNI config yet"), std::string::npos);
  EXPECT_FALSE(fs::exists(binary()));
  EXPECT_EQ(fs::directory_iterator(options.cni_bin_dir), fs::directory_iterator());
}

TEST_F(Node, MissingConfDirIsNotYet) {
  fs::remove_all(options.cni_conf_dir);
  auto result = install_once(options);
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().no_primary_yet);
  EXPECT_FALSE(fs::exists(binary()));
}

TEST_F(Node, InstallCopiesTheBinaryAndInsertsTheEntryOnce) {
  put_golden("10-calico.conflist");
  put_golden("20-already.conflist");  // second by name: not the primary, left alone
  auto first = install_once(options);
  ASSERT_TRUE(first) << first.error().error.message();
  EXPECT_TRUE(first->binary_changed);
  EXPECT_EQ(first->action, EditAction::kInserted);
  EXPECT_EQ(first->conflist, conf("10-calico.conflist"));
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("10-calico.conflist.expected"));
  EXPECT_EQ(read(conf("20-already.conflist")), read_golden("20-already.conflist"));
  EXPECT_EQ(read(binary()), read(options.plugin_path));
  struct stat st {};
  ASSERT_EQ(::stat(binary().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755U);
  EXPECT_FALSE(fs::exists(options.cni_bin_dir + "/meshlane-cni.tmp"));
  EXPECT_FALSE(fs::exists(conf("10-calico.conflist.tmp")));
  // A config file the runtime and other node agents read: 0644 whatever the umask.
  ASSERT_EQ(::stat(conf("10-calico.conflist").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644U);

  auto second = install_once(options);
  ASSERT_TRUE(second) << second.error().error.message();
  EXPECT_FALSE(second->changed());
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("10-calico.conflist.expected"));
}

TEST_F(Node, NewPluginBuildReplacesTheBinaryAtomically) {
  put_golden("10-flannel.conflist");
  ASSERT_TRUE(install_once(options));
  write(options.plugin_path, "#!/bin/sh\necho plugin v2\n");
  auto again = install_once(options);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->binary_changed);
  EXPECT_EQ(again->action, EditAction::kUnchanged);
  EXPECT_EQ(read(binary()), "#!/bin/sh\necho plugin v2\n");
}

TEST_F(Node, MissingPluginIsAnErrorAndTheConflistIsLeftAlone) {
  put_golden("10-flannel.conflist");
  options.plugin_path = dir.path() + "/nowhere/meshlane-cni";
  auto result = install_once(options);
  ASSERT_FALSE(result);
  EXPECT_FALSE(result.error().no_primary_yet);
  EXPECT_NE(result.error().error.message().find("nowhere/meshlane-cni"), std::string::npos);
  EXPECT_EQ(read(conf("10-flannel.conflist")), read_golden("10-flannel.conflist"));
}

TEST_F(Node, MissingBinDirIsAnErrorAndNothingIsWritten) {
  put_golden("10-flannel.conflist");
  fs::remove_all(options.cni_bin_dir);
  auto result = install_once(options);
  ASSERT_FALSE(result);
  EXPECT_FALSE(result.error().no_primary_yet);
  EXPECT_NE(result.error().error.message().find("--cni-bin-dir"), std::string::npos);
  EXPECT_FALSE(fs::exists(options.cni_bin_dir));
  EXPECT_EQ(read(conf("10-flannel.conflist")), read_golden("10-flannel.conflist"));
}

TEST_F(Node, UninstallGivesBackTheOriginalBytesAndRemovesTheBinary) {
  for (const char* name : {"10-calico.conflist", "10-flannel.conflist"}) {
    SCOPED_TRACE(name);
    fs::remove_all(options.cni_conf_dir);
    fs::create_directories(options.cni_conf_dir);
    put_golden(name);
    ASSERT_TRUE(install_once(options));
    auto report = uninstall(options.cni_bin_dir, options.cni_conf_dir);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_EQ(report->conflists, std::vector<std::string>{conf(name)});
    EXPECT_TRUE(report->binary_removed);
    EXPECT_EQ(read(conf(name)), read_golden(name));
    EXPECT_FALSE(fs::exists(binary()));
  }
}

TEST_F(Node, ConfBecomesConflistAndComesBackOnUninstall) {
  put_golden("10-bridge.conf");
  auto result = install_once(options);
  ASSERT_TRUE(result) << result.error().error.message();
  EXPECT_EQ(result->action, EditAction::kConverted);
  EXPECT_FALSE(fs::exists(conf("10-bridge.conf")));
  EXPECT_EQ(read(conf("10-bridge.conflist")), read_golden("10-bridge.conflist.expected"));
  EXPECT_TRUE(fs::exists(conf(".10-bridge.conf.meshlane-orig")));

  auto twice = install_once(options);
  ASSERT_TRUE(twice);
  EXPECT_FALSE(twice->changed());

  auto report = uninstall(options.cni_bin_dir, options.cni_conf_dir);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->restored, std::vector<std::string>{conf("10-bridge.conf")});
  EXPECT_EQ(read(conf("10-bridge.conf")), read_golden("10-bridge.conf"));
  EXPECT_FALSE(fs::exists(conf("10-bridge.conflist")));
  EXPECT_FALSE(fs::exists(conf(".10-bridge.conf.meshlane-orig")));
  EXPECT_FALSE(fs::exists(binary()));
}

TEST_F(Node, FailingConfWriteKeepsTheBinary) {
  put_golden("10-calico.conflist");
  ASSERT_TRUE(install_once(options));
  {
    // Writes past 16 bytes fail, even as root: the conflist cannot be rewritten.
    meshlane::test::FileSizeLimit limit(16);
    auto report = uninstall(options.cni_bin_dir, options.cni_conf_dir);
    ASSERT_FALSE(report);
    EXPECT_NE(report.error().message().find("binary was left in place"), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(binary()));
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("10-calico.conflist.expected"));

  auto retried = uninstall(options.cni_bin_dir, options.cni_conf_dir);
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_FALSE(fs::exists(binary()));
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("10-calico.conflist"));
}

TEST_F(Node, UninstallWithNothingInstalledSucceeds) {
  put_golden("10-flannel.conflist");
  auto report = uninstall(options.cni_bin_dir, options.cni_conf_dir);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_FALSE(report->changed());
  EXPECT_EQ(read(conf("10-flannel.conflist")), read_golden("10-flannel.conflist"));
}

TEST_F(Node, InstallWaitsForThePrimaryConfig) {
  std::thread network_plugin([&] {
    std::this_thread::sleep_for(300ms);
    // As a network plugin does it: a temp name first, renamed into place.
    write(conf("10-flannel.conflist.partial"), read_golden("10-flannel.conflist"));
    fs::rename(conf("10-flannel.conflist.partial"), conf("10-flannel.conflist"));
  });
  auto result = install_when_ready(options, 10s, -1);
  network_plugin.join();
  ASSERT_TRUE(result) << result.error().error.message();
  EXPECT_EQ(read(conf("10-flannel.conflist")), read_golden("10-flannel.conflist.expected"));
}

TEST_F(Node, InstallGivesUpAfterTheTimeout) {
  auto result = install_when_ready(options, 200ms, -1);
  ASSERT_FALSE(result);
  EXPECT_TRUE(result.error().no_primary_yet);
}

// Polls until pred() holds or 10 s pass.
template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 200; ++i) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

TEST_F(Node, WatchPutsTheEntryBackWhenThePrimaryRewritesItsFile) {
  put_golden("10-calico.conflist");
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(stop);
  std::atomic<int> changes{0};
  std::thread watcher([&] {
    Status status = watch(options, stop.get(), [&](const InstallReport&) { ++changes; });
    EXPECT_TRUE(status) << status.error().message();
  });
  EXPECT_TRUE(eventually([&] { return changes == 1; }));
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("10-calico.conflist.expected"));

  // Calico's operator writes its conflist again, without our entry.
  ASSERT_TRUE(write_file_atomically(conf("10-calico.conflist"),
                                    read_golden("30-calico-rewritten.conflist")));
  EXPECT_TRUE(eventually([&] {
    return read(conf("10-calico.conflist")) == read_golden("30-calico-rewritten.conflist.expected");
  }));
  std::this_thread::sleep_for(300ms);  // our own write must not start a loop of rewrites
  EXPECT_EQ(changes, 2);

  const std::uint64_t one = 1;
  ASSERT_EQ(::write(stop.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  watcher.join();
  // Stopping leaves the entry: an upgrade restarts the watcher, uninstall is its own command.
  EXPECT_EQ(read(conf("10-calico.conflist")), read_golden("30-calico-rewritten.conflist.expected"));
}

TEST(CopyExecutable, SameBytesAreNotRewritten) {
  meshlane::test::TempDir dir{"cni-copy"};
  const std::string source = dir.path() + "/src";
  const std::string target = dir.path() + "/dst";
  write(source, "abc");
  auto first = copy_executable_atomically(source, target);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_TRUE(first.value());
  auto second = copy_executable_atomically(source, target);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second.value());
  ::chmod(target.c_str(), 0644);  // same bytes, wrong mode: fixed
  auto third = copy_executable_atomically(source, target);
  ASSERT_TRUE(third);
  EXPECT_TRUE(third.value());
}

}  // namespace
}  // namespace meshlane::cni_install
