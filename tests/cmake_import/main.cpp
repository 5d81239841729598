#include <mpt/mpt.hpp>

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> x = {1.0f, 1.00390625f, -2.5f};
  std::vector<mpt::bf16> y(x.size());
  mpt::convert(std::span<const float>(x), std::span<mpt::bf16>(y));
  const bool ok = mpt::to_float(y[1]) == 1.0f && mpt::to_float(y[2]) == -2.5f;
  std::printf("downstream project built against installed mpt: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
