#pragma once
// Thread control. mpt runs its parallel loops in one oneTBB task arena whose
// size defaults to all cores, or to MPT_NUM_THREADS / OMP_NUM_THREADS when set
// (OMP_NUM_THREADS for the familiarity of PyTorch users). Kernels split work
// into independent tasks and never split a reduction across threads, so the
// results are the same bits for any thread count.

#include <mpt/core/error.hpp>
#include <mpt/core/scratch.hpp>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

// Under ThreadSanitizer, parallel_for runs its tasks on std::threads instead of oneTBB:
// Debian's oneTBB is not instrumented, so TSan cannot see its scheduler's
// synchronisation and reports races inside it; thread start and join it understands.
#if defined(__SANITIZE_THREAD__)
#define MPT_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MPT_THREAD_SANITIZER 1
#endif
#endif
#ifdef MPT_THREAD_SANITIZER
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#endif

namespace mpt {

namespace detail {
// The thread count MPT_NUM_THREADS (first) or OMP_NUM_THREADS ask for, given their
// values (nullptr: unset); `fallback` when neither is set.
inline int thread_count_from(const char* mpt_value, const char* omp_value, int fallback) {
  const std::pair<const char*, const char*> settings[] = {{"MPT_NUM_THREADS", mpt_value}, {"OMP_NUM_THREADS", omp_value}};
  for (const auto& [name, value] : settings) {
    if (value == nullptr || *value == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(value, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096) {
      throw_error(name, "=", value, " is not a thread count: give a whole number from 1 to 4096, or unset it");
    }
    return static_cast<int>(n);
  }
  return fallback;
}

inline int threads_from_environment() {
  return thread_count_from(std::getenv("MPT_NUM_THREADS"), std::getenv("OMP_NUM_THREADS"), tbb::info::default_concurrency());
}

struct ThreadState {
  int count = threads_from_environment();
  std::unique_ptr<tbb::task_arena> arena = make_arena(count);
  static std::unique_ptr<tbb::task_arena> make_arena(int n) {
    resize_slot_scratch(n);  // one scratch set per arena slot
    return std::make_unique<tbb::task_arena>(n);
  }
};
inline ThreadState& thread_state() {
  static ThreadState state;
  return state;
}

#ifdef MPT_THREAD_SANITIZER
// parallel_for's tasks on `count` std::threads (see MPT_THREAD_SANITIZER above); a
// parallel_for inside a task runs serially on its thread, as its slot's scratch is taken.
inline bool& inside_std_thread_task() noexcept {
  thread_local bool inside = false;
  return inside;
}

template <class Body>
void parallel_for_std_threads(std::size_t tasks, int count, Body& body) {
  bool& inside = inside_std_thread_task();
  if (inside) {
    for (std::size_t t = 0; t < tasks; ++t) body(t);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto work = [&](int slot_index) {
    bool& in_task = inside_std_thread_task();  // this thread's flag
    in_task = true;
    int& slot = current_scratch_slot();
    const int enclosing = slot;
    slot = slot_index;
    try {
      for (std::size_t t; (t = next.fetch_add(1)) < tasks;) body(t);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
    slot = enclosing;
    in_task = false;
  };
  std::vector<std::thread> workers;
  for (int w = 1; w < count; ++w) workers.emplace_back(work, w);
  work(0);
  for (auto& w : workers) w.join();
  if (failure) std::rethrow_exception(failure);
}
#endif
}  // namespace detail

// The number of threads mpt's parallel loops use.
inline int num_threads() { return detail::thread_state().count; }

// Sets the number of threads. Call it between parallel regions, not inside one.
inline void set_num_threads(int n) {
  if (n < 1) throw_error("set_num_threads(", n, "): the thread count must be at least 1");
  auto& state = detail::thread_state();
  if (n == state.count) return;
  state.arena = detail::ThreadState::make_arena(n);
  state.count = n;
}

// Runs body(task) for every task in [0, tasks), in parallel on mpt's threads.
// Each task runs exactly once; what a task computes must not depend on which
// thread runs it (so results are identical for any thread count).
template <class Body>
void parallel_for(std::size_t tasks, Body&& body) {
  if (tasks == 0) return;
  auto& state = detail::thread_state();
  if (tasks == 1 || state.count == 1) {
    for (std::size_t t = 0; t < tasks; ++t) body(t);
    return;
  }
#ifdef MPT_THREAD_SANITIZER
  detail::parallel_for_std_threads(tasks, state.count, body);
#else
  state.arena->execute([&] {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, tasks, 1), [&](const tbb::blocked_range<std::size_t>& r) {
      // Kernel scratch belongs to the arena slot running the task (core/scratch.hpp).
      int& slot = detail::current_scratch_slot();
      const int enclosing = slot;
      slot = tbb::this_task_arena::current_thread_index();
      for (std::size_t t = r.begin(); t != r.end(); ++t) body(t);
      slot = enclosing;
    });
  });
#endif
}

// Runs body(begin, end) over [0, n) in pieces of about `grain` elements, in parallel:
// for memory-bound loops (fills, conversions) that one core cannot saturate. Pieces
// depend only on n and grain.
template <class Body>
void parallel_chunks(std::size_t n, std::size_t grain, Body&& body) {
  const std::size_t pieces = (n + grain - 1) / grain;
  parallel_for(pieces, [&](std::size_t p) { body(n * p / pieces, n * (p + 1) / pieces); });
}

// Sets the thread count for its lifetime (tests, benchmarks).
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int n) : previous_(num_threads()) { set_num_threads(n); }
  ~ScopedNumThreads() { set_num_threads(previous_); }
  ScopedNumThreads(const ScopedNumThreads&) = delete;
  ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

 private:
  int previous_;
};

}  // namespace mpt
