#pragma once
// Bias gradient of a linear layer: column sums of dY, accumulated into db.
//
// Shape: dY [M x N] (leading dimension ld), db [N]:  db[j] += sum_i dY[i, j]
// Rows are summed in order 0..M-1 in the accumulation type and added to db once,
// and threads split columns only: the result is the same for any thread count.

#include <mpt/core/bf16.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/kernels/gemm/pack.hpp>

#include <algorithm>
#include <cstddef>

namespace mpt::kernels {

template <class T, class TOut>
void bias_grad(const T* dy, std::size_t m, std::size_t n, std::size_t ld, TOut* db) {
  if (n == 0) return;
  if (ld < n) throw_error("bias_grad: leading dimension ", ld, " is smaller than the ", n, " columns of dY; pass ld >= N");
  if (db == nullptr || (m != 0 && dy == nullptr)) throw_error("bias_grad: null dY or db pointer for a ", m, " x ", n, " dY");
  constexpr std::size_t columns_per_task = 256;
  parallel_for(detail::ceil_div(n, columns_per_task), [&](std::size_t t) {
    const std::size_t j0 = t * columns_per_task, w = std::min(columns_per_task, n - j0);
    TOut sums[columns_per_task] = {};
    for (std::size_t i = 0; i < m; ++i) {
      const T* row = dy + i * ld + j0;
      for (std::size_t j = 0; j < w; ++j) sums[j] += detail::convert_element<TOut>(row[j]);
    }
    for (std::size_t j = 0; j < w; ++j) db[j0 + j] += sums[j];
  });
}

}  // namespace mpt::kernels
