#pragma once
// Master-weight policies: where the optimizer keeps the weights it updates,
// and how it writes the compute copy the model reads (P::param_t).
//
//   policy                 state per parameter (besides the moments)   compute copy
//   weights::direct        the params themselves (fp32, fp64)           -
//   weights::fp32_master   fp32 master 4 B + param 2 B = 6 B            round to nearest even
//   weights::split_master  param 2 B + 16-bit trail 2 B = 4 B           top half of the fp32 master
//   weights::stochastic_rounding  param 2 B                             stochastic rounding of the update
//   weights::nearest_rounding     param 2 B                             round to nearest (stalls: the baseline)
//
// split_master: the fp32 master is (param bits << 16) | trail, so the bf16
// compute copy is the master truncated toward zero, and no separate fp32
// copy exists (IPEX's "split SGD", here for every optimizer).
//
// Moments are fp32 for every policy (8 B per parameter for AdamW, 4 for SGD
// with momentum); bench_optim and the tests report the totals.
//
// The store views the model's parameter buffer (which must outlive it); a
// master starts from the parameters, or from fp32 weights given with
// assign() (a checkpoint's full-precision values, as transformers loads them).
//
// A WeightStore<P, W> gives the update kernels one interface:
//   load(i) -> master value, store(i, w, key) writes master and compute copy;
//   assign(i, w): set master to w, compute copy rounded to nearest (split: its top half);
//   load16 / store16: the same for 16 lanes (AVX-512 kernels, masked tails);
//   load8 / store8: 8 lanes (AVX2 kernels, whole blocks; tails go scalar).

#include <mpt/core/aligned.hpp>
#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/fp16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/optim/detail/stochastic_rounding.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/policy/precision.hpp>

#include <immintrin.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::optim {

namespace weights {
struct direct {
  static constexpr const char* name = "direct";
};
struct fp32_master {
  static constexpr const char* name = "fp32_master";
};
struct split_master {
  static constexpr const char* name = "split_master";
};
struct stochastic_rounding {
  static constexpr const char* name = "stochastic_rounding";
};
struct nearest_rounding {
  static constexpr const char* name = "nearest_rounding";
};
}  // namespace weights

// What each precision policy gets unless told otherwise.
template <PrecisionPolicy P>
using default_weights_t =
    std::conditional_t<std::is_same_v<typename P::param_t, typename P::master_t>,
                       std::conditional_t<std::is_same_v<typename P::param_t, bf16>, weights::stochastic_rounding, weights::direct>,
                       weights::fp32_master>;

template <PrecisionPolicy P, class W>
class WeightStore;

// fp32 or fp64 parameters updated in place.
template <PrecisionPolicy P>
class WeightStore<P, weights::direct> {
 public:
  using param_t = typename P::param_t;
  using value_t = param_t;
  static_assert(std::is_same_v<param_t, float> || std::is_same_v<param_t, double>,
                "weights::direct updates the parameters in place, so they must be float or double; for 16-bit "
                "parameters choose weights::fp32_master, split_master or stochastic_rounding");
  // Has the 8- and 16-lane accessors the AVX2 and AVX-512 kernels use (fp32 values).
  static constexpr bool vectorized = std::is_same_v<param_t, float>;

  explicit WeightStore(std::span<param_t> params) : params_(params) {}
  std::size_t size() const noexcept { return params_.size(); }
  value_t load(std::size_t i) const noexcept { return params_[i]; }
  void store(std::size_t i, value_t w, std::uint32_t) noexcept { params_[i] = w; }
  void assign(std::size_t i, value_t w) noexcept { params_[i] = w; }
#if MPT_X86
  MPT_TARGET_AVX512 __m512 load16(std::size_t i, __mmask16 m) const noexcept { return _mm512_maskz_loadu_ps(m, params_.data() + i); }
  MPT_TARGET_AVX512 void store16(std::size_t i, __mmask16 m, __m512 w, std::uint32_t) noexcept { _mm512_mask_storeu_ps(params_.data() + i, m, w); }
  MPT_TARGET_AVX2 __m256 load8(std::size_t i) const noexcept { return _mm256_loadu_ps(params_.data() + i); }
  void prefetch(std::size_t i) const noexcept { _mm_prefetch(reinterpret_cast<const char*>(params_.data() + i), _MM_HINT_T0); }
  MPT_TARGET_AVX2 void store8(std::size_t i, __m256 w, std::uint32_t) noexcept { _mm256_storeu_ps(params_.data() + i, w); }
#endif
  static constexpr double bytes_per_parameter() noexcept { return sizeof(param_t); }
  void append_state(StateDict&) {}

 private:
  std::span<param_t> params_;
};

// A separate fp32 master; the 16-bit compute copy (bf16 or fp16) is its
// round-to-nearest-even image, written in the same pass.
template <PrecisionPolicy P>
class WeightStore<P, weights::fp32_master> {
 public:
  using param_t = typename P::param_t;
  using value_t = float;
  static_assert(std::is_same_v<param_t, bf16> || std::is_same_v<param_t, fp16>,
                "weights::fp32_master keeps an fp32 master for 16-bit parameters (bf16 or fp16)");
  static constexpr bool vectorized = true;

  // Owns the master, initialized from the parameters.
  explicit WeightStore(std::span<param_t> params) : params_(params), owned_(params.size()), master_(owned_.data(), owned_.size()) {
    for (std::size_t i = 0; i < params.size(); ++i) master_[i] = to_float(params[i]);
  }
  // Views a master the model owns (nn::Parameters::matmul_master()); it is authoritative.
  WeightStore(std::span<param_t> params, std::span<float> master) : params_(params), master_(master) {
    if (master.size() != params.size()) {
      throw_error("WeightStore (fp32_master): the master buffer has ", master.size(), " elements but the parameters have ", params.size());
    }
  }
  std::size_t size() const noexcept { return params_.size(); }
  float load(std::size_t i) const noexcept { return master_[i]; }
  void store(std::size_t i, float w, std::uint32_t) noexcept {
    master_[i] = w;
    if constexpr (std::is_same_v<param_t, bf16>) {
      params_[i] = to_bf16(w);
    } else {
      params_[i] = to_fp16(w);
    }
  }
  void assign(std::size_t i, float w) noexcept { store(i, w, 0); }
#if MPT_X86
  MPT_TARGET_AVX512 __m512 load16(std::size_t i, __mmask16 m) const noexcept { return _mm512_maskz_loadu_ps(m, master_.data() + i); }
  MPT_TARGET_AVX512 void store16(std::size_t i, __mmask16 m, __m512 w, std::uint32_t) noexcept {
    _mm512_mask_storeu_ps(master_.data() + i, m, w);
    __m256i narrow;
    if constexpr (std::is_same_v<param_t, bf16>) {
      narrow = _mm512_cvtepi32_epi16(mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(w)));
    } else {
      narrow = _mm512_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    _mm256_mask_storeu_epi16(params_.data() + i, m, narrow);
  }
  MPT_TARGET_AVX2 __m256 load8(std::size_t i) const noexcept { return _mm256_loadu_ps(master_.data() + i); }
  void prefetch(std::size_t i) const noexcept {
    _mm_prefetch(reinterpret_cast<const char*>(master_.data() + i), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(params_.data() + i), _MM_HINT_T0);
  }
  MPT_TARGET_AVX2 void store8(std::size_t i, __m256 w, std::uint32_t) noexcept {
    _mm256_storeu_ps(master_.data() + i, w);
    __m128i narrow;
    if constexpr (std::is_same_v<param_t, bf16>) {
      narrow = detail::pack_low_halves_avx2(mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(w)));
    } else {
      narrow = _mm256_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(params_.data() + i), narrow);
  }
#endif
  static constexpr double bytes_per_parameter() noexcept { return sizeof(float) + sizeof(param_t); }
  // The optimizer's state holds the master only when the optimizer owns it
  // (a model-owned master is saved with the model).
  void append_state(StateDict& state) {
    if (owned_.size() != 0) state.add("master", master_.data(), master_.size());
  }
  std::span<const float> master() const noexcept { return master_; }
  bool owns_master() const noexcept { return owned_.size() != 0; }
  static constexpr double bytes_per_parameter_external_master() noexcept { return sizeof(float) + sizeof(param_t); }

 private:
  std::span<param_t> params_;
  AlignedBuffer<float> owned_;
  std::span<float> master_;
};

// The fp32 master split in two 16-bit halves: the bf16 parameter (top) and a trail (bottom).
template <PrecisionPolicy P>
class WeightStore<P, weights::split_master> {
 public:
  using param_t = typename P::param_t;
  using value_t = float;
  static_assert(std::is_same_v<param_t, bf16>, "weights::split_master splits an fp32 master into bf16 + 16 bits: parameters must be bf16");
  static constexpr bool vectorized = true;

  explicit WeightStore(std::span<param_t> params) : params_(params), trail_(params.size()) {}
  std::size_t size() const noexcept { return params_.size(); }
  float load(std::size_t i) const noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(bf16_bits(params_[i])) << 16 | trail_[i]); }
  void store(std::size_t i, float w, std::uint32_t) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(w);
    params_[i] = bf16_from_bits(static_cast<std::uint16_t>(u >> 16));
    trail_[i] = static_cast<std::uint16_t>(u & 0xFFFFu);
  }
  void assign(std::size_t i, float w) noexcept { store(i, w, 0); }
#if MPT_X86
  MPT_TARGET_AVX512 __m512 load16(std::size_t i, __mmask16 m) const noexcept {
    const __m512i top = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, params_.data() + i));
    const __m512i bottom = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, trail_.data() + i));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi32(top, 16), bottom));
  }
  MPT_TARGET_AVX512 void store16(std::size_t i, __mmask16 m, __m512 w, std::uint32_t) noexcept {
    const __m512i u = _mm512_castps_si512(w);
    _mm256_mask_storeu_epi16(params_.data() + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
    _mm256_mask_storeu_epi16(trail_.data() + i, m, _mm512_cvtepi32_epi16(u));
  }
  void prefetch(std::size_t i) const noexcept {
    _mm_prefetch(reinterpret_cast<const char*>(params_.data() + i), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(trail_.data() + i), _MM_HINT_T0);
  }
  MPT_TARGET_AVX2 __m256 load8(std::size_t i) const noexcept {
    const __m256i top = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(params_.data() + i)));
    const __m256i bottom = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(trail_.data() + i)));
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(top, 16), bottom));
  }
  MPT_TARGET_AVX2 void store8(std::size_t i, __m256 w, std::uint32_t) noexcept {
    const __m256i u = _mm256_castps_si256(w);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(params_.data() + i), detail::pack_low_halves_avx2(_mm256_srli_epi32(u, 16)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(trail_.data() + i), detail::pack_low_halves_avx2(_mm256_and_si256(u, _mm256_set1_epi32(0xFFFF))));
  }
#endif
  static constexpr double bytes_per_parameter() noexcept { return sizeof(param_t) + sizeof(std::uint16_t); }
  void append_state(StateDict& state) { state.add("master_trail", trail_.data(), trail_.size()); }

 private:
  std::span<param_t> params_;
  AlignedBuffer<std::uint16_t> trail_;
};

// bf16 parameters and nothing else: the updated fp32 value is rounded
// stochastically (unbiased: small updates survive on average) or to nearest.
// (clang-format 14 would fold the requires clause into the declaration)
// clang-format off
template <PrecisionPolicy P, class W>
requires std::is_same_v<W, weights::stochastic_rounding> || std::is_same_v<W, weights::nearest_rounding>
class WeightStore<P, W> {
  // clang-format on
 public:
  using param_t = typename P::param_t;
  using value_t = float;
  static_assert(std::is_same_v<param_t, bf16>, "weights::stochastic_rounding and nearest_rounding update bf16 parameters");
  static constexpr bool vectorized = true;
  static constexpr bool stochastic = std::is_same_v<W, weights::stochastic_rounding>;

  explicit WeightStore(std::span<param_t> params) : params_(params) {}
  std::size_t size() const noexcept { return params_.size(); }
  float load(std::size_t i) const noexcept { return to_float(params_[i]); }
  void store(std::size_t i, float w, std::uint32_t key) noexcept {
    if constexpr (stochastic) {
      params_[i] = bf16_from_bits(detail::stochastic_round_bf16_bits(w, detail::rounding_bits(key, i)));
    } else {
      params_[i] = to_bf16(w);
    }
  }
  void assign(std::size_t i, float w) noexcept { params_[i] = to_bf16(w); }
#if MPT_X86
  MPT_TARGET_AVX512 __m512 load16(std::size_t i, __mmask16 m) const noexcept {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, params_.data() + i)), 16));
  }
  MPT_TARGET_AVX512 void store16(std::size_t i, __mmask16 m, __m512 w, std::uint32_t key) noexcept {
    __m512i lanes;
    if constexpr (stochastic) {
      lanes = detail::stochastic_round_lanes_avx512(w, detail::rounding_bits_avx512(key, i));
    } else {
      lanes = mpt::detail::narrow_lanes_avx512(_mm512_castps_si512(w));
    }
    _mm256_mask_storeu_epi16(params_.data() + i, m, _mm512_cvtepi32_epi16(lanes));
  }
  void prefetch(std::size_t i) const noexcept { _mm_prefetch(reinterpret_cast<const char*>(params_.data() + i), _MM_HINT_T0); }
  MPT_TARGET_AVX2 __m256 load8(std::size_t i) const noexcept {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(params_.data() + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  MPT_TARGET_AVX2 void store8(std::size_t i, __m256 w, std::uint32_t key) noexcept {
    __m256i lanes;
    if constexpr (stochastic) {
      lanes = detail::stochastic_round_lanes_avx2(w, detail::rounding_bits_avx2(key, i));
    } else {
      lanes = mpt::detail::narrow_lanes_avx2(_mm256_castps_si256(w));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(params_.data() + i), detail::pack_low_halves_avx2(lanes));
  }
#endif
  static constexpr double bytes_per_parameter() noexcept { return sizeof(param_t); }
  void append_state(StateDict&) {}

 private:
  std::span<param_t> params_;
};

}  // namespace mpt::optim

#pragma GCC diagnostic pop
