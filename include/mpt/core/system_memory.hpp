#pragma once
// How much more memory this process can take before the kernel stops it, so that a
// model or batch that cannot fit is refused before its buffers are allocated (Linux
// overcommits: a too-large allocation succeeds and the OOM killer strikes later,
// in the middle of an epoch).
//
//   available_memory()          the smallest of: MemAvailable (/proc/meminfo), the
//                               cgroup v2 limit minus its usage, RLIMIT_AS minus this
//                               process's address space; std::nullopt when none is known
//   check_memory_fits(bytes, what, fix)
//                               throws mpt::Error naming `what`, the bytes asked for,
//                               the bytes available and where that figure comes from,
//                               and `fix`; MPT_SKIP_MEMORY_CHECK=1 turns the check off

#include <mpt/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <sys/resource.h>

namespace mpt {

struct AvailableMemory {
  std::size_t bytes = 0;
  std::string source;  // where the figure comes from, for the error message
};

namespace detail {
// A "Key:   value kB" line of /proc/meminfo or /proc/self/status, in bytes.
inline std::optional<std::size_t> proc_kib_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    std::size_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

inline std::optional<std::size_t> read_size_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::nullopt;
  try {
    return static_cast<std::size_t>(std::stoull(text));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// This process's cgroup v2 folder ("0::/path" in /proc/self/cgroup).
inline std::optional<std::string> cgroup_v2_folder() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  }
  return std::nullopt;
}

inline void keep_smaller(std::optional<AvailableMemory>& best, std::size_t bytes, std::string source) {
  if (!best || bytes < best->bytes) best = AvailableMemory{bytes, std::move(source)};
}
}  // namespace detail

inline std::optional<AvailableMemory> available_memory() {
  std::optional<AvailableMemory> best;
  if (const auto free = detail::proc_kib_field("/proc/meminfo", "MemAvailable")) {
    detail::keep_smaller(best, *free, "MemAvailable in /proc/meminfo");
  }
  if (const auto folder = detail::cgroup_v2_folder()) {
    const auto limit = detail::read_size_file(*folder + "/memory.max");
    const auto used = detail::read_size_file(*folder + "/memory.current");
    if (limit && used) detail::keep_smaller(best, *limit > *used ? *limit - *used : 0, "the cgroup's memory.max minus memory.current");
  }
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const std::size_t size = detail::proc_kib_field("/proc/self/status", "VmSize").value_or(0);
    const auto limit = static_cast<std::size_t>(as.rlim_cur);
    detail::keep_smaller(best, limit > size ? limit - size : 0, "RLIMIT_AS (ulimit -v) minus this process's address space");
  }
  return best;
}

inline std::string human_bytes_gib(std::size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// Refuses to go on when `bytes` more would not fit (see the top of this file).
inline void check_memory_fits(std::size_t bytes, const std::string& what, const std::string& fix) {
  if (const char* skip = std::getenv("MPT_SKIP_MEMORY_CHECK"); skip != nullptr && std::string(skip) == "1") return;
  const auto available = available_memory();
  if (!available || bytes <= available->bytes) return;
  throw_error(what, " needs ", human_bytes_gib(bytes), " more memory, but ", human_bytes_gib(available->bytes), " are available (", available->source,
              "): ", fix, ". (MPT_SKIP_MEMORY_CHECK=1 skips this check.)");
}

}  // namespace mpt
