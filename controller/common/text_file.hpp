// Reading and replacing whole (small) text files: config files, /proc tables, state files.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/error.hpp"

namespace meshlane {

// The file's contents; on failure an error "cannot read <path>" with errno.
Result<std::string> read_text_file(const std::string& path);

// The same, but nullopt when the file does not exist (a state file not written yet).
Result<std::optional<std::string>> read_text_file_if_present(const std::string& path);

// Replaces path atomically: content is written to path + ".tmp" (with mode, whatever the
// umask), fsync'ed, renamed over path, and the directory fsync'ed. A crash leaves the old file
// or the new one, never a mix. State files keep the default 0600; a program installed for
// others to run (the CNI plugin) passes 0755.
Status write_file_atomically(const std::string& path, const std::string& content,
                             mode_t mode = 0600);

}  // namespace meshlane
