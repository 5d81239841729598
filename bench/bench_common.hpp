#pragma once
// Shared by the benchmarks: timing, machine peaks measured in the same run
// (FMA and vdpbf16ps throughput, triad bandwidth), and one-line JSON records.
//
// Peaks use independent accumulator chains held in registers (more chains than
// FMA latency x ports), so they measure issue throughput, not latency.

#include <mpt/mpt.hpp>

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace mpt::bench {

inline double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// CPU time of the calling thread (excludes time the OS ran other processes).
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Runs body(thread_index) on `threads` std::threads released together; returns wall seconds.
template <class Body>
double run_on_threads(int threads, Body body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  double start = 0;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      body(t);
    });
  }
  while (ready.load() != threads) {
  }
  start = now_seconds();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return now_seconds() - start;
}

// Accumulator chains per peak loop: 24 zmm (AVX-512) / 12 ymm (AVX2) cover
// latency 4 x 2 ports with a wide margin.
MPT_TARGET_AVX512 inline float fma_loop_avx512(std::size_t iters, float seed) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(seed + i);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (std::size_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0];
}
MPT_TARGET_AVX2 inline float fma_loop_avx2(std::size_t iters, float seed) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(seed + i);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (std::size_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0];
}
MPT_TARGET_AVX512_BF16 inline float dot_loop_avx512_bf16(std::size_t iters, float seed) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(seed + i);
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80), y = (__m512bh)_mm512_set1_epi32(0x33D633D6);
  for (std::size_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0];
}

#if MPT_X86
// Four independent tile accumulators (tdpbf16ps: 16 x 16 x 32 multiply-adds each).
inline float dot_loop_amx_bf16(std::size_t iters, float seed) {
  mpt::kernels::detail::configure_tiles_16x64();
  alignas(64) std::uint16_t ones[16 * 32];
  alignas(64) float out[16 * 16];
  for (auto& x : ones) x = 0x3F80;  // 1.0
  for (auto& x : out) x = seed;
  MPT_TILE_LOAD(0, out, 64);
  MPT_TILE_LOAD(1, out, 64);
  MPT_TILE_LOAD(2, out, 64);
  MPT_TILE_LOAD(3, out, 64);
  MPT_TILE_LOAD(4, ones, 64);
  MPT_TILE_LOAD(5, ones, 64);
  MPT_TILE_LOAD(6, ones, 64);
  MPT_TILE_LOAD(7, ones, 64);
  for (std::size_t it = 0; it < iters; ++it) {
    MPT_TILE_DPBF16PS(0, 4, 6);
    MPT_TILE_DPBF16PS(1, 4, 7);
    MPT_TILE_DPBF16PS(2, 5, 6);
    MPT_TILE_DPBF16PS(3, 5, 7);
  }
  MPT_TILE_STORE(0, out, 64);
  return out[0];
}
#endif

enum class PeakKind { fma_fp32, bf16_dot, amx_bf16 };

// The instruction bf16 GEMMs run on at this level: the AMX tile unit, else vdpbf16ps.
inline PeakKind bf16_peak_kind(Isa isa) noexcept { return isa >= Isa::amx_bf16 ? PeakKind::amx_bf16 : PeakKind::bf16_dot; }

// GFLOP/s (1 FMA = 2 flops; 1 vdpbf16ps lane = 4 flops) on `threads` cores, best of `reps`.
inline double measure_peak(PeakKind kind, Isa isa, int threads, double seconds = 0.1, int reps = 3) {
  std::size_t iters = 1 << 16;
  double flops_per_iter = 0;
  auto loop = [&](std::size_t n, float seed) -> float {
    if (kind == PeakKind::bf16_dot) return dot_loop_avx512_bf16(n, seed);
#if MPT_X86
    if (kind == PeakKind::amx_bf16) return dot_loop_amx_bf16(n, seed);
#endif
    return isa >= Isa::avx512 ? fma_loop_avx512(n, seed) : fma_loop_avx2(n, seed);
  };
  if (kind == PeakKind::amx_bf16)
    flops_per_iter = 4 * 16 * 16 * 32 * 2;
  else if (kind == PeakKind::bf16_dot)
    flops_per_iter = 24 * 16 * 4;
  else
    flops_per_iter = isa >= Isa::avx512 ? 24 * 16 * 2 : 12 * 8 * 2;
  std::atomic<float> sink{0};
  // Grow the loop until one run takes `seconds`.
  for (;;) {
    const double t = run_on_threads(1, [&](int) { sink.store(loop(iters, 1.0f)); });
    if (t >= seconds / 4) {
      iters = static_cast<std::size_t>(static_cast<double>(iters) * seconds / t);
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const double t = run_on_threads(threads, [&](int i) { sink.store(loop(iters, 1.0f + i)); });
    best = std::max(best, flops_per_iter * static_cast<double>(iters) * threads / t * 1e-9);
  }
  return best;
}

// Single-thread peak by this thread's CPU time (stable on a shared machine), best of 3.
inline double measure_peak_cpu_time(PeakKind kind, Isa isa) {
  const std::size_t iters = std::size_t(1) << 21;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double c0 = thread_cpu_seconds();
    volatile float sink = 0;
    double flops = 0;
    if (kind == PeakKind::amx_bf16)
      sink = dot_loop_amx_bf16(iters / 16, 1.0f), flops = 4.0 * 16 * 16 * 32 * 2 / 16;  // per iteration of `iters`
    else if (kind == PeakKind::bf16_dot)
      sink = dot_loop_avx512_bf16(iters, 1.0f), flops = 24.0 * 16 * 4;
    else if (isa >= Isa::avx512)
      sink = fma_loop_avx512(iters, 1.0f), flops = 24.0 * 16 * 2;
    else
      sink = fma_loop_avx2(iters, 1.0f), flops = 12.0 * 8 * 2;
    (void)sink;
    best = std::max(best, flops * static_cast<double>(iters) / (thread_cpu_seconds() - c0) * 1e-9);
  }
  return best;
}

// Triad a[i] = b[i] + s * c[i] over 3 x 64 MiB, GB/s counting 3 streams (no write-allocate), best of 3.
inline double measure_triad_gbps(int threads) {
  const std::size_t n = std::size_t(16) << 20;
  AlignedBuffer<float> a(n), b(n), c(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = 1.0f, c[i] = 2.0f;
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    const double t = run_on_threads(threads, [&](int id) {
      const std::size_t lo = n * id / threads, hi = n * (id + 1) / threads;
      float* pa = a.data();
      const float* pb = b.data();
      const float* pc = c.data();
      for (std::size_t i = lo; i < hi; ++i) pa[i] = pb[i] + 3.0f * pc[i];
    });
    if (rep > 0) best = std::max(best, 3.0 * n * sizeof(float) / t * 1e-9);
  }
  return best;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

inline double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

}  // namespace mpt::bench

#pragma GCC diagnostic pop
