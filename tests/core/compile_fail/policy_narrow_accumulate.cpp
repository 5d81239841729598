// Must NOT compile: a 16-bit accumulator. The test expects the sentence from
// precision_policy's static_assert in the compiler's output.
#include <mpt/mpt.hpp>
int main() {
  using bad = mpt::precision::precision_policy<mpt::bf16, mpt::bf16, mpt::bf16>;
  return sizeof(bad::param_t) == 0;
}
