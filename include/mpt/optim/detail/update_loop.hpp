#pragma once
// The one fused pass of every optimizer: the flat buffer is cut into runs
// (contiguous, one weight-decay decision, at most update_run_elements long)
// and each run is one parallel task. Updates are element-wise, so the bits
// do not depend on the thread count.

#include <mpt/core/threads.hpp>

#include <immintrin.h>
#include <mpt/optim/parameter_table.hpp>

#include <cstddef>
#include <vector>

namespace mpt::optim::detail {

inline constexpr std::size_t update_run_elements = 32768;

template <class Body>
void for_each_run(const std::vector<DecayRun>& runs, Body&& body) {
  parallel_for(runs.size(), [&](std::size_t r) { body(runs[r]); });
}

inline __mmask16 tail_mask(std::size_t left) noexcept {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}

}  // namespace mpt::optim::detail
