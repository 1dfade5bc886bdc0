#include "daemon/cni_resync.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "cni/cache.hpp"
#include "cni_install/conflist.hpp"
#include "common/unique_fd.hpp"

namespace meshlane::daemon {

namespace {

// A cache entry is a few KiB; a conflist rarely more. Anything far larger is not one.
constexpr std::size_t kMaxFileBytes = 1U << 20U;
// How many failures status lists (the log has them all).
constexpr std::size_t kMaxReportedFailures = 8;

// Reads a regular file of at most kMaxFileBytes without following a symlink and without
// blocking on a FIFO: the directories are the runtime's, read as root before the daemon serves.
Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    return make_error(errno, "cannot open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(errno, "cannot stat " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(path + " is not a regular file");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxFileBytes) {
    return make_error(path + " is larger than " + std::to_string(kMaxFileBytes) + " bytes");
  }
  std::string text;
  std::array<char, 8192> buffer{};
  for (;;) {
    const ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return make_error(errno, "cannot read " + path);
    }
    if (count == 0 || text.size() + static_cast<std::size_t>(count) > kMaxFileBytes) {
      return text;
    }
    text.append(buffer.data(), static_cast<std::size_t>(count));
  }
}

// The regular files of a directory, sorted (hidden ones and subdirectories left out).
std::vector<std::string> file_names(const std::string& dir, std::error_code& error) {
  std::vector<std::string> names;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name.front() != '.') {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// meshlane-cni's configuration in each network's conflist on the node, by network name: what
// the plugin would be run with today (for pods whose own cached configuration predates it).
std::map<std::string, nlohmann::json> current_plugin_configs(const std::string& conf_dir) {
  std::map<std::string, nlohmann::json> configs;
  std::error_code error;
  for (const std::string& name : file_names(conf_dir, error)) {
    if (!cni_install::is_cni_config_name(name)) {
      continue;
    }
    auto text = read_small_file(conf_dir + "/" + name);
    if (!text) {
      continue;
    }
    const nlohmann::json network = nlohmann::json::parse(text.value(), nullptr, false);
    if (!network.is_object() || !network.contains("name") || !network["name"].is_string()) {
      continue;
    }
    // libcni loads the first file of a name in byte order; so does this.
    const std::string network_name = network["name"].get<std::string>();
    if (configs.count(network_name) != 0) {
      continue;
    }
    if (auto conf = cni::plugin_config(network)) {
      configs.emplace(network_name, std::move(*conf));
    }
  }
  if (error) {
    spdlog::warn("cni resync: cannot list {}: {}", conf_dir, error.message());
  }
  return configs;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

nlohmann::json to_json(const CniResyncReport& report) {
  if (!report.enabled) {
    return nlohmann::json{{"enabled", false}};
  }
  return nlohmann::json{
      {"enabled", true},         {"results_dir", report.results_dir}, {"entries", report.entries},
      {"added", report.added},   {"unchanged", report.unchanged},     {"skipped", report.skipped},
      {"failed", report.failed}, {"failures", report.failures}};
}

CniResyncReport resync_from_cni_cache(const KubernetesConfig& kubernetes,
                                      workloads::WorkloadRegistry& workloads) {
  CniResyncReport report;
  if (kubernetes.cni_cache_dir.empty()) {
    return report;
  }
  report.enabled = true;
  report.results_dir = kubernetes.cni_cache_dir + "/results";
  std::error_code error;
  const std::vector<std::string> names = file_names(report.results_dir, error);
  if (error) {
    // No results directory: the runtime has not attached any pod yet.
    if (error != std::errc::no_such_file_or_directory) {
      spdlog::warn("cni resync: cannot list {}: {}", report.results_dir, error.message());
    }
    return report;
  }
  const std::map<std::string, nlohmann::json> current =
      current_plugin_configs(kubernetes.cni_conf_dir);

  auto fail = [&report](const std::string& file, const std::string& why) {
    ++report.failed;
    spdlog::error("cni resync: {}: {}", file, why);
    if (report.failures.size() < kMaxReportedFailures) {
      report.failures.push_back(file + ": " + why);
    }
  };
  auto skip = [&report](const std::string& file, const std::string& why) {
    ++report.skipped;
    spdlog::info("cni resync: {}: skipped: {}", file, why);
  };

  for (const std::string& name : names) {
    const std::string path = report.results_dir + "/" + name;
    auto text = read_small_file(path);
    if (!text) {
      fail(name, text.error().message());
      continue;
    }
    ++report.entries;
    auto entry = cni::parse_cache_entry(text.value());
    if (!entry) {
      fail(name, entry.error().message());
      continue;
    }
    // Which configuration meshlane-cni ran with: the cached one when the pod went through the
    // plugin (daemon down); else the network's conflist today (the pod predates install-cni).
    std::optional<nlohmann::json> conf;
    if (entry->config) {
      conf = cni::plugin_config(*entry->config);
    }
    if (!conf) {
      if (const auto found = current.find(entry->network_name); found != current.end()) {
        conf = found->second;
      }
    }
    if (!conf) {
      skip(name, "network " + entry->network_name + " does not chain meshlane-cni");
      continue;
    }
    if (entry->netns.empty()) {
      skip(name, "the entry records no netns (the runtime's libcni is older than 1.1)");
      continue;
    }
    if (!path_exists(entry->netns)) {
      skip(name, "its netns " + entry->netns + " is gone (the pod was deleted)");
      continue;
    }
    auto decision = cni::decide_cached(entry.value(), conf.value());
    if (!decision) {
      fail(name, decision.error().msg + ": " + decision.error().details);
      continue;
    }
    if (!decision->enroll) {
      skip(name, decision->reason);
      continue;
    }
    auto workload = parse_workload_json(decision->params, "", "params");
    if (!workload) {
      fail(name, "workload " + decision->name + ": " + workload.error().message());
      continue;
    }
    auto outcome = workloads.add(workload.value());
    if (!outcome) {
      fail(name, "workload " + decision->name + ": " + outcome.error().message);
      continue;
    }
    if (outcome.value() == workloads::AddOutcome::kUnchanged) {
      ++report.unchanged;
      spdlog::debug("cni resync: {}: workload {} unchanged", name, decision->name);
    } else {
      ++report.added;
      spdlog::info("cni resync: {}: workload {} {} ({})", name, decision->name,
                   workloads::to_string(outcome.value()), decision->reason);
    }
  }
  spdlog::info(
      "cni resync from {}: {} entr{}, {} workload(s) added, {} unchanged, {} skipped, {} failed",
      report.results_dir, report.entries, report.entries == 1 ? "y" : "ies", report.added,
      report.unchanged, report.skipped, report.failed);
  return report;
}

}  // namespace meshlane::daemon
