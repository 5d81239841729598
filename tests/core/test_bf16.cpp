// bf16 scalar semantics and the vectorized array conversions, bit for bit.
#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using mpt::bf16;
using mpt::Isa;

namespace {
std::uint32_t bits(float x) { return std::bit_cast<std::uint32_t>(x); }
float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }

// Reference narrowing written from the definition, independently of
// float_bits_to_bf16_bits: take the two bf16 neighbours of x and choose the
// nearer one in exact (double) arithmetic, the even one on a tie.
std::uint16_t narrow_by_definition(std::uint32_t u) {
  const float x = from_bits(u);
  if (std::isnan(x)) return static_cast<std::uint16_t>((u >> 16) | 0x40);
  if (std::isinf(x)) return static_cast<std::uint16_t>(u >> 16);
  const std::uint16_t down = static_cast<std::uint16_t>(u >> 16);  // truncation: toward zero
  const std::uint16_t up = static_cast<std::uint16_t>(down + 1);   // next magnitude up (may be Inf)
  const double lo = std::fabs(static_cast<double>(from_bits(std::uint32_t(down) << 16)));
  const double hi_f = std::fabs(static_cast<double>(from_bits(std::uint32_t(up) << 16)));
  // The value just past the largest finite bf16 is +Inf; treat it as 2^128 for the midpoint.
  const double hi = std::isinf(hi_f) ? std::ldexp(1.0, 128) : hi_f;
  const double ax = std::fabs(static_cast<double>(x));
  if (ax - lo < hi - ax) return down;
  if (ax - lo > hi - ax) return up;
  return (down & 1u) ? up : down;
}
}  // namespace

TEST_CASE("bf16 scalar narrowing follows round-to-nearest-even by definition") {
  // Edge cases named by what they test.
  const std::uint32_t cases[] = {
      0x00000000u, 0x80000000u,                            // ±0
      0x3F800000u, 0x3F808000u, 0x3F818000u,               // 1, ties to even down and up
      0x3F807FFFu, 0x3F808001u,                            // just below / above a tie
      0x7F7FFFFFu, 0xFF7FFFFFu,                            // largest float rounds to ±Inf
      0x7F7F7FFFu,                                         // largest finite bf16 stays finite
      0x7F800000u, 0xFF800000u,                            // ±Inf
      0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0x7FA00000u,  // quiet and signalling NaNs
      0x00000001u, 0x807FFFFFu, 0x00008000u, 0x00018000u,  // subnormals, including ties
      0x007FFFFFu, 0x00800000u,                            // largest subnormal rounds up to the smallest normal
  };
  for (std::uint32_t u : cases) {
    CAPTURE(u);
    CHECK(mpt::float_bits_to_bf16_bits(u) == narrow_by_definition(u));
  }
  // NaN stays a quiet NaN with its sign.
  CHECK(std::isnan(mpt::to_float(mpt::to_bf16(from_bits(0x7F800001u)))));
  CHECK(mpt::float_bits_to_bf16_bits(0xFF800001u) == 0xFFC0u);
  // Random bit patterns over the whole float range.
  std::mt19937 rng(mpt::test::seed(12345));
  for (int i = 0; i < 1'000'000; ++i) {
    const std::uint32_t u = rng();
    REQUIRE(mpt::float_bits_to_bf16_bits(u) == narrow_by_definition(u));
  }
}

TEST_CASE("bf16 agrees with Eigen::bfloat16 on every non-NaN float class") {
  // Eigen rounds to nearest even too; it canonicalizes NaN, which we do not.
  std::mt19937 rng(mpt::test::seed(7));
  for (int i = 0; i < 200'000; ++i) {
    const float x = from_bits(rng());
    if (std::isnan(x)) continue;
    REQUIRE(mpt::bf16_bits(mpt::to_bf16(x)) == Eigen::bfloat16(x).value);
  }
}

TEST_CASE("widening every one of the 65,536 bf16 patterns is exact on every backend") {
  std::vector<bf16> all(65536);
  for (std::uint32_t b = 0; b < 65536; ++b) all[b] = mpt::bf16_from_bits(static_cast<std::uint16_t>(b));
  for (Isa isa : mpt::supported_isas()) {
    CAPTURE(mpt::isa_name(isa));
    std::vector<float> wide(all.size());
    mpt::convert_with(isa, std::span<const bf16>(all), std::span<float>(wide));
    for (std::uint32_t b = 0; b < 65536; ++b) REQUIRE(bits(wide[b]) == (b << 16));
    // ... and narrowing them back is the identity (NaNs are already quiet or become quiet).
    std::vector<bf16> back(all.size());
    mpt::convert_with(isa, std::span<const float>(wide), std::span<bf16>(back));
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const bool signalling_nan = (b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0 && (b & 0x40u) == 0;
      REQUIRE(mpt::bf16_bits(back[b]) == (signalling_nan ? (b | 0x40u) : b));
    }
  }
}

TEST_CASE("narrowing 10^7 random and edge-case floats is bit-exact on every backend") {
  // Random bit patterns (every exponent, NaNs, subnormals) mixed with values
  // near bf16 ties, and lengths that exercise every tail.
  constexpr std::size_t n = 10'000'000;
  std::vector<float> in(n);
  std::mt19937 rng(mpt::test::seed(2026));
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u = rng();
    switch (i % 8) {
      case 0:
        u = (u & 0xFFFF0000u) | 0x8000u;
        break;  // exact tie
      case 1:
        u = (u & 0xFFFF0000u) | 0x7FFFu;
        break;  // just below a tie
      case 2:   // subnormal or zero, in the second half only, so the first half
                // runs the AVX512_BF16 instruction path (blocks with subnormals are emulated)
        if (i >= n / 2) u &= 0x807FFFFFu;
        break;
      case 3:
        u = (u & 0x80000000u) | 0x7F800000u | (u & 0x7FFFFFu);
        break;  // Inf or NaN
      default:
        break;
    }
    in[i] = from_bits(u);
  }
  std::vector<std::uint16_t> expected(n);
  for (std::size_t i = 0; i < n; ++i) expected[i] = mpt::float_bits_to_bf16_bits(bits(in[i]));
  for (Isa isa : mpt::supported_isas()) {
    CAPTURE(mpt::isa_name(isa));
    std::vector<bf16> out(n);
    mpt::convert_with(isa, std::span<const float>(in), std::span<bf16>(out));
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < n; ++i) mismatches += mpt::bf16_bits(out[i]) != expected[i];
    CHECK(mismatches == 0);
    // Every tail length from 0 to 64 at an unaligned start.
    for (std::size_t len = 0; len <= 64; ++len) {
      std::vector<bf16> part(len);
      mpt::convert_with(isa, std::span<const float>(in.data() + 3, len), std::span<bf16>(part));
      for (std::size_t i = 0; i < len; ++i) REQUIRE(mpt::bf16_bits(part[i]) == expected[3 + i]);
    }
  }
}

TEST_CASE("convert checks that both arrays have the same length") {
  std::vector<float> a(5);
  std::vector<bf16> b(4);
  CHECK_THROWS_WITH_AS(mpt::convert(std::span<const float>(a), std::span<bf16>(b)), "convert (float -> bf16): input has 5 elements but output has 4",
                       mpt::Error);
}
