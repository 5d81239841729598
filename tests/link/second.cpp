#include <mpt/mpt.hpp>

#include <cstdio>

float sum_of_roundings(float x);

int main() {
  // 1.00390625 is a tie between two bf16 values: round to even gives 1.0.
  const float got = sum_of_roundings(1.00390625f) + mpt::round_to_bf16(1.0f);
  std::printf("two translation units linked: %g (ISA %s)\n", static_cast<double>(got), std::string(mpt::isa_name(mpt::active_isa())).c_str());
  return got == 3.0f ? 0 : 1;
}
