#include "datapath/map_upgrade.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "datapath/bpf_map.hpp"
#include "datapath/stale_sweep.hpp"
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
  auto id_a = map_id(fd_a->get());
  auto id_b = map_id(fd_b->get());
  return id_a && id_b && id_a.value() == id_b.value();
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
  auto map = open_pinned_map(pin);
  if (!map) {
    return map.error();
  }
  return std::move(map->info);
}

// Copies every entry of `from` into `to`; returns how many were written.
Result<std::size_t> copy_entries(int from, int to, const MapSpec& spec, std::uint64_t flags) {
  const int cpus = is_percpu(spec.type) ? libbpf_num_possible_cpus() : 1;
  if (cpus <= 0) {
    return make_error(-cpus, "cannot count the possible CPUs");
  }
  const std::size_t value_stride =
      is_percpu(spec.type) ? (spec.value_size + 7) / 8 * 8 : spec.value_size;
  std::vector<std::uint8_t> value(value_stride * static_cast<std::size_t>(cpus));
  std::size_t copied = 0;
  Status failed;
  for_each_map_key(from, spec.key_size, spec.max_entries, [&](const std::uint8_t* key) {
    if (bpf_map_lookup_elem(from, key, value.data()) != 0) {
      return true;  // deleted meanwhile
    }
    if (bpf_map_update_elem(to, key, value.data(),
                            is_array(spec.type) ? std::uint64_t{BPF_ANY} : flags) == 0) {
      ++copied;
      return true;
    }
    if (errno == E2BIG) {
      // The new map is smaller than the old one's contents (or the index is out of range for
      // an array): the rest cannot come along.
      spdlog::warn("map {}: new map is full after {} entries; the others are not migrated",
                   spec.name, copied);
      return false;
    }
    if (errno != EEXIST) {
      failed = make_error(errno, "cannot copy an entry of map " + spec.name);
      return false;
    }
    return true;
  });
  if (!failed) {
    return failed.error();
  }
  return copied;
}

// Values of the retired maps, as the builds that made them defined them (their keys,
// ml_tc_flow_key and ml_flow_key, did not change).
struct TcFlowV1 {
  std::uint16_t orig_port;
  std::uint16_t inbound_port;
  std::uint8_t fin_in;
  std::uint8_t fin_out;
  std::uint16_t pad;
};
// The first 16 bytes of today's ml_tc_flow.
struct TcFlowV2 {
  std::uint16_t orig_port;
  std::uint16_t inbound_port;
  std::uint8_t fin_in;
  std::uint8_t fin_out;
  std::uint8_t acked;
  std::uint8_t pad8;
  std::uint64_t start_ns;
};
using OrigDstV1 = ml_orig_dst;
static_assert(sizeof(TcFlowV1) == 8 && sizeof(TcFlowV2) == 16 && sizeof(OrigDstV1) == 20,
              "the retired layouts");
static_assert(sizeof(ml_tc_flow) == 32 && sizeof(ml_orig_dst_entry) == 32,
              "a current layout changed: bump the map versions");

// A flow of a retired layout in today's. The retired layouts did not record where a FIN ended:
// a FIN they saw counts as acknowledged, so such a flow ends once the other side's FIN is
// acknowledged (or at the next packet when both were seen), as the old build would have ended
// it at the next pure ACK.
ml_tc_flow converted_flow(std::uint16_t orig_port, std::uint16_t inbound_port, std::uint8_t fin_in,
                          std::uint8_t fin_out, std::uint8_t acked, std::uint64_t start_ns) {
  ml_tc_flow flow{};
  flow.orig_port = orig_port;
  flow.inbound_port = inbound_port;
  flow.fin_in = fin_in;
  flow.fin_out = fin_out;
  flow.fin_in_acked = fin_in;
  flow.fin_out_acked = fin_out;
  flow.acked = acked;
  flow.start_ns = start_ns;
  return flow;
}

// A converted original destination is kept this long before the sweep removes it: the old
// map kept every entry (LRU), so most of them belong to connections whose proxy asked long ago,
// and only a proxy that has not asked yet (within moments of its accept) still needs one.
constexpr std::chrono::seconds kConvertedOrigDstLife{10};

// Copies the entries of the retired map at `from_pin` into `to_pin`, converted, that `seen`
// does not hold yet (and records them there); at most `cap` of them. Returns how many.
template <typename Key, typename OldValue, typename NewValue, typename Convert>
Result<std::size_t> convert_entries(const std::string& from_pin, const std::string& to_pin,
                                    std::set<std::string>& seen, std::size_t cap, Convert convert) {
  if (!exists(from_pin)) {
    return 0;
  }
  auto from = TypedMap<Key, OldValue>::open_pin(from_pin);
  if (!from) {
    spdlog::warn("{}: not the layout this build converts ({}); its entries are dropped", from_pin,
                 from.error().message());
    return 0;
  }
  auto to = TypedMap<Key, NewValue>::open_pin(to_pin);
  if (!to) {
    return to.error();
  }
  std::size_t copied = 0;
  for (const Key& key : from->keys()) {
    if (!seen.insert(std::string(reinterpret_cast<const char*>(&key), sizeof key)).second ||
        copied >= cap) {
      continue;
    }
    auto old_value = from->lookup(key);
    if (!old_value) {
      continue;  // ended meanwhile
    }
    const NewValue value = convert(*old_value);
    if (bpf_map_update_elem(to->fd(), &key, &value, BPF_NOEXIST) == 0) {
      ++copied;
    } else if (errno == E2BIG) {
      spdlog::warn("{}: full after {} converted entries; the others are dropped", to_pin, copied);
      break;
    } else if (errno != EEXIST) {
      return make_error(errno, "cannot convert an entry of " + from_pin + " into " + to_pin);
    }
  }
  return copied;
}

}  // namespace

Status convert_retired_maps(const PinLayout& pins, RetiredConversion& conversion, bool final) {
  const std::uint64_t now = datapath_now_ns();
  // Live flows must all come along (a flow left behind is a connection reset). v1 flows count
  // as past their SYN: the old map cannot tell, and sweeping a live idle connection would break
  // it. A node skips no build in between, so at most one of the two is pinned.
  auto flows_v1 = convert_entries<ml_tc_flow_key, TcFlowV1, ml_tc_flow>(
      pins.map(ML_TC_FLOWS_V1_MAP_NAME), pins.map(ML_TC_FLOWS_MAP_NAME), conversion.seen_tc_flows,
      SIZE_MAX, [now](const TcFlowV1& old) {
        return converted_flow(old.orig_port, old.inbound_port, old.fin_in, old.fin_out, 1, now);
      });
  if (!flows_v1) {
    return flows_v1.error();
  }
  auto flows_v2 = convert_entries<ml_tc_flow_key, TcFlowV2, ml_tc_flow>(
      pins.map(ML_TC_FLOWS_V2_MAP_NAME), pins.map(ML_TC_FLOWS_MAP_NAME), conversion.seen_tc_flows,
      SIZE_MAX, [](const TcFlowV2& old) {
        return converted_flow(old.orig_port, old.inbound_port, old.fin_in, old.fin_out, old.acked,
                              old.start_ns);
      });
  if (!flows_v2) {
    return flows_v2.error();
  }
  // Original destinations: at most half the new map, filed so that the sweep removes them after
  // kConvertedOrigDstLife.
  std::size_t orig_cap = 0;
  if (auto target = open_pinned(pins.map(ML_ORIG_DST_MAP_NAME))) {
    if (auto info = map_info(target->get())) {
      orig_cap = info->max_entries / 2;
    }
  }
  const std::uint64_t stale_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     kOrigDstStaleAfter - kConvertedOrigDstLife)
                                     .count();
  auto orig_dsts = convert_entries<ml_flow_key, OrigDstV1, ml_orig_dst_entry>(
      pins.map(ML_ORIG_DST_V1_MAP_NAME), pins.map(ML_ORIG_DST_MAP_NAME), conversion.seen_orig_dsts,
      orig_cap, [&](const OrigDstV1& old) {
        ml_orig_dst_entry entry{};
        entry.dst = old;
        entry.filed_ns = now > stale_ns ? now - stale_ns : 0;
        return entry;
      });
  if (!orig_dsts) {
    return orig_dsts.error();
  }
  const char* when = final ? "converted (added by the old programs meanwhile)" : "converted";
  if (flows_v1.value() > 0 || orig_dsts.value() > 0) {
    spdlog::info("{} {} tc flow(s) from {} and {} original destination(s) from {}", when,
                 flows_v1.value(), ML_TC_FLOWS_V1_MAP_NAME, orig_dsts.value(),
                 ML_ORIG_DST_V1_MAP_NAME);
  }
  if (flows_v2.value() > 0) {
    spdlog::info("{} {} tc flow(s) from {}", when, flows_v2.value(), ML_TC_FLOWS_V2_MAP_NAME);
  }
  return {};
}

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

std::vector<std::string> remove_retired_pins(const PinLayout& pins,
                                             const std::set<std::string>& maps_of_this_build) {
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
    if (maps_of_this_build.count(name) != 0) {
      continue;
    }
    if (::unlink(pins.map(name).c_str()) == 0) {
      removed.push_back(name);
    }
  }
  return removed;
}

}  // namespace meshlane
