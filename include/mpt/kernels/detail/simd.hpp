#pragma once
// Small SIMD vocabulary shared by the element-wise kernels: full and partial
// loads/stores of float and bf16 (as fp32 lanes), horizontal sums/maxima,
// and vectorized exp and erf. One namespace per instruction set with the same
// names (detail::avx512, detail::avx2), so kernel bodies read the same on
// both; every function carries its MPT_TARGET_* attribute and runs only after
// dispatch checked the CPU. The scalar references are exp_reference and
// erf_reference below (std:: in the working precision).
//
// Accuracy (checked in tests/kernels_elementwise against double):
//   exp: Cody-Waite range reduction + degree-6 polynomial, <= 2 ulp on
//        [-87.3, 88.7] (1.25 measured); below -87.3 it returns 0 (PyTorch
//        returns a subnormal there, a difference below 1.2e-38), above 88.7 +Inf.
//   erf: |x| < 0.9: x * P(x^2), P degree 6 (fit error 3e-10 relative);
//        0.9 <= |x| < 4: 1 - exp(Q(|x| - 2.45)), Q degree 10 fitted to
//        log(erfc) (fit error 3e-9); |x| >= 4: ±1 (erf(4) rounds to 1 in fp32).
//        Coefficients: least squares on Chebyshev nodes (numpy, fp64).
//        <= 4 ulp by analysis (tests), 2.36 measured over [-6, 6].

#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

// Coefficients of erf's two pieces, highest degree first (Horner).
inline constexpr float erf_small_coefficients[] = {
    8.534122715e-05f, -8.180781373e-04f, 5.204331625e-03f, -2.686070897e-02f,
    1.128371889e-01f, -3.761263525e-01f, 1.128379167e+00f};
inline constexpr float erf_large_coefficients[] = {
    -5.464850290e-08f, -3.163540599e-08f, 1.938473050e-06f, -1.378105164e-05f,
    8.149180235e-05f,  -4.443918029e-04f, 2.273728996e-03f, -1.130203269e-02f,
    -9.422320223e-01f, -5.258373891e+00f, -7.541539598e+00f};
inline constexpr float erf_split = 0.9f;
inline constexpr float erf_center = 2.45f;
inline constexpr float erf_saturation = 4.0f;

// exp: x = n ln2 + r, ln2 split in two so n*ln2 is exact (Cody-Waite).
inline constexpr float exp_lowest = -87.33654f;  // ln(FLT_MIN): below, the result is 0
inline constexpr float exp_highest = 88.72283f;  // ln(FLT_MAX): above, +Inf
inline constexpr float log2e = 1.44269504088896341f;
inline constexpr float ln2_hi = 0.693359375f;
inline constexpr float ln2_lo = -2.12194440e-4f;
inline constexpr float exp_coefficients[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                             4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// Scalar versions of the vector math, same algorithm (used by tails in tests).
inline float erf_reference(float x) { return std::erf(x); }
inline double erf_reference(double x) { return std::erf(x); }
inline float exp_reference(float x) { return std::exp(x); }
inline double exp_reference(double x) { return std::exp(x); }

#if MPT_X86
namespace avx512 {
using vf = __m512;
inline constexpr std::size_t lanes = 16;

MPT_TARGET_AVX512 inline __mmask16 first_lanes(std::size_t n) noexcept {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
}
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
// Each lane rounded to the nearest bf16 and widened back (what a bf16 store keeps).
MPT_TARGET_AVX512 inline vf round_to_bf16(vf v) noexcept {
  return _mm512_castsi512_ps(_mm512_slli_epi32(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(v)), 16));
}
// v with lanes n.. set to 0.
MPT_TARGET_AVX512 inline vf first(vf v, std::size_t n) noexcept { return _mm512_maskz_mov_ps(first_lanes(n), v); }
MPT_TARGET_AVX512 inline vf fmadd(vf a, vf b, vf c) noexcept { return _mm512_fmadd_ps(a, b, c); }
MPT_TARGET_AVX512 inline vf max(vf a, vf b) noexcept { return _mm512_max_ps(a, b); }
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
MPT_TARGET_AVX512 inline vf exp(vf x) noexcept {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, set1(exp_lowest), _CMP_LT_OQ);
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, set1(exp_highest), _CMP_GT_OQ);
  x = _mm512_min_ps(x, set1(exp_highest));
  const vf n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm512_fnmadd_ps(n, set1(ln2_hi), x);
  r = _mm512_fnmadd_ps(n, set1(ln2_lo), r);
  vf p = set1(exp_coefficients[0]);
  for (int i = 1; i < 6; ++i) p = fmadd(p, r, set1(exp_coefficients[i]));
  p = fmadd(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, set1(1.0f)));
  // 2^n by scalef: exact, no exponent arithmetic to wrap.
  const vf y = _mm512_maskz_scalef_ps(static_cast<__mmask16>(~underflow), p, n);
  return _mm512_mask_mov_ps(y, overflow, set1(std::numeric_limits<float>::infinity()));
}
MPT_TARGET_AVX512 inline vf erf(vf x) noexcept {
  const vf sign = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u))));
  const vf a = _mm512_min_ps(_mm512_abs_ps(x), set1(erf_saturation));
  const vf t = _mm512_mul_ps(a, a);
  vf small = set1(erf_small_coefficients[0]);
  for (int i = 1; i < 7; ++i) small = fmadd(small, t, set1(erf_small_coefficients[i]));
  small = _mm512_mul_ps(small, a);
  const vf u = _mm512_sub_ps(a, set1(erf_center));
  vf q = set1(erf_large_coefficients[0]);
  for (int i = 1; i < 11; ++i) q = fmadd(q, u, set1(erf_large_coefficients[i]));
  vf large = _mm512_sub_ps(set1(1.0f), exp(q));
  large = _mm512_mask_mov_ps(large, _mm512_cmp_ps_mask(a, set1(erf_saturation), _CMP_GE_OQ), set1(1.0f));
  const vf y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, set1(erf_split), _CMP_LT_OQ), large, small);
  return _mm512_or_ps(y, sign);
}
}  // namespace avx512

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
MPT_TARGET_AVX2 inline vf round_to_bf16(vf v) noexcept {
  return _mm256_castsi256_ps(_mm256_slli_epi32(mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(v)), 16));
}
MPT_TARGET_AVX2 inline vf first(vf v, std::size_t n) noexcept {
  return _mm256_and_ps(v, _mm256_castsi256_ps(first_lanes(n)));
}
MPT_TARGET_AVX2 inline vf fmadd(vf a, vf b, vf c) noexcept { return _mm256_fmadd_ps(a, b, c); }
MPT_TARGET_AVX2 inline vf max(vf a, vf b) noexcept { return _mm256_max_ps(a, b); }
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
MPT_TARGET_AVX2 inline vf exp(vf x) noexcept {
  const vf underflow = _mm256_cmp_ps(x, set1(exp_lowest), _CMP_LT_OQ);
  const vf overflow = _mm256_cmp_ps(x, set1(exp_highest), _CMP_GT_OQ);
  x = _mm256_min_ps(x, set1(exp_highest));
  const vf n = _mm256_round_ps(_mm256_mul_ps(x, set1(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm256_fnmadd_ps(n, set1(ln2_hi), x);
  r = _mm256_fnmadd_ps(n, set1(ln2_lo), r);
  vf p = set1(exp_coefficients[0]);
  for (int i = 1; i < 6; ++i) p = fmadd(p, r, set1(exp_coefficients[i]));
  p = fmadd(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, set1(1.0f)));
  // 2^n in two halves (n = 128 does not fit one exponent field).
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256i bias = _mm256_set1_epi32(127);
  const vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  const vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
  const vf y = _mm256_andnot_ps(underflow, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
  return _mm256_blendv_ps(y, set1(std::numeric_limits<float>::infinity()), overflow);
}
MPT_TARGET_AVX2 inline vf erf(vf x) noexcept {
  const vf sign_bit = set1(-0.0f);
  const vf sign = _mm256_and_ps(x, sign_bit);
  const vf a = _mm256_min_ps(_mm256_andnot_ps(sign_bit, x), set1(erf_saturation));
  const vf t = _mm256_mul_ps(a, a);
  vf small = set1(erf_small_coefficients[0]);
  for (int i = 1; i < 7; ++i) small = fmadd(small, t, set1(erf_small_coefficients[i]));
  small = _mm256_mul_ps(small, a);
  const vf u = _mm256_sub_ps(a, set1(erf_center));
  vf q = set1(erf_large_coefficients[0]);
  for (int i = 1; i < 11; ++i) q = fmadd(q, u, set1(erf_large_coefficients[i]));
  vf large = _mm256_sub_ps(set1(1.0f), exp(q));
  large = _mm256_blendv_ps(large, set1(1.0f), _mm256_cmp_ps(a, set1(erf_saturation), _CMP_GE_OQ));
  const vf y = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, set1(erf_split), _CMP_LT_OQ));
  return _mm256_or_ps(y, sign);
}
}  // namespace avx2
#endif  // MPT_X86

// y[i] = exp(x[i]) or erf(x[i]) with the vector code of one instruction set
// (std:: on the scalar path): what the accuracy tests measure.
enum class VectorMath { exp, erf };
#if MPT_X86
#define MPT_VECTOR_MATH_ARRAY(TARGET, ISA)                                          \
  namespace ISA {                                                                   \
  TARGET inline void math_array(VectorMath f, const float* x, float* y, std::size_t n) { \
    for (std::size_t i = 0; i < n; i += lanes) {                                    \
      const vf v = load(x + i, n - i);                                              \
      store(y + i, f == VectorMath::exp ? exp(v) : erf(v), n - i);                  \
    }                                                                               \
  }                                                                                 \
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

// The storage types the SIMD paths handle; anything else (double) runs scalar.
template <class T>
inline constexpr bool simd_storage = std::is_same_v<T, float> || std::is_same_v<T, bf16>;

// Which path a kernel over these storage types takes now.
template <class... T>
inline Isa simd_isa_for() {
  if constexpr ((simd_storage<std::remove_const_t<T>> && ...)) {
    return active_isa();
  } else {
    return Isa::scalar;
  }
}

// Store a float into T the way a kernel's epilogue does (bf16: round to nearest even).
template <class T>
inline T store_as(float x) noexcept {
  if constexpr (std::is_same_v<T, bf16>) return to_bf16(x);
  else return static_cast<T>(x);
}

// The value a store into T keeps, as float (identity unless T is bf16).
template <class T>
inline float keep_as(float x) noexcept {
  if constexpr (std::is_same_v<T, bf16>) return mpt::round_to_bf16(x);
  else return x;
}

// Optional tensor arguments are passed as a default-constructed view (no data).
template <class T>
inline bool present(const TensorView<T>& v) noexcept {
  return v.data() != nullptr;
}

// Rows per task so one task moves roughly `bytes_per_task` bytes.
inline std::size_t rows_per_task(std::size_t row_bytes, std::size_t bytes_per_task = 64 * 1024) noexcept {
  const std::size_t rows = row_bytes == 0 ? 1 : bytes_per_task / row_bytes;
  return rows == 0 ? 1 : rows;
}

// Runs body(row_begin, row_end) over [0, rows) in chunks of `chunk` rows, in parallel.
// Chunks depend only on (rows, chunk), never on the thread count.
template <class Body>
void for_each_row_chunk(std::size_t rows, std::size_t chunk, Body&& body) {
  const std::size_t tasks = (rows + chunk - 1) / chunk;
  mpt::parallel_for(tasks, [&](std::size_t t) {
    const std::size_t begin = t * chunk;
    body(begin, begin + chunk < rows ? begin + chunk : rows);
  });
}

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
