// Two translation units that both include the whole library, linked into one
// program: a header function that is not inline (or a non-inline variable)
// breaks this link with a multiple-definition error.
#include <mpt/mpt.hpp>

float sum_of_roundings(float x);
float sum_of_roundings(float x) { return mpt::round_to_bf16(x) + static_cast<float>(mpt::num_threads() > 0); }
