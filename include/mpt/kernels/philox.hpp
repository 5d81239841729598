#pragma once
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator. philox4x32_10(counter, key) is a pure
// function of a 128-bit counter and a 64-bit key, so any element's random bits
// can be computed directly, in any order, on any thread. Checked against
// Random123's known-answer vectors (tests/kernels).
//
// The vector versions compute 16 (AVX-512) or 8 (AVX2) counters at once,
// word i of every counter in one register (structure of arrays).

#include <mpt/core/cpu.hpp>

#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {

using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

namespace detail {
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;  // round multipliers
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;  // key schedule (golden ratio, sqrt(3) - 1)
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;
inline constexpr int philox_rounds = 10;
}  // namespace detail

// The scalar reference.
constexpr PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) noexcept {
  for (int round = 0; round < detail::philox_rounds; ++round) {
    if (round > 0) {
      k[0] += detail::philox_w0;
      k[1] += detail::philox_w1;
    }
    const std::uint64_t p0 = std::uint64_t{detail::philox_m0} * c[0];
    const std::uint64_t p1 = std::uint64_t{detail::philox_m1} * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1), static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1],
         static_cast<std::uint32_t>(p0)};
  }
  return c;
}

namespace detail {
#if MPT_X86
// G groups of 16 counters: group g is (block[g] + lane, block[g] >> 32, c2, c3)
// for lanes 0..15, and out[g][w] = word w of each. The low word of block[g]
// must not wrap within a group (callers pass multiples of 16). Inside, each
// word sits in the low half of a 64-bit lane (8 counters per register, 2G
// registers): vpmuludq then yields the full 64-bit product with no shuffling,
// and the high halves are don't-care (vpmuludq ignores them). The 2G
// registers' rounds are interleaved: one round is a chain of 3 dependent
// instructions (multiply, shift, ternlog), so independent chains fill the
// multiplier's pipeline.
template <std::size_t G>
MPT_TARGET_AVX512 inline void philox4x32_10_avx512_groups(const std::uint64_t (&block)[G], std::uint32_t c2, std::uint32_t c3, PhiloxKey key,
                                                          __m512i (&out)[G][4]) noexcept {
  constexpr std::size_t H = 2 * G;
  const __m512i first = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  __m512i x0[H], x1[H], x2[H], x3[H];
  for (std::size_t h = 0; h < H; ++h) {
    const std::uint64_t b = block[h / 2];
    x0[h] = _mm512_add_epi64(_mm512_set1_epi64(static_cast<std::uint32_t>(b) + 8 * (h % 2)), first);
    x1[h] = _mm512_set1_epi64(b >> 32);
    x2[h] = _mm512_set1_epi64(c2);
    x3[h] = _mm512_set1_epi64(c3);
  }
  const __m512i m0 = _mm512_set1_epi64(philox_m0), m1 = _mm512_set1_epi64(philox_m1);
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < philox_rounds; ++round) {
    if (round > 0) {
      k0 += philox_w0;
      k1 += philox_w1;
    }
    const __m512i vk0 = _mm512_set1_epi64(k0), vk1 = _mm512_set1_epi64(k1);
    for (std::size_t h = 0; h < H; ++h) {
      const __m512i p0 = _mm512_mul_epu32(x0[h], m0), p1 = _mm512_mul_epu32(x2[h], m1);
      x0[h] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), x1[h], vk0, 0x96);  // a ^ b ^ c
      x2[h] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), x3[h], vk1, 0x96);
      x1[h] = p1;
      x3[h] = p0;
    }
  }
  // The low halves of each register pair, in counter order.
  const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (std::size_t g = 0; g < G; ++g) {
    out[g][0] = _mm512_permutex2var_epi32(x0[2 * g], low_halves, x0[2 * g + 1]);
    out[g][1] = _mm512_permutex2var_epi32(x1[2 * g], low_halves, x1[2 * g + 1]);
    out[g][2] = _mm512_permutex2var_epi32(x2[2 * g], low_halves, x2[2 * g + 1]);
    out[g][3] = _mm512_permutex2var_epi32(x3[2 * g], low_halves, x3[2 * g + 1]);
  }
}

// Counters (c0 + lane, c1, c2, c3) for lanes 0..15 -> out[w] = word w of each
// (c0 + 15 must not wrap).
MPT_TARGET_AVX512 inline void philox4x32_10_avx512(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, PhiloxKey key,
                                                   __m512i out[4]) noexcept {
  const std::uint64_t block[1] = {(std::uint64_t{c1} << 32) | c0};
  __m512i words[1][4];
  philox4x32_10_avx512_groups(block, c2, c3, key, words);
  for (int w = 0; w < 4; ++w) out[w] = words[0][w];
}

// The same for 8 lanes.
MPT_TARGET_AVX2 inline void philox4x32_10_avx2(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, PhiloxKey key,
                                               __m256i out[4]) noexcept {
  __m256i x0 = _mm256_add_epi32(_mm256_set1_epi32(int(c0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i x1 = _mm256_set1_epi32(int(c1)), x2 = _mm256_set1_epi32(int(c2)), x3 = _mm256_set1_epi32(int(c3));
  const __m256i m0 = _mm256_set1_epi64x(philox_m0), m1 = _mm256_set1_epi64x(philox_m1);
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < philox_rounds; ++round) {
    if (round > 0) {
      k0 += philox_w0;
      k1 += philox_w1;
    }
    const __m256i p0_even = _mm256_mul_epu32(x0, m0), p0_odd = _mm256_mul_epu32(_mm256_srli_epi64(x0, 32), m0);
    const __m256i p1_even = _mm256_mul_epu32(x2, m1), p1_odd = _mm256_mul_epu32(_mm256_srli_epi64(x2, 32), m1);
    const __m256i lo0 = _mm256_blend_epi32(p0_even, _mm256_slli_epi64(p0_odd, 32), 0xAA);
    const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(p0_even, 32), p0_odd, 0xAA);
    const __m256i lo1 = _mm256_blend_epi32(p1_even, _mm256_slli_epi64(p1_odd, 32), 0xAA);
    const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(p1_even, 32), p1_odd, 0xAA);
    const __m256i y0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32(int(k0)));
    const __m256i y2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32(int(k1)));
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}
#endif  // MPT_X86

// Counters (c0 + l, c1, c2, c3) for l < lanes on one instruction set's path:
// out[w][l] = word w. Returns the lane count (16, 8, or 1 for scalar).
inline std::size_t philox4x32_10_lanes(Isa isa, std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, PhiloxKey key,
                                       std::uint32_t out[4][16]) {
#if MPT_X86
  if (isa >= Isa::avx512) {
    __m512i v[4];
    philox4x32_10_avx512(c0, c1, c2, c3, key, v);
    for (int w = 0; w < 4; ++w) std::memcpy(out[w], &v[w], 64);
    return 16;
  }
  if (isa == Isa::avx2) {
    __m256i v[4];
    philox4x32_10_avx2(c0, c1, c2, c3, key, v);
    for (int w = 0; w < 4; ++w) std::memcpy(out[w], &v[w], 32);
    return 8;
  }
#endif
  const PhiloxCounter r = philox4x32_10({c0, c1, c2, c3}, key);
  for (int w = 0; w < 4; ++w) out[w][0] = r[w];
  return 1;
}
}  // namespace detail

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
