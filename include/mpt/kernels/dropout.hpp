#pragma once
// Dropout driven by Philox-4x32-10, so backward regenerates the mask instead
// of storing it, and any thread split gives the same bits.
//
// Which element gets which random bits (a definition, independent of the
// vector width): each element takes 16 bits. Element i lies in group
// g = i / 128 at r = i % 128; it takes half (r / 16) % 2 (0: low 16 bits,
// 1: high) of word r / 32 of philox4x32_10(counter, key) with
//   counter = {low32(b), high32(b), key.stream, key.step},  b = 16 g + r % 16,
//   key     = {low32(seed), high32(seed)}.
// (One AVX-512 Philox call makes 16 counters x 4 words = one group.)
//
// Keep rule: element i is kept iff bits < round((1 - p) * 2^16), i.e.
// u < 1 - p for u = bits / 2^16 uniform on [0, 1) in steps of 2^-16, as
// torch.bernoulli(1 - p) keeps. So p acts rounded to a multiple of 2^-16
// (0.1 keeps with probability 0.899994). 16 bits rather than 24 halve the
// Philox work, which is what bounds this kernel. Kept values are multiplied by
// scale = 1 / (1 - p), computed in fp32 and rounded to the input's storage
// type (PyTorch's noise tensor has the input's dtype, so for bf16 the scale is
// a bf16 number), and the product is rounded once into the output type.
// p = 0 is a copy; p = 1 gives zeros (as PyTorch).
//
//   dropout_forward(x, y, p, key)            y = x * mask * scale        x, y: any equal shapes
//   dropout_backward(dy, dx, p, key)         dx = dy * mask * scale      (the same mask)
//   dropout_add_forward(x, r, y, p, key)     y = dropout(x) + r, the dropout result
//                                            rounded to y's type first (as unfused bf16 ops)

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/rows.hpp>
#include <mpt/kernels/detail/simd.hpp>
#include <mpt/kernels/philox.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {

// Identifies one dropout mask: the run's seed, the layer (stream) and the step.
struct DropoutKey {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  std::uint32_t step = 0;
};

namespace detail {
inline constexpr std::size_t dropout_group = 128;  // elements per 16 Philox counters (4 words, 2 halves)
inline constexpr std::size_t dropout_groups_per_task = 128;

inline PhiloxKey philox_key(DropoutKey key) noexcept { return {static_cast<std::uint32_t>(key.seed), static_cast<std::uint32_t>(key.seed >> 32)}; }

inline void check_dropout_probability(const char* op, float p) {
  if (!(p >= 0.0f && p <= 1.0f)) throw_error(op, ": dropout probability ", p, " is outside [0, 1]");
}
}  // namespace detail

// The 16 random bits of element i (the scalar reference of the mapping above).
inline std::uint32_t dropout_bits(DropoutKey key, std::uint64_t i) noexcept {
  const std::uint64_t group = i / detail::dropout_group, r = i % detail::dropout_group;
  const std::uint64_t block = 16 * group + r % 16;
  const PhiloxCounter out =
      philox4x32_10({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), key.stream, key.step}, detail::philox_key(key));
  const std::uint32_t word = out[r / 32];
  return (r / 16) % 2 == 0 ? (word & 0xFFFFu) : (word >> 16);
}

// Elements are kept iff dropout_bits < dropout_keep_threshold(p) (0 to 65536).
inline std::uint32_t dropout_keep_threshold(float p) noexcept {
  return static_cast<std::uint32_t>(std::llround((1.0 - static_cast<double>(p)) * 65536.0));
}

inline bool dropout_keeps(DropoutKey key, float p, std::uint64_t i) noexcept { return dropout_bits(key, i) < dropout_keep_threshold(p); }

// The factor kept elements are multiplied by, for inputs stored as In.
template <class In>
inline float dropout_scale(float p) noexcept {
  return detail::keep_as<In>(1.0f / static_cast<float>(1.0 - static_cast<double>(p)));
}

namespace detail {

// Scalar reference over elements [begin, end): y = keep ? x * scale : 0 (+ r).
// One group at a time, so each Philox call serves its 8 elements.
template <class In, class Res, class Out>
void dropout_scalar(const In* x, const Res* r, Out* y, std::size_t begin, std::size_t end, float p, DropoutKey key) {
  using Compute = std::conditional_t<std::is_same_v<In, double> || std::is_same_v<Out, double>, double, float>;
  const std::uint32_t threshold = dropout_keep_threshold(p);
  const Compute scale = std::is_same_v<Compute, double> ? Compute(1.0 / (1.0 - double(p))) : Compute(dropout_scale<In>(p));
  for (std::size_t group = begin / dropout_group; group * dropout_group < end; ++group) {
    PhiloxCounter words[16];
    for (std::uint64_t lane = 0; lane < 16; ++lane) {
      const std::uint64_t block = 16 * group + lane;
      words[lane] =
          philox4x32_10({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), key.stream, key.step}, philox_key(key));
    }
    const std::size_t first = std::max(begin, group * dropout_group);
    const std::size_t last = std::min(end, (group + 1) * dropout_group);
    for (std::size_t i = first; i < last; ++i) {
      const std::size_t at = i % dropout_group;  // word at / 32, half (at / 16) % 2, counter at % 16
      const std::uint32_t word = words[at % 16][at / 32];
      const std::uint32_t bits = (at / 16) % 2 == 0 ? (word & 0xFFFFu) : (word >> 16);
      const bool keep = bits < threshold;
      Compute v = keep ? static_cast<Compute>(to_float(x[i])) * scale : Compute(0);
      if constexpr (!std::is_void_v<Res>) {
        if constexpr (std::is_same_v<Compute, float>) v = keep_as<Out>(v);
        v += static_cast<Compute>(to_float(r[i]));
      }
      y[i] = static_cast<Out>(v);
    }
  }
}

#if MPT_X86
// The 16-lane kernel, stamped for AVX-512 with and without AVX512_BF16 stores.
#define MPT_DROPOUT_KERNELS(TARGET, ISA)                                                                                \
  namespace ISA {                                                                                                       \
  /* y[0, n) from one register of keep decisions (n may be < lanes). */                                                 \
  template <class In, class Res, class Out>                                                                             \
  TARGET inline void dropout_apply(const In* x, const Res* r, Out* y, std::size_t n, __mmask16 keep, vf scale) {        \
    vf v = _mm512_maskz_mul_ps(keep, n >= lanes ? load(x) : load(x, n), scale);                                         \
    if constexpr (!std::is_void_v<Res>) {                                                                               \
      if constexpr (std::is_same_v<Out, bf16>) v = round_to_bf16(v);                                                    \
      v = _mm512_add_ps(v, n >= lanes ? load(r) : load(r, n));                                                          \
    }                                                                                                                   \
    if (n >= lanes)                                                                                                     \
      store(y, v);                                                                                                      \
    else                                                                                                                \
      store(y, v, n);                                                                                                   \
  }                                                                                                                     \
  template <class In, class Res, class Out>                                                                             \
  TARGET void dropout(const In* x, const Res* r, Out* y, std::size_t begin, std::size_t end, float p, DropoutKey key) { \
    const __m512i threshold = _mm512_set1_epi32(static_cast<int>(dropout_keep_threshold(p)));                           \
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);                                                                    \
    const vf scale = set1(dropout_scale<In>(p));                                                                        \
    const PhiloxKey k = philox_key(key);                                                                                \
    /* Two groups per Philox call: their rounds interleave (see philox4x32_10_avx512_groups). */                        \
    constexpr std::size_t G = 2;                                                                                        \
    for (std::size_t base = begin; base < end; base += G * dropout_group) { /* begin is a multiple of the group */      \
      std::uint64_t block[G];                                                                                           \
      for (std::size_t g = 0; g < G; ++g) block[g] = (base / dropout_group + g) * 16;                                   \
      /* The Philox work between loads keeps few misses in flight: ask for x 4 groups ahead. */                         \
      prefetch(x + base, 4 * dropout_group * sizeof(In), G * dropout_group * sizeof(In));                               \
      __m512i bits[G][4];                                                                                               \
      philox4x32_10_avx512_groups(block, key.stream, key.step, k, bits);                                                \
      for (std::size_t s = 0; s < 8 * G; ++s) { /* group s / 8; word (s % 8) / 2, low (even s) or high 16 bits */       \
        const std::size_t at = base + 16 * s;                                                                           \
        if (at >= end) break;                                                                                           \
        const __m512i word = bits[s / 8][(s % 8) / 2];                                                                  \
        const __m512i b = s % 2 == 0 ? _mm512_and_si512(word, low16) : _mm512_srli_epi32(word, 16);                     \
        const __mmask16 keep = _mm512_cmplt_epu32_mask(b, threshold);                                                   \
        const Res* rr = nullptr;                                                                                        \
        if constexpr (!std::is_void_v<Res>) rr = r + at;                                                                \
        dropout_apply(x + at, rr, y + at, end - at, keep, scale);                                                       \
      }                                                                                                                 \
    }                                                                                                                   \
  }                                                                                                                     \
  }  // namespace ISA
MPT_DROPOUT_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_DROPOUT_KERNELS(MPT_TARGET_AVX512, avx512)
#undef MPT_DROPOUT_KERNELS

template <class In, class Res, class Out>
MPT_TARGET_AVX2 void dropout_avx2(const In* x, const Res* r, Out* y, std::size_t begin, std::size_t end, float p, DropoutKey key) {
  using namespace avx2;
  // Unsigned bits < threshold as a signed compare: both sides fit in 17 bits.
  const __m256i threshold = _mm256_set1_epi32(static_cast<int>(dropout_keep_threshold(p)));
  const __m256i low16 = _mm256_set1_epi32(0xFFFF);
  const vf scale = set1(dropout_scale<In>(p));
  const PhiloxKey k = philox_key(key);
  for (std::size_t base = begin; base < end; base += dropout_group) {
    const std::uint64_t block = base / dropout_group * 16;
    __m256i lo[4], hi[4];  // counters block + 0..7 and block + 8..15
    philox4x32_10_avx2(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), key.stream, key.step, k, lo);
    philox4x32_10_avx2(static_cast<std::uint32_t>(block + 8), static_cast<std::uint32_t>(block >> 32), key.stream, key.step, k, hi);
    for (std::size_t j = 0; j < 16; ++j) {  // 8 elements each: word j / 4, half (j / 2) % 2, counters j % 2
      const std::size_t at = base + 8 * j;
      if (at >= end) break;
      const std::size_t n = end - at;
      const __m256i word = (j % 2 == 0) ? lo[j / 4] : hi[j / 4];
      const __m256i b = (j / 2) % 2 == 0 ? _mm256_and_si256(word, low16) : _mm256_srli_epi32(word, 16);
      const vf keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(threshold, b));
      vf v = _mm256_and_ps(keep, _mm256_mul_ps(n >= lanes ? load(x + at) : load(x + at, n), scale));
      if constexpr (!std::is_void_v<Res>) {
        if constexpr (std::is_same_v<Out, bf16>) v = round_to_bf16(v);
        v = _mm256_add_ps(v, n >= lanes ? load(r + at) : load(r + at, n));
      }
      if (n >= lanes)
        store(y + at, v);
      else
        store(y + at, v, n);
    }
  }
}
#endif  // MPT_X86

// Elements [begin, end) on one thread; begin must be a multiple of dropout_group.
template <class In, class Res, class Out>
void dropout_range(Isa isa, const In* x, const Res* r, Out* y, std::size_t begin, std::size_t end, float p, DropoutKey key) {
  constexpr bool simd = simd_storage<In> && simd_storage<Out> && (std::is_void_v<Res> || simd_storage<Res>);
  switch (isa) {
#if MPT_X86
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
      if constexpr (simd) return avx512_bf16::dropout(x, r, y, begin, end, p, key);
      break;
    case Isa::avx512:
      if constexpr (simd) return avx512::dropout(x, r, y, begin, end, p, key);
      break;
    case Isa::avx2:
      if constexpr (simd) return dropout_avx2(x, r, y, begin, end, p, key);
      break;
#endif
    default:
      break;
  }
  dropout_scalar(x, r, y, begin, end, p, key);
}

template <class In, class Res, class Out>
Isa dropout_isa() {
  if constexpr (std::is_void_v<Res>) {
    return simd_isa_for<In, Out>();
  } else {
    return simd_isa_for<In, Res, Out>();
  }
}

template <class In, class Res, class Out>
void dropout_dispatch(const char* op, const In* x, const Res* r, Out* y, std::size_t n, float p, DropoutKey key) {
  check_dropout_probability(op, p);
  const Isa isa = dropout_isa<In, Res, Out>();
  for_each_row_chunk(n, dropout_group * dropout_groups_per_task,
                     [&](std::size_t begin, std::size_t end) { dropout_range(isa, x, r, y, begin, end, p, key); });
}

template <class A, class B>
void check_same_size(const char* op, const char* a_name, const TensorView<A>& a, const char* b_name, const TensorView<B>& b) {
  if (a.size() != b.size()) {
    throw_error(op, ": ", a_name, " has shape ", a.shape(), " but ", b_name, " has shape ", b.shape(),
                "; they must have the same number of elements");
  }
}
}  // namespace detail

// y = x * mask * scale. x and y may be the same memory when In == Out.
template <class In, class Out>
void dropout_forward(TensorView<In> x, TensorView<Out> y, float p, DropoutKey key) {
  detail::check_same_size("dropout_forward", "x", x, "y", y);
  detail::dropout_dispatch<std::remove_const_t<In>, void, Out>("dropout_forward", x.data(), nullptr, y.data(), x.size(), p, key);
}

// dx = dy * mask * scale: the same mask as the forward with the same key.
template <class In, class Out>
void dropout_backward(TensorView<In> dy, TensorView<Out> dx, float p, DropoutKey key) {
  detail::check_same_size("dropout_backward", "dy", dy, "dx", dx);
  detail::dropout_dispatch<std::remove_const_t<In>, void, Out>("dropout_backward", dy.data(), nullptr, dx.data(), dy.size(), p, key);
}

// y = dropout(x) + residual (the residual branch of a transformer block).
// Backward: dx = dropout_backward(dy), dresidual = dy.
template <class In, class Res, class Out>
void dropout_add_forward(TensorView<In> x, TensorView<Res> residual, TensorView<Out> y, float p, DropoutKey key) {
  detail::check_same_size("dropout_add_forward", "x", x, "y", y);
  detail::check_same_size("dropout_add_forward", "residual", residual, "y", y);
  detail::dropout_dispatch<std::remove_const_t<In>, std::remove_const_t<Res>, Out>("dropout_add_forward", x.data(), residual.data(), y.data(),
                                                                                   x.size(), p, key);
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
