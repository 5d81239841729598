// Softmax, LayerNorm, GELU, embedding and cross-entropy against fp64
// references on every backend, fp64 finite differences for every backward,
// and bitwise determinism across thread counts.
//
// Tolerances follow from the precision of the path under test:
//   eps = 2^-23 for fp32 math (2^-52 for double), and a bf16 store adds at
//   most half a bf16 ulp, 2^-8 of the value (8 significant bits).
#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <type_traits>
#include <vector>

using mpt::bf16;
using mpt::Isa;
using mpt::Shape;
using mpt::Tensor;
using mpt::TensorView;
namespace k = mpt::kernels;

namespace {
template <class T>
double d(T x) {
  return static_cast<double>(mpt::to_float(x));
}

// The precision a kernel computes in for storage type T, and what a store into T adds.
template <class T>
constexpr double compute_eps = std::is_same_v<T, double> ? 0x1p-52 : 0x1p-23;
template <class T>
constexpr double store_rel = std::is_same_v<T, bf16> ? 0x1p-8 : (std::is_same_v<T, double> ? 0x1p-53 : 0x1p-24);

template <class T>
Tensor<T> random_tensor(Shape shape, std::mt19937& rng, double lo = -2.0, double hi = 2.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Tensor<T> t(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(dist(rng));
  return t;
}

template <class T>
std::vector<double> to_doubles(const Tensor<T>& t) {
  std::vector<double> v(t.size());
  for (std::size_t i = 0; i < t.size(); ++i) v[i] = d(t[i]);
  return v;
}

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Central difference of f at x[i] (fp64): error O(h^2 f''') + O(eps/h).
template <class F>
double numeric_derivative(std::vector<double>& x, std::size_t i, F&& f, double h = 1e-6) {
  const double saved = x[i];
  x[i] = saved + h;
  const double up = f();
  x[i] = saved - h;
  const double down = f();
  x[i] = saved;
  return (up - down) / (2 * h);
}

Tensor<double> tensor_from(const std::vector<double>& v, Shape shape) {
  Tensor<double> t(shape);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}
}  // namespace

// ---------------------------------------------------------------- softmax

namespace {
// fp64 reference of softmax(x * scale + mask) for one row (inputs as stored).
std::vector<double> softmax_reference_row(const double* x, const float* mask, double scale, std::size_t k) {
  std::vector<double> z(k), y(k);
  double max = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < k; ++j) {
    z[j] = x[j] * scale + (mask ? double(mask[j]) : 0.0);
    max = std::max(max, z[j]);
  }
  double sum = 0;
  for (std::size_t j = 0; j < k; ++j) sum += (z[j] = std::exp(z[j] - max));
  for (std::size_t j = 0; j < k; ++j) y[j] = z[j] / sum;
  return y;
}
}  // namespace

TEST_CASE_TEMPLATE("softmax forward/backward match fp64 on every backend, masked and scaled", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;                                             // probabilities and gradients
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;  // scores (fp32 from GEMM)
  const std::uint32_t seed = 101;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  const double scale = 0.125;
  const float masked = std::numeric_limits<float>::lowest();  // HF: (1 - mask) * finfo(float32).min
  for (std::int64_t kk : {1, 7, 16, 33, 385}) {
    CAPTURE(kk);
    const std::size_t k_ = std::size_t(kk);
    const Shape shape{2, 3, 5, kk};
    Tensor<S> scores = random_tensor<S>(shape, rng, -30.0, 30.0);
    Tensor<float> mask(Shape{2, kk});
    for (std::int64_t j = 0; j < kk; ++j) mask(0, j) = (j % 3 == 2) ? masked : 0.0f;  // batch 0: padding
    for (std::int64_t j = 0; j < kk; ++j) mask(1, j) = masked;                        // batch 1: fully masked
    Tensor<T> dprobs = random_tensor<T>(shape, rng);
    const std::size_t rows = scores.size() / k_;
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      CAPTURE(mpt::isa_name(isa));
      Tensor<T> probs(shape), dscores(shape);
      k::softmax_forward(scores.view(), mask.view(), scale, probs.view());
      k::softmax_backward(probs.view(), dprobs.view(), scale, dscores.view());
      for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t batch = r / (rows / 2);
        std::vector<double> x(k_);
        for (std::size_t j = 0; j < k_; ++j) x[j] = d(scores[r * k_ + j]);
        const std::vector<double> ref = softmax_reference_row(x.data(), mask.data() + batch * k_, scale, k_);
        // z = x*scale + mask carries one rounding of |z| <= 30*0.125 ~ 4 (2 eps
        // relative to p after exp), exp <= 2 ulp, the sum of k terms k*eps, the
        // final product 1 eps: (k + 8) eps relative, plus the store.
        const double eps = compute_eps<S>;
        for (std::size_t j = 0; j < k_; ++j) {
          const double tol = ((double(k_) + 8) * eps + store_rel<T>)*ref[j] + 1e-300;
          REQUIRE(std::isfinite(d(probs[r * k_ + j])));
          REQUIRE(std::fabs(d(probs[r * k_ + j]) - ref[j]) <= tol);
        }
        if (batch == 1) {
          // Fully masked: uniform, never NaN (as PyTorch).
          for (std::size_t j = 0; j < k_; ++j)
            REQUIRE(std::fabs(d(probs[r * k_ + j]) - 1.0 / double(k_)) <= 1.0 / double(k_) * ((double(k_) + 8) * eps + store_rel<T>));
        }
        // Backward from the stored probabilities: dot = sum dp*p accumulates
        // k products (k eps of sum |dp p|), then p*(dp - dot)*scale 3 roundings.
        double dot = 0, dot_abs = 0;
        for (std::size_t j = 0; j < k_; ++j) {
          dot += d(dprobs[r * k_ + j]) * d(probs[r * k_ + j]);
          dot_abs += std::fabs(d(dprobs[r * k_ + j]) * d(probs[r * k_ + j]));
        }
        for (std::size_t j = 0; j < k_; ++j) {
          const double p = d(probs[r * k_ + j]), g = d(dprobs[r * k_ + j]);
          const double expected = p * (g - dot) * scale;
          const double tol = (std::fabs(p) * (double(k_) + 4) * dot_abs * compute_eps<T> + 4 * compute_eps<T> * std::fabs(expected)) * scale +
                             store_rel<T> * std::fabs(expected) + 1e-300;
          REQUIRE(std::fabs(d(dscores[r * k_ + j]) - expected) <= tol);
        }
      }
    }
  }
}

TEST_CASE("softmax: rows of -Inf give zeros, bad masks are named, results are thread-count independent") {
  Tensor<float> scores(Shape{1, 1, 2, 5});
  for (std::size_t i = 0; i < 5; ++i) scores[i] = -std::numeric_limits<float>::infinity();
  Tensor<float> probs(scores.shape());
  k::softmax_forward(scores.view(), TensorView<const float>{}, 1.0, probs.view());
  for (std::size_t i = 0; i < 5; ++i) CHECK(probs[i] == 0.0f);
  for (std::size_t i = 5; i < 10; ++i) CHECK(probs[i] == doctest::Approx(0.2));
  Tensor<float> bad_mask(Shape{3, 5});
  CHECK_THROWS_WITH_AS(k::softmax_forward(scores.view(), bad_mask.view(), 1.0, probs.view()), doctest::Contains("additive_mask has shape [3, 5]"),
                       mpt::Error);

  std::mt19937 rng(mpt::test::seed(5));
  Tensor<float> big = random_tensor<float>(Shape{2, 12, 64, 129}, rng, -5, 5);
  Tensor<float> mask(Shape{2, 129});
  Tensor<bf16> one(big.shape()), two(big.shape());
  {
    mpt::ScopedNumThreads t(1);
    k::softmax_forward(big.view(), mask.view(), 0.125, one.view());
  }
  {
    mpt::ScopedNumThreads t(2);
    k::softmax_forward(big.view(), mask.view(), 0.125, two.view());
  }
  CHECK(same_bits(one, two));
}

TEST_CASE("softmax backward equals fp64 finite differences") {
  std::mt19937 rng(mpt::test::seed(17));
  const std::int64_t kk = 9;
  const double scale = 0.37;
  Tensor<double> scores = random_tensor<double>(Shape{3, kk}, rng);
  Tensor<double> w = random_tensor<double>(Shape{3, kk}, rng);  // loss = sum(w * probs)
  Tensor<float> mask(Shape{3, kk});
  mask(1, 4) = -2.5f;
  std::vector<double> x = to_doubles(scores);
  auto loss = [&] {
    Tensor<double> s = tensor_from(x, scores.shape()), p(scores.shape());
    k::softmax_forward(s.view(), mask.view(), scale, p.view());
    double l = 0;
    for (std::size_t i = 0; i < p.size(); ++i) l += w[i] * p[i];
    return l;
  };
  Tensor<double> probs(scores.shape()), dscores(scores.shape());
  k::softmax_forward(scores.view(), mask.view(), scale, probs.view());
  k::softmax_backward(probs.view(), w.view(), scale, dscores.view());
  // h = 1e-6: truncation ~h^2 = 1e-12, cancellation ~eps/h = 2e-10.
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(dscores[i] == doctest::Approx(numeric_derivative(x, i, loss)).epsilon(1e-7).scale(1));
}

// ---------------------------------------------------------------- LayerNorm

TEST_CASE_TEMPLATE("layer_norm forward/backward match fp64 on every backend", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;  // statistics, gamma/beta, gradients
  const std::uint32_t seed = 202;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  for (std::int64_t h : {1, 7, 17, 64, 771}) {
    CAPTURE(h);
    const std::int64_t rows = 37;
    const std::size_t hs = std::size_t(h);
    Tensor<T> x = random_tensor<T>(Shape{rows, h}, rng, -3.0, 5.0);  // non-zero mean on purpose
    Tensor<C> gamma = random_tensor<C>(Shape{h}, rng, 0.5, 1.5), beta = random_tensor<C>(Shape{h}, rng, -1.0, 1.0);
    Tensor<T> dy = random_tensor<T>(Shape{rows, h}, rng);
    const double eps = k::bert_layer_norm_eps;
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      CAPTURE(mpt::isa_name(isa));
      Tensor<T> y(x.shape()), dx(x.shape());
      Tensor<C> mean(Shape{rows}), rstd(Shape{rows}), dgamma(Shape{h}), dbeta(Shape{h});
      for (std::size_t j = 0; j < hs; ++j) dgamma[j] = 1.0f;  // backward accumulates (+=)
      k::layer_norm_forward(x.view(), gamma.view(), beta.view(), eps, y.view(), mean.view(), rstd.view());
      k::layer_norm_backward(dy.view(), x.view(), gamma.view(), mean.view(), rstd.view(), dx.view(), dgamma.view(), dbeta.view());
      const double ce = compute_eps<C>;
      std::vector<double> ref_dgamma(hs, 1.0), ref_dbeta(hs, 0.0), abs_dgamma(hs, 0.0), abs_dbeta(hs, 0.0);
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* xr = x.data() + r * h;
        double m = 0, v = 0, max_abs = 0;
        for (std::size_t j = 0; j < hs; ++j) m += d(xr[j]), max_abs = std::max(max_abs, std::fabs(d(xr[j])));
        m /= double(h);
        for (std::size_t j = 0; j < hs; ++j) v += (d(xr[j]) - m) * (d(xr[j]) - m);
        v /= double(h);
        const double rs = 1.0 / std::sqrt(v + eps);
        // Sums of h terms: error <= h eps * sum|.|; so the mean is off by
        // <= h eps max|x| and xhat by that times rstd; rstd by ~ (h + 4) eps.
        const double xhat_err = (double(h) + 4) * ce * (max_abs * rs + 1.0);
        CHECK(std::fabs(d(mean[r]) - m) <= double(h) * ce * max_abs + 1e-300);
        CHECK(std::fabs(d(rstd[r]) - rs) <= xhat_err * rs);
        double sum_g = 0, sum_gx = 0, g_abs = 0;
        for (std::size_t j = 0; j < hs; ++j) {
          const double xhat = (d(xr[j]) - m) * rs;
          const double expected = xhat * gamma[j] + beta[j];
          const double tol = xhat_err * (std::fabs(xhat) + 1) * gamma[j] + 2 * ce * std::fabs(expected) + store_rel<T> * std::fabs(expected);
          REQUIRE(std::fabs(d(y[r * h + j]) - expected) <= tol);
          const double g = d(dy[r * h + j]) * gamma[j];
          sum_g += g;
          sum_gx += g * xhat;
          g_abs += std::fabs(g) * (1 + std::fabs(xhat));
          ref_dgamma[j] += d(dy[r * h + j]) * xhat;
          ref_dbeta[j] += d(dy[r * h + j]);
          abs_dgamma[j] += std::fabs(d(dy[r * h + j])) * (std::fabs(xhat) + xhat_err);
          abs_dbeta[j] += std::fabs(d(dy[r * h + j]));
        }
        for (std::size_t j = 0; j < hs; ++j) {
          const double xhat = (d(xr[j]) - m) * rs;
          const double g = d(dy[r * h + j]) * gamma[j];
          const double expected = rs * (g - sum_g / double(h) - xhat * sum_gx / double(h));
          // Every term of the bracket carries xhat_err-sized relative error, the
          // sums h eps of sum |g| (1 + |xhat|); scaled by rstd.
          const double tol = rs * (xhat_err * (std::fabs(g) + g_abs / double(h) * (std::fabs(xhat) + 1)) + (double(h) + 4) * ce * g_abs / double(h)) +
                             store_rel<T> * std::fabs(expected);
          REQUIRE(std::fabs(d(dx[r * h + j]) - expected) <= tol);
        }
      }
      // dgamma/dbeta: sums over 37 rows in chunks: (rows + 4) eps of the absolute sum.
      for (std::size_t j = 0; j < hs; ++j) {
        CHECK(std::fabs(d(dgamma[j]) - ref_dgamma[j]) <= (rows + 4) * ce * (abs_dgamma[j] + 1));
        CHECK(std::fabs(d(dbeta[j]) - ref_dbeta[j]) <= (rows + 4) * ce * abs_dbeta[j]);
      }
    }
  }
}

TEST_CASE("layer_norm backward equals fp64 finite differences (dx, dgamma, dbeta)") {
  std::mt19937 rng(mpt::test::seed(23));
  const std::int64_t rows = 4, h = 11;
  const double eps = 1e-5;  // a visible eps so the finite differences see it too
  std::vector<double> x = to_doubles(random_tensor<double>(Shape{rows, h}, rng));
  std::vector<double> gamma = to_doubles(random_tensor<double>(Shape{h}, rng, 0.5, 1.5));
  std::vector<double> beta = to_doubles(random_tensor<double>(Shape{h}, rng));
  Tensor<double> w = random_tensor<double>(Shape{rows, h}, rng);
  auto loss = [&] {
    Tensor<double> xt = tensor_from(x, Shape{rows, h}), g = tensor_from(gamma, Shape{h}), b = tensor_from(beta, Shape{h});
    Tensor<double> y(xt.shape()), m(Shape{rows}), r(Shape{rows});
    k::layer_norm_forward(xt.view(), g.view(), b.view(), eps, y.view(), m.view(), r.view());
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += w[i] * y[i];
    return l;
  };
  Tensor<double> xt = tensor_from(x, Shape{rows, h}), g = tensor_from(gamma, Shape{h}), b = tensor_from(beta, Shape{h});
  Tensor<double> y(xt.shape()), m(Shape{rows}), r(Shape{rows}), dx(xt.shape()), dg(Shape{h}), db(Shape{h});
  k::layer_norm_forward(xt.view(), g.view(), b.view(), eps, y.view(), m.view(), r.view());
  k::layer_norm_backward(w.view(), xt.view(), g.view(), m.view(), r.view(), dx.view(), dg.view(), db.view());
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(dx[i] == doctest::Approx(numeric_derivative(x, i, loss)).epsilon(1e-6).scale(1));
  for (std::size_t j = 0; j < gamma.size(); ++j) CHECK(dg[j] == doctest::Approx(numeric_derivative(gamma, j, loss)).epsilon(1e-6).scale(1));
  for (std::size_t j = 0; j < beta.size(); ++j) CHECK(db[j] == doctest::Approx(numeric_derivative(beta, j, loss)).epsilon(1e-6).scale(1));
}

TEST_CASE("layer_norm gives the same bits for 1 and 2 threads") {
  std::mt19937 rng(mpt::test::seed(29));
  const std::int64_t rows = 8 * 40 + 3, h = 768;
  Tensor<bf16> x = random_tensor<bf16>(Shape{rows, h}, rng), dy = random_tensor<bf16>(Shape{rows, h}, rng);
  Tensor<float> gamma = random_tensor<float>(Shape{h}, rng), beta = random_tensor<float>(Shape{h}, rng);
  auto run = [&](int threads) {
    mpt::ScopedNumThreads t(threads);
    Tensor<bf16> y(x.shape()), dx(x.shape());
    Tensor<float> m(Shape{rows}), r(Shape{rows}), dg(Shape{h}), db(Shape{h});
    k::layer_norm_forward(x.view(), gamma.view(), beta.view(), 1e-12, y.view(), m.view(), r.view());
    k::layer_norm_backward(dy.view(), x.view(), gamma.view(), m.view(), r.view(), dx.view(), dg.view(), db.view());
    return std::make_tuple(std::move(y), std::move(dx), std::move(dg), std::move(db));
  };
  auto [y1, dx1, dg1, db1] = run(1);
  auto [y2, dx2, dg2, db2] = run(2);
  CHECK(same_bits(y1, y2));
  CHECK(same_bits(dx1, dx2));
  CHECK(same_bits(dg1, dg2));
  CHECK(same_bits(db1, db2));
}

// ---------------------------------------------------------------- GELU

TEST_CASE_TEMPLATE("gelu with bias: forward/backward match fp64 on every backend", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const std::uint32_t seed = 303;
  MESSAGE("seed ", seed);
  std::mt19937 rng(seed);
  const double ce = compute_eps<C>;
  const double inv_sqrt_2pi = 0.39894228040143267794;
  for (std::int64_t n : {1, 15, 16, 47, 3072 + 5}) {
    CAPTURE(n);
    const std::int64_t rows = 41;  // > 1 backward chunk (32 rows); odd: the SIMD backward pairs rows, one is left
    const std::size_t ns = std::size_t(n);
    Tensor<C> x = random_tensor<C>(Shape{rows, n}, rng, -6.0, 6.0);  // GEMM output (fp32)
    Tensor<C> bias = random_tensor<C>(Shape{n}, rng, -1.0, 1.0);
    Tensor<T> dy = random_tensor<T>(Shape{rows, n}, rng);
    for (Isa isa : mpt::supported_isas()) {
      mpt::ScopedIsa guard(isa);
      CAPTURE(mpt::isa_name(isa));
      Tensor<T> y(x.shape()), pre(x.shape()), dx(x.shape());
      Tensor<C> dbias(Shape{n});
      k::gelu_bias_forward(x.view(), bias.view(), y.view(), pre.view());
      k::gelu_backward(dy.view(), pre.view(), dx.view(), dbias.view());
      std::vector<double> ref_dbias(ns, 0.0), abs_dbias(ns, 0.0);
      for (std::size_t i = 0; i < x.size(); ++i) {
        // The pre-activation is x + b in the compute type, rounded to T (as a bf16 linear output).
        const T h_stored = static_cast<T>(static_cast<C>(x[i]) + bias[i % ns]);
        REQUIRE(d(pre[i]) == d(h_stored));
        const double h = d(h_stored);
        const double cdf = 0.5 * (1 + std::erf(h * 0.70710678118654752440));
        const double expected = h * cdf;
        // Scalar path: erf <= 1 ulp (<= eps/2), 1 + erf one rounding, so
        // |1+erf| is off by <= 1.5 eps; SIMD paths: y = h/2 + |h| C(|h|) with
        // C = (1+erf)/2 - 1/2 off by <= 0.6 eps (the fitted tables, see
        // gelu.hpp), i.e. 1+erf off by <= 1.2 eps. Both within 3 eps, and with
        // the two products' roundings |y - ref| <= 0.5|h| 3 eps + 2 eps |ref|.
        const double tol = 0.5 * std::fabs(h) * 3 * ce + 2 * ce * std::fabs(expected) + store_rel<T> * std::fabs(expected);
        REQUIRE(std::fabs(d(y[i]) - expected) <= tol + 1e-300);
        // Scalar path: gelu' = cdf + h pdf, cdf off by <= 1.5 eps, h pdf by
        // 4 eps relative (exp, 2 products), the sum and dy product 2 eps
        // relative. SIMD paths: gelu' = 1/2 +- D(|h|), D off by <= 0.6 eps
        // (fitted table), the sum and the dy product 2 eps relative: inside.
        const double hp = h * std::exp(-0.5 * h * h) * inv_sqrt_2pi;
        const double dexpected = d(dy[i]) * (cdf + hp);
        const double dtol =
            std::fabs(d(dy[i])) * (1.5 * ce + 4 * ce * std::fabs(hp)) + 2 * ce * std::fabs(dexpected) + store_rel<T> * std::fabs(dexpected);
        REQUIRE(std::fabs(d(dx[i]) - dexpected) <= dtol + 1e-300);
        ref_dbias[i % ns] += d(dx[i]);  // dbias sums dx as stored
        abs_dbias[i % ns] += std::fabs(d(dx[i]));
      }
      for (std::size_t j = 0; j < ns; ++j) CHECK(std::fabs(d(dbias[j]) - ref_dbias[j]) <= (rows + 4) * ce * abs_dbias[j] + 1e-300);
    }
  }
}

TEST_CASE("vectorized gelu and gelu' stay within their table error on a dense sweep, on every SIMD backend") {
  // gelu(h) = h/2 + a C(a) and gelu'(h) = 1/2 +- D(a), a = |h|, with C and D
  // from fitted piecewise polynomials whose fp32 evaluation is off by <= 0.52
  // eps (tools/fit_gelu_tables.py measures every table on a dense grid); 0.6
  // eps is the budget. The fma a*C + h/2 rounds once (half an ulp of y,
  // <= eps/2 |y|), so |y - gelu| <= 0.6 eps a + eps/2 |y|; likewise
  // |g - gelu'| <= 0.6 eps + eps/2 |g| (dy = 1 makes dx = g exactly).
  // 2.4M points step 1e-5 over [-12, 12]: every piece boundary many times.
  const double eps = 0x1p-23, budget = 0.6 * eps;
  const std::int64_t n = 2'400'001;
  Tensor<float> x(Shape{1, n}), ones(Shape{1, n});
  for (std::int64_t i = 0; i < n; ++i) x[std::size_t(i)] = -12.0f + 24.0f * float(i) / float(n - 1), ones[std::size_t(i)] = 1.0f;
  for (Isa isa : mpt::supported_isas()) {
    if (isa == Isa::scalar) continue;
    mpt::ScopedIsa guard(isa);
    CAPTURE(mpt::isa_name(isa));
    Tensor<float> y(x.shape()), g(x.shape());
    k::gelu_forward(x.view(), y.view());
    k::gelu_backward(ones.view(), x.view(), g.view(), TensorView<float>{});
    double worst_y = 0, worst_g = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double h = x[i], cdf = 0.5 * (1 + std::erf(h * 0.70710678118654752440));
      const double ref = h * cdf, dref = cdf + h * std::exp(-0.5 * h * h) * 0.39894228040143267794;
      const double ey = std::fabs(y[i] - ref) - 0.5 * eps * std::fabs(y[i]), eg = std::fabs(g[i] - dref) - 0.5 * eps * std::fabs(g[i]);
      worst_y = std::max(worst_y, ey / std::fabs(h));
      worst_g = std::max(worst_g, eg);
      if (!(ey <= budget * std::fabs(h)) || !(eg <= budget)) {
        CAPTURE(h);
        REQUIRE(ey <= budget * std::fabs(h));
        REQUIRE(eg <= budget);
      }
    }
    MESSAGE(mpt::isa_name(isa), ": table error beyond the final rounding: gelu ", worst_y / eps, " eps |h|, gelu' ", worst_g / eps, " eps");
    // Saturation is exact: gelu(h) = h and gelu'(h) = 1 for large h, 0 and 0 for very negative h.
    // A NaN pre-activation gives NaN for both (as PyTorch).
    Tensor<float> big(Shape{1, 5}), by(big.shape()), bg(big.shape()), b1(big.shape());
    const float values[5] = {6.5f, 1e30f, -6.5f, -1e30f, std::numeric_limits<float>::quiet_NaN()};
    for (std::size_t i = 0; i < 5; ++i) big[i] = values[i], b1[i] = 1.0f;
    k::gelu_forward(big.view(), by.view());
    k::gelu_backward(b1.view(), big.view(), bg.view(), TensorView<float>{});
    CHECK(by[0] == 6.5f);
    CHECK(by[1] == 1e30f);
    CHECK(by[2] == 0.0f);
    CHECK(by[3] == 0.0f);
    CHECK(bg[0] == 1.0f);
    CHECK(bg[1] == 1.0f);
    CHECK(bg[2] == 0.0f);
    CHECK(bg[3] == 0.0f);
    CHECK(std::isnan(by[4]));
    CHECK(std::isnan(bg[4]));
  }
}

TEST_CASE("gelu backward equals fp64 finite differences; thread-count independent") {
  std::mt19937 rng(mpt::test::seed(31));
  const std::int64_t rows = 5, n = 13;
  std::vector<double> x = to_doubles(random_tensor<double>(Shape{rows, n}, rng, -4, 4));
  std::vector<double> bias = to_doubles(random_tensor<double>(Shape{n}, rng));
  Tensor<double> w = random_tensor<double>(Shape{rows, n}, rng);
  auto loss = [&] {
    Tensor<double> xt = tensor_from(x, Shape{rows, n}), b = tensor_from(bias, Shape{n}), y(Shape{rows, n});
    k::gelu_bias_forward(xt.view(), b.view(), y.view(), TensorView<double>{});
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += w[i] * y[i];
    return l;
  };
  Tensor<double> xt = tensor_from(x, Shape{rows, n}), b = tensor_from(bias, Shape{n});
  Tensor<double> y(xt.shape()), pre(xt.shape()), dx(xt.shape()), db(Shape{n});
  k::gelu_bias_forward(xt.view(), b.view(), y.view(), pre.view());
  k::gelu_backward(w.view(), pre.view(), dx.view(), db.view());
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(dx[i] == doctest::Approx(numeric_derivative(x, i, loss)).epsilon(1e-7).scale(1));
  for (std::size_t j = 0; j < bias.size(); ++j) CHECK(db[j] == doctest::Approx(numeric_derivative(bias, j, loss)).epsilon(1e-7).scale(1));

  Tensor<float> big = random_tensor<float>(Shape{300, 3072}, rng), bb = random_tensor<float>(Shape{3072}, rng);
  Tensor<bf16> g = random_tensor<bf16>(big.shape(), rng);
  auto run = [&](int threads) {
    mpt::ScopedNumThreads t(threads);
    Tensor<bf16> out(big.shape()), p(big.shape()), dxx(big.shape());
    Tensor<float> dbb(Shape{3072});
    k::gelu_bias_forward(big.view(), bb.view(), out.view(), p.view());
    k::gelu_backward(g.view(), p.view(), dxx.view(), dbb.view());
    return std::make_tuple(std::move(out), std::move(dxx), std::move(dbb));
  };
  auto [o1, dx1, db1] = run(1);
  auto [o2, dx2, db2] = run(2);
  CHECK(same_bits(o1, o2));
  CHECK(same_bits(dx1, dx2));
  CHECK(same_bits(db1, db2));
}

// ---------------------------------------------------------------- embedding

TEST_CASE_TEMPLATE("embedding gathers rows and scatter-adds gradients in token order", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::act_t;
  using G = std::conditional_t<std::is_same_v<T, double>, double, float>;
  std::mt19937 rng(mpt::test::seed(37));
  const std::int64_t vocab = 301, hidden = 19;
  Tensor<G> table = random_tensor<G>(Shape{vocab, hidden}, rng);
  Tensor<std::int32_t> ids(Shape{4, 50});
  for (std::size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<std::int32_t>(rng() % 40 * 7 % vocab);  // many repeats
  Tensor<T> out(Shape{4, 50, hidden});
  k::embedding_forward(ids.view(), table.view(), out.view());
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::int64_t j = 0; j < hidden; ++j) REQUIRE(d(out[t * hidden + j]) == d(static_cast<T>(table(ids[t], j))));
  Tensor<T> dout = random_tensor<T>(out.shape(), rng);
  Tensor<G> expected(table.shape());
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::int64_t j = 0; j < hidden; ++j) expected(ids[t], j) += static_cast<G>(d(dout[t * hidden + j]));
  for (int threads : {1, 2}) {
    mpt::ScopedNumThreads guard(threads);
    Tensor<G> dtable(table.shape());
    k::embedding_backward(ids.view(), dout.view(), dtable.view());
    CHECK(same_bits(dtable, expected));  // the same additions in the same order
  }
  ids[17] = static_cast<std::int32_t>(vocab);
  CHECK_THROWS_WITH_AS(k::embedding_forward(ids.view(), table.view(), out.view()),
                       doctest::Contains("token id 301 at position 17 is outside the vocabulary of 301 rows"), mpt::Error);
  ids[17] = -1;
  CHECK_THROWS_AS(k::embedding_backward(ids.view(), dout.view(), table.view()), mpt::Error);
}

// ---------------------------------------------------------------- cross-entropy

TEST_CASE("cross_entropy matches fp64 with an ignore index; all-ignored is NaN; backward matches finite differences") {
  std::mt19937 rng(mpt::test::seed(41));
  const std::int64_t n = 6, c = 385;
  const std::int32_t ignore = 384;  // transformers QA: ignore_index = seq_len after clamping
  Tensor<float> logits = random_tensor<float>(Shape{n, c}, rng, -8, 8);
  Tensor<std::int32_t> targets(Shape{n});
  const std::int32_t t_values[] = {3, 384, 0, 200, 384, 383};
  for (std::int64_t i = 0; i < n; ++i) targets[i] = t_values[i];
  double ref = 0;
  int count = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (targets[i] == ignore) continue;
    double m = -1e300, s = 0;
    for (std::int64_t j = 0; j < c; ++j) m = std::max(m, double(logits(i, j)));
    for (std::int64_t j = 0; j < c; ++j) s += std::exp(double(logits(i, j)) - m);
    ref += m + std::log(s) - logits(i, targets[i]);
    ++count;
  }
  ref /= count;
  // Per row: logsumexp sums c terms (c eps relative) of magnitude <= |max| + log c.
  const float loss = k::cross_entropy_forward(logits.view(), targets.view(), ignore);
  CHECK(std::fabs(loss - ref) <= (double(c) + 8) * 0x1p-23 * (8 + std::log(double(c))));

  // bf16 logits (a bf16 Linear's output) are widened exactly: the same loss as their fp32 copy.
  Tensor<bf16> logits_bf16(logits.shape());
  Tensor<float> widened(logits.shape());
  for (std::size_t i = 0; i < logits.size(); ++i) widened[i] = mpt::to_float(logits_bf16[i] = mpt::to_bf16(logits[i]));
  CHECK(k::cross_entropy_forward(logits_bf16.view(), targets.view(), ignore) == k::cross_entropy_forward(widened.view(), targets.view(), ignore));

  Tensor<std::int32_t> all_ignored(Shape{n});
  for (std::int64_t i = 0; i < n; ++i) all_ignored[i] = ignore;
  CHECK(std::isnan(k::cross_entropy_forward(logits.view(), all_ignored.view(), ignore)));
  Tensor<float> dzero(logits.shape());
  k::cross_entropy_backward(logits.view(), all_ignored.view(), ignore, 1.0, dzero.view());
  for (std::size_t i = 0; i < dzero.size(); ++i) REQUIRE(dzero[i] == 0.0f);

  targets[2] = 385;
  CHECK_THROWS_WITH_AS(k::cross_entropy_forward(logits.view(), targets.view(), ignore), doctest::Contains("target 385 of row 2 is outside [0, 385)"),
                       mpt::Error);
  targets[2] = 0;

  // fp64 finite differences, with an upstream gradient of 0.7.
  const std::int64_t cs = 7;
  std::vector<double> x = to_doubles(random_tensor<double>(Shape{n, cs}, rng));
  Tensor<std::int32_t> small_targets(Shape{n});
  const std::int32_t st[] = {1, 6, 0, 7, 3, 7};  // 7 = ignore
  for (std::int64_t i = 0; i < n; ++i) small_targets[i] = st[i];
  auto f = [&] {
    Tensor<double> l = tensor_from(x, Shape{n, cs});
    return 0.7 * k::cross_entropy_forward(l.view(), small_targets.view(), 7);
  };
  Tensor<double> l = tensor_from(x, Shape{n, cs}), dl(Shape{n, cs});
  k::cross_entropy_backward(l.view(), small_targets.view(), 7, 0.7, dl.view());
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(dl[i] == doctest::Approx(numeric_derivative(x, i, f)).epsilon(1e-7).scale(1));
}
