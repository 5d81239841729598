#pragma once
// Array conversions float <-> bf16, vectorized per instruction set and chosen
// at run time. Every path gives the same bits as the scalar reference in
// bf16.hpp (round to nearest even, quiet NaN kept, subnormals rounded).
//
//   convert(span<const float>, span<bf16>)   narrowing, active_isa()
//   convert(span<const bf16>, span<float>)   widening (exact)
//   convert_with(Isa, ...)                   the same on one chosen path (tests)

#include <mpt/core/bf16.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

// GCC 12 reports -Wmaybe-uninitialized from inside its own AVX-512 intrinsics
// (their `undefined` pass-through operands) once they are inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt {
namespace detail {

inline void narrow_scalar(const float* in, bf16* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_bf16(in[i]);
}
inline void widen_scalar(const bf16* in, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_float(in[i]);
}

#if MPT_X86
// 8 floats -> 8 bf16 bit patterns in the low 16 bits of each 32-bit lane.
MPT_TARGET_AVX2 inline __m256i narrow_lanes_avx2(__m256i u) noexcept {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  const __m256i magnitude = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7F800000));
  const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
  return _mm256_blendv_epi8(rounded, quiet_nan, is_nan);
}

MPT_TARGET_AVX2 inline void narrow_avx2(const float* in, bf16* out, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i lo = narrow_lanes_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i)));
    const __m256i hi = narrow_lanes_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i + 8)));
    // packus interleaves 128-bit lanes; the permute puts them back in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), packed);
  }
  narrow_scalar(in + i, out + i, n - i);
}

MPT_TARGET_AVX2 inline void widen_avx2(const bf16* in, float* out, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  widen_scalar(in + i, out + i, n - i);
}

MPT_TARGET_AVX512 inline __m512i narrow_lanes_avx512(__m512i u) noexcept {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  const __m512i magnitude = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 is_nan = _mm512_cmpgt_epi32_mask(magnitude, _mm512_set1_epi32(0x7F800000));
  const __m512i quiet_nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
  return _mm512_mask_blend_epi32(is_nan, rounded, quiet_nan);
}

MPT_TARGET_AVX512 inline void narrow_avx512(const float* in, bf16* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m512i u = _mm512_maskz_loadu_epi32(m, in + i);
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtepi32_epi16(narrow_lanes_avx512(u)));
  }
}

MPT_TARGET_AVX512 inline void widen_avx512(const bf16* in, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m256i h = _mm256_maskz_loadu_epi16(m, in + i);
    _mm512_mask_storeu_epi32(out + i, m, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// vcvtne2ps2bf16 rounds like the reference except that it flushes fp32
// subnormals to zero; blocks that hold one take the emulated path.
MPT_TARGET_AVX512_BF16 inline void narrow_avx512_bf16(const float* in, bf16* out, std::size_t n) noexcept {
  const __m512i exponent = _mm512_set1_epi32(0x7F800000);
  const __m512i mantissa = _mm512_set1_epi32(0x007FFFFF);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i a = _mm512_loadu_si512(in + i);
    const __m512i b = _mm512_loadu_si512(in + i + 16);
    const __mmask16 sub_a = _mm512_testn_epi32_mask(a, exponent) & _mm512_test_epi32_mask(a, mantissa);
    const __mmask16 sub_b = _mm512_testn_epi32_mask(b, exponent) & _mm512_test_epi32_mask(b, mantissa);
    if ((sub_a | sub_b) == 0) {
      const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_castsi512_ps(b), _mm512_castsi512_ps(a));
      _mm512_storeu_si512(out + i, (__m512i)r);
    } else {
      narrow_avx512(in + i, out + i, 32);
    }
  }
  narrow_avx512(in + i, out + i, n - i);
}
#endif  // MPT_X86

inline void check_convert_sizes(std::size_t in, std::size_t out, const char* what) {
  if (in != out) throw_error("convert (", what, "): input has ", in, " elements but output has ", out);
}

}  // namespace detail

// Narrow float -> bf16 on the given instruction-set path.
inline void convert_with(Isa isa, std::span<const float> in, std::span<bf16> out) {
  detail::check_convert_sizes(in.size(), out.size(), "float -> bf16");
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
      return detail::narrow_avx512_bf16(in.data(), out.data(), in.size());
    case Isa::avx512:
      return detail::narrow_avx512(in.data(), out.data(), in.size());
    case Isa::avx2:
      return detail::narrow_avx2(in.data(), out.data(), in.size());
#endif
    default:
      return detail::narrow_scalar(in.data(), out.data(), in.size());
  }
}

// Widen bf16 -> float on the given instruction-set path.
inline void convert_with(Isa isa, std::span<const bf16> in, std::span<float> out) {
  detail::check_convert_sizes(in.size(), out.size(), "bf16 -> float");
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
    case Isa::avx512:
      return detail::widen_avx512(in.data(), out.data(), in.size());
    case Isa::avx2:
      return detail::widen_avx2(in.data(), out.data(), in.size());
#endif
    default:
      return detail::widen_scalar(in.data(), out.data(), in.size());
  }
}

inline void convert(std::span<const float> in, std::span<bf16> out) { convert_with(active_isa(), in, out); }
inline void convert(std::span<const bf16> in, std::span<float> out) { convert_with(active_isa(), in, out); }

}  // namespace mpt

#pragma GCC diagnostic pop
