#pragma once
// The fused store of a GEMM: C = convert(residual + gelu(alpha * acc + beta * C + bias)),
// one row segment at a time, from an fp32 (or fp64) accumulator tile.
//
//   epilogue_row_scalar / _avx2 / _avx512(acc[n] -> c[n])   per instruction set
//   epilogue_tile<isa>(...)                                 an MR x NR tile (AVX-512: set up once per tile)
//
// GELU uses erf in its rational minimax form (odd degree-13 over even degree-8
// polynomial, clamped to |x| <= 4 where fp32 erf is +-1 ): a few ulp in fp32, the
// same formula in every path so results do not depend on the ISA beyond FMA contraction.

#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

// erf(x) coefficients, numerator odd powers x^1..x^13, denominator even powers x^0..x^8.
inline constexpr float erf_num[7] = {-1.60960333262415e-02f, -2.95459980854025e-03f, -7.34990630326855e-04f, -5.69250639462346e-05f,
                                     -2.10102402082508e-06f, 2.77068142495902e-08f,  -2.72614225801306e-10f};
inline constexpr float erf_den[5] = {-1.42647390514189e-02f, -7.37332916720468e-03f, -1.68282697438203e-03f, -2.13374055278905e-04f,
                                     -1.45660718464996e-05f};
inline constexpr float inv_sqrt2 = 0.70710678118654752440f;

// Scalar reference of the vector erf below.
inline float erf_rational(float x) noexcept {
  x = std::clamp(x, -4.0f, 4.0f);
  const float x2 = x * x;
  float p = erf_num[6];
  for (int i = 5; i >= 0; --i) p = std::fma(x2, p, erf_num[i]);
  float q = erf_den[4];
  for (int i = 3; i >= 0; --i) q = std::fma(x2, q, erf_den[i]);
  return x * p / q;
}
inline float gelu_erf(float v) noexcept { return 0.5f * v * (1.0f + erf_rational(v * inv_sqrt2)); }
inline double gelu_erf(double v) noexcept { return 0.5 * v * (1.0 + std::erf(v * 0.70710678118654752440)); }

template <class T>
inline auto load_as_acc(const T* p) noexcept {
  if constexpr (std::is_same_v<T, double>)
    return *p;
  else
    return to_float(*p);
}
template <class TC, class Acc>
inline void store_from_acc(TC* p, Acc v) noexcept {
  if constexpr (std::is_same_v<TC, bf16>)
    *p = to_bf16(static_cast<float>(v));
  else
    *p = static_cast<TC>(v);
}

// What the store of one GEMM needs, resolved once per call.
template <class Acc, class TC, class TE, class TR>
struct EpilogueArgs {
  Acc alpha, beta;
  TC* c;
  std::size_t ldc;
  GemmEpilogue<TE, TR> fused;
};

// Scalar reference: row segment of n accumulators -> C(i, j0 .. j0+n).
template <class Acc, class TC, class TE, class TR>
inline void epilogue_row_scalar(const Acc* acc, std::size_t n, std::size_t i, std::size_t j0, const EpilogueArgs<Acc, TC, TE, TR>& e) noexcept {
  TC* c = e.c + i * e.ldc + j0;
  for (std::size_t j = 0; j < n; ++j) {
    Acc v = e.alpha * acc[j];
    if (e.beta != Acc(0)) v += e.beta * static_cast<Acc>(load_as_acc(c + j));
    if (e.fused.bias) v += static_cast<Acc>(load_as_acc(e.fused.bias + j0 + j));
    if (e.fused.gelu) v = gelu_erf(v);
    if (e.fused.residual) v += static_cast<Acc>(load_as_acc(e.fused.residual + i * e.fused.ldr + j0 + j));
    store_from_acc(c + j, v);
  }
}

#if MPT_X86
// ---- AVX-512: 16 lanes, masked tails ----
MPT_TARGET_AVX512 inline __m512 erf_avx512(__m512 x) noexcept {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(erf_num[6]);
  for (int i = 5; i >= 0; --i) p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(erf_num[i]));
  __m512 q = _mm512_set1_ps(erf_den[4]);
  for (int i = 3; i >= 0; --i) q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(erf_den[i]));
  return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}
template <class T>
MPT_TARGET_AVX512 inline __m512 load_lanes_avx512(const T* p, __mmask16 m) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  } else {
    return _mm512_maskz_loadu_ps(m, p);
  }
}
template <class T>
MPT_TARGET_AVX512 inline void store_lanes_avx512(T* p, __m512 v, __mmask16 m) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v))));
  } else {
    _mm512_mask_storeu_ps(p, m, v);
  }
}

template <class TC, class TE, class TR>
MPT_TARGET_AVX512 inline void epilogue_row_avx512(const float* acc, std::size_t n, std::size_t i, std::size_t j0,
                                                  const EpilogueArgs<float, TC, TE, TR>& e) noexcept {
  TC* c = e.c + i * e.ldc + j0;
  const __m512 alpha = _mm512_set1_ps(e.alpha), beta = _mm512_set1_ps(e.beta);
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), rs2 = _mm512_set1_ps(inv_sqrt2);
  for (std::size_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1u);
    __m512 v = _mm512_mul_ps(alpha, _mm512_maskz_loadu_ps(m, acc + j));
    if (e.beta != 0.0f) v = _mm512_fmadd_ps(beta, load_lanes_avx512(c + j, m), v);
    if (e.fused.bias) v = _mm512_add_ps(v, load_lanes_avx512(e.fused.bias + j0 + j, m));
    if (e.fused.gelu) v = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf_avx512(_mm512_mul_ps(v, rs2))));
    if (e.fused.residual) v = _mm512_add_ps(v, load_lanes_avx512(e.fused.residual + i * e.fused.ldr + j0 + j, m));
    store_lanes_avx512(c + j, v, m);
  }
}

// The store of one tile (<= 32 columns) on AVX-512: constants and masks set up once,
// then two vectors per row: values(r) gives row r's 32 values before the conversion.
template <class TC, class TE, class TR>
struct TileEpilogueAvx512 {
  const EpilogueArgs<float, TC, TE, TR>& e;
  const float* acc;
  std::size_t ld, i0, j0;
  __mmask16 m0, m1;
  __m512 alpha, beta, bias0, bias1;

  MPT_TARGET_AVX512 TileEpilogueAvx512(const EpilogueArgs<float, TC, TE, TR>& args, const float* a, std::size_t lda, std::size_t i, std::size_t j,
                                       std::size_t cols) noexcept
      : e(args), acc(a), ld(lda), i0(i), j0(j) {
    m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
    m1 = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1u) : __mmask16(0);
    alpha = _mm512_set1_ps(e.alpha);
    beta = _mm512_set1_ps(e.beta);
    bias0 = e.fused.bias ? load_lanes_avx512(e.fused.bias + j0, m0) : _mm512_setzero_ps();
    bias1 = e.fused.bias ? load_lanes_avx512(e.fused.bias + j0 + 16, m1) : _mm512_setzero_ps();
  }
  TC* c_row(std::size_t r) const noexcept { return e.c + (i0 + r) * e.ldc + j0; }
  MPT_TARGET_AVX512 __attribute__((always_inline)) inline void values(std::size_t r, __m512& v0, __m512& v1) const noexcept {
    v0 = _mm512_loadu_ps(acc + r * ld);
    v1 = _mm512_loadu_ps(acc + r * ld + 16);
    apply(r, v0, v1);
  }
  // Row r's 32 accumulators (in registers) -> its 32 values before the conversion.
  MPT_TARGET_AVX512 __attribute__((always_inline)) inline void apply(std::size_t r, __m512& v0, __m512& v1) const noexcept {
    TC* c = c_row(r);
    v0 = _mm512_mul_ps(alpha, v0);
    v1 = _mm512_mul_ps(alpha, v1);
    if (e.beta != 0.0f) {
      v0 = _mm512_fmadd_ps(beta, load_lanes_avx512(c, m0), v0);
      v1 = _mm512_fmadd_ps(beta, load_lanes_avx512(c + 16, m1), v1);
    }
    if (e.fused.bias) {  // (not + 0 without one: -0 stays -0, as in the scalar reference)
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (e.fused.gelu) {
      const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), rs2 = _mm512_set1_ps(inv_sqrt2);
      v0 = _mm512_mul_ps(_mm512_mul_ps(half, v0), _mm512_add_ps(one, erf_avx512(_mm512_mul_ps(v0, rs2))));
      v1 = _mm512_mul_ps(_mm512_mul_ps(half, v1), _mm512_add_ps(one, erf_avx512(_mm512_mul_ps(v1, rs2))));
    }
    if (e.fused.residual) {
      const TR* res = e.fused.residual + (i0 + r) * e.fused.ldr + j0;
      v0 = _mm512_add_ps(v0, load_lanes_avx512(res, m0));
      v1 = _mm512_add_ps(v1, load_lanes_avx512(res + 16, m1));
    }
  }
  MPT_TARGET_AVX512 __attribute__((always_inline)) inline void store(std::size_t r, __m512 v0, __m512 v1) const noexcept {
    store_lanes_avx512(c_row(r), v0, m0);
    store_lanes_avx512(c_row(r) + 16, v1, m1);
  }
};

// A whole tile (rows x cols <= 32 columns) of accumulators at acc[r * ld + j].
template <class TC, class TE, class TR>
MPT_TARGET_AVX512 inline void epilogue_tile_avx512(const float* acc, std::size_t ld, std::size_t i0, std::size_t rows, std::size_t j0,
                                                   std::size_t cols, const EpilogueArgs<float, TC, TE, TR>& e) noexcept {
  const TileEpilogueAvx512<TC, TE, TR> tile(e, acc, ld, i0, j0, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    __m512 v0, v1;
    tile.values(r, v0, v1);
    tile.store(r, v0, v1);
  }
}

// 32 values into a bf16 row (lanes in mask): vcvtne2ps2bf16 unless a value is an fp32
// subnormal (which the instruction flushes), then the exact narrowing of narrow_lanes_avx512.
MPT_TARGET_AVX512_BF16 __attribute__((always_inline)) inline void store_row_bf16_avx512bf16(bf16* c, __m512 v0, __m512 v1, __mmask32 mask) noexcept {
  if ((_mm512_fpclass_ps_mask(v0, 0x20) | _mm512_fpclass_ps_mask(v1, 0x20)) == 0) {  // 0x20: denormal
    const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
    if (mask == ~__mmask32(0))
      _mm512_storeu_si512(c, packed);
    else
      _mm512_mask_storeu_epi16(c, mask, packed);
  } else {
    store_lanes_avx512(c, v0, static_cast<__mmask16>(mask));
    store_lanes_avx512(c + 16, v1, static_cast<__mmask16>(mask >> 16));
  }
}

// The same tile into bf16 C with vcvtne2ps2bf16: 32 values rounded to nearest even in one
// instruction and one 64-byte store per row (the emulated narrowing costs ~10 instructions
// per 16 values, which matters when k is short, as in attention's k = 64). The instruction
// flushes fp32 subnormals, so a row holding one takes the exact path of narrow_lanes_avx512.
template <class TE, class TR>
MPT_TARGET_AVX512_BF16 inline void epilogue_tile_avx512_bf16(const float* acc, std::size_t ld, std::size_t i0, std::size_t rows, std::size_t j0,
                                                             std::size_t cols, const EpilogueArgs<float, bf16, TE, TR>& e) noexcept {
  const TileEpilogueAvx512<bf16, TE, TR> tile(e, acc, ld, i0, j0, cols);
  const __mmask32 mask = cols >= 32 ? ~__mmask32(0) : __mmask32((std::uint64_t(1) << cols) - 1u);
  for (std::size_t r = 0; r < rows; ++r) {
    __m512 v0, v1;
    tile.values(r, v0, v1);
    store_row_bf16_avx512bf16(tile.c_row(r), v0, v1, mask);
  }
}

// ---- The epilogue on accumulators still in registers (full 12 x 32 tiles) ----
// A micro-kernel that takes one of these calls it once per row after its k loop, so the
// store needs no fp32 tile in memory and no second pass (fwd with bias at k = 768:
// +5-7%). The same operations in the same order as epilogue_tile: the same bits.
template <class TC, class TE, class TR>
struct RegisterStoreAvx512 {  // fp32 C, or bf16 C narrowed without AVX512_BF16
  TileEpilogueAvx512<TC, TE, TR> tile;
  MPT_TARGET_AVX512 RegisterStoreAvx512(const EpilogueArgs<float, TC, TE, TR>& e, std::size_t i0, std::size_t j0) noexcept
      : tile(e, nullptr, 0, i0, j0, 32) {}
  MPT_TARGET_AVX512 __attribute__((always_inline)) inline void operator()(std::size_t r, __m512 v0, __m512 v1) const noexcept {
    tile.apply(r, v0, v1);
    tile.store(r, v0, v1);
  }
};
// C = A B rounded to bf16, nothing to apply (alpha = 1, beta = 0, nothing fused): the
// store of attention's products, whose k = 64 leaves little time to amortize any set-up.
struct RegisterStorePlainBf16 {
  bf16* c;  // the tile's first element
  std::size_t ldc;
  MPT_TARGET_AVX512_BF16 __attribute__((always_inline)) inline void operator()(std::size_t r, __m512 v0, __m512 v1) const noexcept {
    store_row_bf16_avx512bf16(c + r * ldc, v0, v1, ~__mmask32(0));
  }
};

template <class TE, class TR>
struct RegisterStoreAvx512Bf16 {  // bf16 C with vcvtne2ps2bf16
  TileEpilogueAvx512<bf16, TE, TR> tile;
  MPT_TARGET_AVX512 RegisterStoreAvx512Bf16(const EpilogueArgs<float, bf16, TE, TR>& e, std::size_t i0, std::size_t j0) noexcept
      : tile(e, nullptr, 0, i0, j0, 32) {}
  MPT_TARGET_AVX512_BF16 __attribute__((always_inline)) inline void operator()(std::size_t r, __m512 v0, __m512 v1) const noexcept {
    tile.apply(r, v0, v1);
    store_row_bf16_avx512bf16(tile.c_row(r), v0, v1, ~__mmask32(0));
  }
};

// ---- AVX2: 8 lanes, tails through a small stack buffer ----
MPT_TARGET_AVX2 inline __m256 erf_avx2(__m256 x) noexcept {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(erf_num[6]);
  for (int i = 5; i >= 0; --i) p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(erf_num[i]));
  __m256 q = _mm256_set1_ps(erf_den[4]);
  for (int i = 3; i >= 0; --i) q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(erf_den[i]));
  return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}
template <class T>
MPT_TARGET_AVX2 inline __m256 load_lanes_avx2(const T* p) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_loadu_ps(p);
  }
}
template <class T>
MPT_TARGET_AVX2 inline void store_lanes_avx2(T* p, __m256 v) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    const __m256i b = mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v));  // bf16 bits in the low halves
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  } else {
    _mm256_storeu_ps(p, v);
  }
}

template <class TC, class TE, class TR>
MPT_TARGET_AVX2 inline void epilogue_row_avx2(const float* acc, std::size_t n, std::size_t i, std::size_t j0,
                                              const EpilogueArgs<float, TC, TE, TR>& e) noexcept {
  TC* c = e.c + i * e.ldc + j0;
  const __m256 alpha = _mm256_set1_ps(e.alpha), beta = _mm256_set1_ps(e.beta);
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), rs2 = _mm256_set1_ps(inv_sqrt2);
  const TE* bias = e.fused.bias ? e.fused.bias + j0 : nullptr;
  const TR* res = e.fused.residual ? e.fused.residual + i * e.fused.ldr + j0 : nullptr;
  for (std::size_t j = 0; j < n; j += 8) {
    const std::size_t w = std::min<std::size_t>(8, n - j);
    // Tails are staged through buffers so that no lane reads or writes past the row.
    alignas(32) TC c_tail[8] = {};
    alignas(32) TE b_tail[8] = {};
    alignas(32) TR r_tail[8] = {};
    TC* cp = c + j;
    const TE* bp = bias ? bias + j : nullptr;
    const TR* rp = res ? res + j : nullptr;
    if (w < 8) {
      if (e.beta != 0.0f) std::copy(cp, cp + w, c_tail);
      if (bp) std::copy(bp, bp + w, b_tail), bp = b_tail;
      if (rp) std::copy(rp, rp + w, r_tail), rp = r_tail;
      cp = c_tail;
    }
    alignas(32) float a_tail[8] = {};
    const float* ap = acc + j;
    if (w < 8) std::copy(ap, ap + w, a_tail), ap = a_tail;
    __m256 v = _mm256_mul_ps(alpha, _mm256_loadu_ps(ap));
    if (e.beta != 0.0f) v = _mm256_fmadd_ps(beta, load_lanes_avx2(cp), v);
    if (bp) v = _mm256_add_ps(v, load_lanes_avx2(bp));
    if (e.fused.gelu) v = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf_avx2(_mm256_mul_ps(v, rs2))));
    if (rp) v = _mm256_add_ps(v, load_lanes_avx2(rp));
    store_lanes_avx2(cp, v);
    if (w < 8) std::copy(c_tail, c_tail + w, c + j);
  }
}
#endif  // MPT_X86

// One row segment of the store, on the given instruction set.
template <Isa isa, class Acc, class TC, class TE, class TR>
inline void epilogue_row(const Acc* acc, std::size_t n, std::size_t i, std::size_t j0, const EpilogueArgs<Acc, TC, TE, TR>& e) noexcept {
#if MPT_X86
  if constexpr (std::is_same_v<Acc, float> && !std::is_same_v<TC, double> && !std::is_same_v<TE, double> && !std::is_same_v<TR, double>) {
    if constexpr (isa >= Isa::avx512)
      return epilogue_row_avx512(acc, n, i, j0, e);
    else if constexpr (isa == Isa::avx2)
      return epilogue_row_avx2(acc, n, i, j0, e);
  }
#endif
  epilogue_row_scalar(acc, n, i, j0, e);
}

// A tile of the store: rows x cols accumulators at acc[r * ld + j] -> C(i0 + r, j0 + j).
template <Isa isa, class Acc, class TC, class TE, class TR>
inline void epilogue_tile(const Acc* acc, std::size_t ld, std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols,
                          const EpilogueArgs<Acc, TC, TE, TR>& e) noexcept {
#if MPT_X86
  if constexpr (isa >= Isa::avx512 && std::is_same_v<Acc, float> && !std::is_same_v<TC, double> && !std::is_same_v<TE, double> &&
                !std::is_same_v<TR, double>) {
    if constexpr (isa >= Isa::avx512_bf16 && std::is_same_v<TC, bf16>) {
      if (cols <= 32) return epilogue_tile_avx512_bf16(acc, ld, i0, rows, j0, cols, e);
    }
    if (cols <= 32) return epilogue_tile_avx512(acc, ld, i0, rows, j0, cols, e);
  }
#endif
  for (std::size_t r = 0; r < rows; ++r) epilogue_row<isa>(acc + r * ld, cols, i0 + r, j0, e);
}

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
