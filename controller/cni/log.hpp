// meshlane-cni's log: stdout carries the CNI result, so every message goes to stderr (which
// the runtime records with the failure) and, when the conflist entry names a log_file, is
// appended there too (a successful ADD's stderr is usually discarded).
#pragma once

#include <fstream>
#include <ostream>
#include <string>
#include <string_view>

namespace meshlane::cni {

class Log {
 public:
  explicit Log(std::ostream& err) : err_(err) {}

  // Appends to `path` from now on. A file that cannot be opened is reported on stderr only:
  // the plugin's answer must not depend on its log.
  void open_file(const std::string& path);
  // What every line is about, e.g. "ADD 3f2a9c1b0e4d default/web-0".
  void set_context(std::string context) { context_ = std::move(context); }

  void info(std::string_view message) { write("info", message); }
  void warn(std::string_view message) { write("warn", message); }
  void error(std::string_view message) { write("error", message); }

 private:
  void write(std::string_view level, std::string_view message);

  std::ostream& err_;
  std::ofstream file_;
  std::string context_;
};

}  // namespace meshlane::cni
