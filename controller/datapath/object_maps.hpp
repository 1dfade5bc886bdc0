// The ml_* maps of meshlane's BPF objects: the ones pinned and shared between the objects (and
// kept across restarts), as opposed to libbpf's internal .rodata/.bss maps.
#pragma once

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

// Sizes the ml_* maps of an object: the sockhash from the config, any map from the tests'
// hooks.max_entries_override (MESHLANE_TEST_MAP_MAX_ENTRIES).
void size_maps(bpf_object* object, const AccelerationConfig& acceleration, const TestHooks& hooks);

// The definitions of the ml_* maps the objects will create (each name once).
std::vector<MapSpec> wanted_maps(const std::vector<bpf_object*>& objects);

// Points every ml_* map of an object at its pin, so the first object to load creates and pins
// the shared maps and the others reuse them.
Status set_pin_paths(bpf_object* object, const PinLayout& pins);

// The name of every ml_* map this build's objects define, whether this run loads them or not
// (a degraded run leaves interception out, yet its maps stay this build's maps): read from the
// objects themselves, opened but not loaded, so the list cannot drift from bpf/.
Result<std::set<std::string>> pinned_map_names_of_build();

}  // namespace meshlane
