// libFuzzer entry of fuzz_optimizer_state (scripts/fuzz.sh optimizer_state SECONDS); the body is in fuzz_optimizer_state.hpp.
#include "fuzz_optimizer_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpt_fuzz::fuzz_optimizer_state(data, size);
  return 0;
}
