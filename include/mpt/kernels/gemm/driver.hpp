#pragma once
// The blocked GEMM loop nest around one micro-kernel (BLIS order, NC = the task's columns):
//
//   task (rows of MR-panels x columns of NR-panels, from plan_tasks)
//     chunk of <= MC rows                    A block: read in place or packed, L2-resident
//       k-block of KC                        B panels: packed once per call, shared by all tasks
//         column panel (NR)                  B micro-panel KC x NR stays in L1
//           row panel (MR)                   micro-kernel: MR x NR accumulators in registers
//
// With more than one k-block the partial sums wait in an fp32 buffer (never in a
// bf16 C); the epilogue runs on each MR x NR tile right after its last k-block.
// Every C element is one chain of fused multiply-adds in k order, whatever the
// partition, so results are bitwise identical for any thread count.

#include <mpt/core/threads.hpp>
#include <mpt/kernels/gemm/epilogue.hpp>
#include <mpt/kernels/gemm/pack.hpp>
#include <mpt/kernels/gemm/scratch.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace mpt::detail {

// One GEMM with op(B) already packed for Kernel.
template <class Kernel, class TA, class TC, class TE, class TR>
struct GemmProblem {
  Trans ta;
  std::size_t m, n, k;
  const TA* a;
  std::size_t lda;
  const typename Kernel::b_t* packed_b;
  EpilogueArgs<typename Kernel::acc_t, TC, TE, TR> store;
};

struct TaskGrid {
  std::size_t row_parts = 1, col_parts = 1;
  std::size_t count() const noexcept { return row_parts * col_parts; }
};

inline std::size_t part_begin(std::size_t n, std::size_t parts, std::size_t p) noexcept { return n * p / parts; }

// About one L2 chunk of rows per task (a multiple of the thread count, so that
// threads finish together), splitting columns only when there are too few rows.
template <class Kernel>
inline TaskGrid plan_tasks(std::size_t m, std::size_t n, std::size_t threads) noexcept {
  const std::size_t row_panels = ceil_div(m, Kernel::mr), col_panels = ceil_div(n, Kernel::nr);
  TaskGrid grid;
  if (threads <= 1) return grid;
  const std::size_t chunks = ceil_div(row_panels, Kernel::mc / Kernel::mr);
  grid.row_parts = std::min(row_panels, ceil_div(chunks, threads) * threads);
  if (grid.row_parts < threads) grid.col_parts = std::min(col_panels, ceil_div(threads, grid.row_parts));
  return grid;
}

template <class Acc, class TC, class TE, class TR>
inline void prefetch_tile(const EpilogueArgs<Acc, TC, TE, TR>& e, std::size_t i0, std::size_t rows, std::size_t j0,
                          std::size_t cols) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    const TC* c = e.c + (i0 + r) * e.ldc + j0;
    for (std::size_t j = 0; j < cols; j += 64 / sizeof(TC)) __builtin_prefetch(c + j, 1);
    if (e.fused.residual) {
      const TR* res = e.fused.residual + (i0 + r) * e.fused.ldr + j0;
      for (std::size_t j = 0; j < cols; j += 64 / sizeof(TR)) __builtin_prefetch(res + j, 0);
    }
  }
}

// Computes the tiles of C in row panels [p0, p1) x column panels [q0, q1).
template <class Kernel, class TA, class TC, class TE, class TR>
inline void run_tiles(const GemmProblem<Kernel, TA, TC, TE, TR>& pr, std::size_t p0, std::size_t p1, std::size_t q0,
                      std::size_t q1) {
  using a_t = typename Kernel::a_t;
  using acc_t = typename Kernel::acc_t;
  constexpr std::size_t MR = Kernel::mr, NR = Kernel::nr, KG = Kernel::kg;
  if (p0 >= p1 || q0 >= q1) return;
  const PanelLayout<Kernel> layout{pr.k, pr.n};
  const std::size_t k_blocks = layout.k_blocks();
  // A is read in place when it already has the kernel's element type, row-major in k,
  // and (for k-pairs) every pair lies inside the row.
  const bool a_in_place = std::is_same_v<TA, a_t> && pr.ta == Trans::N && pr.k % KG == 0;

  const std::size_t panels = p1 - p0;
  const std::size_t chunk_count = ceil_div(panels, Kernel::mc / MR);
  const std::size_t chunk_panels = ceil_div(panels, chunk_count);
  const std::size_t cols = (q1 - q0) * NR;

  ScratchLease<a_t> a_pack(ScratchSlot::packed_a, chunk_panels * MR * Kernel::kc);
  ScratchLease<acc_t> partial(ScratchSlot::partial_sums, k_blocks > 1 ? chunk_panels * MR * cols : 0);
  alignas(64) acc_t tile[MR * NR];

  struct APanel {
    const a_t* data;
    std::size_t rs, cs;
  };
  APanel a_panels[256];  // chunk_panels <= Kernel::mc / MR
  static_assert(Kernel::mc / MR <= 256);

  for (std::size_t c0 = p0; c0 < p1; c0 += chunk_panels) {
    const std::size_t c1 = std::min(p1, c0 + chunk_panels);
    for (std::size_t blk = 0; blk < k_blocks; ++blk) {
      const std::size_t k0 = blk * Kernel::kc, kc = layout.block_k(blk), groups = layout.block_groups(blk);
      for (std::size_t p = c0; p < c1; ++p) {
        const std::size_t i0 = p * MR, mr_eff = std::min(MR, pr.m - i0);
        if constexpr (std::is_same_v<TA, a_t>) {
          if (a_in_place && mr_eff == MR) {
            a_panels[p - c0] = {pr.a + i0 * pr.lda + k0, pr.lda, KG};
            continue;
          }
        }
        a_t* dst = a_pack.data() + (p - c0) * MR * Kernel::kc;
        pack_a_panel<Kernel>(pr.ta, pr.a, pr.lda, i0, mr_eff, k0, kc, dst);
        a_panels[p - c0] = {dst, KG, MR * KG};
      }
      const bool last = blk + 1 == k_blocks;
      for (std::size_t q = q0; q < q1; ++q) {
        const typename Kernel::b_t* b_panel = pr.packed_b + layout.offset(blk, q);
        const std::size_t j0 = q * NR, nr_eff = std::min(NR, pr.n - j0);
        for (std::size_t p = c0; p < c1; ++p) {
          acc_t* acc = tile;
          std::size_t ld = NR;
          if (k_blocks > 1) {
            ld = cols;
            acc = partial.data() + (p - c0) * MR * ld + (q - q0) * NR;
          }
          const APanel& ap = a_panels[p - c0];
          const std::size_t i0 = p * MR, mr_eff = std::min(MR, pr.m - i0);
          // The tile's rows of C (and residual) are far apart: no hardware prefetcher
          // finds them, so ask for them while the micro-kernel runs.
          if (last) prefetch_tile(pr.store, i0, mr_eff, j0, nr_eff);
          Kernel::run(groups, ap.data, ap.rs, ap.cs, b_panel, acc, ld, blk > 0);
          if (last) {
            for (std::size_t r = 0; r < mr_eff; ++r) epilogue_row<Kernel::isa>(acc + r * ld, nr_eff, i0 + r, j0, pr.store);
          }
        }
      }
    }
  }
}

// Packs all of op(B) for Kernel into out[PanelLayout{k, n}.size()], in parallel if asked.
template <class Kernel, class TB>
inline void pack_b(Trans tb, std::size_t k, std::size_t n, const TB* b, std::size_t ldb, typename Kernel::b_t* out,
                   bool parallel) {
  const PanelLayout<Kernel> layout{k, n};
  const std::size_t panels = layout.n_panels(), tasks = layout.k_blocks() * panels;
  auto body = [&](std::size_t t) {
    const std::size_t blk = t / panels, q = t % panels;
    const std::size_t j0 = q * Kernel::nr;
    pack_b_panel<Kernel>(tb, b, ldb, blk * Kernel::kc, layout.block_k(blk), j0, std::min(Kernel::nr, n - j0),
                         out + layout.offset(blk, q));
  };
  if (parallel) parallel_for(tasks, body);
  else for (std::size_t t = 0; t < tasks; ++t) body(t);
}

// C = epilogue(alpha * op(A) * packed op(B) + beta * C), in parallel over output tiles if asked.
template <class Kernel, class TA, class TC, class TE, class TR>
inline void run_gemm(const GemmProblem<Kernel, TA, TC, TE, TR>& pr, bool parallel) {
  if (pr.m == 0 || pr.n == 0) return;
  if (pr.k == 0) {  // no products: C = epilogue(beta * C)
    ScratchLease<typename Kernel::acc_t> zeros(ScratchSlot::partial_sums, pr.n);
    std::fill(zeros.data(), zeros.data() + pr.n, typename Kernel::acc_t(0));
    for (std::size_t i = 0; i < pr.m; ++i) epilogue_row<Kernel::isa>(zeros.data(), pr.n, i, 0, pr.store);
    return;
  }
  const std::size_t row_panels = ceil_div(pr.m, Kernel::mr), col_panels = ceil_div(pr.n, Kernel::nr);
  const TaskGrid grid = plan_tasks<Kernel>(pr.m, pr.n, parallel ? static_cast<std::size_t>(num_threads()) : 1);
  auto body = [&](std::size_t t) {
    const std::size_t r = t / grid.col_parts, c = t % grid.col_parts;
    run_tiles(pr, part_begin(row_panels, grid.row_parts, r), part_begin(row_panels, grid.row_parts, r + 1),
              part_begin(col_panels, grid.col_parts, c), part_begin(col_panels, grid.col_parts, c + 1));
  };
  if (parallel) parallel_for(grid.count(), body);
  else for (std::size_t t = 0; t < grid.count(); ++t) body(t);
}

}  // namespace mpt::detail
