#include "meshlane/map_upgrade.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "meshlane/bpf_map.hpp"
#include "meshlane/shared.h"

namespace meshlane {

namespace {

// bpffs refuses names with a dot.
constexpr std::string_view kMigratingSuffix = "_migrating";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Maps whose entries describe established connections: a map with another layout cannot be
// filled from the old one, and an empty one breaks the connections (a tc-steered flow whose
// state is gone is no longer rewritten; a proxy that has not asked for its original
// destination yet gets no answer).
bool holds_connection_state(const std::string& name) {
  return name == ML_TC_FLOWS_MAP_NAME || name == ML_ORIG_DST_MAP_NAME;
}

// Maps whose entries cannot be copied from user space: sockets and socket storage. Sockets
// already in the old map stay spliced through it (they hold it alive) until they close.
bool holds_sockets(std::uint32_t type) {
  return type == BPF_MAP_TYPE_SOCKHASH || type == BPF_MAP_TYPE_SOCKMAP ||
         type == BPF_MAP_TYPE_SK_STORAGE;
}

bool is_percpu(std::uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

bool is_array(std::uint32_t type) {
  return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

std::string differences(const MapSpec& wanted, const MapSpec& pinned) {
  std::string out;
  auto add = [&out](const char* what, std::uint32_t have, std::uint32_t want) {
    if (have != want) {
      out += (out.empty() ? "" : ", ") + std::string(what) + " " + std::to_string(have) +
             " (this build: " + std::to_string(want) + ")";
    }
  };
  add("type", pinned.type, wanted.type);
  add("key size", pinned.key_size, wanted.key_size);
  add("value size", pinned.value_size, wanted.value_size);
  add("max_entries", pinned.max_entries, wanted.max_entries);
  add("flags", pinned.flags, wanted.flags);
  return out;
}

bool same_map(const std::string& a, const std::string& b) {
  auto fd_a = open_pinned(a);
  auto fd_b = open_pinned(b);
  if (!fd_a || !fd_b) {
    return false;
  }
  auto info_a = map_info(fd_a->get());
  auto info_b = map_info(fd_b->get());
  return info_a && info_b && info_a->id == info_b->id;
}

// bpffs has no rename: pin the object at `to` as well, then remove `from`. A crash in between
// leaves both pins, which plan_pinned_maps() handles.
Status move_pin(const std::string& from, const std::string& to) {
  auto fd = open_pinned(from);
  if (!fd) {
    return fd.error();
  }
  if (bpf_obj_pin(fd->get(), to.c_str()) != 0) {
    return make_error(errno, "cannot pin " + from + " at " + to);
  }
  if (::unlink(from.c_str()) != 0) {
    return make_error(errno, "cannot remove " + from + " after pinning it at " + to);
  }
  return {};
}

Result<MapSpec> pinned_spec(const std::string& pin) {
  auto fd = open_pinned(pin);
  if (!fd) {
    return fd.error();
  }
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd->get(), &info, &length) != 0) {
    return make_error(errno,
                      "cannot read the definition of the map pinned at " + pin + " (is it a map?)");
  }
  return MapSpec{info.name,       info.type,        info.key_size,
                 info.value_size, info.max_entries, info.map_flags};
}

// Copies every entry of `from` into `to`; returns how many were written.
Result<std::size_t> copy_entries(int from, int to, const MapSpec& spec, std::uint64_t flags) {
  const int cpus = is_percpu(spec.type) ? libbpf_num_possible_cpus() : 1;
  if (cpus <= 0) {
    return make_error(-cpus, "cannot count the possible CPUs");
  }
  const std::size_t value_stride =
      is_percpu(spec.type) ? (spec.value_size + 7) / 8 * 8 : spec.value_size;
  std::vector<std::uint8_t> key(spec.key_size);
  std::vector<std::uint8_t> next(spec.key_size);
  std::vector<std::uint8_t> value(value_stride * static_cast<std::size_t>(cpus));
  std::size_t copied = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(from, previous, next.data()) == 0) {
    key = next;
    previous = key.data();
    if (bpf_map_lookup_elem(from, key.data(), value.data()) != 0) {
      continue;  // deleted meanwhile
    }
    if (bpf_map_update_elem(to, key.data(), value.data(), is_array(spec.type) ? BPF_ANY : flags) ==
        0) {
      ++copied;
    } else if (errno == E2BIG) {
      // The new map is smaller than the old one's contents (or the index is out of range for
      // an array): the rest cannot come along.
      spdlog::warn("map {}: new map is full after {} entries; the others are not migrated",
                   spec.name, copied);
      break;
    } else if (errno != EEXIST) {
      return make_error(errno, "cannot copy an entry of map " + spec.name);
    }
  }
  return copied;
}

}  // namespace

const char* to_string(PinAction action) {
  switch (action) {
    case PinAction::kCreate: return "created";
    case PinAction::kReuse: return "reused";
    case PinAction::kMigrate: return "migrated";
    case PinAction::kRecreate: return "recreated";
  }
  return "?";
}

Result<PinDecision> decide_pinned_map(const MapSpec& wanted, const MapSpec* pinned,
                                      const std::string& pin) {
  PinDecision decision{wanted.name, pin, PinAction::kCreate, ""};
  if (pinned == nullptr) {
    return decision;
  }
  const std::string diff = differences(wanted, *pinned);
  if (diff.empty()) {
    decision.action = PinAction::kReuse;
    return decision;
  }
  decision.why = diff;
  const bool same_layout = pinned->type == wanted.type && pinned->key_size == wanted.key_size &&
                           pinned->value_size == wanted.value_size;
  if (same_layout && !holds_sockets(wanted.type)) {
    decision.action = PinAction::kMigrate;
    return decision;
  }
  if (holds_sockets(wanted.type) || !holds_connection_state(wanted.name)) {
    decision.action = PinAction::kRecreate;
    return decision;
  }
  return make_error(EINVAL,
                    "the map pinned at " + pin + " is incompatible with this build: " + diff +
                        ". It holds the state of established connections, which a new map " +
                        "would break, and its entries cannot be converted. To go ahead anyway " +
                        "(connections steered by meshlane at this moment may reset): stop " +
                        "meshlaned, remove the pin (rm " + pin + ") or run 'meshlaned " +
                        "--cleanup', then start again; or keep running the build that made it");
}

Result<std::vector<PinDecision>> plan_pinned_maps(const std::vector<MapSpec>& wanted,
                                                  const PinLayout& pins) {
  std::vector<PinDecision> decisions;
  for (const MapSpec& spec : wanted) {
    const std::string pin = pins.map(spec.name);
    const std::string migrating = pin + std::string(kMigratingSuffix);
    if (exists(migrating)) {
      if (!exists(pin)) {
        // Crashed before the new map was pinned: the old one is still the real one.
        if (auto status = move_pin(migrating, pin); !status) {
          return status.error();
        }
        spdlog::warn("map {}: an interrupted migration is rolled back", spec.name);
      } else if (same_map(pin, migrating)) {
        // Crashed in the middle of moving the pin: both names are the old map.
        ::unlink(migrating.c_str());
      } else {
        // Crashed after: the new map exists, finish copying.
        spdlog::warn("map {}: an interrupted migration is resumed", spec.name);
        decisions.push_back({spec.name, pin, PinAction::kMigrate, "interrupted migration"});
        continue;
      }
    }
    std::optional<MapSpec> pinned;
    if (exists(pin)) {
      auto read = pinned_spec(pin);
      if (!read) {
        return read.error();
      }
      pinned = read.value();
    }
    auto decision = decide_pinned_map(spec, pinned ? &*pinned : nullptr, pin);
    if (!decision) {
      return decision.error();
    }
    decisions.push_back(decision.value());
  }
  return decisions;
}

Status prepare_pins(const std::vector<PinDecision>& decisions) {
  for (const PinDecision& decision : decisions) {
    const std::string migrating = decision.pin + std::string(kMigratingSuffix);
    if (decision.action == PinAction::kMigrate && !exists(migrating)) {
      if (auto status = move_pin(decision.pin, migrating); !status) {
        return status;
      }
      spdlog::warn("map {}: {}; its entries are migrated to a new map", decision.name,
                   decision.why);
    } else if (decision.action == PinAction::kRecreate) {
      if (::unlink(decision.pin.c_str()) != 0 && errno != ENOENT) {
        return make_error(errno, "cannot unpin the incompatible map " + decision.pin);
      }
      spdlog::warn(
          "map {}: {}; a new map replaces it (programs still attached keep the old one until "
          "they are replaced; spliced sockets keep theirs until they close)",
          decision.name, decision.why);
    }
  }
  return {};
}

Status migrate_entries(const std::vector<PinDecision>& decisions, bool final) {
  for (const PinDecision& decision : decisions) {
    if (decision.action != PinAction::kMigrate) {
      continue;
    }
    const std::string migrating = decision.pin + std::string(kMigratingSuffix);
    if (!exists(migrating)) {
      continue;
    }
    auto from = open_pinned(migrating);
    auto to = open_pinned(decision.pin);
    if (!from || !to) {
      return make_error(!from ? from.error().errnum : to.error().errnum,
                        "cannot open map " + decision.name + " for its migration");
    }
    auto spec = pinned_spec(migrating);
    if (!spec) {
      return spec.error();
    }
    auto copied = copy_entries(from->get(), to->get(), spec.value(), final ? BPF_NOEXIST : BPF_ANY);
    if (!copied) {
      return copied.error();
    }
    spdlog::info("map {}: {} entries {}", decision.name, copied.value(),
                 final ? "added by the old programs meanwhile, migrated" : "migrated");
    if (final && ::unlink(migrating.c_str()) != 0) {
      return make_error(errno, "cannot remove " + migrating + " after its migration");
    }
  }
  return {};
}

std::vector<std::string> remove_retired_pins(const PinLayout& pins) {
  std::vector<std::string> removed;
  DIR* dir = ::opendir(pins.dir.c_str());
  if (dir == nullptr) {
    return removed;
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    names.emplace_back(entry->d_name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    if (!name.starts_with("ml_") || name.ends_with(kMigratingSuffix)) {
      continue;
    }
    if (std::find(kPinnedMapNames.begin(), kPinnedMapNames.end(), name) != kPinnedMapNames.end()) {
      continue;
    }
    if (::unlink(pins.map(name).c_str()) == 0) {
      removed.push_back(name);
    }
  }
  return removed;
}

std::uint32_t test_max_entries_override(const std::string& map_name) {
  const char* env = std::getenv("MESHLANE_TEST_MAP_MAX_ENTRIES");
  if (env == nullptr) {
    return 0;
  }
  std::stringstream list(env);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto eq = item.find('=');
    if (eq != std::string::npos && item.substr(0, eq) == map_name) {
      return static_cast<std::uint32_t>(std::strtoul(item.c_str() + eq + 1, nullptr, 10));
    }
  }
  return 0;
}

}  // namespace meshlane
