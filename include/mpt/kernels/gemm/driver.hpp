#pragma once
// The blocked GEMM loop nest around one micro-kernel (BLIS order, NC = the task's columns):
//
//   task (rows of MR-panels x columns of NR-panels, from plan_tasks)
//     chunk of <= MC rows            A block: read in place or packed, L2-resident
//       k-block (block_k_for)        B panels: packed once per call, shared by all tasks,
//                                    one k-block of them sized for the last-level cache
//         column panel (NR)          B micro-panel kc x NR, streamed from L1/L2
//           row panel (MR)           micro-kernel: MR x NR accumulators in registers
//
// With more than one k-block the partial sums wait in an fp32 buffer (never in a
// bf16 C); the epilogue runs on each MR x NR tile right after its last k-block.
// When C itself can carry the running sums (fp32 C, alpha = 1, beta 0 or 1, nothing
// fused), full tiles accumulate in C and edge tiles start from it.
// Every C element is one chain of fused multiply-adds in k order, whatever the
// partition, so results are bitwise identical for any thread count.

#include <mpt/core/cpu.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/kernels/gemm/epilogue.hpp>
#include <mpt/kernels/gemm/pack.hpp>
#include <mpt/kernels/gemm/scratch.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace mpt::kernels::detail {

// One GEMM with op(B) already packed for Kernel.
template <class Kernel, class TA, class TC, class TE, class TR>
struct GemmProblem {
  Trans ta;
  std::size_t m, n, k;
  const TA* a;
  std::size_t lda;
  const typename Kernel::b_t* packed_b;
  EpilogueArgs<typename Kernel::acc_t, TC, TE, TR> store;
  // If set, row_sums[i] += sum_k op(A)(i, k) for the rows of this product, summed from
  // the packed panels in k order (A is then always packed): a linear layer's bias
  // gradient, with op(A) = dY^T, without another pass over dY.
  typename Kernel::acc_t* a_row_sums = nullptr;
};

struct TaskGrid {
  std::size_t row_parts = 1, col_parts = 1;
  std::size_t count() const noexcept { return row_parts * col_parts; }
};

inline std::size_t part_begin(std::size_t n, std::size_t parts, std::size_t p) noexcept { return n * p / parts; }

// Row panels per chunk of rows. A stored transposed is packed from rows of K (one
// row per k, far apart in memory): a wider chunk uses more of each row's cache lines
// (12 bf16 = 24 bytes per panel) and pages per visit.
template <class Kernel>
inline std::size_t chunk_panels_for(Trans ta) noexcept {
  return (ta == Trans::T ? 4 : 1) * (Kernel::mc / Kernel::mr);
}

// About one chunk of rows per task (a multiple of the thread count, so that
// threads finish together), splitting columns only when there are too few rows.
template <class Kernel>
inline TaskGrid plan_tasks(Trans ta, std::size_t m, std::size_t n, std::size_t threads) noexcept {
  const std::size_t row_panels = ceil_div(m, Kernel::mr), col_panels = ceil_div(n, Kernel::nr);
  TaskGrid grid;
  if (threads <= 1) return grid;
  const std::size_t chunks = ceil_div(row_panels, chunk_panels_for<Kernel>(ta));
  grid.row_parts = std::min(row_panels, ceil_div(chunks, threads) * threads);
  if (grid.row_parts < threads) grid.col_parts = std::min(col_panels, ceil_div(threads, grid.row_parts));
  return grid;
}

template <class Acc, class TC, class TE, class TR>
inline void prefetch_tile(const EpilogueArgs<Acc, TC, TE, TR>& e, std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    const TC* c = e.c + (i0 + r) * e.ldc + j0;
    for (std::size_t j = 0; j < cols; j += 64 / sizeof(TC)) __builtin_prefetch(c + j, 1);
    if (e.fused.residual) {
      const TR* res = e.fused.residual + (i0 + r) * e.fused.ldr + j0;
      for (std::size_t j = 0; j < cols; j += 64 / sizeof(TR)) __builtin_prefetch(res + j, 0);
    }
  }
}

// Whether the store is the identity into C of the accumulation type (alpha = 1,
// beta 0 or 1, nothing fused): then C itself can carry running sums between k-blocks.
template <class Acc, class TC, class TE, class TR>
inline bool c_holds_running_sums(const EpilogueArgs<Acc, TC, TE, TR>& e) noexcept {
  return std::is_same_v<TC, Acc> && e.alpha == Acc(1) && (e.beta == Acc(0) || e.beta == Acc(1)) && !e.fused.fuses_anything();
}

template <class T>
inline void prefetch_rows(const T* p, std::size_t ld, std::size_t rows, std::size_t cols) noexcept {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < cols; j += 64 / sizeof(T)) __builtin_prefetch(p + r * ld + j, 1);
}

// Pulls a region of rows of a matrix toward L2 a few cache lines per call, so that
// the source of the next chunk of op(A) arrives while this chunk computes. Used for
// A stored transposed (weight gradients): its packing visits one far-apart row per k
// and would otherwise wait on each (measured: +1% on the weight-gradient products);
// and for large A read in place with little reuse (see run_tiles).
class SpreadPrefetch {
 public:
  SpreadPrefetch() = default;
  // rows [0, rows) of `bytes_per_row` bytes from `base`, `ld_bytes` apart, over `steps` calls.
  SpreadPrefetch(const void* base, std::size_t rows, std::size_t bytes_per_row, std::size_t ld_bytes, std::size_t steps) noexcept
      : base_(static_cast<const char*>(base)), ld_(ld_bytes), lines_per_row_((bytes_per_row + 63) / 64), rows_(rows) {
    per_step_ = steps == 0 ? 0 : ceil_div(rows * lines_per_row_, steps);
  }
  void step() noexcept {
    for (std::size_t n = 0; n < per_step_ && row_ < rows_; ++n) {
      __builtin_prefetch(base_ + row_ * ld_ + line_ * 64, 0, 2);
      if (++line_ == lines_per_row_) line_ = 0, ++row_;
    }
  }

 private:
  const char* base_ = nullptr;
  std::size_t ld_ = 0, lines_per_row_ = 0, rows_ = 0, per_step_ = 0, row_ = 0, line_ = 0;
};

// The source of op(A)'s row panels [c0, c1) for columns [0, kc) of op(A), prefetched over `steps` calls.
template <class Kernel, class TA>
inline SpreadPrefetch chunk_source_prefetch(Trans ta, const TA* a, std::size_t lda, std::size_t m, std::size_t c0, std::size_t c1, std::size_t kc,
                                            std::size_t steps) noexcept {
  const std::size_t i0 = std::min(m, c0 * Kernel::mr), i1 = std::min(m, c1 * Kernel::mr);
  if (i0 >= i1) return {};
  if (ta == Trans::N) return {a + i0 * lda, i1 - i0, kc * sizeof(TA), lda * sizeof(TA), steps};
  return {a + i0, kc, (i1 - i0) * sizeof(TA), lda * sizeof(TA), steps};
}

// sums[i] += sum over k of a packed row panel's row i (i < rows), in k order.
template <class Kernel>
inline void add_packed_row_sums_reference(const typename Kernel::a_t* panel, std::size_t groups, std::size_t rows,
                                          typename Kernel::acc_t* sums) noexcept {
  constexpr std::size_t MR = Kernel::mr, KG = Kernel::kg;
  using acc_t = typename Kernel::acc_t;
  acc_t s[MR] = {};
  for (std::size_t i = 0; i < rows; ++i) s[i] = sums[i];
  for (std::size_t g = 0; g < groups; ++g)
    for (std::size_t u = 0; u < KG; ++u)
      for (std::size_t i = 0; i < MR; ++i) s[i] += convert_element<acc_t>(panel[(g * MR + i) * KG + u]);
  for (std::size_t i = 0; i < rows; ++i) sums[i] = s[i];
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#if MPT_X86
// The same sums for the 12-row AVX-512 panels, one lane per row (the same order per row).
template <class AT>
MPT_TARGET_AVX512 inline void add_packed_row_sums_avx512(const AT* panel, std::size_t groups, std::size_t rows, float* sums) noexcept {
  const __mmask16 m12 = 0x0FFF, live = static_cast<__mmask16>((1u << rows) - 1);
  __m512 s = _mm512_maskz_loadu_ps(live, sums);
  if constexpr (std::is_same_v<AT, bf16>) {  // k-pairs: low half of each 32-bit lane is the even k
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (std::size_t g = 0; g < groups; ++g) {
      const __m512i w = _mm512_maskz_loadu_epi32(m12, panel + g * 24);
      s = _mm512_add_ps(s, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
      s = _mm512_add_ps(s, _mm512_castsi512_ps(_mm512_and_si512(w, high)));
    }
  } else {
    for (std::size_t g = 0; g < groups; ++g) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m12, panel + g * 12));
  }
  _mm512_mask_storeu_ps(sums, live, s);
}
#endif
#pragma GCC diagnostic pop

template <class Kernel>
inline void add_packed_row_sums(const typename Kernel::a_t* panel, std::size_t groups, std::size_t rows, typename Kernel::acc_t* sums) noexcept {
#if MPT_X86
  if constexpr (Kernel::isa >= Isa::avx512 && Kernel::mr == 12 && std::is_same_v<typename Kernel::acc_t, float>) {
    return add_packed_row_sums_avx512(panel, groups, rows, sums);
  }
#endif
  add_packed_row_sums_reference<Kernel>(panel, groups, rows, sums);
}

// The epilogue on a kernel's accumulators in registers (full tiles), where the kernel and
// the operand types have one: the AVX-512 12 x 32 kernels with fp32 accumulators, and the
// AMX 32 x 32 kernel (from its fp32 tile, row by row).
template <class Kernel, class TC, class TE, class TR>
inline constexpr bool has_register_store = MPT_X86&& Kernel::isa >= Isa::avx512&& Kernel::nr == 32 && std::is_same_v<typename Kernel::acc_t, float> &&
                                           !std::is_same_v<TC, double> && !std::is_same_v<TE, double> && !std::is_same_v<TR, double>;

#if MPT_X86
template <class Kernel, class TC, class TE, class TR>
inline auto register_store(const EpilogueArgs<float, TC, TE, TR>& e, std::size_t i0, std::size_t j0) noexcept {
  if constexpr (Kernel::isa >= Isa::avx512_bf16 && std::is_same_v<typename Kernel::a_t, bf16> && std::is_same_v<TC, bf16>) {
    return RegisterStoreAvx512Bf16<TE, TR>(e, i0, j0);  // vcvtne2ps2bf16, in the bf16 kernel's target
  } else {
    return RegisterStoreAvx512<TC, TE, TR>(e, i0, j0);
  }
}
// A bf16 C stored with vcvtne2ps2bf16 from the bf16 kernel's registers, nothing applied.
template <class Kernel, class TC>
inline constexpr bool plain_bf16_store = Kernel::isa >= Isa::avx512_bf16&& std::is_same_v<typename Kernel::a_t, bf16>&& std::is_same_v<TC, bf16>;
#else
template <class Kernel, class TC>
inline constexpr bool plain_bf16_store = false;
template <class Kernel, class TC, class TE, class TR>
void register_store(const EpilogueArgs<float, TC, TE, TR>& e, std::size_t i0, std::size_t j0) noexcept;  // never used
#endif

// Computes the tiles of C in row panels [p0, p1) x column panels [q0, q1).
template <class Kernel, class TA, class TC, class TE, class TR>
inline void run_tiles(const GemmProblem<Kernel, TA, TC, TE, TR>& pr, std::size_t p0, std::size_t p1, std::size_t q0, std::size_t q1) {
  using a_t = typename Kernel::a_t;
  using acc_t = typename Kernel::acc_t;
  constexpr std::size_t MR = Kernel::mr, NR = Kernel::nr, KG = Kernel::kg;
  if (p0 >= p1 || q0 >= q1) return;
  if constexpr (requires { Kernel::prepare_thread(); }) Kernel::prepare_thread();
  const PanelLayout<Kernel> layout{pr.k, pr.n};
  const std::size_t k_blocks = layout.k_blocks();
  // A is read in place when it already has the kernel's element type, row-major in k,
  // and (for k-pairs) every pair lies inside the row.
  const bool a_in_place = std::is_same_v<TA, a_t> && pr.ta == Trans::N && pr.k % KG == 0 && !pr.a_row_sums && a_read_in_place_v<Kernel>;
  // A panel in the scratch: MR rows of the k-block (kernels packing rows: padded by one
  // cache line, so that the rows of a tile do not all fall into the same L1 sets).
  const std::size_t a_row = packs_a_as_rows_v<Kernel> ? layout.kc + 64 / sizeof(a_t) : layout.kc;
  const std::size_t a_panel = MR * a_row;
  // Full tiles accumulate straight into C when the store would be the identity.
  const bool c_direct = c_holds_running_sums(pr.store);
  // With one k-block (no partial sums), kernels that apply the epilogue to their
  // accumulators in registers store full tiles themselves (no fp32 tile, no second pass).
  constexpr bool registers_to_c = has_register_store<Kernel, TC, TE, TR>;
  const bool store_from_registers = registers_to_c && k_blocks == 1 && !c_direct;
  const bool nothing_to_apply = pr.store.alpha == acc_t(1) && pr.store.beta == acc_t(0) && !pr.store.fused.fuses_anything();

  // A read in place is prefetched a chunk ahead too when it is used by few column panels
  // and is too large to stay in cache between items (attention's P V and dscores K at
  // S = 384: +7-19%; at S = 128, or with many column panels, it only costs: -3%).
  const bool prefetch_a_in_place = a_in_place && q1 - q0 <= 4 && (p1 - p0) * MR * pr.k * sizeof(TA) > (std::size_t(128) << 10);
  const std::size_t panels = p1 - p0;
  const std::size_t chunk_count = ceil_div(panels, chunk_panels_for<Kernel>(pr.ta));
  const std::size_t chunk_panels = ceil_div(panels, chunk_count);
  const std::size_t cols = (q1 - q0) * NR;

  mpt::detail::ScratchLease<a_t> a_pack(ScratchSlot::packed_a, chunk_panels * a_panel);
  mpt::detail::ScratchLease<acc_t> partial(ScratchSlot::partial_sums, k_blocks > 1 ? chunk_panels * MR * cols : 0);
  alignas(64) acc_t tile[MR * NR];

  struct APanel {
    const a_t* data;
    std::size_t rs, cs;
  };
  APanel a_panels[256];  // chunk_panels <= 4 * Kernel::mc / MR
  static_assert(4 * (Kernel::mc / MR) <= 256);

  for (std::size_t c0 = p0; c0 < p1; c0 += chunk_panels) {
    const std::size_t c1 = std::min(p1, c0 + chunk_panels);
    for (std::size_t blk = 0; blk < k_blocks; ++blk) {
      const std::size_t k0 = blk * layout.kc, kc = layout.block_k(blk), groups = layout.block_groups(blk);
      // Panels read in place, then one packing pass over the rest of the chunk
      // (in place is all but a partial last panel, or nothing).
      std::size_t packed_from = c1;
      for (std::size_t p = c0; p < c1; ++p) {
        const std::size_t i0 = p * MR, mr_eff = std::min(MR, pr.m - i0);
        if constexpr (std::is_same_v<TA, a_t>) {
          if (a_in_place && mr_eff == MR) {
            a_panels[p - c0] = {pr.a + i0 * pr.lda + k0, pr.lda, KG};
            continue;
          }
        }
        if constexpr (packs_a_as_rows_v<Kernel>)
          a_panels[p - c0] = {a_pack.data() + (p - c0) * a_panel, a_row, KG};
        else
          a_panels[p - c0] = {a_pack.data() + (p - c0) * a_panel, KG, MR * KG};
        packed_from = std::min(packed_from, p);
      }
      // With row sums A is packed whole (packed_from = c0); one task per row range adds
      // them (tasks splitting columns share rows).
      const bool add_row_sums = pr.a_row_sums && q0 == 0;
      if (packed_from < c1) {
        pack_a_chunk<Kernel>(pr.ta, pr.a, pr.lda, packed_from * MR, std::min(c1 * MR, pr.m) - packed_from * MR, k0, kc,
                             a_pack.data() + (packed_from - c0) * a_panel, a_panel,
                             packs_a_as_rows_v<Kernel> && add_row_sums ? pr.a_row_sums + packed_from * MR : nullptr);
      }
      if (!packs_a_as_rows_v<Kernel> && add_row_sums) {
        for (std::size_t p = c0; p < c1; ++p) {
          add_packed_row_sums<Kernel>(a_pack.data() + (p - c0) * a_panel, groups, std::min(MR, pr.m - p * MR), pr.a_row_sums + p * MR);
        }
      }
      const bool last = blk + 1 == k_blocks;
      SpreadPrefetch next_chunk;
      if (last && (pr.ta == Trans::T || prefetch_a_in_place))
        next_chunk =
            chunk_source_prefetch<Kernel>(pr.ta, pr.a, pr.lda, pr.m, c1, std::min(p1, c1 + chunk_panels), layout.block_k(0), (q1 - q0) * (c1 - c0));
      for (std::size_t q = q0; q < q1; ++q) {
        const typename Kernel::b_t* b_panel = pr.packed_b + layout.offset(blk, q);
        const std::size_t j0 = q * NR, nr_eff = std::min(NR, pr.n - j0);
        for (std::size_t p = c0; p < c1; ++p) {
          const std::size_t i0 = p * MR, mr_eff = std::min(MR, pr.m - i0);
          // The next tile's rows of C / partial sums are far apart in memory: no hardware
          // prefetcher finds them, so ask for them while this tile's micro-kernel runs.
          const std::size_t pn = p + 1 < c1 ? p + 1 : c0, qn = p + 1 < c1 ? q : q + 1;
          if (qn < q1) {
            const std::size_t in = pn * MR, jn = qn * NR;
            const std::size_t mr_n = std::min(MR, pr.m - in), nr_n = std::min(NR, pr.n - jn);
            if (c_direct && mr_n == MR && nr_n == NR) {
              if (blk > 0 || pr.store.beta != 0) prefetch_rows(pr.store.c + in * pr.store.ldc + jn, pr.store.ldc, MR, NR);
            } else {
              if (last) prefetch_tile(pr.store, in, mr_n, jn, nr_n);
              if (blk > 0 && k_blocks > 1) prefetch_rows(partial.data() + (pn - c0) * MR * cols + (qn - q0) * NR, cols, MR, NR);
            }
          }
          next_chunk.step();  // a few lines per micro-kernel: a burst would fill the miss queue
          const APanel& ap = a_panels[p - c0];
          if constexpr (registers_to_c) {
            if (store_from_registers && mr_eff == MR && nr_eff == NR) {
              if constexpr (plain_bf16_store<Kernel, TC>) {
                if (nothing_to_apply) {
                  Kernel::run_store(groups, ap.data, ap.rs, ap.cs, b_panel,
                                    RegisterStorePlainBf16{pr.store.c + i0 * pr.store.ldc + j0, pr.store.ldc});
                  continue;
                }
              }
              Kernel::run_store(groups, ap.data, ap.rs, ap.cs, b_panel, register_store<Kernel>(pr.store, i0, j0));
              continue;
            }
          }
          if (c_direct && mr_eff == MR && nr_eff == NR) {
            // alpha = 1, beta in {0, 1}, nothing fused, C in the accumulation type:
            // C itself holds the running sums, with no separate store pass.
            if constexpr (std::is_same_v<TC, acc_t>) {
              Kernel::run(groups, ap.data, ap.rs, ap.cs, b_panel, pr.store.c + i0 * pr.store.ldc + j0, pr.store.ldc, blk > 0 || pr.store.beta != 0);
            }
            continue;
          }
          acc_t* acc = tile;
          std::size_t ld = NR;
          if (k_blocks > 1) {
            ld = cols;
            acc = partial.data() + (p - c0) * MR * ld + (q - q0) * NR;
          }
          if constexpr (std::is_same_v<TC, acc_t>) {
            if (c_direct) {
              // An edge tile of a product whose C carries the running sums (a weight
              // gradient, or a product gemm splits into k-blocks): continue C's chain
              // rather than adding a separate one, so that every element of C is one
              // chain of multiply-adds in k order, as in the full tiles.
              const bool from_c = blk == 0 && pr.store.beta != 0;
              if (from_c) {
                for (std::size_t r = 0; r < MR; ++r)
                  for (std::size_t j = 0; j < NR; ++j)
                    acc[r * ld + j] = r < mr_eff && j < nr_eff ? pr.store.c[(i0 + r) * pr.store.ldc + j0 + j] : acc_t(0);
              }
              Kernel::run(groups, ap.data, ap.rs, ap.cs, b_panel, acc, ld, blk > 0 || from_c);
              if (last) {
                for (std::size_t r = 0; r < mr_eff; ++r) std::copy(acc + r * ld, acc + r * ld + nr_eff, pr.store.c + (i0 + r) * pr.store.ldc + j0);
              }
              continue;
            }
          }
          Kernel::run(groups, ap.data, ap.rs, ap.cs, b_panel, acc, ld, blk > 0);
          if (last) {
            epilogue_tile<Kernel::isa>(acc, ld, i0, mr_eff, j0, nr_eff, pr.store);
          }
        }
      }
    }
  }
}

// Packs all of op(B) for Kernel into out[PanelLayout{k, n}.size()], in parallel if asked.
template <class Kernel, class TB>
inline void pack_b(Trans tb, std::size_t k, std::size_t n, const TB* b, std::size_t ldb, typename Kernel::b_t* out, bool parallel) {
  const PanelLayout<Kernel> layout{k, n};
  const std::size_t panels = layout.n_panels(), tasks = layout.k_blocks() * panels;
  auto body = [&](std::size_t t) {
    const std::size_t blk = t / panels, q = t % panels;
    const std::size_t j0 = q * Kernel::nr;
    pack_b_panel<Kernel>(tb, b, ldb, blk * layout.kc, layout.block_k(blk), j0, std::min(Kernel::nr, n - j0), out + layout.offset(blk, q));
  };
  if (parallel)
    parallel_for(tasks, body);
  else
    for (std::size_t t = 0; t < tasks; ++t) body(t);
}

// C = epilogue(alpha * op(A) * packed op(B) + beta * C), in parallel over output tiles if asked.
template <class Kernel, class TA, class TC, class TE, class TR>
inline void run_gemm(const GemmProblem<Kernel, TA, TC, TE, TR>& pr, bool parallel) {
  if (pr.m == 0 || pr.n == 0) return;
  if (pr.k == 0) {  // no products: C = epilogue(beta * C)
    mpt::detail::ScratchLease<typename Kernel::acc_t> zeros(ScratchSlot::partial_sums, pr.n);
    std::fill(zeros.data(), zeros.data() + pr.n, typename Kernel::acc_t(0));
    for (std::size_t i = 0; i < pr.m; ++i) epilogue_row<Kernel::isa>(zeros.data(), pr.n, i, 0, pr.store);
    return;
  }
  const std::size_t row_panels = ceil_div(pr.m, Kernel::mr), col_panels = ceil_div(pr.n, Kernel::nr);
  const TaskGrid grid = plan_tasks<Kernel>(pr.ta, pr.m, pr.n, parallel ? static_cast<std::size_t>(num_threads()) : 1);
  auto body = [&](std::size_t t) {
    const std::size_t r = t / grid.col_parts, c = t % grid.col_parts;
    run_tiles(pr, part_begin(row_panels, grid.row_parts, r), part_begin(row_panels, grid.row_parts, r + 1), part_begin(col_panels, grid.col_parts, c),
              part_begin(col_panels, grid.col_parts, c + 1));
  };
  if (parallel)
    parallel_for(grid.count(), body);
  else
    for (std::size_t t = 0; t < grid.count(); ++t) body(t);
}

}  // namespace mpt::kernels::detail
