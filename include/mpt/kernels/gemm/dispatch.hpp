#pragma once
// Which micro-kernel serves a GEMM, from the operand types and the active
// instruction set (lowered by MPT_ISA or ScopedIsa in tests):
//
//   any fp64 operand                 ScalarFp64Kernel (4 x 8)
//   bf16 x bf16, AMX-BF16            AmxBf16Kernel (32 x 32, tdpbf16ps tiles)
//   bf16 x bf16, AVX512_BF16         Avx512Bf16DotKernel (12 x 32, vdpbf16ps)
//   otherwise, AVX-512F              Avx512FmaKernel (12 x 32; bf16 widened while packing)
//   otherwise, AVX2 + FMA            Avx2FmaKernel (6 x 16; bf16 widened while packing)
//   otherwise                        ScalarFp32Kernel (4 x 16)

#include <mpt/core/bf16.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm/kernel_amx_bf16.hpp>
#include <mpt/kernels/gemm/kernel_avx2.hpp>
#include <mpt/kernels/gemm/kernel_avx512.hpp>
#include <mpt/kernels/gemm/kernel_avx512_bf16.hpp>
#include <mpt/kernels/gemm/kernel_scalar.hpp>

#include <string_view>
#include <type_traits>

namespace mpt::kernels {

enum class GemmKernel { scalar_fp32, scalar_fp64, avx2_fp32, avx512_fp32, avx512_bf16_dot, amx_bf16 };

inline std::string_view gemm_kernel_name(GemmKernel k) noexcept {
  switch (k) {
    case GemmKernel::scalar_fp32:
      return "scalar_fp32 (4x16)";
    case GemmKernel::scalar_fp64:
      return "scalar_fp64 (4x8)";
    case GemmKernel::avx2_fp32:
      return "avx2_fp32 (6x16 FMA)";
    case GemmKernel::avx512_fp32:
      return "avx512_fp32 (12x32 FMA)";
    case GemmKernel::avx512_bf16_dot:
      return "avx512_bf16_dot (12x32 vdpbf16ps)";
    case GemmKernel::amx_bf16:
      return "amx_bf16 (32x32 tdpbf16ps)";
  }
  return "?";
}

namespace detail {

template <class T>
inline constexpr bool is_gemm_operand_v = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, double>;

// double if any operand is, else float: the type of alpha, beta and the accumulators.
template <class TA, class TB>
using gemm_scalar_t = std::conditional_t<std::is_same_v<TA, double> || std::is_same_v<TB, double>, double, float>;

// Calls f(Kernel{}) with the kernel that serves op(A) of TA times op(B) of TB on `isa`.
template <class TA, class TB, class F>
decltype(auto) with_gemm_kernel(Isa isa, F&& f) {
  static_assert(is_gemm_operand_v<TA> && is_gemm_operand_v<TB>, "gemm: operands must be float, bf16 or double");
  if constexpr (std::is_same_v<gemm_scalar_t<TA, TB>, double>) {
    (void)isa;
    return f(ScalarFp64Kernel{});
  } else {
#if MPT_X86
    if constexpr (std::is_same_v<TA, bf16> && std::is_same_v<TB, bf16>) {
      if (isa >= Isa::amx_bf16) return f(AmxBf16Kernel{});
      if (isa >= Isa::avx512_bf16) return f(Avx512Bf16DotKernel{});
    }
    if (isa >= Isa::avx512) return f(Avx512FmaKernel{});
    if (isa >= Isa::avx2) return f(Avx2FmaKernel{});
#endif
    (void)isa;
    return f(ScalarFp32Kernel{});
  }
}

template <class Kernel>
constexpr GemmKernel gemm_kernel_id() noexcept {
  if constexpr (std::is_same_v<Kernel, ScalarFp64Kernel>) return GemmKernel::scalar_fp64;
#if MPT_X86
  else if constexpr (std::is_same_v<Kernel, AmxBf16Kernel>)
    return GemmKernel::amx_bf16;
  else if constexpr (std::is_same_v<Kernel, Avx512Bf16DotKernel>)
    return GemmKernel::avx512_bf16_dot;
  else if constexpr (std::is_same_v<Kernel, Avx512FmaKernel>)
    return GemmKernel::avx512_fp32;
  else if constexpr (std::is_same_v<Kernel, Avx2FmaKernel>)
    return GemmKernel::avx2_fp32;
#endif
  else
    return GemmKernel::scalar_fp32;
}

}  // namespace detail

// The micro-kernel a GEMM of these operand types runs on the active instruction set.
template <class TA, class TB>
GemmKernel gemm_kernel_for(Isa isa = active_isa()) {
  return detail::with_gemm_kernel<TA, TB>(isa, [](auto kernel) { return detail::gemm_kernel_id<decltype(kernel)>(); });
}

}  // namespace mpt::kernels
