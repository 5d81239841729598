#pragma once
// GEMM's scratch (packed panels, partial sums, row sums): per-slot reusable
// blocks from core/scratch.hpp, under GEMM's names.

#include <mpt/core/scratch.hpp>

namespace mpt::kernels::detail {

using ScratchSlot = mpt::detail::ScratchKind;

}  // namespace mpt::kernels::detail
