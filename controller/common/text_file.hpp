// Reading and replacing whole (small) text files: config files, /proc tables, state files.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/error.hpp"

namespace meshlane {

// The file's contents; on failure an error "cannot read <path>" with errno. Follows symbolic
// links: for files the operator points at (config files, often symlinks into a ConfigMap).
Result<std::string> read_text_file(const std::string& path);

// The same, but nullopt when the file does not exist (a state file not written yet).
Result<std::optional<std::string>> read_text_file_if_present(const std::string& path);

// A file the daemon itself wrote into daemon.state_dir (workloads.json, policies.json,
// tc-filters), nullopt when it does not exist. Never follows a symbolic link (O_NOFOLLOW) and
// accepts only a regular file: what it holds is acted on as root at the next start, so a link
// planted there must not make the daemon read (or later replace) something else. The error
// names the path and what to do.
Result<std::optional<std::string>> read_state_file(const std::string& path);

// THE way meshlane replaces a file (state files, the tc record, the CNI plugin and conflists).
// content goes to a new temporary file in path's directory with an unpredictable name
// (".<name>.tmp.<pid>.<random>", created O_EXCL|O_NOFOLLOW: never an existing file or a link
// someone planted), gets exactly mode (fchmod, whatever the umask), is fsync'ed, renamed over
// path, and the directory is fsync'ed. A crash leaves the old file or the new one, never a mix;
// on failure the temporary file is removed. When path is a symbolic link, rename replaces the
// link itself, not its target: the link's target is never written. State files keep the
// default 0600; a program installed for others to run (the CNI plugin) passes 0755.
Status write_file_atomically(const std::string& path, const std::string& content,
                             mode_t mode = 0600);

}  // namespace meshlane
