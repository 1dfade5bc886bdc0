// The ml_* maps of meshlane's BPF objects: the ones pinned and shared between the objects (and
// kept across restarts), as opposed to libbpf's internal .rodata/.bss maps.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "datapath/map_upgrade.hpp"
#include "datapath/pin_layout.hpp"
#include "datapath/test_hooks.hpp"

struct bpf_object;
struct bpf_map;

namespace meshlane {

// meshlane's own maps are named ml_*; libbpf's internal ones (.rodata, .bss) are not pinned.
bool is_pinned_map(const bpf_map* map);

// The capacity the config gives a map (acceleration.sockhash_max_entries, [maps]), or 0 for a
// map whose size is fixed by the build.
std::uint32_t configured_max_entries(const std::string& map_name, const Config& config);
// The config key that sizes a map ("acceleration.sockhash_max_entries", "maps.*"), or nullptr.
const char* max_entries_setting(const std::string& map_name);

// Sizes the ml_* maps of an object before it is loaded: from the config
// (configured_max_entries), then any map from the tests' hooks.max_entries_override
// (MESHLANE_TEST_MAP_MAX_ENTRIES).
void size_maps(bpf_object* object, const Config& config, const TestHooks& hooks);

// The definitions of the ml_* maps the objects will create (each name once).
std::vector<MapSpec> wanted_maps(const std::vector<bpf_object*>& objects);

// Points every ml_* map of an object at its pin, so the first object to load creates and pins
// the shared maps and the others reuse them.
Status set_pin_paths(bpf_object* object, const PinLayout& pins);

// The name of every ml_* map this build's objects define, read from the objects themselves so
// that the list cannot drift from bpf/: the datapath adds each object as it opens it, and a run
// that opened them all has the whole list without opening anything again.
class BuildMapNames {
 public:
  // This build's BPF objects.
  enum class Object { kSockops, kIntercept, kInboundTc, kListenerScan };

  // Adds the ml_* maps of an object this run opened (loaded or not).
  void add(Object which, const bpf_object* object);

  // Adds the ml_* maps of the objects not added yet: a degraded run leaves interception or the
  // listener scan out, yet their maps stay this build's maps (and must not be unpinned as
  // retired). Those objects are opened here, one after the other, and never loaded.
  Status add_unopened();

  [[nodiscard]] const std::set<std::string>& names() const { return names_; }

 private:
  template <typename T>
  Status open_and_add(Object which);

  std::set<Object> objects_;
  std::set<std::string> names_;
};

}  // namespace meshlane
