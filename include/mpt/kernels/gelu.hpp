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
// piece (32 pieces, degree 4 for C and 5 for D on AVX-512), so a vector costs
// ~8 FMA-class instructions + 5-6 permutes (other ports) instead of erf's 22
// FMAs and exp's 10. Max |error| over a in [0, 10], fp32 Horner included (the tool):
//   AVX-512: C 0.27 eps, D 0.50 eps;  AVX2: C 0.52 eps, D 0.51 eps  (eps = 2^-23),
// so gelu is off by <= 0.6 a eps + its own rounding and gelu' by <= 0.6 eps +
// its rounding (tests/kernels derive their tolerances from this).
// Past the fp32 saturation points (C = 1/2 from a = 5.6, D = 1/2 from 6.4) the
// tables return exactly 1/2: gelu(h) = h for h >= 5.6, 0 for h <= -5.6; a NaN
// pre-activation gives NaN for both, as PyTorch.
//
//   gelu_bias_forward(x, bias, y, preact)
//     x [rows..., N] fp32 / bf16 / double (a GEMM output without its bias),
//     bias [N] fp32 (or double), or a default view {} for none; h = x + bias, rounded to y's type
//     (as a bf16 linear layer's output is under autocast), y = gelu(h).
//     preact (same shape, y's type) receives h for backward, or {} to skip.
//   gelu_forward(x, y)                     no bias, no saved pre-activation
//   gelu_backward(dy, preact, dx, dbias)
//     dx = dy * gelu'(preact); dbias [N] (fp32, or {} to skip) += sum_rows dx,
//     summed deterministically (fixed row chunks, partials in chunk order;
//     the SIMD paths add rows in pairs, (r0 + r1), into a chunk's partials).

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/rows.hpp>
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
inline constexpr double sqrt1_2 = 0.70710678118654752440;       // 1 / sqrt(2)
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
// gelu_half_erf_avx512: 32 pieces of 0.18360655, degree 4, max |error| 0.265 eps at a = 0.9955
inline constexpr PiecewiseTable<32, 5> gelu_half_erf_avx512{
    5.446428776e+00f,
    1.836065501e-01f,
    5.691802979e+00f,
    {{2.283594571e-03f,  8.881814778e-03f,  1.631321386e-02f,  2.117173560e-02f,  2.289654128e-02f,  2.156622708e-02f,  1.781157032e-02f,
      1.260511205e-02f,  7.001338992e-03f,  1.904539997e-03f,  -2.080446342e-03f, -4.694516771e-03f, -5.981178489e-03f, -6.188882980e-03f,
      -5.658749025e-03f, -4.729387350e-03f, -3.675617045e-03f, -2.683197847e-03f, -1.851651119e-03f, -1.213259879e-03f, -7.571870228e-04f,
      -4.511553852e-04f, -2.571023069e-04f, -1.403329807e-04f, -7.344866026e-05f, -3.689644291e-05f, -1.780322418e-05f, -8.256773071e-06f,
      -3.682662964e-06f, -1.580360390e-06f, -6.527940855e-07f, 0.000000000e+00f},
     {-6.666924059e-02f, -6.307087839e-02f, -5.369570479e-02f, -3.975632042e-02f, -2.338539064e-02f, -6.892173551e-03f, 7.683979347e-03f,
      1.890716515e-02f,  2.610103786e-02f,  2.932015248e-02f,  2.917899564e-02f,  2.660910040e-02f,  2.261659689e-02f,  1.809382811e-02f,
      1.371027995e-02f,  9.881147183e-03f,  6.793865003e-03f,  4.466200713e-03f,  2.811935730e-03f,  1.697821543e-03f,  9.841375286e-04f,
      5.481106928e-04f,  2.935187076e-04f,  1.512216695e-04f,  7.499270578e-05f,  3.581253259e-05f,  1.647481440e-05f,  7.303196981e-06f,
      3.120560450e-06f,  1.285537792e-06f,  5.106970207e-07f,  0.000000000e+00f},
     {5.403269370e-06f,  -3.601198643e-02f, -6.847249717e-02f, -9.440735728e-02f, -1.118671075e-01f, -1.201516092e-01f, -1.197808459e-01f,
      -1.122457832e-01f, -9.962245077e-02f, -8.415196836e-02f, -6.787903607e-02f, -5.240847543e-02f, -3.879917786e-02f, -2.757886425e-02f,
      -1.884135045e-02f, -1.238184702e-02f, -7.832196541e-03f, -4.771348089e-03f, -2.800608752e-03f, -1.584456768e-03f, -8.642965113e-04f,
      -4.546917626e-04f, -2.307515097e-04f, -1.129881275e-04f, -5.338979463e-05f, -2.434938506e-05f, -1.071966562e-05f, -4.556070053e-06f,
      -1.869657922e-06f, -7.408639249e-07f, -2.835024020e-07f, 0.000000000e+00f},
     {3.989422321e-01f, 3.922739625e-01f, 3.729310334e-01f, 3.427890837e-01f, 3.046385050e-01f, 2.617591918e-01f, 2.174595296e-01f, 1.746683866e-01f,
      1.356467605e-01f, 1.018506736e-01f, 7.393968850e-02f, 5.189799517e-02f, 3.521946818e-02f, 2.310862951e-02f, 1.465968881e-02f, 8.991546929e-03f,
      5.332160275e-03f, 3.057250287e-03f, 1.694797538e-03f, 9.083717596e-04f, 4.707261396e-04f, 2.358478232e-04f, 1.142494802e-04f, 5.351005166e-05f,
      2.423121441e-05f, 1.060898012e-05f, 4.490871561e-06f, 1.838002731e-06f, 7.273109190e-07f, 2.782610409e-07f, 1.029302368e-07f, 0.000000000e+00f},
     {-6.647906531e-11f, 7.283893973e-02f, 1.432699710e-01f, 2.091213465e-01f, 2.686554790e-01f, 3.206991255e-01f, 3.646907508e-01f,
      4.006468058e-01f,  4.290635884e-01f, 4.507794976e-01f, 4.668260217e-01f, 4.782913029e-01f, 4.862124324e-01f, 4.915041029e-01f,
      4.949222803e-01f,  4.970572889e-01f, 4.983467460e-01f, 4.990997612e-01f, 4.995249808e-01f, 4.997571409e-01f, 4.998797178e-01f,
      4.999423027e-01f,  4.999732077e-01f, 4.999879301e-01f, 4.999947548e-01f, 4.999977946e-01f, 4.999991059e-01f, 4.999996424e-01f,
      4.999998510e-01f,  4.999999404e-01f, 4.999999702e-01f, 5.000000000e-01f}}};
// gelu_derivative_avx512: 32 pieces of 0.209836066, degree 5, max |error| 0.497 eps at a = 4.2644
inline constexpr PiecewiseTable<32, 6> gelu_derivative_avx512{
    4.765625000e+00f,
    2.098360658e-01f,
    6.504918098e+00f,
    {{5.924081802e-02f,  5.117497221e-02f,  2.887870558e-02f,  6.960756727e-04f,  -2.404249087e-02f, -3.836329281e-02f, -3.994530439e-02f,
      -3.113758191e-02f, -1.709706895e-02f, -3.253237111e-03f, 6.660385523e-03f,  1.134903915e-02f,  1.155196037e-02f,  9.041551501e-03f,
      5.637777504e-03f,  2.610446885e-03f,  5.314326263e-04f,  -5.690901889e-04f, -9.419932612e-04f, -8.986577741e-04f, -6.873253151e-04f,
      -4.571502213e-04f, -2.734601439e-04f, -1.497218764e-04f, -7.582052058e-05f, -3.575809023e-05f, -1.578086813e-05f, -6.539948572e-06f,
      -2.551839316e-06f, -9.396009659e-07f, -3.269296656e-07f, 0.000000000e+00f},
     {9.286068234e-05f,  5.953818560e-02f,  1.024248898e-01f,  1.180336028e-01f,  1.051350087e-01f,  7.133221626e-02f,  2.920566872e-02f,
      -8.772192523e-03f, -3.427525237e-02f, -4.473866150e-02f, -4.252393916e-02f, -3.263852373e-02f, -2.031111531e-02f, -9.360039607e-03f,
      -1.648485661e-03f, 2.611768432e-03f,  4.171540961e-03f,  4.076830577e-03f,  3.235830227e-03f,  2.246891847e-03f,  1.408484764e-03f,
      8.103502914e-04f,  4.321654269e-04f,  2.150325599e-04f,  1.002772915e-04f,  4.397273005e-05f,  1.817761586e-05f,  7.097652997e-06f,
      2.621789463e-06f,  9.173639341e-07f,  3.043819277e-07f,  0.000000000e+00f},
     {-2.659669220e-01f, -2.402480543e-01f, -1.703661531e-01f, -7.543180883e-02f, 2.034347877e-02f,  9.562574327e-02f,  1.379508972e-01f,
      1.457692683e-01f,  1.264999509e-01f,  9.215522557e-02f,  5.468668416e-02f,  2.274409868e-02f,  5.072968197e-04f,  -1.172875054e-02f,
      -1.605705172e-02f, -1.539400127e-02f, -1.236991305e-02f, -8.814727888e-03f, -5.714346189e-03f, -3.417362925e-03f, -1.901483396e-03f,
      -9.899972938e-04f, -4.842261551e-04f, -2.231562976e-04f, -9.711491293e-05f, -3.997943713e-05f, -1.559078191e-05f, -5.765989954e-06f,
      -2.024250762e-06f, -6.751209867e-07f, -2.140521076e-07f, 0.000000000e+00f},
     {1.229286823e-07f,  -1.619753838e-01f, -2.931206524e-01f, -3.711753488e-01f, -3.879361451e-01f, -3.499287665e-01f, -2.745377719e-01f,
      -1.835523546e-01f, -9.672834724e-02f, -2.744845301e-02f, 1.866621338e-02f,  4.259552807e-02f,  4.936614260e-02f,  4.534956813e-02f,
      3.626415133e-02f,  2.617829666e-02f,  1.737224124e-02f,  1.070967037e-02f,  6.174394395e-03f,  3.344072262e-03f,  1.706962823e-03f,
      8.231574902e-04f,  3.757093218e-04f,  1.625398581e-04f,  6.672847667e-05f,  2.602066161e-05f,  9.645463251e-06f,  3.401047252e-06f,
      1.141381972e-06f,  3.647433289e-07f,  1.110355754e-07f,  0.000000000e+00f},
     {7.978845835e-01f,  7.633272409e-01f,  6.662852764e-01f,  5.247920156e-01f,  3.633857667e-01f,  2.068926841e-01f,  7.492474467e-02f,
      -2.136807516e-02f, -7.975187898e-02f, -1.050476506e-01f, -1.060621068e-01f, -9.250231832e-02f, -7.271584123e-02f, -5.257258192e-02f,
      -3.535299376e-02f, -2.226597816e-02f, -1.319480781e-02f, -7.380861323e-03f, -3.906359430e-03f, -1.959593501e-03f, -9.330017492e-04f,
      -4.220769915e-04f, -1.815819851e-04f, -7.434235886e-05f, -2.898280763e-05f, -1.076470198e-05f, -3.810705039e-06f, -1.286200018e-06f,
      -4.140456724e-07f, -1.271579748e-07f, -3.726482234e-08f, 0.000000000e+00f},
     {-2.203161265e-12f, 1.649918258e-01f, 3.159491718e-01f, 4.414884746e-01f, 5.347964764e-01f, 5.943478346e-01f, 6.233595610e-01f,
      6.283084154e-01f,  6.170603037e-01f, 5.971624255e-01f, 5.746749640e-01f, 5.536670089e-01f, 5.362837911e-01f, 5.231689215e-01f,
      5.140111446e-01f,  5.080401301e-01f, 5.043843985e-01f, 5.022745132e-01f, 5.011235476e-01f, 5.005287528e-01f, 5.002372265e-01f,
      5.001015067e-01f,  5.000414848e-01f, 5.000161529e-01f, 5.000060201e-01f, 5.000021458e-01f, 5.000007153e-01f, 5.000002384e-01f,
      5.000000596e-01f,  5.000000000e-01f, 5.000000000e-01f, 5.000000000e-01f}}};
// gelu_half_erf_avx2: 8 pieces of 0.86153847, degree 6, max |error| 0.521 eps at a = 1.2689
inline constexpr PiecewiseTable<8, 7> gelu_half_erf_avx2{
    1.160714269e+00f,
    8.615384698e-01f,
    6.030769348e+00f,
    {{-1.672833110e-03f, -2.588461852e-03f, 1.198553597e-03f, 3.789328039e-04f, -1.823820494e-04f, -4.034115045e-05f, -2.310543096e-06f,
      0.000000000e+00f},
     {1.091535017e-02f, -1.874846988e-03f, -4.439379554e-03f, 8.054130594e-04f, 6.433359231e-04f, 7.866617671e-05f, 3.354073442e-06f,
      0.000000000e+00f},
     {-2.594897524e-04f, 2.229753509e-02f, 2.102866129e-04f, -5.604238715e-03f, -1.341630938e-03f, -1.038941991e-04f, -3.184184607e-06f,
      0.000000000e+00f},
     {-6.645535678e-02f, -1.184388250e-02f, 2.966032550e-02f, 1.339060254e-02f, 1.906678779e-03f, 1.085454496e-04f, 2.651206614e-06f,
      0.000000000e+00f},
     {-1.963203431e-06f, -1.185702980e-01f, -7.788931578e-02f, -1.826750673e-02f, -1.812895061e-03f, -8.030397294e-05f, -1.626423568e-06f,
      0.000000000e+00f},
     {3.989422917e-01f, 2.752539814e-01f, 9.040702134e-02f, 1.413541846e-02f, 1.052154694e-03f, 3.729382661e-05f, 6.299484880e-07f, 0.000000000e+00f},
     {5.311534546e-10f, 3.055292368e-01f, 4.575626850e-01f, 4.951256216e-01f, 4.997156858e-01f, 4.999917448e-01f, 4.999998808e-01f,
      5.000000000e-01f}}};
// gelu_derivative_avx2: 8 pieces of 0.984615386, degree 8, max |error| 0.510 eps at a = 3.4320
inline constexpr PiecewiseTable<8, 9> gelu_derivative_avx2{1.015625000e+00f,
                                                           9.846153855e-01f,
                                                           6.892307758e+00f,
                                                           {{2.242042916e-03f, 4.404320207e-04f, -5.100216367e-04f, 2.780066861e-04f,
                                                             -7.145111886e-05f, 5.068945029e-06f, 5.857984888e-07f, 0.000000000e+00f},
                                                            {-1.140351407e-02f, 6.546918768e-03f, -2.428881126e-03f, 2.053313219e-04f,
                                                             1.221088314e-04f, -2.294937622e-05f, -1.196053972e-06f, 0.000000000e+00f},
                                                            {8.811544976e-04f, -9.506891482e-03f, 8.392223157e-03f, -2.654350130e-03f,
                                                             9.576979937e-05f, 5.937405513e-05f, 1.683073265e-06f, 0.000000000e+00f},
                                                            {5.960698798e-02f, -3.535371646e-02f, 1.156339305e-03f, 5.388480145e-03f,
                                                             -9.353697533e-04f, -1.099166693e-04f, -2.147708301e-06f, 0.000000000e+00f},
                                                            {3.511835894e-05f, 8.341750503e-02f, -4.529463127e-02f, -1.156407059e-03f,
                                                             2.466810634e-03f, 1.513352909e-04f, 2.209082595e-06f, 0.000000000e+00f},
                                                            {-2.659641802e-01f, 7.560090721e-02f, 7.754994184e-02f, -1.614693925e-02f,
                                                             -3.873365466e-03f, -1.530706359e-04f, -1.717364967e-06f, 0.000000000e+00f},
                                                            {7.208591768e-08f, -3.665628731e-01f, -6.901287008e-03f, 3.548412398e-02f,
                                                             3.873136593e-03f, 1.084745163e-04f, 9.608041864e-07f, 0.000000000e+00f},
                                                            {7.978845835e-01f, 2.531948388e-01f, -1.077722833e-01f, -3.419486061e-02f,
                                                             -2.308546100e-03f, -4.842289491e-05f, -3.462984068e-07f, 0.000000000e+00f},
                                                            {-1.984068812e-11f, 5.795066357e-01f, 5.885521770e-01f, 5.134498477e-01f,
                                                             5.006319284e-01f, 5.000103116e-01f, 5.000000596e-01f, 5.000000000e-01f}}};

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

#define MPT_GELU_KERNELS(TARGET, ISA)                                                                                                              \
  namespace ISA {                                                                                                                                  \
  /* gelu and gelu' of U vectors at once, interleaved (long dependency chains overlap); always */                                                  \
  /* inlined: a call would spill the vectors and (vzeroupper) the upper lanes. */                                                                  \
  template <std::size_t U>                                                                                                                         \
  TARGET __attribute__((always_inline)) inline void gelu_n(vf (&h)[U]) noexcept {                                                                  \
    vf a[U], c[U];                                                                                                                                 \
    for (std::size_t u = 0; u < U; ++u) a[u] = abs(h[u]);                                                                                          \
    piecewise_n(gelu_half_erf, a, c);                                                                                                              \
    for (std::size_t u = 0; u < U; ++u) h[u] = fmadd(a[u], c[u], h[u] * set1(0.5f));                                                               \
  }                                                                                                                                                \
  template <std::size_t U>                                                                                                                         \
  TARGET __attribute__((always_inline)) inline void gelu_derivative_n(vf (&h)[U]) noexcept {                                                       \
    vf a[U], dd[U];                                                                                                                                \
    for (std::size_t u = 0; u < U; ++u) a[u] = abs(h[u]);                                                                                          \
    piecewise_n(gelu_derivative, a, dd);                                                                                                           \
    for (std::size_t u = 0; u < U; ++u) h[u] = set1(0.5f) + times_sign_of(dd[u], h[u]);                                                            \
  }                                                                                                                                                \
  /* h = x + bias rounded to Out (bf16 x without bias is already exact), saved to preact if asked; */                                              \
  /* store_kept rounds and saves with one narrowing. */                                                                                            \
  template <bool Bias, bool Preact, class In, class Out>                                                                                           \
  TARGET __attribute__((always_inline)) inline vf gelu_input(const In* x, const float* bias, Out* preact, std::size_t m) noexcept {                \
    constexpr bool round_h = std::is_same_v<Out, bf16> && !(std::is_same_v<In, bf16> && !Bias);                                                    \
    vf h = m >= lanes ? load(x) : load(x, m);                                                                                                      \
    if constexpr (Bias) h = h + (m >= lanes ? load(bias) : load(bias, m));                                                                         \
    if constexpr (Preact)                                                                                                                          \
      return m >= lanes ? store_kept(preact, h) : store_kept(preact, h, m);                                                                        \
    else if constexpr (round_h)                                                                                                                    \
      return round_to_bf16(h);                                                                                                                     \
    else                                                                                                                                           \
      return h;                                                                                                                                    \
  }                                                                                                                                                \
  /* The flags are template parameters so the loop carries no branches. */                                                                         \
  template <bool Bias, bool Preact, class In, class Out>                                                                                           \
  TARGET void gelu_row_with(const In* x, const float* bias, Out* y, Out* preact, std::size_t n) {                                                  \
    std::size_t j = 0;                                                                                                                             \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                                                                   \
      vf h[2];                                                                                                                                     \
      for (std::size_t u = 0; u < 2; ++u) h[u] = gelu_input<Bias, Preact>(x + j + u * lanes, bias + j + u * lanes, preact + j + u * lanes, lanes); \
      gelu_n(h);                                                                                                                                   \
      store(y + j, h[0]);                                                                                                                          \
      store(y + j + lanes, h[1]);                                                                                                                  \
    }                                                                                                                                              \
    for (; j < n; j += lanes) {                                                                                                                    \
      vf g[1] = {gelu_input<Bias, Preact>(x + j, bias + j, preact + j, n - j)};                                                                    \
      gelu_n(g);                                                                                                                                   \
      store(y + j, g[0], n - j);                                                                                                                   \
    }                                                                                                                                              \
  }                                                                                                                                                \
  template <class In, class Out>                                                                                                                   \
  TARGET void gelu_row(const In* x, const float* bias, Out* y, Out* preact, std::size_t n) {                                                       \
    if (bias && preact)                                                                                                                            \
      gelu_row_with<true, true>(x, bias, y, preact, n);                                                                                            \
    else if (bias)                                                                                                                                 \
      gelu_row_with<true, false>(x, bias, y, preact, n);                                                                                           \
    else if (preact)                                                                                                                               \
      gelu_row_with<false, true>(x, bias, y, preact, n);                                                                                           \
    else                                                                                                                                           \
      gelu_row_with<false, false>(x, bias, y, preact, n);                                                                                          \
  }                                                                                                                                                \
  /* R rows (stride n) at once; dbias sums dx as stored (store_kept narrows once and returns */                                                    \
  /* the kept value), the R rows' terms first, then into the partials: one partial update */                                                       \
  /* per R rows. */                                                                                                                                \
  template <std::size_t R, bool Dbias, class DY, class H, class DX>                                                                                \
  TARGET void gelu_backward_rows_with(const DY* dy, const H* h, DX* dx, std::size_t n, float* dbias_part) {                                        \
    std::size_t j = 0;                                                                                                                             \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                                                                   \
      vf g[2 * R];                                                                                                                                 \
      for (std::size_t q = 0; q < R; ++q)                                                                                                          \
        for (std::size_t u = 0; u < 2; ++u) g[2 * q + u] = load(h + q * n + j + u * lanes);                                                        \
      gelu_derivative_n(g);                                                                                                                        \
      vf sum[2];                                                                                                                                   \
      for (std::size_t q = 0; q < R; ++q)                                                                                                          \
        for (std::size_t u = 0; u < 2; ++u) {                                                                                                      \
          const std::size_t at = q * n + j + u * lanes;                                                                                            \
          const vf d = store_kept(dx + at, load(dy + at) * g[2 * q + u]);                                                                          \
          sum[u] = q == 0 ? d : sum[u] + d;                                                                                                        \
        }                                                                                                                                          \
      if constexpr (Dbias)                                                                                                                         \
        for (std::size_t u = 0; u < 2; ++u) store(dbias_part + j + u * lanes, load(dbias_part + j + u * lanes) + sum[u]);                          \
    }                                                                                                                                              \
    for (; j < n; j += lanes) {                                                                                                                    \
      const std::size_t m = n - j;                                                                                                                 \
      vf g[R];                                                                                                                                     \
      for (std::size_t q = 0; q < R; ++q) g[q] = load(h + q * n + j, m);                                                                           \
      gelu_derivative_n(g);                                                                                                                        \
      vf sum = zero();                                                                                                                             \
      for (std::size_t q = 0; q < R; ++q) {                                                                                                        \
        const vf d = store_kept(dx + q * n + j, load(dy + q * n + j, m) * g[q], m);                                                                \
        sum = q == 0 ? d : sum + d;                                                                                                                \
      }                                                                                                                                            \
      if constexpr (Dbias) store(dbias_part + j, load(dbias_part + j, m) + sum, m);                                                                \
    }                                                                                                                                              \
  }                                                                                                                                                \
  /* Rows [0, rows) of stride n, two at a time. */                                                                                                 \
  template <class DY, class H, class DX>                                                                                                           \
  TARGET void gelu_backward_rows(const DY* dy, const H* h, DX* dx, std::size_t n, std::size_t rows, float* dbias_part) {                           \
    std::size_t r = 0;                                                                                                                             \
    for (; r + 2 <= rows; r += 2) {                                                                                                                \
      prefetch(dy + r * n, 2 * n * sizeof(DY), 2 * n * sizeof(DY)); /* the next two rows */                                                        \
      prefetch(h + r * n, 2 * n * sizeof(H), 2 * n * sizeof(H));                                                                                   \
      if (dbias_part)                                                                                                                              \
        gelu_backward_rows_with<2, true>(dy + r * n, h + r * n, dx + r * n, n, dbias_part);                                                        \
      else                                                                                                                                         \
        gelu_backward_rows_with<2, false>(dy + r * n, h + r * n, dx + r * n, n, dbias_part);                                                       \
    }                                                                                                                                              \
    if (r < rows) {                                                                                                                                \
      if (dbias_part)                                                                                                                              \
        gelu_backward_rows_with<1, true>(dy + r * n, h + r * n, dx + r * n, n, dbias_part);                                                        \
      else                                                                                                                                         \
        gelu_backward_rows_with<1, false>(dy + r * n, h + r * n, dx + r * n, n, dbias_part);                                                       \
    }                                                                                                                                              \
  }                                                                                                                                                \
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
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<I> && detail::simd_storage<Out>) {
#if MPT_X86
        if (isa >= Isa::avx512_bf16) {
          detail::avx512_bf16::gelu_row(xr, b, yr, pr, n);
          continue;
        }
        if (isa >= Isa::avx512) {
          detail::avx512::gelu_row(xr, b, yr, pr, n);
          continue;
        }
        if (isa == Isa::avx2) {
          detail::avx2::gelu_row(xr, b, yr, pr, n);
          continue;
        }
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
    const D* dyr = dy.data() + rb * n;
    const HH* hr = preact.data() + rb * n;
    DX* dxr = dx.data() + rb * n;
    if constexpr (std::is_same_v<C, float> && detail::simd_storage<D> && detail::simd_storage<HH> && detail::simd_storage<DX>) {
#if MPT_X86
      if (isa >= Isa::avx512_bf16) return detail::avx512_bf16::gelu_backward_rows(dyr, hr, dxr, n, re - rb, part);
      if (isa >= Isa::avx512) return detail::avx512::gelu_backward_rows(dyr, hr, dxr, n, re - rb, part);
      if (isa == Isa::avx2) return detail::avx2::gelu_backward_rows(dyr, hr, dxr, n, re - rb, part);
#endif
    }
    for (std::size_t r = 0; r < re - rb; ++r) detail::gelu_backward_row_scalar<C>(dyr + r * n, hr + r * n, dxr + r * n, n, part);
  });
  if (!want_dbias) return;
  // Chunk partials in chunk order (chunk 0 holds the running sums): thread-count independent.
  for (std::size_t c = 1; c < chunks; ++c)
    for (std::size_t j = 0; j < n; ++j) partials[j] += partials[c * n + j];
  for (std::size_t j = 0; j < n && chunks > 0; ++j) dbias[j] += partials[j];
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
