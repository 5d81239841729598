#pragma once
// Where a training step's time goes: named regions that nest, each credited with its
// own (exclusive) wall time, under the path of regions that enclose it.
//
//   mpt::profile::enable(true);
//   { MPT_PROFILE("forward"); ... { MPT_PROFILE("attention scores (GEMM)"); ... } }
//   for (const auto& e : mpt::profile::report()) ...   // path, seconds, calls
//
// Off by default: a disabled region is one relaxed atomic load. Regions belong to the
// thread that opens them (the caller of the layers; kernels parallelize inside them),
// so a region's time includes its parallel work and its waits. Names must outlive the
// program (string literals). At most `max_regions` distinct paths are recorded;
// later ones are counted under "(other)".

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace mpt::profile {

struct Entry {
  std::string path;  // enclosing regions' names, then this one's, joined by " / "
  int depth = 0;     // number of enclosing regions
  double seconds = 0;
  std::uint64_t calls = 0;
};

namespace detail {

inline constexpr int max_regions = 256;

struct Slot {
  std::atomic<const char*> name{nullptr};
  int parent = -1;
  std::atomic<std::uint64_t> nanos{0}, calls{0};
};

struct Registry {
  std::atomic<bool> enabled{false};
  std::mutex mutex;  // held to add a slot; readers see `count` after the slot is written
  std::atomic<int> count{0};
  Slot slots[max_regions];
};

inline Registry& registry() noexcept {
  static Registry r;
  return r;
}

// The slot of `name` under `parent`, added on first use.
inline bool same_name(const char* a, const char* b) noexcept { return a == b || (a && b && std::strcmp(a, b) == 0); }

inline int slot_of(int parent, const char* name) {
  Registry& r = registry();
  const int n = r.count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i)
    if (r.slots[i].parent == parent && same_name(r.slots[i].name.load(std::memory_order_relaxed), name)) return i;
  std::lock_guard<std::mutex> lock(r.mutex);
  const int m = r.count.load(std::memory_order_relaxed);
  for (int i = n; i < m; ++i)
    if (r.slots[i].parent == parent && same_name(r.slots[i].name.load(std::memory_order_relaxed), name)) return i;
  if (m == max_regions) return max_regions - 1;
  r.slots[m].parent = parent;
  r.slots[m].name.store(m == max_regions - 1 ? "(other)" : name, std::memory_order_relaxed);
  r.count.store(m + 1, std::memory_order_release);
  return m;
}

inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace detail

inline void enable(bool on) noexcept { detail::registry().enabled.store(on, std::memory_order_relaxed); }
inline bool enabled() noexcept { return detail::registry().enabled.load(std::memory_order_relaxed); }

// Zeroes every region's time and calls (the paths stay registered).
inline void reset() noexcept {
  detail::Registry& r = detail::registry();
  const int n = r.count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) r.slots[i].nanos.store(0), r.slots[i].calls.store(0);
}

class Region {
 public:
  explicit Region(const char* name) {
    if (!enabled()) return;
    parent_ = current();
    slot_ = detail::slot_of(parent_ ? parent_->slot_ : -1, name);
    current() = this;
    start_ = detail::now_ns();
  }
  ~Region() { end(); }
  // Closes the region before the end of its scope (once; the destructor then does nothing).
  // Regions close in the reverse order of opening.
  void end() noexcept {
    if (slot_ < 0) return;
    const std::uint64_t elapsed = detail::now_ns() - start_;
    detail::Slot& s = detail::registry().slots[slot_];
    s.nanos.fetch_add(elapsed > children_ ? elapsed - children_ : 0, std::memory_order_relaxed);
    s.calls.fetch_add(1, std::memory_order_relaxed);
    if (parent_) parent_->children_ += elapsed;
    current() = parent_;
    slot_ = -1;
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

 private:
  static Region*& current() noexcept {
    thread_local Region* open = nullptr;
    return open;
  }
  Region* parent_ = nullptr;
  int slot_ = -1;
  std::uint64_t start_ = 0, children_ = 0;
};

// Every region recorded, depth-first in the order first seen (a parent before its children).
inline std::vector<Entry> report() {
  detail::Registry& r = detail::registry();
  const int n = r.count.load(std::memory_order_acquire);
  std::vector<Entry> out;
  auto visit = [&](auto&& self, int parent, const std::string& prefix, int depth) -> void {
    for (int i = 0; i < n; ++i) {
      if (r.slots[i].parent != parent) continue;
      Entry e;
      e.path = prefix.empty() ? std::string(r.slots[i].name.load()) : prefix + " / " + r.slots[i].name.load();
      e.depth = depth;
      e.seconds = static_cast<double>(r.slots[i].nanos.load()) * 1e-9;
      e.calls = r.slots[i].calls.load();
      const std::string path = e.path;
      out.push_back(std::move(e));
      self(self, i, path, depth + 1);
    }
  };
  visit(visit, -1, "", 0);
  return out;
}

// The report as a text table: each region's exclusive milliseconds per `per` (the number
// of steps, say), its share of `total_seconds`, names indented by depth; and a last row for
// the time outside every region.
inline std::string table(double total_seconds, double per = 1.0) {
  const auto entries = report();
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-64s %10s %8s %8s\n", "region (exclusive time)", "ms", "calls", "share");
  out += line;
  double inside = 0;
  for (const auto& e : entries) {
    inside += e.seconds;
    const std::size_t name_at = e.path.rfind(" / ");
    const std::string name =
        std::string(2 * static_cast<std::size_t>(e.depth), ' ') + (name_at == std::string::npos ? e.path : e.path.substr(name_at + 3));
    std::snprintf(line, sizeof line, "%-64.64s %10.2f %8.1f %7.1f%%\n", name.c_str(), 1e3 * e.seconds / per, static_cast<double>(e.calls) / per,
                  total_seconds > 0 ? 100 * e.seconds / total_seconds : 0.0);
    out += line;
  }
  if (total_seconds > 0) {
    std::snprintf(line, sizeof line, "%-64s %10.2f %8s %7.1f%%\n", "(outside every region)", 1e3 * (total_seconds - inside) / per, "",
                  100 * (total_seconds - inside) / total_seconds);
    out += line;
  }
  return out;
}

}  // namespace mpt::profile

#define MPT_PROFILE_CONCAT2(a, b) a##b
#define MPT_PROFILE_CONCAT(a, b) MPT_PROFILE_CONCAT2(a, b)
// Times the rest of the enclosing scope as region `name` (a string literal).
#define MPT_PROFILE(name) ::mpt::profile::Region MPT_PROFILE_CONCAT(mpt_profile_region_, __LINE__)(name)
