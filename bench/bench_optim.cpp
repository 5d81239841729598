// Optimizer step and global-norm throughput over flat buffers.
//   bench_optim [millions of parameters = 16] [repetitions = 5]
// Prints, per weight policy and thread count: ms per step, ns per parameter,
// and the effective memory bandwidth (bytes the pass must move / time).
#include <mpt/mpt.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

namespace {
using clock_type = std::chrono::steady_clock;
namespace optim = mpt::optim;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Best wall time of `repetitions` runs. With one thread on a loaded machine
// the calling thread's CPU time is the better measure (time spent preempted
// is not counted): MPT_BENCH_CPU_TIME=1 reports that instead.
template <class F>
double best_seconds(int repetitions, F&& f) {
  static const bool cpu_time = std::getenv("MPT_BENCH_CPU_TIME") != nullptr;
  f();  // warm-up: first touch, page faults
  double best = 1e30;
  for (int r = 0; r < repetitions; ++r) {
    const auto t0 = clock_type::now();
    const double c0 = thread_cpu_seconds();
    f();
    const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
    best = std::min(best, cpu_time && mpt::num_threads() == 1 ? thread_cpu_seconds() - c0 : wall);
  }
  return best;
}

void report(const char* what, std::size_t n, double seconds, double bytes_per_param) {
  std::printf("%-44s %8.2f ms  %6.3f ns/param  %6.1f GB/s\n", what, seconds * 1e3, seconds * 1e9 / n, bytes_per_param * n / seconds / 1e9);
}

template <class P, class W>
void bench_adamw(const char* name, std::size_t n, int repetitions, const std::vector<float>& grads, double traffic) {
  std::vector<typename P::param_t> params(n);
  optim::AdamW<P, W> opt(std::span{params}, optim::ParameterTable::single("w", n), {.weight_decay = 0.01});
  for (int threads : {1, 2}) {
    mpt::ScopedNumThreads guard(threads);
    char label[128];
    std::snprintf(label, sizeof label, "AdamW %-30s %dT", name, threads);
    report(label, n, best_seconds(repetitions, [&] { opt.step(grads, 1e-4); }), traffic);
  }
}
}  // namespace

int main(int argc, char** argv) {
  // bench_optim [MILLIONS_OF_PARAMETERS [REPETITIONS]]
  const auto positive = [&](int i, double fallback) {
    if (argc <= i) return fallback;
    char* end = nullptr;
    const double v = std::strtod(argv[i], &end);
    if (*end != '\0' || !(v > 0)) {
      std::fprintf(stderr, "bench_optim: '%s' is not a positive number\nusage: bench_optim [MILLIONS_OF_PARAMETERS [REPETITIONS]]\n", argv[i]);
      std::exit(2);
    }
    return v;
  };
  const std::size_t n = static_cast<std::size_t>(positive(1, 16.0) * 1e6);
  const int repetitions = static_cast<int>(positive(2, 5));
  std::printf("bench_optim: %zu parameters, best of %d, ISA %s\n", n, repetitions, std::string(mpt::isa_name(mpt::active_isa())).c_str());
  std::vector<float> grads(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (auto& g : grads) g = normal(rng);

  // Bytes per parameter each pass must read + write.
  bench_adamw<mpt::precision::fp32, optim::weights::direct>("fp32 (direct)", n, repetitions, grads, 16 + 12);
  bench_adamw<mpt::precision::bf16_mixed, optim::weights::fp32_master>("bf16_mixed fp32_master", n, repetitions, grads, 16 + 14);
  bench_adamw<mpt::precision::bf16_mixed, optim::weights::split_master>("bf16_mixed split_master", n, repetitions, grads, 16 + 12);
  bench_adamw<mpt::precision::bf16_pure, optim::weights::stochastic_rounding>("bf16_pure stochastic_rounding", n, repetitions, grads, 14 + 10);
  for (int threads : {1, 2}) {
    mpt::ScopedNumThreads guard(threads);
    char label[128];
    std::snprintf(label, sizeof label, "global_l2_norm<float>                %dT", threads);
    report(label, n,
           best_seconds(repetitions,
                        [&] {
                          volatile float r = mpt::kernels::global_l2_norm<float>(grads);
                          (void)r;
                        }),
           4);
    std::snprintf(label, sizeof label, "global_l2_norm<double>               %dT", threads);
    report(label, n,
           best_seconds(repetitions,
                        [&] {
                          volatile double r = mpt::kernels::global_l2_norm<double>(grads);
                          (void)r;
                        }),
           4);
  }
  return 0;
}
