#pragma once
// Embedding lookup and its gradient.
//
//   embedding_forward(ids, table, out)
//     ids [tokens...] int32, table [vocab, hidden] fp32 / bf16 / double,
//     out [tokens..., hidden]: out[t] = table[ids[t]] (converted to out's type)
//   embedding_backward(ids, dout, dtable)
//     dtable [vocab, hidden] fp32 (or double) += dout[t] at row ids[t].
//     Deterministic for any thread count: each task owns a fixed range of
//     vocabulary rows and adds its tokens' gradients in token order.
// An id outside [0, vocab) is an mpt::Error naming the id, its position and the vocabulary size.

#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/kernels/detail/rows.hpp>
#include <mpt/kernels/detail/simd.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace mpt::kernels {
namespace detail {
inline constexpr std::size_t embedding_backward_tasks = 64;  // vocabulary ranges (fixed: thread-count independent)

template <class Id>
void check_embedding_ids(const char* op, TensorView<Id> ids, std::int64_t vocab) {
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) {
      throw_error(op, ": token id ", ids[t], " at position ", t, " is outside the vocabulary of ", vocab, " rows; ids must lie in [0, ", vocab, ")");
    }
  }
}

// Checks table [vocab, hidden] and `what` [ids' shape..., hidden]; returns vocab.
template <class Ids, class Table>
std::int64_t check_embedding_shapes(const char* op, TensorView<Ids> ids, TensorView<Table> table, const char* what, const Shape& rows) {
  if (table.rank() != 2) throw_error(op, ": the table must be [vocab, hidden] but has shape ", table.shape());
  Shape expected;
  const Shape& s = ids.shape();
  switch (s.rank()) {
    case 0:
      expected = Shape{table.dim(1)};
      break;
    case 1:
      expected = Shape{s[0], table.dim(1)};
      break;
    case 2:
      expected = Shape{s[0], s[1], table.dim(1)};
      break;
    default:
      expected = Shape{s[0], s[1], s[2], table.dim(1)};
      break;
  }
  check_shape(op, what, rows, expected);
  return table.dim(0);
}
}  // namespace detail

template <class Id, class T, class Out>
void embedding_forward(TensorView<Id> ids, TensorView<T> table, TensorView<Out> out) {
  static_assert(std::is_same_v<std::remove_const_t<Id>, std::int32_t>, "embedding_forward: token ids are int32");
  using TT = std::remove_const_t<T>;
  const std::int64_t vocab = detail::check_embedding_shapes("embedding_forward", ids, table, "out", out.shape());
  detail::check_embedding_ids("embedding_forward", ids, vocab);
  const std::size_t hidden = static_cast<std::size_t>(table.dim(1));
  detail::for_each_row_chunk(ids.size(), 64, [&](std::size_t begin, std::size_t end) {
    for (std::size_t t = begin; t < end; ++t) {
      const TT* row = table.data() + static_cast<std::size_t>(ids[t]) * hidden;
      Out* dst = out.data() + t * hidden;
      if constexpr (std::is_same_v<TT, Out>) {
        std::memcpy(dst, row, hidden * sizeof(Out));
      } else if constexpr (std::is_same_v<TT, float> && std::is_same_v<Out, bf16>) {
        convert(std::span<const float>(row, hidden), std::span<bf16>(dst, hidden));
      } else if constexpr (std::is_same_v<TT, bf16> && std::is_same_v<Out, float>) {
        convert(std::span<const bf16>(row, hidden), std::span<float>(dst, hidden));
      } else {
        for (std::size_t j = 0; j < hidden; ++j) dst[j] = static_cast<Out>(to_float(row[j]));
      }
    }
  });
}

template <class Id, class G, class Acc>
void embedding_backward(TensorView<Id> ids, TensorView<G> dout, TensorView<Acc> dtable) {
  static_assert(std::is_same_v<std::remove_const_t<Id>, std::int32_t>, "embedding_backward: token ids are int32");
  static_assert(std::is_same_v<Acc, float> || std::is_same_v<Acc, double>, "embedding_backward: the gradient table accumulates in fp32 (or double)");
  using GG = std::remove_const_t<G>;
  const std::int64_t vocab = detail::check_embedding_shapes("embedding_backward", ids, dtable, "dout", dout.shape());
  detail::check_embedding_ids("embedding_backward", ids, vocab);
  const std::size_t hidden = static_cast<std::size_t>(dtable.dim(1));
  const std::size_t tasks = detail::embedding_backward_tasks;
  const std::size_t rows_per_task = (static_cast<std::size_t>(vocab) + tasks - 1) / tasks;
  mpt::parallel_for(tasks, [&](std::size_t task) {
    const std::int64_t lo = static_cast<std::int64_t>(task * rows_per_task);
    const std::int64_t hi = lo + static_cast<std::int64_t>(rows_per_task);
    for (std::size_t t = 0; t < ids.size(); ++t) {
      if (ids[t] < lo || ids[t] >= hi) continue;
      Acc* dst = dtable.data() + static_cast<std::size_t>(ids[t]) * hidden;
      const GG* src = dout.data() + t * hidden;
      for (std::size_t j = 0; j < hidden; ++j) dst[j] += static_cast<Acc>(to_float(src[j]));
    }
  });
}

}  // namespace mpt::kernels
