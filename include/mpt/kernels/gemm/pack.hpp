#pragma once
// BLIS-style packing: op(B) into k-blocked column panels the micro-kernel streams
// with aligned loads, op(A) into row panels when it cannot be read in place.
//
//   PanelLayout<Kernel>        where panel (k-block, column panel) of packed op(B) starts
//   pack_b_panel<Kernel>(...)  one panel (SIMD where written, else the _reference): b[(g * NR + j) * KG + u] = op(B)(k0 + g*KG + u, j0 + j),
//   zero-padded pack_a_chunk<Kernel>(...)  consecutive row panels at once (k outermost for A^T) pack_a_panel<Kernel>(...)  one panel (likewise): a[(g
//   * MR + i) * KG + u] = op(A)(i0 + i, k0 + g*KG + u), zero-padded
// KG is the number of consecutive k per 32-bit lane (2 for vdpbf16ps pairs, else 1).
// A kernel whose tiles load rows of A (AMX: packs_a_as_rows) gets op(A) packed as rows
// instead: a[i * kc + k] = op(A)(i0 + i, k0 + k), zero-padded (pack_a_rows_chunk).
// Conversions (bf16 -> fp32 widening, fp32 -> fp64) happen here and are exact.

#include <mpt/core/bf16.hpp>
#include <mpt/kernels/gemm/pack_avx512.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace mpt::kernels::detail {

template <class To, class From>
inline To convert_element(From x) noexcept {
  if constexpr (std::is_same_v<To, From>)
    return x;
  else if constexpr (std::is_same_v<From, bf16>)
    return static_cast<To>(to_float(x));
  else
    return static_cast<To>(x);
}

inline constexpr std::size_t ceil_div(std::size_t a, std::size_t b) noexcept { return (a + b - 1) / b; }

// Packed op(B) blocks above this size are assumed not to stay in the last-level cache
// (32 MiB on the development machine, shared); a whole packed op(B) up to
// whole_b_in_cache_bytes is still kept in one block, which avoids partial sums.
inline constexpr std::size_t large_b_block_bytes = std::size_t(8) << 20;
inline constexpr std::size_t whole_b_in_cache_bytes = std::size_t(12) << 20;

// The k a micro-kernel consumes per step: k-blocks are multiples of it, so that only
// the last block can end in a partial step (AMX: 32, one tile of k-pairs; else KG).
template <class Kernel>
inline constexpr std::size_t k_step_v = [] {
  if constexpr (requires { Kernel::k_step; })
    return Kernel::k_step;
  else
    return Kernel::kg;
}();

// The k-block length for op(B) [k x n]: at most Kernel::kc, short enough that one
// packed k-block (kc x n) stays in the last-level cache (but never below 256), and
// balanced so that blocks have equal length, in whole k-steps. A function of (k, n)
// only, so every entry point blocks a product the same way (and gives the same bits).
template <class Kernel>
inline std::size_t block_k_for(std::size_t k, std::size_t n) noexcept {
  constexpr std::size_t step = k_step_v<Kernel>;
  static_assert(step % Kernel::kg == 0, "a kernel's k-step is a whole number of its k-groups");
  const std::size_t row_bytes = ceil_div(std::max<std::size_t>(n, 1), Kernel::nr) * Kernel::nr * sizeof(typename Kernel::b_t);
  const std::size_t budget = k * row_bytes <= whole_b_in_cache_bytes ? whole_b_in_cache_bytes : large_b_block_bytes;
  std::size_t cap = std::min(Kernel::kc, std::max<std::size_t>(256, budget / row_bytes));
  cap = std::max(step, cap / step * step);
  if (k == 0) return cap;
  const std::size_t blocks = ceil_div(k, cap);
  return std::min(cap, ceil_div(ceil_div(k, blocks), step) * step);
}

// Packed op(B) [K x N]: k-blocks of kc (the last may be shorter, rounded up to KG),
// each holding ceil(N / NR) panels of (k-block rounded to KG) x NR elements.
template <class Kernel>
struct PanelLayout {
  std::size_t k = 0, n = 0;
  std::size_t kc = block_k_for<Kernel>(k, n);
  std::size_t k_blocks() const noexcept { return ceil_div(k, kc); }
  std::size_t n_panels() const noexcept { return ceil_div(n, Kernel::nr); }
  std::size_t block_k(std::size_t blk) const noexcept { return std::min(kc, k - blk * kc); }
  std::size_t block_groups(std::size_t blk) const noexcept { return ceil_div(block_k(blk), Kernel::kg); }
  std::size_t offset(std::size_t blk, std::size_t panel) const noexcept {
    return blk * kc * Kernel::nr * n_panels() + panel * block_groups(blk) * Kernel::kg * Kernel::nr;
  }
  std::size_t size() const noexcept { return k_blocks() == 0 ? 0 : offset(k_blocks() - 1, n_panels()); }
};

// Whether Kernel reads packed A panels as rows of k (a panel's row stride is then the
// k-block length) rather than as interleaved k-groups of MR rows.
template <class Kernel>
inline constexpr bool packs_a_as_rows_v = [] {
  if constexpr (requires { Kernel::packs_a_as_rows; })
    return Kernel::packs_a_as_rows;
  else
    return false;
}();

// Whether Kernel may read op(A) in place when it is row-major in its element type
// (else it is always packed). AMX: no, tileloadd's 16 rows at a stride that is a
// multiple of 4 KiB (or of 2 KiB) share L1 sets; its packed rows are padded instead.
template <class Kernel>
inline constexpr bool a_read_in_place_v = [] {
  if constexpr (requires { Kernel::reads_a_in_place; })
    return Kernel::reads_a_in_place;
  else
    return true;
}();

template <class Kernel, class TB>
inline void pack_b_panel_reference(Trans tb, const TB* b, std::size_t ldb, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nr_eff,
                                   typename Kernel::b_t* out) noexcept {
  using b_t = typename Kernel::b_t;
  constexpr std::size_t NR = Kernel::nr, KG = Kernel::kg;
  const std::size_t groups = ceil_div(kc, KG);
  std::fill(out, out + groups * KG * NR, b_t(0));
  if (tb == Trans::N) {  // rows of B are contiguous in j
    for (std::size_t k = 0; k < kc; ++k) {
      const TB* row = b + (k0 + k) * ldb + j0;
      b_t* dst = out + (k / KG) * NR * KG + k % KG;
      for (std::size_t j = 0; j < nr_eff; ++j) dst[j * KG] = convert_element<b_t>(row[j]);
    }
  } else {  // op(B)(k, j) = B[j][k]: columns of op(B) are contiguous in k
    for (std::size_t j = 0; j < nr_eff; ++j) {
      const TB* col = b + (j0 + j) * ldb + k0;
      b_t* dst = out + j * KG;
      for (std::size_t k = 0; k < kc; ++k) dst[(k / KG) * NR * KG + k % KG] = convert_element<b_t>(col[k]);
    }
  }
}

template <class Kernel, class TA>
inline void pack_a_panel_reference(Trans ta, const TA* a, std::size_t lda, std::size_t i0, std::size_t mr_eff, std::size_t k0, std::size_t kc,
                                   typename Kernel::a_t* out) noexcept {
  using a_t = typename Kernel::a_t;
  constexpr std::size_t MR = Kernel::mr, KG = Kernel::kg;
  const std::size_t groups = ceil_div(kc, KG);
  std::fill(out, out + groups * KG * MR, a_t(0));
  if (ta == Trans::N) {  // rows of A are contiguous in k
    for (std::size_t i = 0; i < mr_eff; ++i) {
      const TA* row = a + (i0 + i) * lda + k0;
      a_t* dst = out + i * KG;
      for (std::size_t k = 0; k < kc; ++k) dst[(k / KG) * MR * KG + k % KG] = convert_element<a_t>(row[k]);
    }
  } else {  // op(A)(i, k) = A[k][i]: contiguous in i
    for (std::size_t k = 0; k < kc; ++k) {
      const TA* col = a + (k0 + k) * lda + i0;
      a_t* dst = out + (k / KG) * MR * KG + k % KG;
      for (std::size_t i = 0; i < mr_eff; ++i) dst[i * KG] = convert_element<a_t>(col[i]);
    }
  }
}

template <class Kernel, class TB>
inline void pack_b_panel(Trans tb, const TB* b, std::size_t ldb, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nr_eff,
                         typename Kernel::b_t* out) noexcept {
#if MPT_X86
  using b_t = typename Kernel::b_t;
  if constexpr (Kernel::isa >= Isa::avx512 && Kernel::nr == 32 && !std::is_same_v<TB, double>) {
    if (gather_fits(ldb, sizeof(TB))) {
      if constexpr (Kernel::kg == 2 && std::is_same_v<TB, bf16> && std::is_same_v<b_t, bf16>) {
        return pack_b_pairs_avx512(tb, b, ldb, k0, kc, j0, nr_eff, out);
      } else if constexpr (Kernel::kg == 1 && std::is_same_v<b_t, float>) {
        return pack_b_fp32_avx512(tb, b, ldb, k0, kc, j0, nr_eff, out);
      }
    }
  }
#endif
  pack_b_panel_reference<Kernel>(tb, b, ldb, k0, kc, j0, nr_eff, out);
}

template <class Kernel, class TA>
inline void pack_a_panel(Trans ta, const TA* a, std::size_t lda, std::size_t i0, std::size_t mr_eff, std::size_t k0, std::size_t kc,
                         typename Kernel::a_t* out) noexcept {
#if MPT_X86
  using a_t = typename Kernel::a_t;
  if constexpr (Kernel::isa >= Isa::avx512 && Kernel::mr == 12 && !std::is_same_v<TA, double>) {
    if (gather_fits(lda, sizeof(TA))) {
      if constexpr (Kernel::kg == 2 && std::is_same_v<TA, bf16> && std::is_same_v<a_t, bf16>) {
        if (ta == Trans::T) return pack_a_pairs_t_avx512(a, lda, i0, mr_eff, k0, kc, out);
      } else if constexpr (Kernel::kg == 1 && std::is_same_v<a_t, float>) {
        return pack_a_fp32_avx512(ta, a, lda, i0, mr_eff, k0, kc, out);
      }
    }
  }
#endif
  pack_a_panel_reference<Kernel>(ta, a, lda, i0, mr_eff, k0, kc, out);
}

// Rows [i0, i0 + rows) of op(A), columns [k0, k0 + kc), as rows of `row_stride`
// elements (each row's k-groups then zeros), up to a whole number of MR-row panels;
// and, if `sums` is set, sums[i] += row i's values in k order.
template <class Kernel, class TA>
inline void pack_a_rows_chunk(Trans ta, const TA* a, std::size_t lda, std::size_t i0, std::size_t rows, std::size_t k0, std::size_t kc,
                              typename Kernel::a_t* out, std::size_t row_stride, typename Kernel::acc_t* sums) noexcept {
  using a_t = typename Kernel::a_t;
  const std::size_t width = ceil_div(kc, Kernel::kg) * Kernel::kg, padded_rows = ceil_div(rows, Kernel::mr) * Kernel::mr;
  if (ta == Trans::N) {
    for (std::size_t i = 0; i < rows; ++i) {
      const TA* src = a + (i0 + i) * lda + k0;
      a_t* dst = out + i * row_stride;
      for (std::size_t k = 0; k < kc; ++k) dst[k] = convert_element<a_t>(src[k]);
      std::fill(dst + kc, dst + width, a_t(0));
      if (sums)
        for (std::size_t k = 0; k < kc; ++k) sums[i] += convert_element<typename Kernel::acc_t>(dst[k]);
    }
  } else {
#if MPT_X86
    if constexpr (std::is_same_v<TA, bf16> && std::is_same_v<a_t, bf16> && Kernel::isa >= Isa::avx512) {
      if (gather_fits(lda, sizeof(TA))) return pack_a_rows_t_avx512(a, lda, i0, rows, k0, kc, out, row_stride, padded_rows, sums);
    }
#endif
    for (std::size_t i = 0; i < rows; ++i) {
      a_t* dst = out + i * row_stride;
      for (std::size_t k = 0; k < kc; ++k) dst[k] = convert_element<a_t>(a[(k0 + k) * lda + i0 + i]);
      std::fill(dst + kc, dst + width, a_t(0));
      if (sums)
        for (std::size_t k = 0; k < kc; ++k) sums[i] += convert_element<typename Kernel::acc_t>(dst[k]);
    }
  }
  for (std::size_t i = rows; i < padded_rows; ++i) std::fill(out + i * row_stride, out + i * row_stride + width, a_t(0));
}

// Row panels [i0, i0 + rows) of op(A) (rows beyond the matrix already excluded),
// panel q at out + q * panel_stride. Kernels packing rows also add each row's sum to
// row_sums[i] if it is set (the others' sums are added from their panels afterwards).
template <class Kernel, class TA>
inline void pack_a_chunk(Trans ta, const TA* a, std::size_t lda, std::size_t i0, std::size_t rows, std::size_t k0, std::size_t kc,
                         typename Kernel::a_t* out, std::size_t panel_stride, typename Kernel::acc_t* row_sums = nullptr) noexcept {
  if constexpr (packs_a_as_rows_v<Kernel>) {
    return pack_a_rows_chunk<Kernel>(ta, a, lda, i0, rows, k0, kc, out, panel_stride / Kernel::mr, row_sums);
  }
  (void)row_sums;
#if MPT_X86
  using a_t = typename Kernel::a_t;
  if constexpr (Kernel::isa >= Isa::avx512 && Kernel::mr == 12 && !std::is_same_v<TA, double> &&
                (std::is_same_v<a_t, float> || (Kernel::kg == 2 && std::is_same_v<TA, bf16>))) {
    if (ta == Trans::T) return pack_a_t_chunk_avx512(a, lda, i0, rows, k0, kc, out, panel_stride);
  }
#endif
  for (std::size_t q = 0; q * Kernel::mr < rows; ++q) {
    pack_a_panel<Kernel>(ta, a, lda, i0 + q * Kernel::mr, std::min(Kernel::mr, rows - q * Kernel::mr), k0, kc, out + q * panel_stride);
  }
}

}  // namespace mpt::kernels::detail
