// AdamW cannot update bf16 parameters in place: the message names the fix.
#include <mpt/mpt.hpp>
int main() {
  std::vector<mpt::bf16> p(4);
  mpt::optim::AdamW<mpt::precision::bf16_mixed, mpt::optim::weights::direct> opt(std::span{p}, mpt::optim::ParameterTable::single("w", 4));
}
