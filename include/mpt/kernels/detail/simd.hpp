#pragma once
// Small SIMD vocabulary shared by the element-wise kernels: full and partial
// loads/stores of float and bf16 (as fp32 lanes; bf16 stores round to nearest
// even exactly like core/bf16.hpp), horizontal sums/maxima, and vectorized exp
// and erf. One namespace per instruction set with the same names
// (detail::avx512_bf16, detail::avx512, detail::avx2), so a kernel body is
// written once: each kernel header stamps its body into every namespace with
// a macro taking the MPT_TARGET_* attribute (GCC cannot give one template
// different target attributes per instantiation). Every function runs only after dispatch on
// active_isa() checked the CPU; each kernel header keeps a scalar reference
// (std::exp / std::erf in the working precision) that also serves double.
//
// Accuracy (checked in tests/kernels against double):
//   exp: Cody-Waite range reduction + degree-6 polynomial, <= 2 ulp on
//        [-87.3, 88.7] (1.25 measured); below -87.3 it returns 0 (PyTorch
//        returns a subnormal there, a difference below 1.2e-38), above 88.7 +Inf.
//   erf: |x| < 0.9: x * P(x^2), P degree 6 (fit error 3e-10 relative);
//        0.9 <= |x| < 3.92: R(|x| - 2.41), R degree 14 (fit error 1e-8
//        absolute, 2.5 ulp worst case after fp32 Horner); |x| >= 3.92: ±1
//        (erf rounds to 1 in fp32 there). No exp.
//        Coefficients: least squares on Chebyshev nodes, fp64
//        (tools/fit_erf_coefficients.py, run by hand).
//        <= 4 ulp by analysis (tests), 2.36 measured over [-6, 6].
//        (GELU does not call it: it evaluates its own piecewise tables, below.)
//   exp_nonpositive: exp for x <= 0 without the overflow guard (softmax).
//   piecewise_n: a function of a >= 0 as 32 (AVX-512) or 8 (AVX2) polynomial
//        pieces, the coefficients gathered by in-register permutes; each
//        table documents its own error (gelu.hpp, tools/fit_gelu_tables.py).

#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/tensor.hpp>

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <vector>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

// Coefficients of erf's two pieces, highest degree first (Horner).
inline constexpr float erf_small_coefficients[] = {8.534122715e-05f, -8.180781373e-04f, 5.204331625e-03f, -2.686070897e-02f,
                                                   1.128371889e-01f, -3.761263525e-01f, 1.128379167e+00f};
inline constexpr float erf_large_coefficients[] = {1.310721111e-06f,  -9.115103069e-07f, -1.861979161e-05f, 3.660426456e-05f,  6.331775316e-05f,
                                                   -3.373853189e-04f, 4.935169825e-04f,  2.932554082e-04f,  -3.066311448e-03f, 7.699653721e-03f,
                                                   -1.172715521e-02f, 1.199329491e-02f,  -8.166750358e-03f, 3.388569193e-03f,  9.993462026e-01f};
inline constexpr float erf_split = 0.9f;
inline constexpr float erf_center = 2.41f;
inline constexpr float erf_saturation = 3.92f;

// exp: x = n ln2 + r, ln2 split in two so n*ln2 is exact (Cody-Waite).
inline constexpr float exp_lowest = -87.33654f;  // ln(FLT_MIN): below, the result is 0
inline constexpr float exp_highest = 88.72283f;  // ln(FLT_MAX): above, +Inf
inline constexpr float log2e = 1.44269504088896341f;
inline constexpr float ln2_hi = 0.693359375f;
inline constexpr float ln2_lo = -2.12194440e-4f;
inline constexpr float exp_coefficients[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                             4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// A function of a >= 0 as `Pieces` polynomials: piece k, the nearest integer
// to a * inv_width, evaluates sum_j coefficient[j][k] t^(Terms-1-j) with
// t = a - k * width; a is first clamped to `clamp` (the last piece's center;
// for the kernels' tables that piece is a constant past the point where the
// function saturates in fp32). The vectorized evaluation (piecewise_n)
// gathers every coefficient with one in-register permute: 32 pieces on
// AVX-512 (vpermt2ps over two registers), 8 on AVX2 (vpermps).
template <std::size_t Pieces, std::size_t Terms>
struct PiecewiseTable {
  float inv_width;
  float width;
  float clamp;
  float coefficient[Terms][Pieces];  // highest degree first (Horner)
};
// a * inv_width + 2^23 rounds to 2^23 + the nearest piece (ties to even: a
// lane exactly half-way may take either neighbour, which the fits cover with
// a margin): the piece index lands in the low mantissa bits, where the
// permutes read it, and subtracting 2^23 again gives k exactly.
inline constexpr float piece_index_magic = 0x1p23f;

// Scalar reference of piecewise_n (the same fp32 operations, one lane).
template <std::size_t Pieces, std::size_t Terms>
inline float piecewise_reference(const PiecewiseTable<Pieces, Terms>& table, float a) noexcept {
  a = table.clamp < a ? table.clamp : a;  // a NaN stays NaN, as vminps(clamp, a)
  const float scaled = std::fma(a, table.inv_width, piece_index_magic);
  std::uint32_t bits;
  std::memcpy(&bits, &scaled, sizeof bits);
  const std::size_t k = bits & (Pieces - 1);
  const float t = std::fma(-(scaled - piece_index_magic), table.width, a);
  float p = table.coefficient[0][k];
  for (std::size_t j = 1; j < Terms; ++j) p = std::fma(p, t, table.coefficient[j][k]);
  return p;
}

#if MPT_X86
namespace avx512 {
using vf = __m512;
inline constexpr std::size_t lanes = 16;

MPT_TARGET_AVX512 inline __mmask16 first_lanes(std::size_t n) noexcept { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
MPT_TARGET_AVX512 inline vf set1(float x) noexcept { return _mm512_set1_ps(x); }
MPT_TARGET_AVX512 inline vf zero() noexcept { return _mm512_setzero_ps(); }
MPT_TARGET_AVX512 inline vf load(const float* p) noexcept { return _mm512_loadu_ps(p); }
MPT_TARGET_AVX512 inline vf load(const bf16* p) noexcept {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// The first n (< lanes allowed) elements; the other lanes are 0.
MPT_TARGET_AVX512 inline vf load(const float* p, std::size_t n) noexcept { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
MPT_TARGET_AVX512 inline vf load(const bf16* p, std::size_t n) noexcept {
  const __m256i h = _mm256_maskz_loadu_epi16(first_lanes(n), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
MPT_TARGET_AVX512 inline void store(float* p, vf v) noexcept { _mm512_storeu_ps(p, v); }
MPT_TARGET_AVX512 inline void store(bf16* p, vf v) noexcept {
  const __m256i h = _mm512_cvtepi32_epi16(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
}
MPT_TARGET_AVX512 inline void store(float* p, vf v, std::size_t n) noexcept { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
MPT_TARGET_AVX512 inline void store(bf16* p, vf v, std::size_t n) noexcept {
  const __m256i h = _mm512_cvtepi32_epi16(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v)));
  _mm256_mask_storeu_epi16(p, first_lanes(n), h);
}
// Stores v (the first n lanes) and returns what the store kept, as fp32:
// v itself for float, v rounded to bf16 for bf16 (narrowed once, not twice).
MPT_TARGET_AVX512 inline vf store_kept(float* p, vf v) noexcept {
  store(p, v);
  return v;
}
MPT_TARGET_AVX512 inline vf store_kept(float* p, vf v, std::size_t n) noexcept {
  store(p, v, n);
  return v;
}
MPT_TARGET_AVX512 inline vf store_kept(bf16* p, vf v) noexcept {
  const __m512i kept = mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(kept));
  return _mm512_castsi512_ps(_mm512_slli_epi32(kept, 16));
}
MPT_TARGET_AVX512 inline vf store_kept(bf16* p, vf v, std::size_t n) noexcept {
  const __m512i kept = mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v));
  _mm256_mask_storeu_epi16(p, first_lanes(n), _mm512_cvtepi32_epi16(kept));
  return _mm512_castsi512_ps(_mm512_slli_epi32(kept, 16));
}
// Each lane rounded to the nearest bf16 and widened back (what a bf16 store keeps).
MPT_TARGET_AVX512 inline vf round_to_bf16(vf v) noexcept {
  return _mm512_castsi512_ps(_mm512_slli_epi32(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v)), 16));
}
// v with lanes n.. set to 0.
MPT_TARGET_AVX512 inline vf first(vf v, std::size_t n) noexcept { return _mm512_maskz_mov_ps(first_lanes(n), v); }
MPT_TARGET_AVX512 inline vf fmadd(vf a, vf b, vf c) noexcept { return _mm512_fmadd_ps(a, b, c); }
MPT_TARGET_AVX512 inline vf max(vf a, vf b) noexcept { return _mm512_max_ps(a, b); }
MPT_TARGET_AVX512 inline vf abs(vf v) noexcept { return _mm512_abs_ps(v); }
// v with its sign flipped where s is negative (v xor the sign bit of s, one vpternlogd).
MPT_TARGET_AVX512 inline vf times_sign_of(vf v, vf s) noexcept {
  constexpr int a_xor_b_and_c = 0x78;  // truth table of A ^ (B & C) on the operand masks 0xF0, 0xCC, 0xAA
  return _mm512_castsi512_ps(
      _mm512_ternarylogic_epi32(_mm512_castps_si512(v), _mm512_castps_si512(s), _mm512_set1_epi32(int(0x80000000u)), a_xor_b_and_c));
}
// Horizontal reductions in a fixed order (halving), written out because
// _mm512_reduce_* trips GCC 12's -Wmaybe-uninitialized.
MPT_TARGET_AVX512 inline float hsum(vf v) noexcept {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
MPT_TARGET_AVX512 inline float hmax(vf v) noexcept {
  const __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
// exp and erf of U independent vectors, statement by statement, so that
// their long dependency chains overlap (U = 2 runs GELU twice as fast as 1).
template <std::size_t U>
MPT_TARGET_AVX512 inline void exp_n(vf (&x)[U]) noexcept {
  __mmask16 underflow[U], overflow[U];
  vf n[U], r[U], p[U];
  for (std::size_t u = 0; u < U; ++u) {
    underflow[u] = _mm512_cmp_ps_mask(x[u], set1(exp_lowest), _CMP_LT_OQ);
    overflow[u] = _mm512_cmp_ps_mask(x[u], set1(exp_highest), _CMP_GT_OQ);
    x[u] = _mm512_min_ps(x[u], set1(exp_highest));
    n[u] = _mm512_roundscale_ps(_mm512_mul_ps(x[u], set1(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  for (std::size_t u = 0; u < U; ++u) r[u] = _mm512_fnmadd_ps(n[u], set1(ln2_hi), x[u]);
  for (std::size_t u = 0; u < U; ++u) r[u] = _mm512_fnmadd_ps(n[u], set1(ln2_lo), r[u]);
  for (std::size_t u = 0; u < U; ++u) p[u] = set1(exp_coefficients[0]);
  for (int i = 1; i < 6; ++i)
    for (std::size_t u = 0; u < U; ++u) p[u] = fmadd(p[u], r[u], set1(exp_coefficients[i]));
  for (std::size_t u = 0; u < U; ++u) {
    p[u] = fmadd(p[u], _mm512_mul_ps(r[u], r[u]), _mm512_add_ps(r[u], set1(1.0f)));
    // 2^n by scalef: exact, no exponent arithmetic to wrap.
    const vf y = _mm512_maskz_scalef_ps(static_cast<__mmask16>(~underflow[u]), p[u], n[u]);
    x[u] = _mm512_mask_mov_ps(y, overflow[u], set1(std::numeric_limits<float>::infinity()));
  }
}
MPT_TARGET_AVX512 inline vf exp(vf x) noexcept {
  vf v[1] = {x};
  exp_n(v);
  return v[0];
}
// exp of x <= 0: exp_n without the overflow guard, the same bits (a NaN
// stays NaN, where exp_n clamps it to the top of the range).
// Softmax's exp(z - max) needs no more.
MPT_TARGET_AVX512 inline vf exp_nonpositive(vf x) noexcept {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, set1(exp_lowest), _CMP_LT_OQ);
  const vf n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm512_fnmadd_ps(n, set1(ln2_hi), x);
  r = _mm512_fnmadd_ps(n, set1(ln2_lo), r);
  vf p = set1(exp_coefficients[0]);
  for (int i = 1; i < 6; ++i) p = fmadd(p, r, set1(exp_coefficients[i]));
  p = fmadd(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, set1(1.0f)));
  return _mm512_maskz_scalef_ps(static_cast<__mmask16>(~underflow), p, n);
}
template <std::size_t U>
MPT_TARGET_AVX512 inline void erf_n(vf (&x)[U]) noexcept {
  vf sign[U], a[U], t[U], small[U], q[U], large[U];
  for (std::size_t u = 0; u < U; ++u) {
    sign[u] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x[u]), _mm512_set1_epi32(int(0x80000000u))));
    a[u] = _mm512_min_ps(_mm512_abs_ps(x[u]), set1(erf_saturation));
    t[u] = _mm512_mul_ps(a[u], a[u]);
    small[u] = set1(erf_small_coefficients[0]);
    q[u] = set1(erf_large_coefficients[0]);
    large[u] = _mm512_sub_ps(a[u], set1(erf_center));
  }
  for (int i = 1; i < 15; ++i) {
    for (std::size_t u = 0; u < U; ++u) {
      if (i < 7) small[u] = fmadd(small[u], t[u], set1(erf_small_coefficients[i]));
      q[u] = fmadd(q[u], large[u], set1(erf_large_coefficients[i]));
    }
  }
  for (std::size_t u = 0; u < U; ++u) {
    small[u] = _mm512_mul_ps(small[u], a[u]);
    large[u] = _mm512_mask_mov_ps(q[u], _mm512_cmp_ps_mask(a[u], set1(erf_saturation), _CMP_GE_OQ), set1(1.0f));
    const vf y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a[u], set1(erf_split), _CMP_LT_OQ), large[u], small[u]);
    x[u] = _mm512_or_ps(y, sign[u]);
  }
}
MPT_TARGET_AVX512 inline vf erf(vf x) noexcept {
  vf v[1] = {x};
  erf_n(v);
  return v[0];
}
// p[u] = the table's function of a[u] >= 0, U vectors interleaved.
// Per vector: Terms permutes and Terms + 3 FMA-class instructions (on
// different ports, so they overlap).
template <std::size_t U, std::size_t Terms>
MPT_TARGET_AVX512 __attribute__((always_inline)) inline void piecewise_n(const PiecewiseTable<32, Terms>& table, const vf (&a)[U],
                                                                         vf (&p)[U]) noexcept {
  __m512i piece[U];
  vf t[U];
  for (std::size_t u = 0; u < U; ++u) {
    const vf clamped = _mm512_min_ps(set1(table.clamp), a[u]);  // a NaN passes: the result is NaN
    const vf scaled = fmadd(clamped, set1(table.inv_width), set1(piece_index_magic));
    piece[u] = _mm512_castps_si512(scaled);
    t[u] = _mm512_fnmadd_ps(_mm512_sub_ps(scaled, set1(piece_index_magic)), set1(table.width), clamped);
    p[u] = _mm512_permutex2var_ps(_mm512_loadu_ps(table.coefficient[0]), piece[u], _mm512_loadu_ps(table.coefficient[0] + 16));
  }
  for (std::size_t j = 1; j < Terms; ++j) {
    const vf low = _mm512_loadu_ps(table.coefficient[j]), high = _mm512_loadu_ps(table.coefficient[j] + 16);
    for (std::size_t u = 0; u < U; ++u) p[u] = fmadd(p[u], t[u], _mm512_permutex2var_ps(low, piece[u], high));
  }
}
}  // namespace avx512

// AVX-512 plus AVX512_BF16: the same vocabulary, with bf16 stores narrowed by
// vcvtneps2bf16 (1 instruction instead of 7). The instruction rounds like the
// reference except that it flushes fp32 subnormal inputs to zero, so vectors
// holding one take the exact emulation: the bits never differ.
namespace avx512_bf16 {
using avx512::abs;
using avx512::erf;
using avx512::erf_n;
using avx512::exp;
using avx512::exp_n;
using avx512::exp_nonpositive;
using avx512::first;
using avx512::first_lanes;
using avx512::fmadd;
using avx512::hmax;
using avx512::hsum;
using avx512::lanes;
using avx512::load;
using avx512::max;
using avx512::piecewise_n;
using avx512::set1;
using avx512::times_sign_of;
using avx512::vf;
using avx512::zero;

MPT_TARGET_AVX512_BF16 inline __m256i narrow(vf v) noexcept {
  constexpr int denormal_class = 0x20;  // vfpclassps category bit: fp32 subnormal
  if (_mm512_fpclass_ps_mask(v, denormal_class) == 0) return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
  return _mm512_cvtepi32_epi16(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v)));
}
MPT_TARGET_AVX512_BF16 inline void store(float* p, vf v) noexcept { _mm512_storeu_ps(p, v); }
MPT_TARGET_AVX512_BF16 inline void store(float* p, vf v, std::size_t n) noexcept { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
MPT_TARGET_AVX512_BF16 inline void store(bf16* p, vf v) noexcept { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow(v)); }
MPT_TARGET_AVX512_BF16 inline void store(bf16* p, vf v, std::size_t n) noexcept { _mm256_mask_storeu_epi16(p, first_lanes(n), narrow(v)); }
MPT_TARGET_AVX512_BF16 inline vf store_kept(float* p, vf v) noexcept {
  store(p, v);
  return v;
}
MPT_TARGET_AVX512_BF16 inline vf store_kept(float* p, vf v, std::size_t n) noexcept {
  store(p, v, n);
  return v;
}
MPT_TARGET_AVX512_BF16 inline vf store_kept(bf16* p, vf v) noexcept {
  const __m256i kept = narrow(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), kept);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(kept), 16));
}
MPT_TARGET_AVX512_BF16 inline vf store_kept(bf16* p, vf v, std::size_t n) noexcept {
  const __m256i kept = narrow(v);
  _mm256_mask_storeu_epi16(p, first_lanes(n), kept);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(kept), 16));
}
MPT_TARGET_AVX512_BF16 inline vf round_to_bf16(vf v) noexcept { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(narrow(v)), 16)); }
}  // namespace avx512_bf16

namespace avx2 {
using vf = __m256;
inline constexpr std::size_t lanes = 8;

MPT_TARGET_AVX2 inline __m256i first_lanes(std::size_t n) noexcept {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 8 ? n : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
MPT_TARGET_AVX2 inline vf set1(float x) noexcept { return _mm256_set1_ps(x); }
MPT_TARGET_AVX2 inline vf zero() noexcept { return _mm256_setzero_ps(); }
MPT_TARGET_AVX2 inline vf load(const float* p) noexcept { return _mm256_loadu_ps(p); }
MPT_TARGET_AVX2 inline vf load(const bf16* p) noexcept {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
MPT_TARGET_AVX2 inline vf load(const float* p, std::size_t n) noexcept { return _mm256_maskload_ps(p, first_lanes(n)); }
MPT_TARGET_AVX2 inline vf load(const bf16* p, std::size_t n) noexcept {
  alignas(16) bf16 tmp[8] = {};
  std::memcpy(tmp, p, (n < 8 ? n : 8) * sizeof(bf16));
  return load(tmp);
}
MPT_TARGET_AVX2 inline void store(float* p, vf v) noexcept { _mm256_storeu_ps(p, v); }
MPT_TARGET_AVX2 inline __m128i narrow(vf v) noexcept {
  const __m256i lanes16 = mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v));
  return _mm_packus_epi32(_mm256_castsi256_si128(lanes16), _mm256_extracti128_si256(lanes16, 1));
}
MPT_TARGET_AVX2 inline void store(bf16* p, vf v) noexcept { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow(v)); }
MPT_TARGET_AVX2 inline void store(float* p, vf v, std::size_t n) noexcept { _mm256_maskstore_ps(p, first_lanes(n), v); }
MPT_TARGET_AVX2 inline void store(bf16* p, vf v, std::size_t n) noexcept {
  alignas(16) bf16 tmp[8];
  store(tmp, v);
  std::memcpy(p, tmp, (n < 8 ? n : 8) * sizeof(bf16));
}
MPT_TARGET_AVX2 inline vf store_kept(float* p, vf v) noexcept {
  store(p, v);
  return v;
}
MPT_TARGET_AVX2 inline vf store_kept(float* p, vf v, std::size_t n) noexcept {
  store(p, v, n);
  return v;
}
MPT_TARGET_AVX2 inline vf store_kept(bf16* p, vf v) noexcept {
  const __m256i kept = mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(_mm256_castsi256_si128(kept), _mm256_extracti128_si256(kept, 1)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(kept, 16));
}
MPT_TARGET_AVX2 inline vf store_kept(bf16* p, vf v, std::size_t n) noexcept {
  store(p, v, n);
  return _mm256_castsi256_ps(_mm256_slli_epi32(mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v)), 16));
}
MPT_TARGET_AVX2 inline vf round_to_bf16(vf v) noexcept {
  return _mm256_castsi256_ps(_mm256_slli_epi32(mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v)), 16));
}
MPT_TARGET_AVX2 inline vf first(vf v, std::size_t n) noexcept { return _mm256_and_ps(v, _mm256_castsi256_ps(first_lanes(n))); }
MPT_TARGET_AVX2 inline vf fmadd(vf a, vf b, vf c) noexcept { return _mm256_fmadd_ps(a, b, c); }
MPT_TARGET_AVX2 inline vf max(vf a, vf b) noexcept { return _mm256_max_ps(a, b); }
MPT_TARGET_AVX2 inline vf abs(vf v) noexcept { return _mm256_andnot_ps(set1(-0.0f), v); }
MPT_TARGET_AVX2 inline vf times_sign_of(vf v, vf s) noexcept { return _mm256_xor_ps(v, _mm256_and_ps(s, set1(-0.0f))); }
MPT_TARGET_AVX2 inline float hsum(vf v) noexcept {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
MPT_TARGET_AVX2 inline float hmax(vf v) noexcept {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
template <std::size_t U>
MPT_TARGET_AVX2 inline void exp_n(vf (&x)[U]) noexcept {
  vf underflow[U], overflow[U], n[U], r[U], p[U];
  for (std::size_t u = 0; u < U; ++u) {
    underflow[u] = _mm256_cmp_ps(x[u], set1(exp_lowest), _CMP_LT_OQ);
    overflow[u] = _mm256_cmp_ps(x[u], set1(exp_highest), _CMP_GT_OQ);
    x[u] = _mm256_min_ps(x[u], set1(exp_highest));
    n[u] = _mm256_round_ps(_mm256_mul_ps(x[u], set1(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  for (std::size_t u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], set1(ln2_hi), x[u]);
  for (std::size_t u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], set1(ln2_lo), r[u]);
  for (std::size_t u = 0; u < U; ++u) p[u] = set1(exp_coefficients[0]);
  for (int i = 1; i < 6; ++i)
    for (std::size_t u = 0; u < U; ++u) p[u] = fmadd(p[u], r[u], set1(exp_coefficients[i]));
  for (std::size_t u = 0; u < U; ++u) {
    p[u] = fmadd(p[u], _mm256_mul_ps(r[u], r[u]), _mm256_add_ps(r[u], set1(1.0f)));
    // 2^n in two halves (n = 128 does not fit one exponent field).
    const __m256i ni = _mm256_cvtps_epi32(n[u]);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    const vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
    const vf y = _mm256_andnot_ps(underflow[u], _mm256_mul_ps(_mm256_mul_ps(p[u], s1), s2));
    x[u] = _mm256_blendv_ps(y, set1(std::numeric_limits<float>::infinity()), overflow[u]);
  }
}
MPT_TARGET_AVX2 inline vf exp(vf x) noexcept {
  vf v[1] = {x};
  exp_n(v);
  return v[0];
}
MPT_TARGET_AVX2 inline vf exp_nonpositive(vf x) noexcept { return exp(x); }
template <std::size_t U>
MPT_TARGET_AVX2 inline void erf_n(vf (&x)[U]) noexcept {
  const vf sign_bit = set1(-0.0f);
  vf sign[U], a[U], t[U], small[U], q[U], large[U];
  for (std::size_t u = 0; u < U; ++u) {
    sign[u] = _mm256_and_ps(x[u], sign_bit);
    a[u] = _mm256_min_ps(_mm256_andnot_ps(sign_bit, x[u]), set1(erf_saturation));
    t[u] = _mm256_mul_ps(a[u], a[u]);
    small[u] = set1(erf_small_coefficients[0]);
    q[u] = set1(erf_large_coefficients[0]);
    large[u] = _mm256_sub_ps(a[u], set1(erf_center));
  }
  for (int i = 1; i < 15; ++i) {
    for (std::size_t u = 0; u < U; ++u) {
      if (i < 7) small[u] = fmadd(small[u], t[u], set1(erf_small_coefficients[i]));
      q[u] = fmadd(q[u], large[u], set1(erf_large_coefficients[i]));
    }
  }
  for (std::size_t u = 0; u < U; ++u) {
    small[u] = _mm256_mul_ps(small[u], a[u]);
    large[u] = _mm256_blendv_ps(q[u], set1(1.0f), _mm256_cmp_ps(a[u], set1(erf_saturation), _CMP_GE_OQ));
    const vf y = _mm256_blendv_ps(large[u], small[u], _mm256_cmp_ps(a[u], set1(erf_split), _CMP_LT_OQ));
    x[u] = _mm256_or_ps(y, sign[u]);
  }
}
MPT_TARGET_AVX2 inline vf erf(vf x) noexcept {
  vf v[1] = {x};
  erf_n(v);
  return v[0];
}
template <std::size_t U, std::size_t Terms>
MPT_TARGET_AVX2 __attribute__((always_inline)) inline void piecewise_n(const PiecewiseTable<8, Terms>& table, const vf (&a)[U], vf (&p)[U]) noexcept {
  __m256i piece[U];
  vf t[U];
  for (std::size_t u = 0; u < U; ++u) {
    const vf clamped = _mm256_min_ps(set1(table.clamp), a[u]);  // a NaN passes: the result is NaN
    const vf scaled = fmadd(clamped, set1(table.inv_width), set1(piece_index_magic));
    piece[u] = _mm256_castps_si256(scaled);
    t[u] = _mm256_fnmadd_ps(_mm256_sub_ps(scaled, set1(piece_index_magic)), set1(table.width), clamped);
    p[u] = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table.coefficient[0]), piece[u]);
  }
  for (std::size_t j = 1; j < Terms; ++j) {
    const vf c = _mm256_loadu_ps(table.coefficient[j]);
    for (std::size_t u = 0; u < U; ++u) p[u] = fmadd(p[u], t[u], _mm256_permutevar8x32_ps(c, piece[u]));
  }
}
}  // namespace avx2
#endif  // MPT_X86

// y[i] = exp(x[i]) or erf(x[i]) with the vector code of one instruction set
// (std:: on the scalar path): what the accuracy tests measure.
enum class VectorMath { exp, erf };
#if MPT_X86
#define MPT_VECTOR_MATH_ARRAY(TARGET, ISA)                                               \
  namespace ISA {                                                                        \
  TARGET inline void math_array(VectorMath f, const float* x, float* y, std::size_t n) { \
    for (std::size_t i = 0; i < n; i += lanes) {                                         \
      const vf v = load(x + i, n - i);                                                   \
      store(y + i, f == VectorMath::exp ? exp(v) : erf(v), n - i);                       \
    }                                                                                    \
  }                                                                                      \
  }  // namespace ISA
MPT_VECTOR_MATH_ARRAY(MPT_TARGET_AVX512, avx512)
MPT_VECTOR_MATH_ARRAY(MPT_TARGET_AVX2, avx2)
#undef MPT_VECTOR_MATH_ARRAY
#endif
inline void math_array_with(Isa isa, VectorMath f, const float* x, float* y, std::size_t n) {
#if MPT_X86
  if (isa >= Isa::avx512) return avx512::math_array(f, x, y, n);
  if (isa == Isa::avx2) return avx2::math_array(f, x, y, n);
#endif
  for (std::size_t i = 0; i < n; ++i) y[i] = f == VectorMath::exp ? std::exp(x[i]) : std::erf(x[i]);
}

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
