#pragma once
// General matrix multiply for training on CPUs: fp32 accumulation of fp32 or bf16
// operands (fp64 for gradient checks), fused epilogues, runtime-chosen micro-kernels.
//
//   gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue = {})
//       C[M x N] = epilogue(alpha * op(A)[M x K] * op(B)[K x N] + beta * C)
//   PackedB<T>(tb, K, N, B, ldb)          op(B) packed once, reused by many gemm calls
//   gemm(ta, M, N, K, alpha, A, lda, packed, beta, C, ldc, epilogue = {})
//   PackedLinearWeight<T>(W, out, in, ldw)   W packed for forward and input gradient
//   gemm_strided_batched(ta, tb, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
//                        beta, C, ldc, stride_c, batch)        attention: batch x heads
//   bias_grad(dY, M, N, ld, db)           db[j] += sum_i dY[i, j]
//   linear_weight_grad(T, out, in, dY, ldy, X, ldx, dW, ldw, db)   dW += dY^T X and db in one pass over dY
//
// Linear layer y = x W^T + b, x [T x in], W [out x in]:
//   forward      gemm(N, T, T, out, in, 1, x, in, W, in, 0, y, out, {bias, gelu})
//   input grad   gemm(N, N, T, in, out, 1, dy, out, W, in, 0, dx, in)
//   weight grad  linear_weight_grad(T, out, in, dy, out, x, in, dW, in, db)   (dW += dy^T x, db += column sums of dy)
//                = gemm(T, N, out, in, T, 1, dy, out, x, in, 1, dW, in) + bias_grad(dy, T, out, out, db), one pass
//
// Threads split output tiles, never the k reduction: results are bitwise identical
// for any thread count. See gemm/driver.hpp for the blocking, gemm/dispatch.hpp
// for which micro-kernel runs where.

#include <mpt/core/aligned.hpp>
#include <mpt/core/bf16.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/kernels/gemm/bias_grad.hpp>
#include <mpt/kernels/gemm/dispatch.hpp>
#include <mpt/kernels/gemm/driver.hpp>
#include <mpt/kernels/gemm/types.hpp>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace mpt::kernels {

namespace detail {

// ld_name: the caller's name of the leading dimension (default lda / ldb / ldc from name).
inline void check_gemm_operand(const char* op, const char* name, Trans t, std::size_t rows, std::size_t cols, const void* p, std::size_t ld,
                               const char* ld_name = nullptr) {
  // Stored shape of op(X) [rows x cols]: X itself is [rows x cols] (N) or [cols x rows] (T).
  const std::size_t stored_cols = t == Trans::N ? cols : rows;
  if (rows == 0 || cols == 0) return;
  if (p == nullptr) throw_error(op, ": ", name, " is null but op(", name, ") has shape [", rows, " x ", cols, "]");
  if (ld < stored_cols) {
    throw_error(op, ": leading dimension of ", name, " is ", ld, " but ", name, " is stored with ", stored_cols, " columns (",
                t == Trans::N ? "N" : "T", "); pass ",
                ld_name          ? ld_name
                : name[0] == 'A' ? "lda"
                : name[0] == 'B' ? "ldb"
                                 : "ldc",
                " >= ", stored_cols);
  }
}

template <class TE, class TR>
inline void check_epilogue(const char* op, std::size_t m, std::size_t n, const GemmEpilogue<TE, TR>& e) {
  if (e.residual && e.ldr < n && m > 0) {
    throw_error(op, ": epilogue residual has leading dimension ", e.ldr, " but C has ", n, " columns; set ldr >= N");
  }
}

// The part of op(A) [M x K] from column k0 on.
template <class TA>
const TA* a_from_k(Trans ta, const TA* a, std::size_t lda, std::size_t k0) noexcept {
  return ta == Trans::N ? a + k0 : a + k0 * lda;
}

template <class Kernel, class TA, class TC, class TE, class TR>
GemmProblem<Kernel, TA, TC, TE, TR> make_problem(Trans ta, std::size_t m, std::size_t n, std::size_t k, typename Kernel::acc_t alpha, const TA* a,
                                                 std::size_t lda, const typename Kernel::b_t* packed_b, typename Kernel::acc_t beta, TC* c,
                                                 std::size_t ldc, const GemmEpilogue<TE, TR>& e) {
  return {ta, m, n, k, a, lda, packed_b, {alpha, beta, c, ldc, e}};
}

}  // namespace detail

namespace detail {

// gemm below, with op(A)'s row sums added into a_row_sums[M] on the way if it is set.
template <class TA, class TB, class TC, class TE, class TR>
void gemm_unpacked(Trans ta, Trans tb, std::size_t m, std::size_t n, std::size_t k, gemm_scalar_t<TA, TB> alpha, const TA* a, std::size_t lda,
                   const TB* b, std::size_t ldb, gemm_scalar_t<TA, TB> beta, TC* c, std::size_t ldc, const GemmEpilogue<TE, TR>& epilogue,
                   gemm_scalar_t<TA, TB>* a_row_sums) {
  with_gemm_kernel<TA, TB>(active_isa(), [&](auto kernel) {
    using Kernel = decltype(kernel);
    using acc_t = typename Kernel::acc_t;
    const auto whole = make_problem<Kernel>(ta, m, n, k, alpha, a, lda, nullptr, beta, c, ldc, epilogue);
    // Row sums run from zero over all of k and are added once at the end, as bias_grad
    // adds its column sums (the same bits).
    mpt::detail::ScratchLease<acc_t> running(ScratchSlot::row_sums, a_row_sums ? m : 0);
    if (a_row_sums) std::fill(running.data(), running.data() + m, acc_t(0));
    // When C can carry the running sums (e.g. a weight gradient accumulated into fp32),
    // run one k-block at a time: only that block of op(B) is packed, and it stays in
    // cache for all row tiles instead of streaming a large packed B from memory per tile.
    const std::size_t step = c_holds_running_sums(whole.store) ? PanelLayout<Kernel>{k, n}.kc : k;
    std::size_t k0 = 0;
    do {
      const std::size_t kb = std::min(step, k - k0);
      const PanelLayout<Kernel> layout{kb, n};
      mpt::detail::ScratchLease<typename Kernel::b_t> packed(ScratchSlot::packed_b, layout.size());
      pack_b<Kernel>(tb, kb, n, tb == Trans::N ? b + k0 * ldb : b + k0, ldb, packed.data(), true);
      auto problem = make_problem<Kernel>(ta, m, n, kb, alpha, a_from_k(ta, a, lda, k0), lda, packed.data(), k0 == 0 ? beta : 1, c, ldc, epilogue);
      problem.a_row_sums = a_row_sums ? running.data() : nullptr;
      run_gemm(problem, true);
      k0 += kb;
    } while (k0 < k);
    if (a_row_sums) {
      for (std::size_t i = 0; i < m; ++i) a_row_sums[i] += running.data()[i];
    }
  });
}

}  // namespace detail

// C[M x N] = epilogue(alpha * op(A)[M x K] * op(B)[K x N] + beta * C).
// TA, TB: float, bf16 or double; TC: float, bf16 or double. C is not read when beta == 0.
template <class TA, class TB, class TC, class TE = float, class TR = TE>
void gemm(Trans ta, Trans tb, std::size_t m, std::size_t n, std::size_t k, detail::gemm_scalar_t<TA, TB> alpha, const TA* a, std::size_t lda,
          const TB* b, std::size_t ldb, detail::gemm_scalar_t<TA, TB> beta, TC* c, std::size_t ldc, const GemmEpilogue<TE, TR>& epilogue = {}) {
  detail::check_gemm_operand("gemm", "A", ta, m, k, a, lda);
  detail::check_gemm_operand("gemm", "B", tb, k, n, b, ldb);
  detail::check_gemm_operand("gemm", "C", Trans::N, m, n, c, ldc);
  detail::check_epilogue("gemm", m, n, epilogue);
  if (m == 0 || n == 0) return;
  detail::gemm_unpacked(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue, static_cast<detail::gemm_scalar_t<TA, TB>*>(nullptr));
}

// Weight and bias gradients of a linear layer y = x W^T + b, x [T x in], W [out x in],
// in one pass over dY [T x out] (the bias gradient is summed from the packed panels of dY^T):
//   dW[out x in] += dY^T X          (fp32, or fp64 for fp64 operands)
//   db[out]      += sum_t dY[t, :]  (when db is not null; the same bits as bias_grad)
template <class T, class TG>
void linear_weight_grad(std::size_t tokens, std::size_t out, std::size_t in, const T* dy, std::size_t ldy, const T* x, std::size_t ldx, TG* dw,
                        std::size_t ldw, TG* db) {
  static_assert(std::is_same_v<TG, detail::gemm_scalar_t<T, T>>,
                "linear_weight_grad: gradients accumulate in the GEMM's accumulation type (float, or double for "
                "double operands)");
  detail::check_gemm_operand("linear_weight_grad", "dY", Trans::T, out, tokens, dy, ldy, "ldy");
  detail::check_gemm_operand("linear_weight_grad", "X", Trans::N, tokens, in, x, ldx, "ldx");
  detail::check_gemm_operand("linear_weight_grad", "dW", Trans::N, out, in, dw, ldw, "ldw");
  if (out == 0) return;
  if (in == 0) {  // no weight gradient, still a bias gradient
    if (db) bias_grad(dy, tokens, out, ldy, db);
    return;
  }
  detail::gemm_unpacked(Trans::T, Trans::N, out, in, tokens, TG(1), dy, ldy, x, ldx, TG(1), dw, ldw, GemmEpilogue<TG>{}, db);
}

// op(B) [K x N] packed for the micro-kernel that the active instruction set selects
// for T x T products, reusable across gemm calls (e.g. a weight over many batches).
template <class T>
class PackedB {
 public:
  PackedB() = default;
  PackedB(Trans tb, std::size_t k, std::size_t n, const T* b, std::size_t ldb, Isa isa = active_isa()) : k_(k), n_(n) {
    detail::check_gemm_operand("PackedB", "B", tb, k, n, b, ldb);
    detail::with_gemm_kernel<T, T>(isa, [&](auto kernel) {
      using Kernel = decltype(kernel);
      kernel_ = detail::gemm_kernel_id<Kernel>();
      const detail::PanelLayout<Kernel> layout{k, n};
      storage_ = AlignedBuffer<std::byte>(layout.size() * sizeof(typename Kernel::b_t));
      detail::pack_b<Kernel>(tb, k, n, b, ldb, reinterpret_cast<typename Kernel::b_t*>(storage_.data()), true);
    });
  }
  std::size_t k() const noexcept { return k_; }
  std::size_t n() const noexcept { return n_; }
  GemmKernel kernel() const noexcept { return kernel_; }
  const std::byte* data() const noexcept { return storage_.data(); }

 private:
  std::size_t k_ = 0, n_ = 0;
  GemmKernel kernel_ = GemmKernel::scalar_fp32;
  AlignedBuffer<std::byte> storage_;
};

// A linear layer's weight W [out x in] (leading dimension ldw) packed once per
// update for both products that read it: forward y = x W^T (op(B) = W^T, K = in)
// and input gradient dx = dy W (op(B) = W, K = out). Each needs its own panel order.
template <class T>
struct PackedLinearWeight {
  PackedLinearWeight(const T* w, std::size_t out, std::size_t in, std::size_t ldw, Isa isa = active_isa())
      : forward(Trans::T, in, out, w, ldw, isa), input_grad(Trans::N, out, in, w, ldw, isa) {}
  PackedB<T> forward;     // op(B) = W^T [in x out]
  PackedB<T> input_grad;  // op(B) = W   [out x in]
};

// C[M x N] = epilogue(alpha * op(A)[M x K] * B + beta * C) with B packed beforehand.
template <class T, class TC, class TE = float, class TR = TE>
void gemm(Trans ta, std::size_t m, std::size_t n, std::size_t k, detail::gemm_scalar_t<T, T> alpha, const T* a, std::size_t lda, const PackedB<T>& b,
          detail::gemm_scalar_t<T, T> beta, TC* c, std::size_t ldc, const GemmEpilogue<TE, TR>& epilogue = {}) {
  if (b.k() != k || b.n() != n) {
    throw_error("gemm: packed B holds op(B) [", b.k(), " x ", b.n(), "] but the call needs [", k, " x ", n, "]; pack the matching matrix");
  }
  detail::check_gemm_operand("gemm", "A", ta, m, k, a, lda);
  detail::check_gemm_operand("gemm", "C", Trans::N, m, n, c, ldc);
  detail::check_epilogue("gemm", m, n, epilogue);
  if (m == 0 || n == 0) return;
  detail::with_gemm_kernel<T, T>(active_isa(), [&](auto kernel) {
    using Kernel = decltype(kernel);
    if (detail::gemm_kernel_id<Kernel>() != b.kernel()) {
      throw_error("gemm: B was packed for micro-kernel ", gemm_kernel_name(b.kernel()), " but the active instruction set (", isa_name(active_isa()),
                  ") runs ", gemm_kernel_name(detail::gemm_kernel_id<Kernel>()), "; pack B again under the same instruction set");
    }
    const auto* packed = reinterpret_cast<const typename Kernel::b_t*>(b.data());
    const auto whole = detail::make_problem<Kernel>(ta, m, n, k, alpha, a, lda, packed, beta, c, ldc, epilogue);
    if (!detail::c_holds_running_sums(whole.store)) return detail::run_gemm(whole, true);
    // One k-block at a time, exactly as the unpacked gemm does (same bits).
    const detail::PanelLayout<Kernel> layout{k, n};
    for (std::size_t blk = 0; blk < layout.k_blocks(); ++blk) {
      const std::size_t k0 = blk * layout.kc;
      detail::run_gemm(detail::make_problem<Kernel>(ta, m, n, layout.block_k(blk), alpha, detail::a_from_k(ta, a, lda, k0), lda,
                                                    packed + layout.offset(blk, 0), blk == 0 ? beta : 1, c, ldc, epilogue),
                       true);
    }
    if (k == 0) detail::run_gemm(whole, true);
  });
}

// For p in [0, batch): C_p = alpha * op(A_p) * op(B_p) + beta * C_p with
// A_p = A + p * stride_a (likewise B, C): attention's Q K^T, P V and their gradients
// over (batch x heads). Parallel over the batch when it has enough items, else within each.
template <class TA, class TB, class TC>
void gemm_strided_batched(Trans ta, Trans tb, std::size_t m, std::size_t n, std::size_t k, detail::gemm_scalar_t<TA, TB> alpha, const TA* a,
                          std::size_t lda, std::size_t stride_a, const TB* b, std::size_t ldb, std::size_t stride_b,
                          detail::gemm_scalar_t<TA, TB> beta, TC* c, std::size_t ldc, std::size_t stride_c, std::size_t batch) {
  if (batch == 0 || m == 0 || n == 0) return;
  detail::check_gemm_operand("gemm_strided_batched", "A", ta, m, k, a, lda);
  detail::check_gemm_operand("gemm_strided_batched", "B", tb, k, n, b, ldb);
  detail::check_gemm_operand("gemm_strided_batched", "C", Trans::N, m, n, c, ldc);
  // Items may sit one after another (stride_c >= (M-1)*ldc + N) or side by
  // side in the columns of one matrix (attention heads: stride_c = N,
  // ldc >= batch * N); anything else makes outputs overlap.
  const bool stacked = stride_c >= (m - 1) * ldc + n;
  const bool side_by_side = stride_c >= n && stride_c * (batch - 1) + n <= ldc;
  if (batch > 1 && !stacked && !side_by_side) {
    throw_error("gemm_strided_batched: stride_c ", stride_c, " makes the ", m, " x ", n,
                " outputs of consecutive items overlap; pass stride_c >= (M-1)*ldc + N, or place the items side by "
                "side with stride_c >= N and (batch-1)*stride_c + N <= ldc");
  }
  if (batch < static_cast<std::size_t>(num_threads())) {
    for (std::size_t p = 0; p < batch; ++p) {
      gemm(ta, tb, m, n, k, alpha, a + p * stride_a, lda, b + p * stride_b, ldb, beta, c + p * stride_c, ldc);
    }
    return;
  }
  detail::with_gemm_kernel<TA, TB>(active_isa(), [&](auto kernel) {
    using Kernel = decltype(kernel);
    const detail::PanelLayout<Kernel> layout{k, n};
    parallel_for(batch, [&](std::size_t p) {
      mpt::detail::ScratchLease<typename Kernel::b_t> packed(detail::ScratchSlot::packed_b, layout.size());
      detail::pack_b<Kernel>(tb, k, n, b + p * stride_b, ldb, packed.data(), false);
      detail::run_gemm(
          detail::make_problem<Kernel>(ta, m, n, k, alpha, a + p * stride_a, lda, packed.data(), beta, c + p * stride_c, ldc, GemmEpilogue<float>{}),
          false);
    });
  });
}

}  // namespace mpt::kernels
