// The pin names of the socket-lookup links: valid in bpffs for any workload name, one per
// name, and the same in every build (a restarted daemon finds the link an earlier one pinned).
#include "datapath/sk_lookup_attach.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace meshlane {
namespace {

const PinLayout kPins{"/sys/fs/bpf/meshlane"};

std::string pin_name(const std::string& workload) {
  const std::string pin = sk_lookup_link_pin(kPins, workload);
  EXPECT_EQ(pin.rfind(kPins.links_dir() + "/", 0), 0U) << pin;
  return pin.substr(kPins.links_dir().size() + 1);
}

TEST(SkLookupLinkPin, HasOnlyCharactersBpffsTakes) {
  const std::vector<std::string> workloads = {"pod-b",      "shop.a",  "ns/pod",
                                              "with space", "ünïcode", std::string(300, 'x')};
  for (const std::string& workload : workloads) {
    const std::string name = pin_name(workload);
    EXPECT_LE(name.size(), 255U) << workload;
    for (char c : name) {
      const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_';
      EXPECT_TRUE(allowed) << "'" << c << "' in " << name << " for workload " << workload;
    }
  }
}

TEST(SkLookupLinkPin, KeepsTheNameReadableAndStableAcrossBuilds) {
  // FNV-1a of the whole name: must never change, or an upgraded daemon would not find the
  // link the previous one pinned and would attach a second one.
  EXPECT_EQ(pin_name("pod-b"), "ml_sklookup_pod-b_4977d8352ce5c563");
  EXPECT_EQ(pin_name("shop.a"), "ml_sklookup_shop-a_8bc950fc9b20272c");
}

TEST(SkLookupLinkPin, DiffersForNamesThatLookAlike) {
  std::set<std::string> names;
  for (const char* workload : {"shop.a", "shop-a", "shop_a", "shop/a"}) {
    names.insert(pin_name(workload));
  }
  EXPECT_EQ(names.size(), 4U);
}

}  // namespace
}  // namespace meshlane
