#pragma once
// AVX-512 packing for the 12 x 32 micro-kernels; same layouts and results as the
// scalar reference in pack.hpp (pack_b_panel_reference / pack_a_panel_reference).
//
//   B panel: b[(g * 32 + j) * KG + u] = op(B)(k0 + g*KG + u, j0 + j)    (32 columns)
//   A panel: a[(g * 12 + i) * KG + u] = op(A)(i0 + i, k0 + g*KG + u)    (12 rows)
//
// Rows of a stored matrix become lanes with masked loads; columns become lanes
// with 16 x 16 word transposes or gathers (one 32-bit word = one fp32 or one bf16
// k-pair); bf16
// k-pairs are interleaved from two rows with vpermt2w; widening bf16 -> fp32 is
// a 16-bit shift. Lanes beyond the matrix are zero.

#include <mpt/core/bf16.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <immintrin.h>

#include <array>
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

#if MPT_X86
inline __mmask16 lanes16(std::size_t n) noexcept { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
inline __mmask32 lanes32(std::size_t n) noexcept { return n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((std::uint32_t(1) << n) - 1u); }

// vpermt2w indices that interleave two rows of 32 bf16 into k-pairs:
// lanes 0..15 of the pairs (low) and 16..31 (high).
inline constexpr std::array<std::int16_t, 32> pair_index(int first) noexcept {
  std::array<std::int16_t, 32> idx{};
  for (int t = 0; t < 32; ++t) idx[t] = static_cast<std::int16_t>((t & 1) * 32 + first + t / 2);
  return idx;
}
alignas(64) inline constexpr std::array<std::int16_t, 32> pair_index_lo = pair_index(0);
alignas(64) inline constexpr std::array<std::int16_t, 32> pair_index_hi = pair_index(16);

// Interleaves bf16 rows r0 (k even) and r1 (k odd) into k-pairs.
MPT_TARGET_AVX512 inline void interleave_pairs(__m512i r0, __m512i r1, __m512i& lo, __m512i& hi) noexcept {
  lo = _mm512_permutex2var_epi16(r0, _mm512_loadu_si512(pair_index_lo.data()), r1);
  hi = _mm512_permutex2var_epi16(r0, _mm512_loadu_si512(pair_index_hi.data()), r1);
}

// 32-bit words at base + lane * stride_bytes for the lanes in m (others zero).
MPT_TARGET_AVX512 inline __m512i gather_words(const void* base, std::size_t stride_bytes, __mmask16 m) noexcept {
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(static_cast<int>(stride_bytes)));
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base, 1);
}
// Word-gathers need 16 row offsets in int32 bytes.
inline bool gather_fits(std::size_t ld, std::size_t elem_bytes) noexcept { return ld * elem_bytes * 16 < INT_MAX; }

// In-register transpose of 16 x 16 32-bit words: r[i] lane j -> r[j] lane i.
// Unpacks interleave row pairs within 128-bit lanes, then 128-bit lane shuffles
// gather each column's four quarters.
MPT_TARGET_AVX512 inline void transpose_16x16_words(__m512i r[16]) noexcept {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + c], lane L: column 4L + c of rows g .. g+3
    u[g + 0] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i x_lo = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), x_hi = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i y_lo = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    const __m512i y_hi = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(x_lo, y_lo, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(x_lo, y_lo, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(x_hi, y_hi, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(x_hi, y_hi, 0xDD);
  }
}

// Packs 32 columns of op(B) = B^T (B stored [N x K], rows contiguous in k) as words:
// word (w, j) = 32-bit word w of row j0 + j, from `words` words per row starting at
// `row0` (bytes per row `ld_bytes`); out[w * 32 + j]. Word = one fp32 or one bf16 pair.
// `elems_left`/`elem_bytes` bound the loads so nothing past the block is read.
MPT_TARGET_AVX512 inline void pack_words_transposed(const std::byte* row0, std::size_t ld_bytes, std::size_t nr_eff, std::size_t words,
                                                    std::size_t elems, std::size_t elem_bytes, std::uint32_t* out) noexcept {
  const std::size_t elems_per_word = 4 / elem_bytes;
  // The loads below walk 32 rows side by side, which no hardware prefetcher follows
  // from memory (a cold W^T packed at 6-8 GB/s). The next panel's 32 rows (the next
  // rows of B) are prefetched in address order, spread over this panel's steps:
  // 14-17 GB/s, near memcpy's 24 here. Past the last panel this prefetches memory
  // that is not read, which is harmless (prefetches never fault).
  const std::size_t lines_per_row = (elems * elem_bytes + 63) / 64, steps = (words + 15) / 16;
  const std::size_t lines_per_step = (32 * lines_per_row + steps - 1) / steps;
  const std::byte* next_panel = row0 + 32 * ld_bytes;
  std::size_t next_row = 0, next_line = 0;
  for (std::size_t w0 = 0; w0 < words; w0 += 16) {
    const std::size_t e0 = w0 * elems_per_word, e_left = elems - e0;
    for (std::size_t n = 0; n < lines_per_step && next_row < 32; ++n) {
      _mm_prefetch(reinterpret_cast<const char*>(next_panel + next_row * ld_bytes + next_line * 64), _MM_HINT_T0);
      if (++next_line == lines_per_row) next_line = 0, ++next_row;
    }
    for (std::size_t half = 0; half < 2; ++half) {
      __m512i r[16];
      for (std::size_t j = 0; j < 16; ++j) {
        const std::size_t jj = half * 16 + j;
        const std::byte* src = row0 + jj * ld_bytes + e0 * elem_bytes;
        if (jj >= nr_eff)
          r[j] = _mm512_setzero_si512();
        else if (elem_bytes == 2)
          r[j] = _mm512_maskz_loadu_epi16(lanes32(e_left), src);
        else
          r[j] = _mm512_maskz_loadu_epi32(lanes16(e_left), src);
      }
      transpose_16x16_words(r);
      const std::size_t n_words = std::min<std::size_t>(16, words - w0);
      for (std::size_t w = 0; w < n_words; ++w) _mm512_store_si512(out + (w0 + w) * 32 + half * 16, r[w]);
    }
  }
}

MPT_TARGET_AVX512 inline __m512 widen_bf16_lanes(__m256i h) noexcept { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

// ---- B panels, 32 columns ----

// Packing op(B) = B reads a strip of 32 columns down `rows` rows per step, a stride no
// hardware prefetcher follows from memory; the next panel's strip (the next 32 columns,
// `strip_bytes` on) of the same rows is asked for one panel ahead (cold W: 15-16 -> 19-23
// GB/s here, memcpy 26). Past the last panel this touches nothing that faults.
MPT_TARGET_AVX512 inline void prefetch_next_panel_rows(const void* row, std::size_t strip_bytes, std::size_t rows, std::size_t ld_bytes) noexcept {
  const char* next = static_cast<const char*>(row) + strip_bytes;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t byte = 0; byte < strip_bytes; byte += 64) _mm_prefetch(next + r * ld_bytes + byte, _MM_HINT_T0);
}

// vdpbf16ps layout (KG = 2) from bf16 B.
MPT_TARGET_AVX512 inline void pack_b_pairs_avx512(Trans tb, const bf16* b, std::size_t ldb, std::size_t k0, std::size_t kc, std::size_t j0,
                                                  std::size_t nr_eff, bf16* out) noexcept {
  const std::size_t groups = (kc + 1) / 2;
  if (tb == Trans::N) {
    const __mmask32 m = lanes32(nr_eff);
    for (std::size_t g = 0; g < groups; ++g) {
      const bf16* row = b + (k0 + 2 * g) * ldb + j0;
      prefetch_next_panel_rows(row, 64, 2, ldb * 2);
      const __m512i r0 = _mm512_maskz_loadu_epi16(m, row);
      const __m512i r1 = 2 * g + 1 < kc ? _mm512_maskz_loadu_epi16(m, row + ldb) : _mm512_setzero_si512();
      __m512i lo, hi;
      interleave_pairs(r0, r1, lo, hi);
      _mm512_store_si512(out + g * 64, lo);
      _mm512_store_si512(out + g * 64 + 32, hi);
    }
  } else {  // word (g, j) = the pair B[j0 + j][k0 + 2g .. +1], contiguous in memory
    pack_words_transposed(reinterpret_cast<const std::byte*>(b + j0 * ldb + k0), ldb * 2, nr_eff, groups, kc, 2,
                          reinterpret_cast<std::uint32_t*>(out));
  }
}

// fp32 layout (KG = 1) from fp32 or bf16 B.
template <class TB>
MPT_TARGET_AVX512 inline void pack_b_fp32_avx512(Trans tb, const TB* b, std::size_t ldb, std::size_t k0, std::size_t kc, std::size_t j0,
                                                 std::size_t nr_eff, float* out) noexcept {
  const __mmask16 m0 = lanes16(nr_eff), m1 = lanes16(nr_eff > 16 ? nr_eff - 16 : 0);
  if (tb == Trans::N) {
    for (std::size_t k = 0; k < kc; ++k) {
      const TB* row = b + (k0 + k) * ldb + j0;
      prefetch_next_panel_rows(row, 32 * sizeof(TB), 1, ldb * sizeof(TB));
      if constexpr (std::is_same_v<TB, bf16>) {
        _mm512_store_ps(out + k * 32, widen_bf16_lanes(_mm256_maskz_loadu_epi16(m0, row)));
        _mm512_store_ps(out + k * 32 + 16, widen_bf16_lanes(_mm256_maskz_loadu_epi16(m1, row + 16)));
      } else {
        _mm512_store_ps(out + k * 32, _mm512_maskz_loadu_ps(m0, row));
        _mm512_store_ps(out + k * 32 + 16, _mm512_maskz_loadu_ps(m1, row + 16));
      }
    }
  } else if constexpr (std::is_same_v<TB, bf16>) {  // gather k-pairs, split into two k rows
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    std::size_t k = 0;
    for (; k + 2 <= kc; k += 2) {
      const bf16* p = b + j0 * ldb + k0 + k;
      const __m512i w0 = gather_words(p, ldb * 2, m0);
      const __m512i w1 = m1 ? gather_words(p + 16 * ldb, ldb * 2, m1) : _mm512_setzero_si512();
      _mm512_store_si512(out + k * 32, _mm512_slli_epi32(w0, 16));
      _mm512_store_si512(out + k * 32 + 16, _mm512_slli_epi32(w1, 16));
      _mm512_store_si512(out + k * 32 + 32, _mm512_and_si512(w0, high));
      _mm512_store_si512(out + k * 32 + 48, _mm512_and_si512(w1, high));
    }
    for (; k < kc; ++k)
      for (std::size_t j = 0; j < 32; ++j) out[k * 32 + j] = j < nr_eff ? to_float(b[(j0 + j) * ldb + k0 + k]) : 0.0f;
  } else {
    pack_words_transposed(reinterpret_cast<const std::byte*>(b + j0 * ldb + k0), ldb * 4, nr_eff, kc, kc, 4, reinterpret_cast<std::uint32_t*>(out));
  }
}

// ---- A panels, 12 rows ----

// vdpbf16ps layout (KG = 2) from bf16 A^T (A stored [K x M]: rows are k).
MPT_TARGET_AVX512 inline void pack_a_pairs_t_avx512(const bf16* a, std::size_t lda, std::size_t i0, std::size_t mr_eff, std::size_t k0,
                                                    std::size_t kc, bf16* out) noexcept {
  const __mmask32 m = lanes32(mr_eff);
  const std::size_t groups = (kc + 1) / 2;
  for (std::size_t g = 0; g < groups; ++g) {
    const bf16* row = a + (k0 + 2 * g) * lda + i0;
    const __m512i r0 = _mm512_maskz_loadu_epi16(m, row);
    const __m512i r1 = 2 * g + 1 < kc ? _mm512_maskz_loadu_epi16(m, row + lda) : _mm512_setzero_si512();
    __m512i lo, hi;
    interleave_pairs(r0, r1, lo, hi);
    _mm512_mask_storeu_epi16(out + g * 24, __mmask32(0x00FFFFFFu), lo);  // 12 pairs
  }
}

inline constexpr std::size_t a_prefetch_groups = 8;
// A^T's rows are a leading dimension apart, and a weight gradient's leading dimension is
// a multiple of 1024 elements (dY of BERT's intermediate layer: 6 or 12 KiB): all the rows
// a chunk reads fall into a few sets of L1 and L2, so lines prefetched a chunk ahead are
// partly evicted before use. A second prefetch into L2, 64 k-pairs ahead of the packing,
// brings them back in time: the packing's share of a weight gradient's cycles 5-7% -> 4-6%.
inline constexpr std::size_t a_far_prefetch_groups = 64;

// Several row panels of A^T at once, k outermost: each stored row of A (one k) is
// visited once for the whole chunk instead of once per panel, which matters when
// rows are far apart (one page each: TLB misses). Panel q of the chunk starts at
// out + q * panel_stride; rows [i0, i0 + rows) of op(A).
template <class TA, class Out>
MPT_TARGET_AVX512 inline void pack_a_t_chunk_avx512(const TA* a, std::size_t lda, std::size_t i0, std::size_t rows, std::size_t k0, std::size_t kc,
                                                    Out* out, std::size_t panel_stride) noexcept {
  const std::size_t panels = (rows + 11) / 12;
  if constexpr (std::is_same_v<Out, bf16>) {  // vdpbf16ps pairs
    const std::size_t groups = (kc + 1) / 2;
    for (std::size_t g = 0; g < groups; ++g) {
      const bf16* row = a + (k0 + 2 * g) * lda + i0;
      const bool pair = 2 * g + 1 < kc;
      if (2 * (g + a_prefetch_groups) + 1 < kc) {  // rows far apart: ask for later ones early
        const char* ahead = reinterpret_cast<const char*>(row + 2 * a_prefetch_groups * lda);
        for (std::size_t byte = 0; byte < rows * 2; byte += 64) {
          _mm_prefetch(ahead + byte, _MM_HINT_T0);
          _mm_prefetch(ahead + lda * 2 + byte, _MM_HINT_T0);
        }
      }
      if (2 * (g + a_far_prefetch_groups) + 1 < kc) {  // and into L2 much earlier (see a_far_prefetch_groups)
        const char* ahead = reinterpret_cast<const char*>(row + 2 * a_far_prefetch_groups * lda);
        for (std::size_t byte = 0; byte < rows * 2; byte += 64) {
          _mm_prefetch(ahead + byte, _MM_HINT_T1);
          _mm_prefetch(ahead + lda * 2 + byte, _MM_HINT_T1);
        }
      }
      for (std::size_t q = 0; q < panels; ++q) {
        const __mmask32 m = lanes32(std::min<std::size_t>(12, rows - q * 12));
        const __m512i r0 = _mm512_maskz_loadu_epi16(m, row + q * 12);
        const __m512i r1 = pair ? _mm512_maskz_loadu_epi16(m, row + lda + q * 12) : _mm512_setzero_si512();
        const __m512i lo = _mm512_permutex2var_epi16(r0, _mm512_loadu_si512(pair_index_lo.data()), r1);
        bf16* dst = out + q * panel_stride + g * 24;  // 12 pairs = 48 bytes, as 32 + 16 (no masked store)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_castsi512_si256(lo));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm512_extracti32x4_epi32(lo, 2));
      }
    }
  } else {  // fp32 panels from fp32 or bf16
    for (std::size_t k = 0; k < kc; ++k) {
      const TA* row = a + (k0 + k) * lda + i0;
      if (k + 2 * a_prefetch_groups < kc) {  // rows far apart: ask for later ones early
        const char* ahead = reinterpret_cast<const char*>(row + 2 * a_prefetch_groups * lda);
        for (std::size_t byte = 0; byte < rows * sizeof(TA); byte += 64) _mm_prefetch(ahead + byte, _MM_HINT_T0);
      }
      if (k + 2 * a_far_prefetch_groups < kc) {
        const char* ahead = reinterpret_cast<const char*>(row + 2 * a_far_prefetch_groups * lda);
        for (std::size_t byte = 0; byte < rows * sizeof(TA); byte += 64) _mm_prefetch(ahead + byte, _MM_HINT_T1);
      }
      for (std::size_t q = 0; q < panels; ++q) {
        const __mmask16 m = lanes16(std::min<std::size_t>(12, rows - q * 12));
        __m512 v;
        if constexpr (std::is_same_v<TA, bf16>)
          v = widen_bf16_lanes(_mm256_maskz_loadu_epi16(m, row + q * 12));
        else
          v = _mm512_maskz_loadu_ps(m, row + q * 12);
        _mm512_mask_storeu_ps(out + q * panel_stride + k * 12, __mmask16(0x0FFF), v);
      }
    }
  }
}

// fp32 layout (KG = 1) from fp32 or bf16 A.
template <class TA>
MPT_TARGET_AVX512 inline void pack_a_fp32_avx512(Trans ta, const TA* a, std::size_t lda, std::size_t i0, std::size_t mr_eff, std::size_t k0,
                                                 std::size_t kc, float* out) noexcept {
  const __mmask16 m = lanes16(mr_eff), m12 = 0x0FFF;
  if (ta == Trans::T) {  // rows of the stored A are k: 12 contiguous values each
    for (std::size_t k = 0; k < kc; ++k) {
      const TA* row = a + (k0 + k) * lda + i0;
      __m512 v;
      if constexpr (std::is_same_v<TA, bf16>)
        v = widen_bf16_lanes(_mm256_maskz_loadu_epi16(m, row));
      else
        v = _mm512_maskz_loadu_ps(m, row);
      _mm512_mask_storeu_ps(out + k * 12, m12, v);
    }
  } else if constexpr (std::is_same_v<TA, bf16>) {  // gather k-pairs across the 12 rows
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    std::size_t k = 0;
    for (; k + 2 <= kc; k += 2) {
      const __m512i w = gather_words(a + i0 * lda + k0 + k, lda * 2, m);
      _mm512_mask_storeu_epi32(out + k * 12, m12, _mm512_slli_epi32(w, 16));
      _mm512_mask_storeu_epi32(out + k * 12 + 12, m12, _mm512_and_si512(w, high));
    }
    for (; k < kc; ++k)
      for (std::size_t i = 0; i < 12; ++i) out[k * 12 + i] = i < mr_eff ? to_float(a[(i0 + i) * lda + k0 + k]) : 0.0f;
  } else {
    for (std::size_t k = 0; k < kc; ++k) {
      _mm512_mask_storeu_epi32(out + k * 12, m12, gather_words(a + i0 * lda + k0 + k, lda * 4, m));
    }
  }
}
// ---- A as rows (the AMX kernel's panels) ----

// out[i * row_stride + k] = op(A)(i0 + i, k0 + k) for op(A) = A^T (A stored [K x M]:
// rows are k), rows [0, padded_rows) (zeros from `rows` on), k-groups zero-padded.
// Per 32 k and 32 rows: two bf16 rows of A interleave into k-pair words (vpermt2w),
// then a 16 x 16 word transpose turns 16 k-pairs of 16 rows into 16 rows of 16 pairs.
// If `sums` is set, sums[i] += the row's values in k order (a bias gradient), from the
// pairs before the transpose, where each lane is one row.
MPT_TARGET_AVX512 inline void pack_a_rows_t_avx512(const bf16* a, std::size_t lda, std::size_t i0, std::size_t rows, std::size_t k0, std::size_t kc,
                                                   bf16* out, std::size_t row_stride, std::size_t padded_rows, float* sums) noexcept {
  const std::size_t groups = (kc + 1) / 2;
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (std::size_t ib = 0; ib < padded_rows; ib += 32) {
    const __mmask32 live = ib < rows ? lanes32(rows - ib) : __mmask32(0);
    const __mmask16 live_lo = static_cast<__mmask16>(live), live_hi = static_cast<__mmask16>(live >> 16);
    __m512 sum_lo = _mm512_setzero_ps(), sum_hi = _mm512_setzero_ps();
    if (sums) sum_lo = _mm512_maskz_loadu_ps(live_lo, sums + ib), sum_hi = _mm512_maskz_loadu_ps(live_hi, sums + ib + 16);
    for (std::size_t g0 = 0; g0 < groups; g0 += 16) {
      __m512i lo[16], hi[16];  // lo[g] lane i: the pair (k0 + 2(g0+g), +1) of row ib + i; hi: rows ib + 16 + i
      for (std::size_t g = 0; g < 16; ++g) {
        const std::size_t k = 2 * (g0 + g);
        const __m512i r0 = k < kc ? _mm512_maskz_loadu_epi16(live, a + (k0 + k) * lda + i0 + ib) : _mm512_setzero_si512();
        const __m512i r1 = k + 1 < kc ? _mm512_maskz_loadu_epi16(live, a + (k0 + k + 1) * lda + i0 + ib) : _mm512_setzero_si512();
        interleave_pairs(r0, r1, lo[g], hi[g]);
        if (sums && g0 + g < groups) {  // the even k, then the odd one (zero past kc)
          sum_lo = _mm512_add_ps(sum_lo, _mm512_castsi512_ps(_mm512_slli_epi32(lo[g], 16)));
          sum_lo = _mm512_add_ps(sum_lo, _mm512_castsi512_ps(_mm512_and_si512(lo[g], high)));
          sum_hi = _mm512_add_ps(sum_hi, _mm512_castsi512_ps(_mm512_slli_epi32(hi[g], 16)));
          sum_hi = _mm512_add_ps(sum_hi, _mm512_castsi512_ps(_mm512_and_si512(hi[g], high)));
        }
      }
      transpose_16x16_words(lo);
      transpose_16x16_words(hi);
      const __mmask16 words = lanes16(groups - g0);
      for (std::size_t i = 0; i < 16; ++i) {
        _mm512_mask_storeu_epi32(out + (ib + i) * row_stride + 2 * g0, words, lo[i]);
        _mm512_mask_storeu_epi32(out + (ib + 16 + i) * row_stride + 2 * g0, words, hi[i]);
      }
    }
    if (sums) _mm512_mask_storeu_ps(sums + ib, live_lo, sum_lo), _mm512_mask_storeu_ps(sums + ib + 16, live_hi, sum_hi);
  }
}

#endif  // MPT_X86

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
