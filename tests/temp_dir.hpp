#pragma once
// A test's own folder under the system temp dir, removed at the end. The name holds the
// process id, so suites that run at once (ctest -j, the MPT_ISA variants) never share one.
#include <filesystem>
#include <string>
#include <unistd.h>

namespace mpt::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("mpt_test_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& f) const { return path / f; }
};

}  // namespace mpt::test
