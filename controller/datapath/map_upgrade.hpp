// Pinned maps across upgrades: a restarted (or newer) meshlaned compares every pinned ml_* map
// with the definition it was built with, and reuses, migrates or recreates it, or refuses to
// start, before anything is changed. See docs/reliability.md.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "datapath/map_spec.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

enum class PinAction {
  kCreate,    // nothing pinned: the loader creates and pins it
  kReuse,     // compatible: the loader reuses it
  kMigrate,   // same key and value layout, other size or flags: copy the entries over
  kRecreate,  // other layout, contents can be rebuilt or live on in the old map: new map
};
const char* to_string(PinAction action);

struct PinDecision {
  std::string name;
  std::string pin;
  PinAction action = PinAction::kCreate;
  std::string why;  // what differs, for the log
};

// Decides for one map. An incompatible map that holds per-connection state the kernel needs
// to keep established connections working (tc flows, original destinations) with another
// layout is refused: the error names the map, what differs and what to do.
Result<PinDecision> decide_pinned_map(const MapSpec& wanted, const MapSpec* pinned,
                                      const std::string& pin);

// Decides for every map, reading the pins under `pins`; nothing is changed. The first refusal
// is returned as the error. A migration left half done by a crash (a "<pin>_migrating" file)
// is resumed.
Result<std::vector<PinDecision>> plan_pinned_maps(const std::vector<MapSpec>& wanted,
                                                  const PinLayout& pins);

// Before loading: moves the pins of maps to migrate to "<pin>_migrating" and unpins the maps
// to recreate. Programs still attached keep using the old maps until their links are updated,
// and sockets spliced through an old sockhash keep it alive until they close.
Status prepare_pins(const std::vector<PinDecision>& decisions);

// After loading (final = false: overwrite) and again after attaching (final = true: only
// entries the old programs added in between, then the old pin is removed): copies every entry
// of each migrated map into the new one.
Status migrate_entries(const std::vector<PinDecision>& decisions, bool final);

// Retired map layouts this build converts instead of dropping: ml_tcflows_v1 (an LRU map) and
// ml_tcflows_v2, whose flows carry established tc-steered connections, into ml_tcflows_v3, and
// ml_origdst_v1 into ml_origdst_v2. Like a migration, in two passes: after loading (the old
// programs still run on the old maps) and again after attaching (only the keys the first pass did
// not see: those the old programs added meanwhile). remove_retired_pins() then unpins the old maps.
struct RetiredConversion {
  std::set<std::string> seen_tc_flows;  // raw keys the first pass looked at
  std::set<std::string> seen_orig_dsts;
};
Status convert_retired_maps(const PinLayout& pins, RetiredConversion& conversion, bool final);

// Unpins ml_* maps under the directory that this build does not use (older layout versions,
// e.g. ml_foo_v1 once the build uses ml_foo_v2), given every ml_* map name this build defines
// (BuildMapNames in object_maps.hpp). Returns their names.
std::vector<std::string> remove_retired_pins(const PinLayout& pins,
                                             const std::set<std::string>& maps_of_this_build);

}  // namespace meshlane
