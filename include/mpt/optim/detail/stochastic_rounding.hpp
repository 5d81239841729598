#pragma once
// Stochastic rounding float -> bf16 for pure-bf16 training, keyed by
// (seed, step, element index) so the bits do not depend on the thread count.
// Private to optim: a tiny integer hash is enough to make the rounding
// unbiased; the library's Philox-4x32-10 (kernels/, for dropout) is the
// general-purpose generator.
//
// Rounding: add 16 uniformly random bits below the bf16 mantissa, then
// truncate. P(round up) = (discarded bits) / 2^16, so E[result] = x.

#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>

#include <immintrin.h>

#include <bit>
#include <cstddef>
#include <cstdint>

namespace mpt::optim::detail {

// splitmix64 finalizer: one 32-bit key per (seed, step).
inline std::uint32_t rounding_key(std::uint64_t seed, std::int64_t step) noexcept {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::uint32_t>(z ^ (z >> 32));
}

// A bijective 32-bit mixer (Wellons' "lowbias32") of index and key.
inline std::uint32_t rounding_bits(std::uint32_t key, std::size_t index) noexcept {
  std::uint32_t x = static_cast<std::uint32_t>(index) * 0x9E3779B9u + key;
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// float -> bf16 bits, rounded up with probability (discarded fraction); Inf/NaN as RNE.
inline std::uint16_t stochastic_round_bf16_bits(float w, std::uint32_t random) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(w);
  if ((u & 0x7F800000u) == 0x7F800000u) return float_bits_to_bf16_bits(u);
  return static_cast<std::uint16_t>((u + (random & 0xFFFFu)) >> 16);
}

#if MPT_X86
// 8 lanes whose low 16 bits hold the result -> 8 packed uint16 (values <= 0xFFFF, so no saturation).
MPT_TARGET_AVX2 inline __m128i pack_low_halves_avx2(__m256i lanes) noexcept {
  return _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
}

// rounding_bits for 8 lanes: indices index0 .. index0 + 7.
MPT_TARGET_AVX2 inline __m256i rounding_bits_avx2(std::uint32_t key, std::size_t index0) noexcept {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i index = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(index0))), lane);
  __m256i x = _mm256_add_epi32(_mm256_mullo_epi32(index, _mm256_set1_epi32(static_cast<int>(0x9E3779B9u))), _mm256_set1_epi32(static_cast<int>(key)));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7FEB352D));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(static_cast<int>(0x846CA68Bu)));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

// stochastic_round_bf16_bits for 8 lanes (results in the low halves).
MPT_TARGET_AVX2 inline __m256i stochastic_round_lanes_avx2(__m256 w, __m256i random) noexcept {
  const __m256i u = _mm256_castps_si256(w);
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_and_si256(random, _mm256_set1_epi32(0xFFFF))), 16);
  const __m256i exponent = _mm256_set1_epi32(0x7F800000);
  const __m256i special = _mm256_cmpeq_epi32(_mm256_and_si256(u, exponent), exponent);
  return _mm256_blendv_epi8(rounded, mpt::detail::narrow_lanes_avx2(u), special);
}

// The same for 16 lanes: indices index0 .. index0 + 15.
MPT_TARGET_AVX512 inline __m512i rounding_bits_avx512(std::uint32_t key, std::size_t index0) noexcept {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(index0))), lane);
  __m512i x = _mm512_add_epi32(_mm512_mullo_epi32(index, _mm512_set1_epi32(static_cast<int>(0x9E3779B9u))), _mm512_set1_epi32(static_cast<int>(key)));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7FEB352D));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(static_cast<int>(0x846CA68Bu)));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

// 16 floats -> 16 bf16 bit patterns in the low halves of the lanes.
MPT_TARGET_AVX512 inline __m512i stochastic_round_lanes_avx512(__m512 w, __m512i random) noexcept {
  const __m512i u = _mm512_castps_si512(w);
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_and_si512(random, _mm512_set1_epi32(0xFFFF))), 16);
  const __m512i exponent = _mm512_set1_epi32(0x7F800000);
  const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exponent), exponent);
  return _mm512_mask_blend_epi32(special, rounded, mpt::detail::narrow_lanes_avx512(u));
}
#endif

}  // namespace mpt::optim::detail
