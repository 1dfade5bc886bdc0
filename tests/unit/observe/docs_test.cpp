// The operator docs name what the code reports: every datapath counter in docs/metrics.md (its
// Prometheus series), and every fallback reason of the monitor in docs/cli.md (its table of
// event reasons). A counter or reason added without its docs fails here.

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "observe/counters.hpp"
#include "observe/events.hpp"

namespace meshlane {
namespace {

std::string read_doc(const std::string& name) {
  std::ifstream in(std::string(MESHLANE_DOCS_DIR) + "/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Docs, EveryCounterIsInTheMetricsPage) {
  const std::string metrics = read_doc("metrics.md");
  ASSERT_FALSE(metrics.empty()) << "cannot read docs/metrics.md under " << MESHLANE_DOCS_DIR;
  for (int counter = 0; counter < ML_CTR_MAX; ++counter) {
    const std::string name = counter_name(static_cast<ml_counter>(counter));
    EXPECT_NE(metrics.find("`" + name + "`"), std::string::npos)
        << "docs/metrics.md does not name the counter " << name;
  }
}

TEST(Docs, EveryFallbackReasonIsInTheMonitorTable) {
  const std::string cli = read_doc("cli.md");
  ASSERT_FALSE(cli.empty()) << "cannot read docs/cli.md under " << MESHLANE_DOCS_DIR;
  // Every name the events can carry: unknown bytes read as peer_not_spliced (older programs).
  std::set<std::string> names;
  for (int reason = 0; reason <= UINT8_MAX; ++reason) {
    names.insert(monitor::fallback_reason_name(static_cast<std::uint8_t>(reason)));
  }
  EXPECT_GE(names.size(), 4U);
  for (const std::string& name : names) {
    EXPECT_NE(cli.find("| `fallback` | `" + name + "` |"), std::string::npos)
        << "docs/cli.md's monitor table has no row for the fallback reason " << name;
  }
}

}  // namespace
}  // namespace meshlane
