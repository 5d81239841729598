#pragma once
// GELU, erf form as torch.nn.functional.gelu(approximate='none'):
//   gelu(h) = 0.5 h (1 + erf(h / sqrt 2)),
//   gelu'(h) = 0.5 (1 + erf(h / sqrt 2)) + h exp(-h^2 / 2) / sqrt(2 pi).
//
// The SIMD paths do not call erf and exp: with a = |h| (both functions below
// are odd, so one table over a >= 0 serves both signs)
//   gelu(h)  = h/2 + a C(a),        C(a) = erf(a / sqrt 2) / 2,
//   gelu'(h) = 1/2 + sign(h) D(a),  D(a) = C(a) + a exp(-a^2 / 2) / sqrt(2 pi),
// and C, D are piecewise polynomials (detail::PiecewiseTable, fitted by
// tools/fit_gelu_tables.py): one permute per coefficient picks each lane's
// piece, so a vector costs ~8 FMAs + ~8 permutes instead of erf's 22 FMAs and
// exp's 10. Max |error| over a in [0, 10], fp32 Horner included (the tool):
//   AVX-512: C 0.26 eps, D 0.50 eps;  AVX2: C 0.52 eps, D 0.49 eps  (eps = 2^-23),
// so gelu is off by <= a eps / 2 + its own rounding and gelu' by <= eps + its
// rounding (tests/kernels_elementwise derive their tolerances from this).
// Past the fp32 saturation points (C = 1/2 from a = 5.6, D = 1/2 from 6.4) the
// tables return exactly 1/2: gelu(h) = h for h >= 5.6, 0 for h <= -5.6.
//
//   gelu_bias_forward(x, bias, y, preact)
//     x [rows..., N] fp32 / bf16 / double (a GEMM output without its bias),
//     bias [N] fp32 (or double), or a default view {} for none; h = x + bias, rounded to y's type
//     (as a bf16 linear layer's output is under autocast), y = gelu(h).
//     preact (same shape, y's type) receives h for backward, or {} to skip.
//   gelu_forward(x, y)                     no bias, no saved pre-activation
//   gelu_backward(dy, preact, dx, dbias)
//     dx = dy * gelu'(preact); dbias [N] (fp32, or {} to skip) += sum_rows dx,
//     summed deterministically (fixed row chunks, partials in chunk order).

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/simd.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {
namespace detail {
inline constexpr double sqrt1_2 = 0.70710678118654752440;     // 1 / sqrt(2)
inline constexpr double inv_sqrt_2pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
inline constexpr std::size_t gelu_backward_chunk_rows = 32;

template <class C>
C gelu_reference(C h) {
  return C(0.5) * h * (C(1) + std::erf(h * C(sqrt1_2)));
}
template <class C>
C gelu_derivative_reference(C h) {
  return C(0.5) * (C(1) + std::erf(h * C(sqrt1_2))) + h * std::exp(C(-0.5) * h * h) * C(inv_sqrt_2pi);
}

// Scalar reference for one row of n.
template <class C, class In, class Par, class Out>
void gelu_row_scalar(const In* x, const Par* bias, Out* y, Out* preact, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    C h = static_cast<C>(to_float(x[j]));
    if (bias) h += static_cast<C>(bias[j]);
    if constexpr (std::is_same_v<C, float>) h = keep_as<Out>(h);
    if (preact) preact[j] = static_cast<Out>(h);
    y[j] = static_cast<Out>(gelu_reference(h));
  }
}

template <class C, class DY, class H, class DX>
void gelu_backward_row_scalar(const DY* dy, const H* h, DX* dx, std::size_t n, C* dbias_part) {
  for (std::size_t j = 0; j < n; ++j) {
    const C d = static_cast<C>(to_float(dy[j])) * gelu_derivative_reference(static_cast<C>(to_float(h[j])));
    dx[j] = static_cast<DX>(d);
    // The bias gradient sums dx as stored (bf16 under autocast), as PyTorch's linear backward does.
    if (dbias_part) dbias_part[j] += std::is_same_v<C, float> ? keep_as<DX>(float(d)) : d;
  }
}

#if MPT_X86
// gelu_half_erf_avx512: 16 pieces of 0.386206897, degree 5, max |error| 0.255 eps at a = 1.3714
inline constexpr PiecewiseTable<16, 6> gelu_half_erf_avx512{
    2.589285612e+00f, 5.793103218e+00f,
    {0.000000000e+00f, 3.862068951e-01f, 7.724137902e-01f, 1.158620715e+00f, 1.544827580e+00f, 1.931034446e+00f, 2.317241430e+00f, 2.703448296e+00f, 3.089655161e+00f, 3.475862026e+00f, 3.862068892e+00f, 4.248275757e+00f, 4.634482861e+00f, 5.020689487e+00f, 5.406896591e+00f, 5.793103218e+00f},
    {{9.720546193e-03f, 6.519528572e-03f, -5.244331551e-04f, -5.467154086e-03f, -5.634464324e-03f, -2.820971189e-03f, -1.066734258e-04f, 1.066981931e-03f, 1.031893073e-03f, 6.063527544e-04f, 2.628616930e-04f, 8.950884512e-05f, 2.465488797e-05f, 5.585128747e-06f, 1.051470804e-06f, 0.000000000e+00f},
     {7.193465717e-05f, 1.682480983e-02f, 2.271934412e-02f, 1.624919288e-02f, 4.826508928e-03f, -3.542332677e-03f, -6.175794173e-03f, -4.999710713e-03f, -2.851741854e-03f, -1.259732409e-03f, -4.479272466e-04f, -1.308015781e-04f, -3.174658559e-05f, -6.454416507e-06f, -1.105226943e-06f, 0.000000000e+00f},
     {-6.649806350e-02f, -5.250645429e-02f, -1.990338601e-02f, 1.163460873e-02f, 2.795407735e-02f, 2.812078595e-02f, 1.982504874e-02f, 1.085565239e-02f, 4.804480821e-03f, 1.753337448e-03f, 5.337651819e-04f, 1.365560165e-04f, 2.950740054e-05f, 5.404697731e-06f, 8.413672390e-07f, 0.000000000e+00f},
     {3.221837517e-07f, -7.149843127e-02f, -1.143311933e-01f, -1.181187257e-01f, -9.344226122e-02f, -5.969806388e-02f, -3.154036403e-02f, -1.395577472e-02f, -5.210719071e-03f, -1.649714075e-03f, -4.443510843e-04f, -1.020644922e-04f, -2.002661313e-05f, -3.361215704e-06f, -4.830366720e-07f, 0.000000000e+00f},
     {3.989422917e-01f, 3.702723682e-01f, 2.960431576e-01f, 2.038971633e-01f, 1.209733933e-01f, 6.182882935e-02f, 2.722165361e-02f, 1.032429934e-02f, 3.373099724e-03f, 9.493369143e-04f, 2.301623317e-04f, 4.806965444e-05f, 8.648293260e-06f, 1.340337576e-06f, 1.789455126e-07f, 0.000000000e+00f},
     {-1.955863249e-11f, 1.503282636e-01f, 2.800652981e-01f, 3.766945899e-01f, 4.388060272e-01f, 4.732606113e-01f, 4.897547066e-01f, 4.965687990e-01f, 4.989980459e-01f, 4.997453988e-01f, 4.999437928e-01f, 4.999892414e-01f, 4.999982119e-01f, 4.999997318e-01f, 4.999999702e-01f, 5.000000000e-01f}}};
// gelu_derivative_avx512: 16 pieces of 0.44137931, degree 6, max |error| 0.501 eps at a = 2.8562
inline constexpr PiecewiseTable<16, 7> gelu_derivative_avx512{
    2.265625000e+00f, 6.620689869e+00f,
    {0.000000000e+00f, 4.413793087e-01f, 8.827586174e-01f, 1.324137926e+00f, 1.765517235e+00f, 2.206896544e+00f, 2.648275852e+00f, 3.089655161e+00f, 3.531034470e+00f, 3.972413778e+00f, 4.413793087e+00f, 4.855172634e+00f, 5.296551704e+00f, 5.737931252e+00f, 6.179310322e+00f, 6.620689869e+00f},
    {{-7.175666280e-03f, -2.150588483e-02f, -1.420379058e-02f, 5.746634211e-03f, 1.118487678e-02f, 3.646835452e-03f, -2.165425103e-03f, -2.260179492e-03f, -6.550740800e-04f, 1.132309990e-04f, 1.665577438e-04f, 7.146999269e-05f, 1.905380668e-05f, 3.600116315e-06f, 5.077212677e-07f, 0.000000000e+00f},
     {6.196169183e-02f, 2.588227019e-02f, -2.756265365e-02f, -3.776345775e-02f, -1.116257720e-02f, 9.529690258e-03f, 1.013114117e-02f, 3.397817491e-03f, -4.096988123e-04f, -9.025952895e-04f, -4.518255882e-04f, -1.387672091e-04f, -3.018553252e-05f, -4.909013569e-06f, -6.135059607e-07f, 0.000000000e+00f},
     {-3.038648865e-04f, 1.057846174e-01f, 9.973329306e-02f, 1.637890749e-02f, -4.058184475e-02f, -3.808464482e-02f, -1.315359119e-02f, 1.788550406e-03f, 4.180014133e-03f, 2.310380107e-03f, 7.909823908e-04f, 1.930010767e-04f, 3.537175871e-05f, 4.999817520e-06f, 5.536659842e-07f, 0.000000000e+00f},
     {-2.659402788e-01f, -1.613015085e-01f, 3.815532848e-02f, 1.438548863e-01f, 1.133901477e-01f, 3.711274266e-02f, -8.162815124e-03f, -1.591306925e-02f, -9.414108470e-03f, -3.549406072e-03f, -9.668050334e-04f, -1.995729544e-04f, -3.198627746e-05f, -4.037631243e-06f, -4.051514964e-07f, 0.000000000e+00f},
     {-6.152386050e-07f, -3.039232194e-01f, -3.841161132e-01f, -2.469546944e-01f, -6.543782353e-02f, 3.355714306e-02f, 4.774878919e-02f, 2.889926173e-02f, 1.169868466e-02f, 3.495290177e-03f, 8.019324741e-04f, 1.442078938e-04f, 2.057415441e-05f, 2.347329882e-06f, 2.153438317e-07f, 0.000000000e+00f},
     {7.978845835e-01f, 6.533229351e-01f, 3.298508525e-01f, 4.095191509e-02f, -9.378300607e-02f, -1.002903730e-01f, -5.999383703e-02f, -2.545330115e-02f, -8.191165514e-03f, -2.058553975e-03f, -4.103192477e-04f, -6.547421071e-05f, -8.414952390e-06f, -8.747745142e-07f, -7.377919786e-08f, 0.000000000e+00f},
     {4.378749099e-11f, 3.302724957e-01f, 5.498434901e-01f, 6.271131039e-01f, 6.094870567e-01f, 5.634474158e-01f, 5.276461244e-01f, 5.094197989e-01f, 5.025560260e-01f, 5.005578399e-01f, 5.000985265e-01f, 5.000141263e-01f, 5.000016689e-01f, 5.000001788e-01f, 5.000000000e-01f, 5.000000000e-01f}}};
// gelu_half_erf_avx2: 8 pieces of 0.861538462, degree 6, max |error| 0.521 eps at a = 1.2689
inline constexpr PiecewiseTable<8, 7> gelu_half_erf_avx2{
    1.160714269e+00f, 6.030769348e+00f,
    {0.000000000e+00f, 8.615384698e-01f, 1.723076940e+00f, 2.584615469e+00f, 3.446153879e+00f, 4.307692528e+00f, 5.169230938e+00f, 6.030769348e+00f},
    {{-1.672833110e-03f, -2.588461852e-03f, 1.198553597e-03f, 3.789328330e-04f, -1.823820494e-04f, -4.034115773e-05f, -2.310545597e-06f, 0.000000000e+00f},
     {1.091535017e-02f, -1.874846988e-03f, -4.439379554e-03f, 8.054131758e-04f, 6.433359231e-04f, 7.866613305e-05f, 3.354071850e-06f, 0.000000000e+00f},
     {-2.594897232e-04f, 2.229753509e-02f, 2.102866129e-04f, -5.604238715e-03f, -1.341630938e-03f, -1.038941264e-04f, -3.184181878e-06f, 0.000000000e+00f},
     {-6.645535678e-02f, -1.184388250e-02f, 2.966032550e-02f, 1.339060161e-02f, 1.906678779e-03f, 1.085453769e-04f, 2.651205023e-06f, 0.000000000e+00f},
     {-1.963203431e-06f, -1.185702980e-01f, -7.788931578e-02f, -1.826750487e-02f, -1.812895061e-03f, -8.030391473e-05f, -1.626422659e-06f, 0.000000000e+00f},
     {3.989422917e-01f, 2.752539814e-01f, 9.040702134e-02f, 1.413541660e-02f, 1.052154694e-03f, 3.729379750e-05f, 6.299480901e-07f, 0.000000000e+00f},
     {5.311533990e-10f, 3.055292368e-01f, 4.575626850e-01f, 4.951256216e-01f, 4.997156858e-01f, 4.999917448e-01f, 4.999998808e-01f, 5.000000000e-01f}}};
// gelu_derivative_avx2: 8 pieces of 0.984615385, degree 8, max |error| 0.490 eps at a = 3.4398
inline constexpr PiecewiseTable<8, 9> gelu_derivative_avx2{
    1.015625000e+00f, 6.892307758e+00f,
    {0.000000000e+00f, 9.846153855e-01f, 1.969230771e+00f, 2.953846216e+00f, 3.938461542e+00f, 4.923077106e+00f, 5.907692432e+00f, 6.892307758e+00f},
    {{2.242042916e-03f, 4.404320207e-04f, -5.100216367e-04f, 2.780066570e-04f, -7.145111886e-05f, 5.068943210e-06f, 5.857956467e-07f, 0.000000000e+00f},
     {-1.140351407e-02f, 6.546918768e-03f, -2.428881126e-03f, 2.053314529e-04f, 1.221088314e-04f, -2.294936894e-05f, -1.196052722e-06f, 0.000000000e+00f},
     {8.811543230e-04f, -9.506891482e-03f, 8.392223157e-03f, -2.654349897e-03f, 9.576980665e-05f, 5.937402966e-05f, 1.683074743e-06f, 0.000000000e+00f},
     {5.960698798e-02f, -3.535371646e-02f, 1.156339305e-03f, 5.388479214e-03f, -9.353697533e-04f, -1.099166038e-04f, -2.147707391e-06f, 0.000000000e+00f},
     {3.511834075e-05f, 8.341750503e-02f, -4.529463127e-02f, -1.156405429e-03f, 2.466810634e-03f, 1.513351890e-04f, 2.209080776e-06f, 0.000000000e+00f},
     {-2.659641802e-01f, 7.560090721e-02f, 7.754994184e-02f, -1.614694111e-02f, -3.873365466e-03f, -1.530705194e-04f, -1.717363830e-06f, 0.000000000e+00f},
     {7.208581820e-08f, -3.665628731e-01f, -6.901287008e-03f, 3.548412398e-02f, 3.873136593e-03f, 1.084744290e-04f, 9.608036180e-07f, 0.000000000e+00f},
     {7.978845835e-01f, 2.531948388e-01f, -1.077722833e-01f, -3.419485688e-02f, -2.308546100e-03f, -4.842285489e-05f, -3.462981795e-07f, 0.000000000e+00f},
     {-1.984067077e-11f, 5.795066357e-01f, 5.885521770e-01f, 5.134498477e-01f, 5.006319284e-01f, 5.000103116e-01f, 5.000000596e-01f, 5.000000000e-01f}}};

namespace avx512 {
inline constexpr const auto& gelu_half_erf = gelu_half_erf_avx512;
inline constexpr const auto& gelu_derivative = gelu_derivative_avx512;
}  // namespace avx512
namespace avx512_bf16 {
using avx512::gelu_derivative;
using avx512::gelu_half_erf;
}  // namespace avx512_bf16
namespace avx2 {
inline constexpr const auto& gelu_half_erf = gelu_half_erf_avx2;
inline constexpr const auto& gelu_derivative = gelu_derivative_avx2;
}  // namespace avx2

#define MPT_GELU_KERNELS(TARGET, ISA)                                                                 \
  namespace ISA {                                                                                     \
  /* gelu and gelu' of U vectors at once, interleaved (long dependency chains overlap). */            \
  template <std::size_t U>                                                                            \
  TARGET inline void gelu_n(vf (&h)[U]) noexcept {                                                    \
    vf a[U], c[U];                                                                                    \
    for (std::size_t u = 0; u < U; ++u) a[u] = abs(h[u]);                                            \
    piecewise_n(gelu_half_erf, a, c);                                                                 \
    for (std::size_t u = 0; u < U; ++u) h[u] = fmadd(a[u], c[u], h[u] * set1(0.5f));                  \
  }                                                                                                   \
  template <std::size_t U>                                                                            \
  TARGET inline void gelu_derivative_n(vf (&h)[U]) noexcept {                                         \
    vf a[U], dd[U];                                                                                   \
    for (std::size_t u = 0; u < U; ++u) a[u] = abs(h[u]);                                            \
    piecewise_n(gelu_derivative, a, dd);                                                              \
    for (std::size_t u = 0; u < U; ++u) h[u] = set1(0.5f) + times_sign_of(dd[u], h[u]);                  \
  }                                                                                                   \
  template <class In, class Out>                                                                      \
  TARGET void gelu_row(const In* x, const float* bias, Out* y, Out* preact, std::size_t n) {          \
    /* Two vectors per step: erf is a long dependency chain, two overlap. */                          \
    /* h = x + bias rounded to Out; bf16 x without bias is already exact. */                          \
    const bool round_h = std::is_same_v<Out, bf16> && !(std::is_same_v<In, bf16> && bias == nullptr); \
    std::size_t j = 0;                                                                                \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                      \
      vf h[2];                                                                                        \
      for (std::size_t u = 0; u < 2; ++u) {                                                           \
        h[u] = load(x + j + u * lanes);                                                               \
        if (bias) h[u] = h[u] + load(bias + j + u * lanes);                                           \
        if (round_h) h[u] = round_to_bf16(h[u]);                                                      \
        if (preact) store(preact + j + u * lanes, h[u]);                                              \
      }                                                                                               \
      gelu_n(h);                                                                                      \
      store(y + j, h[0]);                                                                             \
      store(y + j + lanes, h[1]);                                                                     \
    }                                                                                                 \
    for (; j < n; j += lanes) {                                                                       \
      const std::size_t m = n - j;                                                                    \
      vf h = load(x + j, m);                                                                          \
      if (bias) h = h + load(bias + j, m);                                                            \
      if (round_h) h = round_to_bf16(h);                                                              \
      if (preact) store(preact + j, h, m);                                                            \
      vf g[1] = {h};                                                                                  \
      gelu_n(g);                                                                                      \
      store(y + j, g[0], m);                                                                          \
    }                                                                                                 \
  }                                                                                                   \
  template <class DY, class H, class DX>                                                              \
  TARGET void gelu_backward_row(const DY* dy, const H* h, DX* dx, std::size_t n, float* dbias_part) { \
    /* dbias sums dx as stored: store_kept narrows once and returns the kept value. */                \
    std::size_t j = 0;                                                                                \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                      \
      vf g[2] = {load(h + j), load(h + j + lanes)};                                                   \
      gelu_derivative_n(g);                                                                           \
      const vf d0 = store_kept(dx + j, load(dy + j) * g[0]);                                          \
      const vf d1 = store_kept(dx + j + lanes, load(dy + j + lanes) * g[1]);                          \
      if (dbias_part) {                                                                               \
        store(dbias_part + j, load(dbias_part + j) + d0);                                             \
        store(dbias_part + j + lanes, load(dbias_part + j + lanes) + d1);                             \
      }                                                                                               \
    }                                                                                                 \
    for (; j < n; j += lanes) {                                                                       \
      const std::size_t m = n - j;                                                                    \
      vf g[1] = {load(h + j, m)};                                                                     \
      gelu_derivative_n(g);                                                                           \
      const vf d = store_kept(dx + j, load(dy + j, m) * g[0], m);                                     \
      if (dbias_part) store(dbias_part + j, load(dbias_part + j, m) + d, m);                          \
    }                                                                                                 \
  }                                                                                                   \
  }  // namespace ISA
MPT_GELU_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_GELU_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_GELU_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_GELU_KERNELS
#endif  // MPT_X86
}  // namespace detail

template <class In, class Par, class Out, class Pre>
void gelu_bias_forward(TensorView<In> x, TensorView<Par> bias, TensorView<Out> y, TensorView<Pre> preact) {
  using I = std::remove_const_t<In>;
  using P = std::remove_const_t<Par>;
  using C = std::conditional_t<std::is_same_v<I, double> || std::is_same_v<Out, double>, double, float>;
  static_assert(std::is_same_v<Pre, Out>, "gelu_bias_forward: the saved pre-activation has the output's type");
  if (x.rank() < 1) throw_error("gelu_bias_forward: x must have at least one axis");
  const std::size_t n = static_cast<std::size_t>(x.dim(-1));
  const std::size_t rows = n == 0 ? 0 : x.size() / n;
  check_shape("gelu_bias_forward", "y", y.shape(), x.shape());
  if (detail::present(bias)) check_shape("gelu_bias_forward", "bias", bias.shape(), Shape{std::int64_t(n)});
  if (detail::present(preact)) check_shape("gelu_bias_forward", "preact", preact.shape(), x.shape());
  const P* b = detail::present(bias) ? bias.data() : nullptr;
  const Isa isa = detail::simd_isa_for<I, Out>();
  detail::for_each_row_chunk(rows, detail::rows_per_task(n * (sizeof(I) + 2 * sizeof(Out))), [&](std::size_t rb, std::size_t re) {
    for (std::size_t r = rb; r < re; ++r) {
      const I* xr = x.data() + r * n;
      Out* yr = y.data() + r * n;
      Out* pr = detail::present(preact) ? preact.data() + r * n : nullptr;
      detail::prefetch(xr, n * sizeof(I), n * sizeof(I));  // the next row
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<I> &&
                    detail::simd_storage<Out>) {
#if MPT_X86
        if (isa == Isa::avx512_bf16) { detail::avx512_bf16::gelu_row(xr, b, yr, pr, n); continue; }
        if (isa >= Isa::avx512) { detail::avx512::gelu_row(xr, b, yr, pr, n); continue; }
        if (isa == Isa::avx2) { detail::avx2::gelu_row(xr, b, yr, pr, n); continue; }
#endif
      }
      detail::gelu_row_scalar<C>(xr, b, yr, pr, n);
    }
  });
}

template <class In, class Out>
void gelu_forward(TensorView<In> x, TensorView<Out> y) {
  using B = std::conditional_t<std::is_same_v<std::remove_const_t<In>, double> || std::is_same_v<Out, double>, double, float>;
  gelu_bias_forward(x, TensorView<const B>{}, y, TensorView<Out>{});
}

template <class DY, class H, class DX, class Grad>
void gelu_backward(TensorView<DY> dy, TensorView<H> preact, TensorView<DX> dx, TensorView<Grad> dbias) {
  using D = std::remove_const_t<DY>;
  using HH = std::remove_const_t<H>;
  using C = std::conditional_t<std::is_same_v<HH, double> || std::is_same_v<DX, double>, double, float>;
  static_assert(std::is_same_v<Grad, C>, "gelu_backward: dbias is fp32 (double when the pre-activation is double)");
  if (preact.rank() < 1) throw_error("gelu_backward: preact must have at least one axis");
  const std::size_t n = static_cast<std::size_t>(preact.dim(-1));
  const std::size_t rows = n == 0 ? 0 : preact.size() / n;
  check_shape("gelu_backward", "dy", dy.shape(), preact.shape());
  check_shape("gelu_backward", "dx", dx.shape(), preact.shape());
  const bool want_dbias = detail::present(dbias);
  if (want_dbias) check_shape("gelu_backward", "dbias", dbias.shape(), Shape{std::int64_t(n)});
  const std::size_t chunk = detail::gelu_backward_chunk_rows;
  const std::size_t chunks = (rows + chunk - 1) / chunk;
  C* partials = detail::thread_scratch<C, detail::ScratchUse::partials>(want_dbias ? chunks * n : 0);
  if (want_dbias) std::fill(partials, partials + chunks * n, C(0));
  const Isa isa = detail::simd_isa_for<D, HH, DX>();
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t rb, std::size_t re) {
    C* part = want_dbias ? partials + (rb / chunk) * n : nullptr;
    for (std::size_t r = rb; r < re; ++r) {
      const D* dyr = dy.data() + r * n;
      const HH* hr = preact.data() + r * n;
      DX* dxr = dx.data() + r * n;
      detail::prefetch(dyr, n * sizeof(D), n * sizeof(D));  // the next row
      detail::prefetch(hr, n * sizeof(HH), n * sizeof(HH));
      if constexpr (std::is_same_v<C, float> && detail::simd_storage<D> && detail::simd_storage<HH> &&
                    detail::simd_storage<DX>) {
#if MPT_X86
        if (isa == Isa::avx512_bf16) { detail::avx512_bf16::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
        if (isa >= Isa::avx512) { detail::avx512::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
        if (isa == Isa::avx2) { detail::avx2::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
#endif
      }
      detail::gelu_backward_row_scalar<C>(dyr, hr, dxr, n, part);
    }
  });
  if (!want_dbias) return;
  // Chunk partials in chunk order (chunk 0 holds the running sums): thread-count independent.
  for (std::size_t c = 1; c < chunks; ++c)
    for (std::size_t j = 0; j < n; ++j) partials[j] += partials[c * n + j];
  for (std::size_t j = 0; j < n && chunks > 0; ++j) dbias[j] += partials[j];
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
