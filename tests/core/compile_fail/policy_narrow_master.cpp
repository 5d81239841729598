// Must NOT compile: master weights narrower than the compute copy.
#include <mpt/mpt.hpp>
int main() {
  using bad = mpt::precision::precision_policy<float, float, float, mpt::bf16>;
  return sizeof(bad::param_t) == 0;
}
