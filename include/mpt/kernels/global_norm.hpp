#pragma once
// The global L2 norm of one or more fp32 buffers (gradient clipping, logging),
// the same bits for any thread count and on every instruction-set path.
//
//   x: n floats (or several buffers, taken as one concatenation)
//   sum_of_squares<Acc>(x) = sum_i x_i^2 accumulated in Acc (float or double)
//   global_l2_norm<Acc>(x) = sqrt(sum_of_squares<Acc>(x))
//
// The order of the sum is fixed by the data alone:
//   - each buffer is cut into chunks of global_norm_chunk elements (one task each);
//   - inside a chunk, element i goes to lane (i mod 64): lane = fma(x, x, lane),
//     which is what 4 zmm (float) or 8 zmm (double) registers do side by side;
//   - the 64 lanes are folded in a fixed tree (lane j += lane j + w, w = 32..1);
//   - chunk partials are added in index order, buffer after buffer.
// The scalar reference runs the same lanes, so every path gives the same bits.
// With double accumulation a non-finite result means a non-finite input;
// with float it can also mean an overflow of the squares (|x| > ~1.8e19).

#include <mpt/core/cpu.hpp>
#include <mpt/core/threads.hpp>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // _mm512_cvtps_pd, same cause

namespace mpt::kernels {

inline constexpr std::size_t global_norm_chunk = 16384;
inline constexpr std::size_t global_norm_lanes = 64;

namespace detail {

// Software prefetch distance: the hardware prefetcher stops at 4 KiB pages,
// which limits one read stream to a fraction of the memory bandwidth.
inline constexpr std::size_t norm_prefetch_floats = 1024;

template <class Acc>
Acc fold_norm_lanes(Acc* lanes) noexcept {
  for (std::size_t width = global_norm_lanes / 2; width >= 1; width /= 2) {
    for (std::size_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return lanes[0];
}

// Scalar reference: n <= global_norm_chunk floats -> one partial sum.
template <class Acc>
Acc chunk_sum_of_squares_scalar(const float* x, std::size_t n) noexcept {
  alignas(64) Acc lanes[global_norm_lanes] = {};
  for (std::size_t i = 0; i < n; ++i) {
    const Acc v = static_cast<Acc>(x[i]);
    lanes[i % global_norm_lanes] = std::fma(v, v, lanes[i % global_norm_lanes]);
  }
  return fold_norm_lanes(lanes);
}

#if MPT_X86
MPT_TARGET_AVX2 inline float chunk_sum_of_squares_avx2(const float* x, std::size_t n, float) noexcept {
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats + 32), _MM_HINT_T0);
    for (int r = 0; r < 8; ++r) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * r);
      acc[r] = _mm256_fmadd_ps(v, v, acc[r]);
    }
  }
  alignas(64) float lanes[global_norm_lanes];
  for (int r = 0; r < 8; ++r) _mm256_store_ps(lanes + 8 * r, acc[r]);
  for (std::size_t k = 0; i + k < n; ++k) lanes[k] = std::fma(x[i + k], x[i + k], lanes[k]);  // tail: lanes 0..
  return fold_norm_lanes(lanes);
}

MPT_TARGET_AVX2 inline double chunk_sum_of_squares_avx2(const float* x, std::size_t n, double) noexcept {
  __m256d acc[16];
  for (auto& a : acc) a = _mm256_setzero_pd();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats + 32), _MM_HINT_T0);
    for (int r = 0; r < 16; ++r) {
      const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * r));
      acc[r] = _mm256_fmadd_pd(v, v, acc[r]);
    }
  }
  alignas(64) double lanes[global_norm_lanes];
  for (int r = 0; r < 16; ++r) _mm256_store_pd(lanes + 4 * r, acc[r]);
  for (std::size_t k = 0; i + k < n; ++k) {
    const double v = x[i + k];
    lanes[k] = std::fma(v, v, lanes[k]);
  }
  return fold_norm_lanes(lanes);
}

MPT_TARGET_AVX512 inline float chunk_sum_of_squares_avx512(const float* x, std::size_t n, float) noexcept {
  __m512 acc[4];
  for (auto& a : acc) a = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats + 32), _MM_HINT_T0);
    for (int r = 0; r < 4; ++r) {
      const __m512 v = _mm512_loadu_ps(x + i + 16 * r);
      acc[r] = _mm512_fmadd_ps(v, v, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {  // the tail: masked-off lanes add 0*0
    const std::size_t at = i + 16 * static_cast<std::size_t>(r);
    const std::size_t left = at < n ? n - at : 0;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + at);
    acc[r] = _mm512_fmadd_ps(v, v, acc[r]);
  }
  alignas(64) float lanes[global_norm_lanes];
  for (int r = 0; r < 4; ++r) _mm512_store_ps(lanes + 16 * r, acc[r]);
  return fold_norm_lanes(lanes);
}

MPT_TARGET_AVX512 inline double chunk_sum_of_squares_avx512(const float* x, std::size_t n, double) noexcept {
  __m512d acc[8];
  for (auto& a : acc) a = _mm512_setzero_pd();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i + norm_prefetch_floats + 32), _MM_HINT_T0);
    for (int r = 0; r < 8; ++r) {
      const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * r));
      acc[r] = _mm512_fmadd_pd(v, v, acc[r]);
    }
  }
  for (int r = 0; r < 8; ++r) {  // the tail: masked-off lanes add 0*0
    const std::size_t at = i + 8 * static_cast<std::size_t>(r);
    const std::size_t left = at < n ? n - at : 0;
    const __mmask8 m = left >= 8 ? __mmask8(0xFF) : __mmask8((1u << left) - 1u);
    const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + at));
    acc[r] = _mm512_fmadd_pd(v, v, acc[r]);
  }
  alignas(64) double lanes[global_norm_lanes];
  for (int r = 0; r < 8; ++r) _mm512_store_pd(lanes + 8 * r, acc[r]);
  return fold_norm_lanes(lanes);
}
#endif  // MPT_X86

template <class Acc>
Acc chunk_sum_of_squares(Isa isa, const float* x, std::size_t n) noexcept {
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
    case Isa::avx512:
      return chunk_sum_of_squares_avx512(x, n, Acc{});
    case Isa::avx2:
      return chunk_sum_of_squares_avx2(x, n, Acc{});
#endif
    default:
      return chunk_sum_of_squares_scalar<Acc>(x, n);
  }
}

}  // namespace detail

namespace detail {
// Chunk partials, reused from call to call: no allocation in the training loop.
template <class Acc>
std::vector<Acc>& norm_partials() {
  thread_local std::vector<Acc> partials;
  return partials;
}
}  // namespace detail

// Sum of squares over the concatenation of `buffers`, on the given path.
template <class Acc = float>
Acc sum_of_squares_with(Isa isa, std::span<const std::span<const float>> buffers) {
  static_assert(std::is_same_v<Acc, float> || std::is_same_v<Acc, double>, "sum_of_squares: accumulate in float or double");
  auto chunks_of = [](std::size_t n) { return (n + global_norm_chunk - 1) / global_norm_chunk; };
  std::size_t chunks = 0;
  for (const auto& b : buffers) chunks += chunks_of(b.size());
  std::vector<Acc>& partials = detail::norm_partials<Acc>();
  partials.resize(chunks);
  parallel_for(chunks, [&](std::size_t chunk) {
    std::size_t buffer = 0, local = chunk;
    while (local >= chunks_of(buffers[buffer].size())) local -= chunks_of(buffers[buffer++].size());  // a handful of buffers
    const std::size_t at = local * global_norm_chunk;
    const std::size_t n = std::min(global_norm_chunk, buffers[buffer].size() - at);
    partials[chunk] = detail::chunk_sum_of_squares<Acc>(isa, buffers[buffer].data() + at, n);
  });
  Acc total = 0;
  for (Acc p : partials) total += p;  // index order, whatever thread made each partial
  return total;
}

template <class Acc = float>
Acc sum_of_squares(std::span<const float> x) {
  const std::span<const float> one[] = {x};
  return sum_of_squares_with<Acc>(active_isa(), one);
}

template <class Acc = float>
Acc global_l2_norm(std::span<const float> x) {
  return std::sqrt(sum_of_squares<Acc>(x));
}

template <class Acc = float>
Acc global_l2_norm(std::span<const std::span<const float>> buffers) {
  return std::sqrt(sum_of_squares_with<Acc>(active_isa(), buffers));
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
