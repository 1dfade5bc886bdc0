// Reading a whole (small) text file: config files and /proc tables.
#pragma once

#include <string>

#include "common/error.hpp"

namespace meshlane {

// The file's contents; on failure an error "cannot read <path>" with errno.
Result<std::string> read_text_file(const std::string& path);

}  // namespace meshlane
