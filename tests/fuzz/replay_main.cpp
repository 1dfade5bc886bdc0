// Runs a fuzz target's LLVMFuzzerTestOneInput over files and directories of inputs (the seed
// corpus, a crash reproducer) without libFuzzer, so that any compiler can build it and the
// corpus runs as an ordinary test. Exit 0 when every input ran; a broken invariant aborts.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "replay: cannot read " << path << '\n';
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " FILE|DIR...\n";
    return 2;
  }
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file() && !run_file(entry.path())) {
          return 1;
        }
        inputs += entry.is_regular_file() ? 1 : 0;
      }
    } else if (!run_file(arg)) {
      return 1;
    } else {
      ++inputs;
    }
  }
  if (inputs == 0) {
    std::cerr << "replay: no inputs found in the arguments\n";
    return 1;
  }
  std::cout << "replay: " << inputs << " input(s) ran\n";
  return 0;
}
