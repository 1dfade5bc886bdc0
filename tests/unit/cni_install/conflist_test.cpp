// The conflist edits against golden files: install gives the expected file, twice equals once,
// removing the entry gives back the original bytes.
#include "cni_install/conflist.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "golden_files.hpp"

namespace meshlane::cni_install {
namespace {

using test::read_golden;

struct GoldenCase {
  std::string input;     // the primary's file as the network plugin wrote it
  std::string expected;  // the golden file after install
  std::string expected_name;
  EditAction action;
};

class GoldenInstall : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenInstall, InstallGivesTheGoldenFile) {
  const GoldenCase& golden = GetParam();
  auto edit = install_entry(golden.input, read_golden(golden.input), PluginSettings{});
  ASSERT_TRUE(edit) << edit.error().message();
  EXPECT_EQ(edit->action, golden.action);
  EXPECT_EQ(edit->file_name, golden.expected_name);
  EXPECT_EQ(edit->text, read_golden(golden.expected));
}

TEST_P(GoldenInstall, InstallTwiceEqualsOnce) {
  const GoldenCase& golden = GetParam();
  auto once = install_entry(golden.input, read_golden(golden.input), PluginSettings{});
  ASSERT_TRUE(once) << once.error().message();
  auto twice = install_entry(once->file_name, once->text, PluginSettings{});
  ASSERT_TRUE(twice) << twice.error().message();
  EXPECT_EQ(twice->action, EditAction::kUnchanged);
  EXPECT_EQ(twice->text, once->text);
  EXPECT_EQ(twice->file_name, once->file_name);
  EXPECT_FALSE(twice->replaced_file);
}

TEST_P(GoldenInstall, RemoveGivesBackTheOriginalBytes) {
  const GoldenCase& golden = GetParam();
  const std::string original = read_golden(golden.input);
  auto removed = remove_entry(golden.expected, read_golden(golden.expected));
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_TRUE(removed->changed);
  if (golden.action == EditAction::kConverted) {
    // The conflist made from the .conf; the installer then puts the .conf itself back
    // (installer_test.cpp).
    auto converted = conflist_of_conf(golden.input, original);
    ASSERT_TRUE(converted) << converted.error().message();
    EXPECT_EQ(removed->text, converted.value());
  } else {
    EXPECT_EQ(removed->text, original);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Golden, GoldenInstall,
    ::testing::Values(GoldenCase{"10-calico.conflist", "10-calico.conflist.expected",
                                 "10-calico.conflist", EditAction::kInserted},
                      GoldenCase{"10-flannel.conflist", "10-flannel.conflist.expected",
                                 "10-flannel.conflist", EditAction::kInserted},
                      GoldenCase{"10-bridge.conf", "10-bridge.conflist.expected",
                                 "10-bridge.conflist", EditAction::kConverted},
                      // The primary rewrote its file after our install and dropped our entry: it
                      // comes back, once.
                      GoldenCase{"30-calico-rewritten.conflist",
                                 "30-calico-rewritten.conflist.expected",
                                 "30-calico-rewritten.conflist", EditAction::kInserted}),
    [](const auto& param_info) {
      std::string name = param_info.param.input;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) {
          c = '_';
        }
      }
      return name;
    });

TEST(ConflistInstall, FileAlreadyHoldingOurEntryIsLeftByteForByte) {
  const std::string text = read_golden("20-already.conflist");
  auto edit = install_entry("20-already.conflist", text, PluginSettings{});
  ASSERT_TRUE(edit) << edit.error().message();
  EXPECT_EQ(edit->action, EditAction::kUnchanged);
  EXPECT_EQ(edit->text, text);
}

TEST(ConflistInstall, FileAlreadyHoldingOurEntryLosesOnlyItOnRemove) {
  auto removed = remove_entry("20-already.conflist", read_golden("20-already.conflist"));
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_TRUE(removed->changed);
  EXPECT_EQ(removed->text, read_golden("20-already.uninstalled"));
}

TEST(ConflistInstall, OtherSettingsUpdateTheEntryInPlace) {
  PluginSettings closed;
  closed.failure_policy = "closed";
  closed.exclude_namespaces = {"kube-system", "istio-system"};
  auto edit = install_entry("20-already.conflist", read_golden("20-already.conflist"), closed);
  ASSERT_TRUE(edit) << edit.error().message();
  EXPECT_EQ(edit->action, EditAction::kUpdated);
  const auto json = nlohmann::json::parse(edit->text);
  ASSERT_EQ(json["plugins"].size(), 3U);
  EXPECT_EQ(json["plugins"][1]["type"], "meshlane-cni");  // where it was, not moved to the end
  EXPECT_EQ(json["plugins"][1]["failure_policy"], "closed");
  EXPECT_EQ(json["plugins"][1]["exclude_namespaces"].size(), 2U);
  EXPECT_EQ(json["plugins"][2]["type"], "portmap");
}

TEST(ConflistInstall, TwoEntriesOfOursBecomeOne) {
  auto once = install_entry("x.conflist", read_golden("20-already.conflist"), PluginSettings{});
  ASSERT_TRUE(once);
  auto json = nlohmann::ordered_json::parse(once->text);
  json["plugins"].push_back(json["plugins"][1]);
  auto edit = install_entry("x.conflist", json.dump(2), PluginSettings{});
  ASSERT_TRUE(edit) << edit.error().message();
  EXPECT_EQ(edit->action, EditAction::kUpdated);
  int ours = 0;
  const auto parsed = nlohmann::json::parse(edit->text);
  for (const auto& plugin : parsed["plugins"]) {
    ours += plugin["type"] == "meshlane-cni" ? 1 : 0;
  }
  EXPECT_EQ(ours, 1);
}

TEST(ConflistInstall, KeepsTabsAndOneLineLayouts) {
  const std::string tabs =
      "{\n\t\"name\": \"n\",\n\t\"plugins\": [\n\t\t{\n\t\t\t\"type\": \"ptp\"\n"
      "\t\t}\n\t]\n}\n";
  auto tab_edit = install_entry("t.conflist", tabs, PluginSettings{});
  ASSERT_TRUE(tab_edit);
  EXPECT_NE(tab_edit->text.find("\n\t\t{\n\t\t\t\"type\": \"meshlane-cni\""), std::string::npos)
      << tab_edit->text;
  auto tab_removed = remove_entry("t.conflist", tab_edit->text);
  ASSERT_TRUE(tab_removed);
  EXPECT_EQ(tab_removed->text, tabs);

  const std::string one_line = R"({"name":"n","plugins":[{"type":"ptp"}]})";
  auto line_edit = install_entry("l.conflist", one_line, PluginSettings{});
  ASSERT_TRUE(line_edit);
  EXPECT_EQ(line_edit->text.find('\n'), std::string::npos);
  auto line_removed = remove_entry("l.conflist", line_edit->text);
  ASSERT_TRUE(line_removed);
  EXPECT_EQ(line_removed->text, one_line);
}

TEST(ConflistInstall, EntryCarriesTheSettingsAndTheAnnotationsCapability) {
  PluginSettings settings;
  settings.control_socket = "/run/x/y.sock";
  settings.failure_policy = "closed";
  settings.exclude_namespaces = {};
  const auto entry = plugin_entry(settings);
  EXPECT_EQ(
      entry.dump(),
      R"({"type":"meshlane-cni","control_socket":"/run/x/y.sock","failure_policy":"closed",)"
      R"("exclude_namespaces":[],"capabilities":{"io.kubernetes.cri.pod-annotations":true}})");
}

TEST(ConflistInstall, RefusesFilesThatAreNotCniConfigs) {
  EXPECT_FALSE(install_entry("a.conflist", "{not json", PluginSettings{}));
  EXPECT_FALSE(install_entry("a.conflist", "[1, 2]", PluginSettings{}));
  EXPECT_FALSE(install_entry("a.conflist", R"({"plugins": {}})", PluginSettings{}));
  auto no_type = install_entry("a.conf", R"({"name": "x"})", PluginSettings{});
  ASSERT_FALSE(no_type);
  EXPECT_NE(no_type.error().message().find("a.conf"), std::string::npos);
  EXPECT_FALSE(install_entry("a.conf", R"({"type": "meshlane-cni"})", PluginSettings{}));
}

TEST(ConflistRemove, FileWithoutOurEntryIsReturnedAsIs) {
  const std::string odd = "{ \"plugins\" : [ {\"type\":\"ptp\"} ] }\n\n";
  auto removed = remove_entry("odd.conflist", odd);
  ASSERT_TRUE(removed);
  EXPECT_FALSE(removed->changed);
  EXPECT_EQ(removed->text, odd);
  auto conf = remove_entry("10-bridge.conf", read_golden("10-bridge.conf"));
  ASSERT_TRUE(conf);
  EXPECT_FALSE(conf->changed);
}

TEST(ChoosePrimary, FirstCniFileByNameSkippingOursAndOthers) {
  EXPECT_EQ(choose_primary({"20-b.conflist", "10-a.conf", "99-c.json"}), "10-a.conf");
  EXPECT_EQ(choose_primary({"README", "05-x.conflist.tmp", "calico-kubeconfig", "10-a.json",
                            "00-meshlane.conflist", ".hidden.conflist", "01-x.conf.bak"}),
            "10-a.json");
  EXPECT_EQ(choose_primary({"README", "calico-kubeconfig"}), std::nullopt);
  EXPECT_EQ(choose_primary({}), std::nullopt);
}

TEST(ChoosePrimary, ConfNameBecomesConflistName) {
  EXPECT_EQ(conflist_name_of_conf("10-bridge.conf"), "10-bridge.conflist");
  EXPECT_EQ(conflist_name_of_conf("87-podman.json"), "87-podman.conflist");
}

}  // namespace
}  // namespace meshlane::cni_install
