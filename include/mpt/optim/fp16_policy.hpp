#pragma once
// fp16 storage: fp16 weights and activations (F16C conversions), fp32
// compute, gradients and master weights. fp16's narrow exponent range is
// what dynamic loss scaling exists for. (Belongs with the other policies in
// policy/precision.hpp; kept here until that file's owner takes it.)

#include <mpt/core/fp16_convert.hpp>
#include <mpt/policy/precision.hpp>

namespace mpt::precision {
using fp16_mixed = precision_policy<fp16, fp16>;
}  // namespace mpt::precision
