// Workloads as the control socket manages them: the ones from the config file plus the ones
// added live, applied together as one desired state, and the live ones kept in a state file so
// that they survive a daemon restart.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/netns.hpp"
#include "config/config.hpp"
#include "control/protocol.hpp"

namespace meshlane::workloads {

// Every [[workload]] key with its effective value (the preset filled in), in the form
// parse_workload_json() reads back: workload_from_json(workload_to_json(w)) == w.
nlohmann::json workload_to_json(const WorkloadConfig& workload);

// ---- State file: <state_dir>/workloads.json = {"v":1,"workloads":[<workload_to_json>...]} ----

inline constexpr const char* kWorkloadStateFile = "workloads.json";
inline constexpr int kStateVersion = 1;

std::string workload_state_path(const std::string& state_dir);

// Creates state_dir (mode 0700, parents as needed) when missing, then checks that it is a
// directory owned by root and not group- or world-writable (check_private_directory).
Status ensure_state_dir(const std::string& state_dir);

// The workloads saved in state_dir; none when the file does not exist. A file that does not
// parse is an error naming it (nothing is guessed).
Result<std::vector<WorkloadConfig>> load_live_workloads(const std::string& state_dir);

// Replaces the state file atomically (creating state_dir first when missing): written to a
// temporary file, fsync'ed, renamed over the old one, and the directory fsync'ed. A crash leaves
// the old file or the new one, never a mix.
Status save_live_workloads(const std::string& state_dir,
                           const std::vector<WorkloadConfig>& workloads);

// ---- The registry --------------------------------------------------------------------------

enum class WorkloadSource { kConfig, kLive };
const char* to_string(WorkloadSource source);

enum class AddOutcome { kAdded, kUnchanged, kReplaced };
const char* to_string(AddOutcome outcome);

enum class DeleteOutcome { kDeleted, kAbsent };
const char* to_string(DeleteOutcome outcome);

// Which network namespace a workload's netns path names (open_network_namespace, then its
// nsfs inode): the same for /var/run/netns/x, a bind mount of it and /proc/PID/ns/net of a
// process inside. nullopt when it cannot be told (no such file, not a network namespace): the
// apply then reports why.
std::optional<NetnsId> namespace_id_of(const std::string& netns_path);

class WorkloadRegistry {
 public:
  // Applies a complete desired state (WorkloadManager::apply in the daemon).
  using ApplyFn = std::function<Status(const std::vector<WorkloadConfig>&)>;
  // Saves the live workloads (save_live_workloads in the daemon).
  using PersistFn = std::function<Status(const std::vector<WorkloadConfig>&)>;
  // Whether one workload could be applied on its own (its netns and interface exist).
  using CheckFn = std::function<Status(const WorkloadConfig&)>;
  // namespace_id_of in the daemon; tests give their own.
  using NamespaceIdFn = std::function<std::optional<NetnsId>(const std::string& netns_path)>;

  WorkloadRegistry(ApplyFn apply, PersistFn persist, NamespaceIdFn namespace_id = namespace_id_of)
      : apply_(std::move(apply)),
        persist_(std::move(persist)),
        namespace_id_(std::move(namespace_id)) {}

  // At daemon start: config workloads plus the saved live ones. A live workload whose name the
  // config now uses, or that `check` rejects (its pod is gone), is dropped and logged; if the
  // rest cannot be applied together, the live ones are dropped (logged) and the config's are
  // applied alone. The state file is rewritten when something was dropped. Error only when the
  // config's own workloads cannot be applied.
  Status start(std::vector<WorkloadConfig> config_workloads, std::vector<WorkloadConfig> saved_live,
               const CheckFn& check);

  // SIGHUP: new config workloads, the live ones kept. All or nothing: a name used by both is a
  // conflict, an apply failure changes nothing.
  Status reload(std::vector<WorkloadConfig> config_workloads);

  // Adds or replaces a live workload; an identical one is left alone. A workload whose netns
  // is another workload's namespace, by path or through another path to the same namespace, is
  // a conflict.
  control::ControlResult<AddOutcome> add(const WorkloadConfig& workload);
  // Deletes a live workload. missing_ok turns "not found" into kAbsent.
  control::ControlResult<DeleteOutcome> remove(const std::string& name, bool missing_ok);

  struct Entry {
    const WorkloadConfig* workload = nullptr;
    WorkloadSource source = WorkloadSource::kConfig;
  };
  // nullptr workload when there is none of that name.
  [[nodiscard]] Entry find(const std::string& name) const;
  // Config workloads in file order, then live ones by name.
  [[nodiscard]] std::vector<Entry> list() const;
  // What is applied: config workloads, then live ones by name.
  [[nodiscard]] std::vector<WorkloadConfig> combined() const;

  [[nodiscard]] std::size_t config_count() const { return config_.size(); }
  [[nodiscard]] std::size_t live_count() const { return live_.size(); }

 private:
  [[nodiscard]] std::vector<WorkloadConfig> combined_with(
      const std::map<std::string, WorkloadConfig>& live) const;
  static std::vector<WorkloadConfig> values(const std::map<std::string, WorkloadConfig>& live);
  // Applies and saves `next` as the live set; on a save failure re-applies the current state.
  control::ControlStatus commit(std::map<std::string, WorkloadConfig> next);

  // The other workload whose namespace `workload`'s netns names, or nullptr.
  [[nodiscard]] const WorkloadConfig* namespace_owner(const WorkloadConfig& workload) const;

  ApplyFn apply_;
  PersistFn persist_;
  NamespaceIdFn namespace_id_;
  std::vector<WorkloadConfig> config_;
  std::map<std::string, WorkloadConfig> live_;  // by name
};

}  // namespace meshlane::workloads
