#pragma once
// bf16: the 16-bit brain float, stored as Eigen::bfloat16 so Eigen maps and
// arithmetic work on it. The scalar functions here are the reference that
// every vectorized conversion (bf16_convert.hpp) must match bit for bit.
//
// Narrowing contract (what AVX512_BF16's vcvtne2ps2bf16 does, except that
// the instruction flushes fp32 subnormals to zero; we round them like every
// other finite value, as PyTorch's c10::BFloat16 does):
//   finite  -> round to nearest, ties to even, on the bit pattern
//              (overflow past the largest bf16 gives ±Inf, as it should)
//   ±Inf    -> ±Inf
//   NaN     -> a quiet NaN with the same sign and the top 7 payload bits
//              (Eigen's own bfloat16(float) returns the canonical 0x7FC0).

#include <Eigen/Core>

#include <bit>
#include <cstdint>

namespace mpt {

using bf16 = Eigen::bfloat16;

inline std::uint16_t bf16_bits(bf16 x) noexcept { return x.value; }

inline bf16 bf16_from_bits(std::uint16_t bits) noexcept { return bf16(Eigen::bfloat16_impl::raw_uint16_to_bfloat16(bits)); }

// fp32 bit pattern -> bf16 bit pattern, round-to-nearest-even.
constexpr std::uint16_t float_bits_to_bf16_bits(std::uint32_t u) noexcept {
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) {
    return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // NaN stays a quiet NaN
  }
  const std::uint32_t lsb = (u >> 16) & 1u;
  return static_cast<std::uint16_t>((u + 0x7FFFu + lsb) >> 16);
}

inline std::uint16_t float_to_bf16_bits(float x) noexcept { return float_bits_to_bf16_bits(std::bit_cast<std::uint32_t>(x)); }

inline bf16 to_bf16(float x) noexcept { return bf16_from_bits(float_to_bf16_bits(x)); }

// Widening is exact: the bf16 bits become the top half of the float.
inline float to_float(bf16 x) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(bf16_bits(x)) << 16); }
inline float to_float(float x) noexcept { return x; }
inline double to_float(double x) noexcept { return x; }

// Round a float to the nearest bf16 and back: the value a bf16 store keeps.
inline float round_to_bf16(float x) noexcept { return to_float(to_bf16(x)); }

}  // namespace mpt
