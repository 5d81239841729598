#pragma once
// Residual add with mixed storage: y = a + b, element-wise, computed in fp32
// (double if any operand is double) and rounded once into y's type. y may be
// the same memory as a or b (y += b is residual_add(y, b, y)).
//
//   residual_add(a, b, y)      a, b, y: equal element counts, fp32 / bf16 / double
//
// Fused with dropout: dropout_add_forward (dropout.hpp). The sum then feeds
// layer_norm_forward, which re-reads it from cache row by row.

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/rows.hpp>
#include <mpt/kernels/detail/simd.hpp>

#include <cstddef>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {
namespace detail {
inline constexpr std::size_t residual_chunk = 16384;  // elements per task

template <class C, class A, class B, class Y>
void residual_add_scalar(const A* a, const B* b, Y* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<Y>(static_cast<C>(to_float(a[i])) + static_cast<C>(to_float(b[i])));
}

#if MPT_X86
#define MPT_RESIDUAL_KERNELS(TARGET, ISA)                                       \
  namespace ISA {                                                               \
  template <class A, class B, class Y>                                          \
  TARGET void residual_add(const A* a, const B* b, Y* y, std::size_t n) {       \
    std::size_t i = 0;                                                          \
    for (; i + lanes <= n; i += lanes) store(y + i, load(a + i) + load(b + i)); \
    if (i < n) store(y + i, load(a + i, n - i) + load(b + i, n - i), n - i);    \
  }                                                                             \
  }  // namespace ISA
MPT_RESIDUAL_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_RESIDUAL_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_RESIDUAL_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_RESIDUAL_KERNELS
#endif  // MPT_X86
}  // namespace detail

template <class A, class B, class Y>
void residual_add(TensorView<A> a, TensorView<B> b, TensorView<Y> y) {
  using AA = std::remove_const_t<A>;
  using BB = std::remove_const_t<B>;
  using C = std::conditional_t<std::is_same_v<AA, double> || std::is_same_v<BB, double> || std::is_same_v<Y, double>, double, float>;
  if (a.size() != y.size() || b.size() != y.size()) {
    throw_error("residual_add: a ", a.shape(), ", b ", b.shape(), " and y ", y.shape(), " must have the same number of elements");
  }
  const Isa isa = detail::simd_isa_for<AA, BB, Y>();
  detail::for_each_row_chunk(y.size(), detail::residual_chunk, [&](std::size_t begin, std::size_t end) {
    const AA* pa = a.data() + begin;
    const BB* pb = b.data() + begin;
    Y* py = y.data() + begin;
    const std::size_t n = end - begin;
    if constexpr (std::is_same_v<C, float> && detail::simd_storage<AA> && detail::simd_storage<BB> && detail::simd_storage<Y>) {
#if MPT_X86
      if (isa >= Isa::avx512_bf16) return detail::avx512_bf16::residual_add(pa, pb, py, n);
      if (isa >= Isa::avx512) return detail::avx512::residual_add(pa, pb, py, n);
      if (isa == Isa::avx2) return detail::avx2::residual_add(pa, pb, py, n);
#endif
    }
    detail::residual_add_scalar<C>(pa, pb, py, n);
  });
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
