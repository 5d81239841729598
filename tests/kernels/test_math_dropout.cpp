// Vectorized exp/erf accuracy, Philox-4x32-10 known answers, dropout masks.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <type_traits>
#include <limits>
#include <random>
#include <vector>

using mpt::bf16;
using mpt::Isa;
using mpt::Shape;
using mpt::Tensor;
namespace k = mpt::kernels;

namespace {
// Distance from y to the exact value, in units of the fp32 ulp at the exact value.
double ulp_error(float y, double exact) {
  const float r = static_cast<float>(exact);
  const double ulp = std::nextafter(std::fabs(r), std::numeric_limits<float>::infinity()) - std::fabs(r);
  return std::fabs(static_cast<double>(y) - exact) / ulp;
}

enum class MathFn { exp, erf };
std::vector<float> vector_math(Isa isa, MathFn fn, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  k::detail::math_array_with(isa, fn == MathFn::exp ? k::detail::VectorMath::exp : k::detail::VectorMath::erf, x.data(), y.data(), x.size());
  return y;
}

std::vector<float> sweep(float lo, float hi, std::size_t n) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
  return x;
}
}  // namespace

TEST_CASE("vectorized exp is within 2 fp32 ulp of exp in double, on every backend") {
  // Cody-Waite reduction is exact to ~2^-32 relative; the degree-6 polynomial
  // adds < 1 ulp and the final fma rounding 0.5 ulp: 2 ulp is the budget.
  const std::vector<float> x = sweep(-87.0f, 88.0f, 200'003);
  for (Isa isa : mpt::supported_isas()) {
    if (isa == Isa::scalar) continue;
    CAPTURE(mpt::isa_name(isa));
    const std::vector<float> y = vector_math(isa, MathFn::exp, x);
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulp_error(y[i], std::exp(double(x[i]))));
    MESSAGE(mpt::isa_name(isa), ": exp max error ", worst, " ulp");
    CHECK(worst <= 2.0);
    // Saturation: 0 below ln(FLT_MIN), +Inf above ln(FLT_MAX), exp(0) = 1 exactly.
    const std::vector<float> edge = vector_math(isa, MathFn::exp, {-1000.0f, -88.0f, 0.0f, 89.0f, 1000.0f, -std::numeric_limits<float>::infinity()});
    CHECK(edge[0] == 0.0f);
    CHECK(edge[1] == 0.0f);
    CHECK(edge[2] == 1.0f);
    CHECK(std::isinf(edge[3]));
    CHECK(std::isinf(edge[4]));
    CHECK(edge[5] == 0.0f);
  }
}

TEST_CASE("vectorized erf is within 4 fp32 ulp of erf in double, on every backend") {
  // |x| < 0.9: x * P(x^2), fit error 3e-10 relative, ~7 fp32 roundings in
  // Horner that shrink as they go (terms decrease): <= 2 ulp in practice, 4 allowed.
  // 0.9 <= |x| < 3.92: a degree-14 polynomial with fit error 1e-8 (0.2 ulp of
  // erf >= 0.79) whose fp32 Horner evaluation was bounded at 2.5 ulp when
  // fitted (the terms shrink, the last coefficient is ~1).
  std::vector<float> x = sweep(-6.0f, 6.0f, 400'001);
  for (float t : {1e-30f, -1e-30f, 1e-6f, 0.0f, -0.0f}) x.push_back(t);
  for (Isa isa : mpt::supported_isas()) {
    if (isa == Isa::scalar) continue;
    CAPTURE(mpt::isa_name(isa));
    const std::vector<float> y = vector_math(isa, MathFn::erf, x);
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double e = ulp_error(y[i], std::erf(double(x[i])));
      if (e > worst) worst = e;
    }
    MESSAGE(mpt::isa_name(isa), ": erf max error ", worst, " ulp");
    CHECK(worst <= 4.0);
    const std::vector<float> edge = vector_math(isa, MathFn::erf, {0.0f, -0.0f, 10.0f, -10.0f});
    CHECK(edge[0] == 0.0f);
    CHECK(std::signbit(edge[1]));
    CHECK(edge[2] == 1.0f);
    CHECK(edge[3] == -1.0f);
  }
}

TEST_CASE("Philox-4x32-10 reproduces Random123's known-answer vectors") {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key -> output.
  struct Kat {
    k::PhiloxCounter counter;
    k::PhiloxKey key;
    k::PhiloxCounter expected;
  };
  const Kat kats[] = {
      {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}, {0x00000000u, 0x00000000u}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}, {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& kat : kats) CHECK(k::philox4x32_10(kat.counter, kat.key) == kat.expected);
  static_assert(k::philox4x32_10({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5u, "Philox is constexpr");
}

TEST_CASE("vector Philox lanes equal the scalar generator") {
  const std::uint32_t seed = 2024;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  auto next = [&] { return static_cast<std::uint32_t>(rng()); };
  for (Isa isa : mpt::supported_isas()) {
    CAPTURE(mpt::isa_name(isa));
    for (int trial = 0; trial < 50; ++trial) {
      const std::uint32_t c0 = next() & ~0xFu, c1 = next(), c2 = next(), c3 = next();
      const k::PhiloxKey key{next(), next()};
      std::uint32_t words[4][16];
      const std::size_t lanes = k::detail::philox4x32_10_lanes(isa, c0, c1, c2, c3, key, words);
      for (std::size_t l = 0; l < lanes; ++l) {
        const k::PhiloxCounter ref = k::philox4x32_10({c0 + std::uint32_t(l), c1, c2, c3}, key);
        for (int w = 0; w < 4; ++w) REQUIRE(words[w][l] == ref[w]);
      }
    }
  }
}

namespace {
template <class T>
Tensor<T> random_tensor(Shape shape, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor<T> t(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(dist(rng));
  return t;
}
template <class T>
double as_double(T x) {
  return static_cast<double>(mpt::to_float(x));
}
}  // namespace

TEST_CASE_TEMPLATE("dropout keeps exactly the elements its Philox bits select, on every backend", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;
  const std::uint32_t seed = 7;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  const k::DropoutKey key{0x1234567890ABCDEFull, 3, 41};
  for (std::size_t n : {1u, 15u, 63u, 64u, 65u, 1000u, 16384u + 77u}) {
    CAPTURE(n);
    Tensor<T> x = random_tensor<T>(Shape{std::int64_t(n)}, rng);
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      CAPTURE(mpt::isa_name(isa));
      for (float p : {0.0f, 0.1f, 0.5f, 1.0f}) {
        CAPTURE(p);
        Tensor<T> y(x.shape()), dx(x.shape());
        k::dropout_forward(x.view(), y.view(), p, key);
        k::dropout_backward(x.view(), dx.view(), p, key);  // upstream gradient = x: dx must equal y
        const std::uint32_t threshold = k::dropout_keep_threshold(p);
        for (std::size_t i = 0; i < n; ++i) {
          const bool keep = k::dropout_bits(key, i) < threshold;
          // One multiplication by the scale, rounded once into T: exact agreement.
          T expected;
          if constexpr (std::is_same_v<T, double>) {
            expected = keep ? x[i] * (1.0 / (1.0 - double(p))) : 0.0;
          } else {
            expected = keep ? static_cast<T>(mpt::to_float(x[i]) * k::dropout_scale<T>(p)) : static_cast<T>(0.0f);
          }
          REQUIRE(as_double(y[i]) == as_double(expected));
          REQUIRE(as_double(dx[i]) == as_double(y[i]));
        }
        if (p == 0.0f) {
          for (std::size_t i = 0; i < n; ++i) REQUIRE(as_double(y[i]) == as_double(x[i]));  // a copy
        }
      }
    }
  }
}

TEST_CASE("dropout keep rate, scale, key independence and thread-count determinism") {
  const std::size_t n = 1 << 20;
  Tensor<float> ones(Shape{std::int64_t(n)});
  for (std::size_t i = 0; i < n; ++i) ones[i] = 1.0f;
  for (float p : {0.1f, 0.5f}) {
    Tensor<float> y(ones.shape());
    k::dropout_forward(ones.view(), y.view(), p, {99, 0, 0});
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (y[i] != 0.0f) {
        ++kept;
        REQUIRE(y[i] == 1.0f / (1.0f - p));  // scale 1/(1-p) in fp32
      }
    }
    // Binomial(n, 1-p): 5 standard deviations is a false alarm once in 3.5 million runs.
    const double rate = double(kept) / double(n), sigma = std::sqrt(p * (1.0 - p) / double(n));
    MESSAGE("p = ", p, ": keep rate ", rate, " (expected ", 1.0 - p, ", sigma ", sigma, ")");
    CHECK(std::fabs(rate - (1.0 - p)) < 5 * sigma);
  }
  // Different streams and steps give different (uncorrelated) masks.
  Tensor<float> a(ones.shape()), b(ones.shape()), c(ones.shape());
  k::dropout_forward(ones.view(), a.view(), 0.5f, {99, 0, 0});
  k::dropout_forward(ones.view(), b.view(), 0.5f, {99, 1, 0});
  k::dropout_forward(ones.view(), c.view(), 0.5f, {99, 0, 1});
  std::size_t same_ab = 0, same_ac = 0;
  for (std::size_t i = 0; i < n; ++i) {
    same_ab += (a[i] == b[i]);
    same_ac += (a[i] == c[i]);
  }
  const double sigma = std::sqrt(0.25 / double(n));
  CHECK(std::fabs(double(same_ab) / double(n) - 0.5) < 5 * sigma);
  CHECK(std::fabs(double(same_ac) / double(n) - 0.5) < 5 * sigma);
  // Thread count never changes a bit.
  Tensor<bf16> one_thread(ones.shape()), two_threads(ones.shape());
  {
    mpt::ScopedNumThreads t(1);
    k::dropout_forward(ones.view(), one_thread.view(), 0.1f, {5, 6, 7});
  }
  {
    mpt::ScopedNumThreads t(2);
    k::dropout_forward(ones.view(), two_threads.view(), 0.1f, {5, 6, 7});
  }
  for (std::size_t i = 0; i < n; ++i) REQUIRE(mpt::bf16_bits(one_thread[i]) == mpt::bf16_bits(two_threads[i]));
}

TEST_CASE("dropout_add_forward rounds the dropped-out branch like an unfused bf16 graph") {
  const std::uint32_t seed = 11;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  const std::size_t n = 3 * 768 + 5;
  Tensor<bf16> x = random_tensor<bf16>(Shape{std::int64_t(n)}, rng), r = random_tensor<bf16>(Shape{std::int64_t(n)}, rng);
  const k::DropoutKey key{1, 2, 3};
  for (Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa guard(isa);
    CAPTURE(mpt::isa_name(isa));
    Tensor<bf16> fused(x.shape()), dropped(x.shape()), unfused(x.shape());
    k::dropout_add_forward(x.view(), r.view(), fused.view(), 0.1f, key);
    k::dropout_forward(x.view(), dropped.view(), 0.1f, key);
    k::residual_add(dropped.view(), r.view(), unfused.view());
    for (std::size_t i = 0; i < n; ++i) REQUIRE(mpt::bf16_bits(fused[i]) == mpt::bf16_bits(unfused[i]));
  }
  CHECK_THROWS_WITH_AS(k::dropout_forward(x.view(), x.view(), 1.5f, key), doctest::Contains("dropout probability 1.5 is outside [0, 1]"), mpt::Error);
}

TEST_CASE_TEMPLATE("residual_add equals the scalar sum rounded once, on every backend", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;
  const std::uint32_t seed = 13;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  for (std::size_t n : {1u, 17u, 16384u * 2 + 9}) {
    Tensor<T> a = random_tensor<T>(Shape{std::int64_t(n)}, rng);
    Tensor<float> b = random_tensor<float>(Shape{std::int64_t(n)}, rng);
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      Tensor<T> y(a.shape());
      k::residual_add(a.view(), b.view(), y.view());
      for (std::size_t i = 0; i < n; ++i) {
        T expected;
        if constexpr (std::is_same_v<T, double>)
          expected = a[i] + double(b[i]);
        else
          expected = static_cast<T>(mpt::to_float(a[i]) + b[i]);
        REQUIRE(as_double(y[i]) == as_double(expected));
      }
    }
  }
}

TEST_CASE_TEMPLATE("dropout_add_layer_norm_forward equals dropout_add_forward then layer_norm_forward, bit for bit", P, mpt::precision::fp32,
                   mpt::precision::bf16_mixed, mpt::precision::fp64) {
  using T = typename P::act_t;
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const std::uint32_t seed = 17;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  const k::DropoutKey key{3, 4, 5};
  for (std::int64_t h : {7, 100, 768}) {
    CAPTURE(h);
    const std::int64_t rows = 300;
    Tensor<T> x = random_tensor<T>(Shape{3, rows / 3, h}, rng), r = random_tensor<T>(x.shape(), rng);
    Tensor<C> gamma = random_tensor<C>(Shape{h}, rng), beta = random_tensor<C>(Shape{h}, rng);
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      CAPTURE(mpt::isa_name(isa));
      for (float p : {0.0f, 0.1f}) {
        Tensor<T> sum1(x.shape()), y1(x.shape()), sum2(x.shape()), y2(x.shape());
        Tensor<C> m1(Shape{rows}), r1(Shape{rows}), m2(Shape{rows}), r2(Shape{rows});
        k::dropout_add_forward(x.view(), r.view(), sum1.view(), p, key);
        k::layer_norm_forward(sum1.view(), gamma.view(), beta.view(), 1e-12, y1.view(), m1.view(), r1.view());
        for (int threads : {1, 2}) {
          mpt::ScopedNumThreads t(threads);
          k::dropout_add_layer_norm_forward(x.view(), r.view(), p, key, gamma.view(), beta.view(), 1e-12, sum2.view(), y2.view(), m2.view(),
                                            r2.view());
          REQUIRE(std::memcmp(sum1.data(), sum2.data(), sum1.size() * sizeof(T)) == 0);
          REQUIRE(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(T)) == 0);
          REQUIRE(std::memcmp(m1.data(), m2.data(), m1.size() * sizeof(C)) == 0);
          REQUIRE(std::memcmp(r1.data(), r2.data(), r1.size() * sizeof(C)) == 0);
        }
      }
    }
  }
}

TEST_CASE("bf16 stores round every float class like the scalar reference, on every backend") {
  // The AVX512_BF16 path narrows with vcvtneps2bf16, which flushes fp32
  // subnormals; vectors holding one must fall back to the exact emulation.
  const float specials[] = {0.0f,
                            -0.0f,
                            1e-39f,
                            -3e-40f,
                            1.17e-38f,
                            std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            1.00390625f /* tie */,
                            1.01171875f /* tie */,
                            3.4e38f,
                            -2.5f,
                            65504.0f};
  const std::size_t n = 16 * 5 + 3;
  Tensor<float> a(Shape{std::int64_t(n)}), zero(Shape{std::int64_t(n)});
  for (std::size_t i = 0; i < n; ++i) a[i] = specials[i % std::size(specials)];
  for (std::size_t i = 48; i < 64; ++i) a[i] = 1.5f + float(i);  // one vector with no special value
  for (Isa isa : mpt::supported_isas()) {
    mpt::ScopedIsa guard(isa);
    CAPTURE(mpt::isa_name(isa));
    Tensor<bf16> y(a.shape());
    k::residual_add(a.view(), zero.view(), y.view());
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      REQUIRE(mpt::bf16_bits(y[i]) == mpt::float_to_bf16_bits(a[i] + 0.0f));
    }
  }
}
