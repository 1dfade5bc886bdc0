#include "datapath/libbpf_log.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <string_view>

namespace meshlane {

namespace {

// libbpf hands over a verifier rejection as one long message; its end says why. Warnings keep
// the last lines, the full text goes to debug.
constexpr std::size_t kVerifierTailLines = 25;

std::string tail_lines(const std::string& text, std::size_t count) {
  std::size_t position = text.size();
  for (std::size_t seen = 0; position > 0 && seen <= count;) {
    position = text.rfind('\n', position - 1);
    if (position == std::string::npos) {
      return text;
    }
    ++seen;
  }
  return "[... " + std::to_string(position) + " bytes of verifier log, see log_level = \"debug\"]" +
         text.substr(position);
}

int libbpf_log(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG && !spdlog::should_log(spdlog::level::trace)) {
    return 0;
  }
  va_list measure;
  va_copy(measure, args);
  int length = std::vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (length <= 0) {
    return length;
  }
  std::string text(static_cast<std::size_t>(length) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(length));
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  // libbpf starts its own messages with "libbpf: "; ours says that already.
  if (constexpr std::string_view kPrefix = "libbpf: "; text.starts_with(kPrefix)) {
    text.erase(0, kPrefix.size());
  }
  switch (level) {
    case LIBBPF_WARN:
      if (text.find("Exclusivity flag on") != std::string::npos) {
        // A clsact qdisc that already exists: expected when re-attaching tc filters.
        spdlog::debug("libbpf: {}", text);
        break;
      }
      if (std::string tail = tail_lines(text, kVerifierTailLines); tail != text) {
        spdlog::debug("libbpf: {}", text);  // the whole verifier log, once
        spdlog::warn("libbpf: {}", tail);
      } else {
        spdlog::warn("libbpf: {}", text);
      }
      break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", text); break;
    case LIBBPF_DEBUG: spdlog::trace("libbpf: {}", text); break;
  }
  return length;
}

}  // namespace

void send_libbpf_log_to_spdlog() { libbpf_set_print(libbpf_log); }

}  // namespace meshlane
