#pragma once
// fp16 (IEEE binary16, stored as Eigen::half) and array conversions float <-> fp16.
// The scalar functions are the reference; the F16C path (AVX2 level) and the
// AVX-512 path give the same bits:
//   finite  -> round to nearest, ties to even (subnormal halves kept, not flushed)
//   overflow (|x| >= 65520) -> ±Inf
//   NaN     -> a quiet NaN with the same sign and the top 9 payload bits (as vcvtps2ph)
// Widening is exact; a NaN widens to a quiet NaN with the same payload (as vcvtph2ps).
//
//   convert(span<const float>, span<fp16>)   narrowing, active_isa()
//   convert(span<const fp16>, span<float>)   widening
//   convert_with(Isa, ...)                   the same on one chosen path (tests)

#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>

#include <Eigen/Core>

#include <immintrin.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt {

using fp16 = Eigen::half;

inline std::uint16_t fp16_bits(fp16 x) noexcept { return x.x; }
inline fp16 fp16_from_bits(std::uint16_t bits) noexcept { return fp16(Eigen::half_impl::raw_uint16_to_half(bits)); }

// fp32 bit pattern -> fp16 bit pattern, round-to-nearest-even.
inline std::uint16_t float_bits_to_fp16_bits(std::uint32_t u) noexcept {
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x03FFu));  // quiet NaN
  if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);                         // 65520 and up (and Inf) -> Inf
  if (a < 0x38800000u) {
    // Below the smallest normal half (2^-14): adding 0.5 leaves a float whose
    // last mantissa bit is worth 2^-24, the half subnormal unit, so the FPU's
    // own round-to-nearest-even does the rounding.
    const float rounded = std::bit_cast<float>(a) + 0.5f;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(rounded) - 0x3F000000u));
  }
  const std::uint32_t odd = (a >> 13) & 1u;
  const std::uint32_t rebiased = a + (static_cast<std::uint32_t>(15 - 127) << 23) + 0x0FFFu + odd;
  return static_cast<std::uint16_t>(sign | (rebiased >> 13));
}

// fp16 bit pattern -> fp32 value (exact).
inline float fp16_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7FFFu;
  if (em == 0x7C00u) return std::bit_cast<float>(sign | 0x7F800000u);                          // Inf
  if (em > 0x7C00u) return std::bit_cast<float>(sign | 0x7FC00000u | ((em & 0x03FFu) << 13));  // NaN, made quiet
  if (em >= 0x0400u) return std::bit_cast<float>(sign | ((em << 13) + (static_cast<std::uint32_t>(127 - 15) << 23)));
  const float magnitude = static_cast<float>(em) * 0x1p-24f;  // subnormal or zero: exact
  return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(magnitude));
}

inline fp16 to_fp16(float x) noexcept { return fp16_from_bits(float_bits_to_fp16_bits(std::bit_cast<std::uint32_t>(x))); }
inline float to_float(fp16 x) noexcept { return fp16_bits_to_float(fp16_bits(x)); }

namespace detail {

inline void narrow_fp16_scalar(const float* in, fp16* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_fp16(in[i]);
}
inline void widen_fp16_scalar(const fp16* in, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_float(in[i]);
}

#if MPT_X86
// F16C: vcvtps2ph with round-to-nearest-even, vcvtph2ps.
MPT_TARGET_AVX2 inline void narrow_fp16_f16c(const float* in, fp16* out, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  narrow_fp16_scalar(in + i, out + i, n - i);
}

MPT_TARGET_AVX2 inline void widen_fp16_f16c(const fp16* in, float* out, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  }
  widen_fp16_scalar(in + i, out + i, n - i);
}

MPT_TARGET_AVX512 inline void narrow_fp16_avx512(const float* in, fp16* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(out + i, m, h);
  }
}

MPT_TARGET_AVX512 inline void widen_fp16_avx512(const fp16* in, float* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}
#endif  // MPT_X86

}  // namespace detail

// Narrow float -> fp16 on the given instruction-set path.
inline void convert_with(Isa isa, std::span<const float> in, std::span<fp16> out) {
  if (in.size() != out.size()) throw_error("convert (float -> fp16): input has ", in.size(), " elements but output has ", out.size());
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
    case Isa::avx512:
      return detail::narrow_fp16_avx512(in.data(), out.data(), in.size());
    case Isa::avx2:
      return detail::narrow_fp16_f16c(in.data(), out.data(), in.size());
#endif
    default:
      return detail::narrow_fp16_scalar(in.data(), out.data(), in.size());
  }
}

// Widen fp16 -> float on the given instruction-set path.
inline void convert_with(Isa isa, std::span<const fp16> in, std::span<float> out) {
  if (in.size() != out.size()) throw_error("convert (fp16 -> float): input has ", in.size(), " elements but output has ", out.size());
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
    case Isa::avx512:
      return detail::widen_fp16_avx512(in.data(), out.data(), in.size());
    case Isa::avx2:
      return detail::widen_fp16_f16c(in.data(), out.data(), in.size());
#endif
    default:
      return detail::widen_fp16_scalar(in.data(), out.data(), in.size());
  }
}

inline void convert(std::span<const float> in, std::span<fp16> out) { convert_with(active_isa(), in, out); }
inline void convert(std::span<const fp16> in, std::span<float> out) { convert_with(active_isa(), in, out); }

}  // namespace mpt

#pragma GCC diagnostic pop
