// bench_convert: float <-> bf16 array conversion throughput on every
// instruction-set path this CPU supports, in one run. It measures the choice
// documented in docs/DESIGN.md: kernels compiled per ISA with target
// attributes inside a default (-O2, no -march) build, against the scalar
// path that such a build would otherwise get.
//
//   bench_convert [--elements N] [--repeat R]
#include <mpt/mpt.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {
double best_seconds(int repeat, auto&& run) {
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t n = std::size_t(1) << 20;  // 4 MiB of floats: fits L2+L3, measures the kernel
  int repeat = 50;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--elements" && i + 1 < argc) {
      n = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_convert [--elements N] [--repeat R]\n");
      return 2;
    }
  }
  std::vector<float> wide(n);
  std::vector<mpt::bf16> narrow(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (float& x : wide) x = normal(rng);

  std::printf("%-12s %-14s %10s %10s\n", "isa", "op", "GB/s", "x scalar");
  double scalar_narrow = 0, scalar_widen = 0;
  for (mpt::Isa isa : mpt::supported_isas()) {
    const double bytes = static_cast<double>(n) * (sizeof(float) + sizeof(mpt::bf16));
    const double t_narrow = best_seconds(repeat, [&] { mpt::convert_with(isa, std::span<const float>(wide), std::span<mpt::bf16>(narrow)); });
    const double t_widen = best_seconds(repeat, [&] { mpt::convert_with(isa, std::span<const mpt::bf16>(narrow), std::span<float>(wide)); });
    if (isa == mpt::Isa::scalar) {
      scalar_narrow = t_narrow;
      scalar_widen = t_widen;
    }
    const std::string name(mpt::isa_name(isa));
    for (auto [op, t, base] : {std::tuple{"float->bf16", t_narrow, scalar_narrow}, std::tuple{"bf16->float", t_widen, scalar_widen}}) {
      std::printf("%-12s %-14s %10.1f %10.2f\n", name.c_str(), op, bytes / t / 1e9, base / t);
      std::printf("{\"bench\":\"convert\",\"isa\":\"%s\",\"op\":\"%s\",\"elements\":%zu,\"gbps\":%.2f,\"speedup_vs_scalar\":%.2f}\n", name.c_str(),
                  op, n, bytes / t / 1e9, base / t);
    }
  }
}
