#pragma once
// SIMD backend tags. Each names an instruction-set level (mpt::Isa) and the
// xsimd arch it corresponds to; they form an inheritance chain, so a kernel
// overloaded on some tags serves the higher ones through the nearest base
//   amx_bf16 : avx512_bf16 : avx512 : avx2 : scalar
// (the way xsimd kernels take `requires_arch<A>`).
//
// Why not xsimd batches for AVX-512: a header-only library cannot assume
// -march. Debian 12's xsimd 8.1 defines its AVX2/AVX-512 batch types only
// when the translation unit is compiled with the matching -m flags, so mpt's
// hot kernels are hand-written intrinsics inside functions carrying
// MPT_TARGET_* attributes (core/cpu.hpp), and `dispatch` picks the function
// for the running CPU. xsimd's default arch serves the portable scalar-tag
// code, which a user who builds with -march=native gets vectorized for free.

#include <mpt/core/cpu.hpp>

#include <xsimd/xsimd.hpp>

#include <utility>

namespace mpt::backend {

struct scalar {
  static constexpr Isa isa = Isa::scalar;
  using xsimd_arch = xsimd::default_arch;  // what the translation unit was compiled for
  static constexpr const char* name = "scalar";
};
struct avx2 : scalar {
  static constexpr Isa isa = Isa::avx2;
  using xsimd_arch = xsimd::fma3<xsimd::avx2>;
  static constexpr const char* name = "avx2";
};
struct avx512 : avx2 {
  static constexpr Isa isa = Isa::avx512;
  using xsimd_arch = xsimd::avx512bw;
  static constexpr const char* name = "avx512";
};
struct avx512_bf16 : avx512 {
  static constexpr Isa isa = Isa::avx512_bf16;
  using xsimd_arch = xsimd::avx512bw;  // xsimd 8 has no tag of its own for AVX512_BF16
  static constexpr const char* name = "avx512_bf16";
};
struct amx_bf16 : avx512_bf16 {  // the tile unit serves bf16 GEMMs; everything else is avx512_bf16
  static constexpr Isa isa = Isa::amx_bf16;
  static constexpr const char* name = "amx_bf16";
};
template <class T>
concept Backend = std::is_base_of_v<scalar, T>;

// Calls f(tag) with the tag of the given level: f(backend::avx2{}), ...
template <class F>
decltype(auto) dispatch(Isa isa, F&& f) {
  switch (isa) {
    case Isa::amx_bf16:
      return std::forward<F>(f)(amx_bf16{});
    case Isa::avx512_bf16:
      return std::forward<F>(f)(avx512_bf16{});
    case Isa::avx512:
      return std::forward<F>(f)(avx512{});
    case Isa::avx2:
      return std::forward<F>(f)(avx2{});
    case Isa::scalar:
      break;
  }
  return std::forward<F>(f)(scalar{});
}

// Calls f with the tag of the running CPU (lowered by MPT_ISA / ScopedIsa).
template <class F>
decltype(auto) dispatch(F&& f) {
  return dispatch(active_isa(), std::forward<F>(f));
}

}  // namespace mpt::backend
